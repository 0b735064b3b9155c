"""Speed and quality of the coevolutionary engine at the paper's setting; prints one JSON object.

N = 10 cells, radius 1, bc-10-100-1000, standard network, batch size 5, evaluation batch 5,
no pruning, our training defaults. ``seconds_per_generation`` is the mean over the whole run;
``gflops`` counts forward + backward of every cell's training epoch (2 x 3 x weights x rows)
over that time; ``matmul_gflops`` is a dense float32 matmul measured in the same process.

    python benchmarks/bench_coevolution.py [--generations 400] [--seed 1]

The engine's training epochs and L1 evaluations run in the fused C kernels
(``evoprune_core.native``; ``--backend torch`` measures the batched torch path instead) on
``--threads`` threads (default: torch's thread count, i.e. the cores); other tensor ops run on
one thread (see ``engines.common.cpu_numerics``). The matmul figure uses torch's default
thread count.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from evoprune_core.loading import load_run
from evoprune_core.plugins import Registry


def matmul_gflops(size: int = 1024, reps: int = 20) -> float:
    """Dense float32 ``size x size`` matmul throughput of this machine (GFLOP/s)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    start = time.perf_counter()
    for _ in range(reps):
        torch.mm(a, b)
    return 2 * size**3 * reps / (time.perf_counter() - start) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--backend", choices=("auto", "native", "torch"), default="auto")
    parser.add_argument("--threads", type=int, default=0, help="0 = torch's thread count")
    args = parser.parse_args()
    registry = Registry.load()
    resolved = load_run(
        None,
        [
            'engine="coevolution"',
            f"generations={args.generations}",
            f"seed={args.seed}",
            'data.name="bc-10-100-1000"',
            'network.preset="standard"',
            "training.batch_size=5",
            "coevolution.cells=10",
            "coevolution.radius=1",
            "coevolution.eval_batch=5",
            'pruning.operator="none"',
            f'compute.backend="{args.backend}"',
            f"compute.threads={args.threads}",
        ],
        registry,
    )
    cfg = resolved.config
    data = resolved.build_dataset()
    mm = matmul_gflops()
    result = resolved.run(dataset=data)
    per_gen = result.seconds / args.generations
    rows = cfg.coevolution.cells * data.train.shape[0]  # rows trained per generation
    flops = 6.0 * cfg.network.architecture(data.dim).n_params * rows
    print(
        json.dumps(
            {
                "benchmark": "coevolution",
                "cells": cfg.coevolution.cells,
                "generations": args.generations,
                "seconds": round(result.seconds, 3),
                "seconds_per_generation": round(per_gen, 4),
                "gflops": round(flops / per_gen / 1e9, 2),
                "matmul_gflops": round(mm, 1),
                "test_loss": round(result.test_loss, 5),
                "val_loss": round(result.val_loss, 5),
                "train_rows_per_generation": rows,
                "backend": result.extra["backend"],
                "engine_threads": args.threads or torch.get_num_threads(),
                "matmul_threads": torch.get_num_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
