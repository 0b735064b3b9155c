"""Canonical engine speed and quality at the paper's setting; prints one JSON object.

    python benchmarks/bench_canonical.py [--epochs 400] [--timing-epochs 20]

``seconds_per_epoch``: mean wall time of one epoch (bc-10-100-1000, standard network, batch
size 5, 1000 rows = 200 Adam steps, plus the per-epoch train/validation evaluation), measured
on a run of ``--timing-epochs`` epochs, unpruned and with the random operator pruning at every
epoch. ``test_loss``: L1 of the unpruned default run of ``--epochs`` epochs (our defaults:
BCE, then L1 from half-way, lr 1e-3, batch 5). ``--backend torch`` measures the batched torch
path instead of the fused C kernels (``evoprune_core.native``).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from evoprune_core.loading import load_run_config, run
from evoprune_core.plugins import Registry


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=400)
    ap.add_argument("--timing-epochs", type=int, default=20)
    ap.add_argument("--backend", choices=("auto", "native", "torch"), default="auto")
    args = ap.parse_args()
    reg = Registry.load(entry_points=False)
    base = [
        "data.name=bc-10-100-1000",
        "network.preset='standard'",
        "training.batch_size=5",
        f"compute.backend={args.backend}",
    ]

    def timed(extra: list[str]) -> float:
        cfg = load_run_config(None, [*base, f"generations={args.timing_epochs}", *extra], reg)
        res = run(cfg, reg)
        return res.seconds / args.timing_epochs

    unpruned = timed([])
    pruned = timed(["pruning.operator=random", "pruning.probability=1.0", "pruning.amount=0.05"])
    t0 = time.perf_counter()
    full = run(load_run_config(None, [*base, f"generations={args.epochs}"], reg), reg)
    print(
        json.dumps(
            {
                "benchmark": "canonical",
                "setting": "bc-10-100-1000, standard network (61,670 weights), batch 5, 200 steps/epoch",
                "seconds_per_epoch": round(unpruned, 4),
                "seconds_per_epoch_pruning_every_epoch": round(pruned, 4),
                "epochs": args.epochs,
                "run_seconds": round(time.perf_counter() - t0, 2),
                "test_loss": round(full.test_loss, 4),
                "val_loss": round(full.val_loss, 4),
                "torch": torch.__version__,
                "backend": full.extra["backend"],
                "machine": platform.machine(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
