"""Evolution speed: candidate evaluations per second and the quickstart's time; prints JSON.

    python benchmarks/bench_evolve.py [--file studies/evolve/quickstart.toml] [--skip-quickstart]

``candidates_per_second``: the seven seeds plus random valid trees (``--candidates`` in all)
scored and evaluated as one generation on the file's fitness tasks - every candidate pruned at
every fraction and fine-tuned, all candidates x fractions of a task as one population.
``quickstart_seconds``: the whole ``evoprune evolve`` of the file (pre-training, evolution,
hall of fame, transfer table, MLflow) in a fresh temporary store. CPU seconds are given
beside wall seconds: on a shared machine wall time measures the neighbours too.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import tempfile
import time
from pathlib import Path

import torch
from deap import gp

from evoprune_core.cli import main as cli_main
from evoprune_core.engines.runtime import cpu_numerics, resolve_compute
from evoprune_core.evolve.config import load_evolve_config
from evoprune_core.evolve.fitness import evaluate, prepare_task, task_scores
from evoprune_core.evolve.grammar import parse
from evoprune_core.evolve.primitives import Scalar, primitive_set
from evoprune_core.evolve.randomness import deap_random
from evoprune_core.evolve.seeds import SEEDS
from evoprune_core.plugins import Registry


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--file", default="studies/evolve/quickstart.toml")
    ap.add_argument("--candidates", type=int, default=16)
    ap.add_argument("--skip-quickstart", action="store_true")
    args = ap.parse_args()
    reg = Registry.load(entry_points=False)
    cfg = load_evolve_config(args.file, [], reg)
    compute = resolve_compute(cfg.compute)
    out: dict[str, object] = {"benchmark": "evolve", "file": args.file, "backend": compute.backend}
    with cpu_numerics():
        w0, c0 = _clock()
        tasks = [
            prepare_task(t, cfg.fitness, cfg.seed, compute, reg, None) for t in cfg.fitness.tasks
        ]
        w1, c1 = _clock()
        out["pretrain_seconds"] = round(w1 - w0, 2)
        trees = [parse(t) for t in SEEDS.values()]
        rng = random.Random(0)
        while len(trees) < args.candidates:
            with deap_random(rng):
                tree = gp.PrimitiveTree(gp.genHalfAndHalf(primitive_set(), 1, 4, type_=Scalar))
            if all(task_scores(tree, t, cfg.evolution.max_elements) is not None for t in tasks):
                trees.append(tree)
        w2, c2 = _clock()
        scores = [[task_scores(tr, t, cfg.evolution.max_elements) for tr in trees] for t in tasks]
        w3, c3 = _clock()
        for t, s in zip(tasks, scores):
            evaluate(s, t, cfg.fitness, compute)
        w4, c4 = _clock()
    total = w4 - w2
    out.update(
        candidates=len(trees),
        scoring_seconds=round(w3 - w2, 3),
        finetune_seconds=round(w4 - w3, 3),
        candidates_per_second=round(len(trees) / total, 3),
        candidates_per_cpu_second=round(len(trees) / (c4 - c2), 3),
    )
    if not args.skip_quickstart:
        with tempfile.TemporaryDirectory() as tmp:
            w5, c5 = _clock()
            code = cli_main(["evolve", args.file, "--store", str(Path(tmp) / "store"), "--quiet"])
            w6, c6 = _clock()
        out.update(
            quickstart_exit=code,
            quickstart_seconds=round(w6 - w5, 1),
            quickstart_cpu_seconds=round(c6 - c5, 1),
        )
    out.update(torch=torch.__version__, threads=torch.get_num_threads(), machine=platform.machine())
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
