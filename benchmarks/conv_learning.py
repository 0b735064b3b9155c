"""Does the conv autoencoder learn MNIST-5k, pruned and unpruned, in both engines?

Runs ``studies/runs/mnist-conv.toml`` (canonical) and ``studies/runs/mnist-conv-lipi.toml``
(Lipi-AE ring) with the variance operator and with ``none``, and the dense ``standard``
preset on the same data, over ``--seeds`` seeds; writes every run's figures to ``--out``
(JSON lines, appended, so an interrupted sweep resumes) and prints the medians and
interquartile ranges as JSON, beside the test L1 of predicting every pixel's training mean.

    nice python benchmarks/conv_learning.py --seeds 5 --out conv_learning.jsonl
    nice python benchmarks/conv_learning.py --seeds 5 --out conv_learning.jsonl \
        --settings "canonical conv-standard" --operators conjunctive
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from evoprune_core.data import mnist_5k
from evoprune_core.loading import load_run

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {
    "canonical conv-standard": ("studies/runs/mnist-conv.toml", []),
    # the run file's ring: 4 cells, radius 1, 20 generations
    "lipi conv-standard": ("studies/runs/mnist-conv-lipi.toml", []),
    "canonical dense standard": (
        "studies/runs/mnist-conv.toml",
        ["network.preset=standard", "compute.backend=auto"],
    ),
}


def _channels(result) -> list[int]:
    """Output channels/features of every parameter layer of the exported best network."""
    net = result.population.compact(result.best)
    return [
        getattr(m, "out_channels", getattr(m, "out_features", 0))
        for m in net.modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear))
    ]


def run_one(name: str, operator: str, seed: int) -> dict[str, object]:
    path, extra = SETTINGS[name]
    sets = [*extra, f"seed={seed}", f"pruning.operator={operator}"]
    run = load_run(ROOT / path, sets)
    result = run.run()
    net = result.population.compact(result.best)
    total = result.sparsity.whole[1]
    return {
        "setting": name,
        "operator": operator,
        "seed": seed,
        "test_l1": result.test_loss,
        "val_l1": result.val_loss,
        "remaining_fraction": result.remaining_fraction,
        "compact_params": sum(p.numel() for p in net.parameters()),
        "params": total,
        "units": _channels(result),
        "seconds": result.seconds,
    }


def _q(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=float)
    return {
        "median": float(np.median(a)),
        "q1": float(np.percentile(a, 25)),
        "q3": float(np.percentile(a, 75)),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out", default="conv_learning.jsonl")
    ap.add_argument("--settings", nargs="*", default=list(SETTINGS))
    ap.add_argument("--operators", nargs="*", default=["none", "variance"])
    args = ap.parse_args()
    out = Path(args.out)
    done = set()
    rows = []
    if out.exists():
        for line in out.read_text().splitlines():
            r = json.loads(line)
            rows.append(r)
            done.add((r["setting"], r["operator"], r["seed"]))
    for name in args.settings:
        for operator in args.operators:
            for seed in range(1, args.seeds + 1):
                if (name, operator, seed) in done:
                    continue
                r = run_one(name, operator, seed)
                rows.append(r)
                with out.open("a") as fh:
                    fh.write(json.dumps(r) + "\n")
                print(json.dumps(r), flush=True)
    mean_l1 = []
    for seed in range(1, args.seeds + 1):
        d = mnist_5k(seed)
        mean_l1.append(float((d.test - d.train.mean(0)).abs().mean()))
    summary: dict[str, object] = {"mean_predictor_test_l1": _q(mean_l1)}
    for name in args.settings:
        for operator in args.operators:
            sel = [r for r in rows if r["setting"] == name and r["operator"] == operator]
            if not sel:
                continue
            summary[f"{name} / {operator}"] = {
                "runs": len(sel),
                "test_l1": _q([r["test_l1"] for r in sel]),
                "remaining_fraction": _q([r["remaining_fraction"] for r in sel]),
                "compact_fraction": _q([r["compact_params"] / r["params"] for r in sel]),
                "units_median": [
                    float(np.median([r["units"][i] for r in sel]))
                    for i in range(len(sel[0]["units"]))
                ],
                "seconds": _q([r["seconds"] for r in sel]),
            }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
