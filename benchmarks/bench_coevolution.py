"""Speed and quality of the coevolutionary engine (default: the paper's setting); prints JSON.

Default: N = 10 cells, radius 1, bc-10-100-1000, standard network, batch size 5, evaluation
batch 5, no pruning, our training defaults.

    python benchmarks/bench_coevolution.py [--generations 400] [--seed 1] [--cells 10]
        [--radius 1] [--data bc-10-100-1000] [--prune-units 0.75] [--repeats 5]

Keys: ``seconds_per_generation`` is the mean over the whole engine run; ``gflops`` counts
forward + backward of every cell's training epoch (2 x 3 x weights x rows, the unpruned
network) over that time; ``matmul_gflops`` is the peak of a dense float32 matmul measured in
the same process (the best of ten rounds of 20 products of 1024 x 1024, five before the
engine run and five after it; ``matmul_gflops_median`` their median), ``matmul_fraction``
the engine's rate over that peak; ``cpu_seconds_per_generation`` and
``cpu_ms_per_cell`` count the CPU time of all threads (steadier than wall time on a loaded
machine); ``peak_rss_mb`` is the process's peak resident memory after the engine run. ``--prune-units F`` removes the fraction F of every
hidden layer's units (their incoming weights and bias, as the unit-pruning operators do;
members draw their own units) before the first generation. Besides the engine run, the
script times the kernels directly, interleaved A/B and ``--repeats`` times each (medians):
``epoch_seconds`` is one training epoch of the N cells, ``val_l1_seconds`` one validation L1
of the population; with ``--prune-units`` the same for the unpruned population
(``*_unpruned``) and the ratio (``epoch_ratio``, ``val_l1_ratio``); ``--repeats 0`` skips them.

The engine's training epochs and L1 evaluations run in the fused C kernels
(``evoprune_core.native``; ``--backend torch`` measures the batched torch path instead) on
``--threads`` threads (default: torch's thread count, i.e. the cores); other tensor ops run on
one thread (see ``engines.runtime.cpu_numerics``). The matmul figure uses torch's default
thread count.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time

import torch

from evoprune_core.engines.coevolution import run_coevolution
from evoprune_core.engines.runtime import cpu_numerics, resolve_compute
from evoprune_core.loading import load_run
from evoprune_core.plugins import Registry
from evoprune_core.population import Population


def matmul_gflops(size: int = 1024, reps: int = 20, rounds: int = 5) -> list[float]:
    """Dense float32 ``size x size`` matmul throughput of this machine (GFLOP/s), one figure
    per round of ``reps`` products."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b)
        out.append(2 * size**3 * reps / (time.perf_counter() - start) / 1e9)
    return out


def prune_units(pop: Population, fraction: float, seed: int) -> None:
    """Remove ``round(fraction x width)`` units of every hidden layer of every member: their
    incoming weights and bias are pruned (each member draws its own units)."""
    gen = torch.Generator().manual_seed(seed)
    keep = torch.ones_like(pop.masks)
    for _, stack in pop.parts():
        cols = slice(*_columns(pop, stack))
        for layer in range(stack.n_layers):
            is_hidden = stack.final == "relu" or layer < stack.n_layers - 1
            if not is_hidden:
                continue
            width = stack.dims[layer + 1]
            dead = round(fraction * width)
            w = stack.weight(layer, keep[:, cols])
            b = stack.bias(layer, keep[:, cols])
            for m in range(pop.n):
                units = torch.randperm(width, generator=gen)[:dead]
                w[m][:, units] = 0.0
                b[m][units] = 0.0
    pop.prune(keep)


def _columns(pop: Population, stack: object) -> tuple[int, int]:
    split = pop.encoders.size
    return (0, split) if stack is pop.encoders else (split, pop.masks.shape[1])


def interleaved(fns: dict[str, object], repeats: int) -> dict[str, float]:
    """Median seconds of each callable, run in turn (A, B, A, B, ...) ``repeats`` times."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            start = time.perf_counter()
            fn()  # type: ignore[operator]
            times[key].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cells", type=int, default=10)
    parser.add_argument("--radius", type=int, default=1)
    parser.add_argument("--data", default="bc-10-100-1000")
    parser.add_argument("--prune-units", type=float, default=0.0, metavar="F")
    parser.add_argument("--repeats", type=int, default=5, help="kernel timings (medians; 0: none)")
    parser.add_argument("--backend", choices=("auto", "native", "torch"), default="auto")
    parser.add_argument("--threads", type=int, default=0, help="0 = torch's thread count")
    args = parser.parse_args()
    if not 0.0 <= args.prune_units < 1.0:
        parser.error(f"--prune-units: a fraction in [0, 1) (got {args.prune_units})")
    registry = Registry.load()
    resolved = load_run(
        None,
        [
            'engine="coevolution"',
            f"generations={args.generations}",
            f"seed={args.seed}",
            f'data.name="{args.data}"',
            'network.preset="standard"',
            "training.batch_size=5",
            f"coevolution.cells={args.cells}",
            f"coevolution.radius={args.radius}",
            "coevolution.eval_batch=5",
            'pruning.operator="none"',
            f'compute.backend="{args.backend}"',
            f"compute.threads={args.threads}",
        ],
        registry,
    )
    cfg = resolved.config
    data = resolved.build_dataset()
    arch = cfg.network.architecture(data.dim)
    mm_rounds = matmul_gflops()  # before the engine run and after it: the peak of both

    def prepare(pop: Population) -> None:
        if args.prune_units > 0:
            prune_units(pop, args.prune_units, args.seed)

    cpu = time.process_time()
    result = run_coevolution(resolved, dataset=data, prepare=prepare)
    cpu = time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    mm_rounds += matmul_gflops()
    mm = max(mm_rounds)
    per_gen = result.seconds / args.generations
    rows = cfg.coevolution.cells * data.train.shape[0]  # rows trained per generation
    flops = 6.0 * arch.n_params * rows
    out = {
        "benchmark": "coevolution",
        "data": args.data,
        "cells": cfg.coevolution.cells,
        "radius": cfg.coevolution.radius,
        "prune_units": args.prune_units,
        "generations": args.generations,
        "seconds": round(result.seconds, 3),
        "seconds_per_generation": round(per_gen, 4),
        "cpu_seconds_per_generation": round(cpu / args.generations, 4),
        "cpu_ms_per_cell": round(1000 * cpu / args.generations / cfg.coevolution.cells, 2),
        "gflops": round(flops / per_gen / 1e9, 2),
        "matmul_gflops": round(mm, 1),
        "matmul_gflops_median": round(statistics.median(mm_rounds), 1),
        "matmul_fraction": round(flops / per_gen / 1e9 / mm, 3),
        "test_loss": round(result.test_loss, 5),
        "val_loss": round(result.val_loss, 5),
        "remaining_fraction": round(result.remaining_fraction, 4),
        "train_rows_per_generation": rows,
        "backend": result.extra["backend"],
        "engine_threads": args.threads or torch.get_num_threads(),
        "matmul_threads": torch.get_num_threads(),
    }
    out["peak_rss_mb"] = round(peak, 1)
    if args.repeats > 0:
        out.update(kernel_timings(resolved, data, arch, args))
    print(json.dumps(out))


def kernel_timings(resolved: object, data: object, arch: object, args: argparse.Namespace) -> dict:
    """One training epoch and one validation L1 of fresh populations, timed interleaved."""
    cfg = resolved.config  # type: ignore[attr-defined]
    tr = cfg.training
    compute = resolve_compute(cfg.compute)
    gen = torch.Generator().manual_seed(args.seed)
    base = Population.create(arch, args.cells, gen)  # type: ignore[arg-type]
    pops = {"": base}
    if args.prune_units > 0:
        pruned = base.clone()
        prune_units(pruned, args.prune_units, args.seed)
        pops = {"": pruned, "_unpruned": base}
    trainer = compute.trainer(tr.loss_at(0, cfg.generations), tr.betas, tr.eps)
    lrs = [tr.lr] * args.cells
    fns: dict[str, object] = {}
    for suffix, pop in pops.items():
        work = pop.clone()
        order = torch.Generator().manual_seed(0)
        fns[f"epoch_seconds{suffix}"] = (
            lambda w=work, o=order: trainer.epoch(w, data.train, tr.batch_size, lrs, o)  # type: ignore[attr-defined]
        )
        fns[f"val_l1_seconds{suffix}"] = lambda p=pop: compute.l1(p, data.val)  # type: ignore[attr-defined]
    with cpu_numerics(), torch.no_grad():
        for fn in fns.values():
            fn()  # type: ignore[operator]  # warm-up
        got = interleaved(fns, args.repeats)
    out = {k: round(v, 5) for k, v in got.items()}
    if args.prune_units > 0:
        out["epoch_ratio"] = round(got["epoch_seconds"] / got["epoch_seconds_unpruned"], 3)
        out["val_l1_ratio"] = round(got["val_l1_seconds"] / got["val_l1_seconds_unpruned"], 3)
    return out


if __name__ == "__main__":
    main()
