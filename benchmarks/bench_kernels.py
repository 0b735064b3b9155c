"""Cost ratios of the native kernels, measured in one process, interleaved; prints JSON.

Each configuration is one population of ``--cells`` members (standard network by default)
on ``--rows`` synthetic binary rows of its input width; the script times one training epoch
(batch 5) and one L1 evaluation of every configuration in turn, ``--repeats`` rounds, and
reports medians of the CPU time of all threads (steadier than wall time on a loaded machine)
and each configuration's ratio to the first one, besides a float32 matmul measured in the
same rounds (``matmul_gflops``, same thread count) and the kernels' GFLOP/s.

    python benchmarks/bench_kernels.py --configs 1000:0 4000:0 1000:0.75 [--cells 10]
        [--rows 1000] [--threads 1] [--repeats 7]

A configuration is ``WIDTH:F``: input width and the fraction F of every hidden layer's units
removed (incoming weights and bias pruned, as the unit-pruning operators do). Training FLOPs
count forward + backward of the unpruned network (6 x weights x rows), L1 FLOPs its forward
(2 x weights x rows).

``--baseline-rev REV`` also compiles the kernels of git revision REV (same compiler and flags)
and times them in the same rounds, on copies of the same populations: each configuration then
reports ``baseline_epoch_cpu_seconds``, ``baseline_l1_cpu_seconds``, the baseline's own ratios
to the first configuration (``baseline_epoch_ratio``, ``baseline_l1_ratio``) and
``epoch_vs_baseline``, ``l1_vs_baseline`` (this tree's time over the baseline's).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from evoprune_core import native
from evoprune_core.engines.runtime import cpu_numerics
from evoprune_core.population import Architecture, Population

_BENCH = Path(__file__).with_name("bench_coevolution.py")


def _prune_units():  # noqa: ANN202 - the coevolution benchmark's helper, one definition
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_coevolution", _BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.prune_units


def baseline_kernels(rev: str, folder: Path) -> native.NativeKernels:
    """The kernels of git revision ``rev``, compiled into ``folder`` with this tree's flags."""
    repo = Path(__file__).resolve().parent.parent
    src = folder / "src"
    src.mkdir()
    for name in (native.SOURCE, *native.HEADERS):
        got = subprocess.run(
            ["git", "-C", str(repo), "show", f"{rev}:evoprune_core/native/{name.name}"],
            capture_output=True,
            check=False,
        )
        if got.returncode == 0:  # an older revision may lack a header
            (src / name.name).write_bytes(got.stdout)
        elif name == native.SOURCE:
            raise ValueError(f"--baseline-rev: no kernels at git revision {rev!r}")
    target = folder / "baseline.so"
    cc = os.environ.get("CC", "cc")
    flags = [*native.FLAGS, "-march=native", "-I", str(src)]
    subprocess.run([cc, *flags, str(src / "kernels.c"), "-o", str(target), "-lm"], check=True)
    return native.NativeKernels(ctypes.CDLL(str(target)), target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["1000:0", "4000:0", "1000:0.75"])
    parser.add_argument("--cells", type=int, default=10)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--baseline-rev", metavar="REV", help="also time the kernels of REV")
    args = parser.parse_args()
    prune_units = _prune_units()
    kernels = native.load()
    builds = {"": kernels}
    tmp = tempfile.TemporaryDirectory(prefix="bench-kernels-")
    if args.baseline_rev:
        try:
            builds["baseline "] = baseline_kernels(args.baseline_rev, Path(tmp.name))
        except (ValueError, subprocess.CalledProcessError, native.NativeUnavailable) as exc:
            tmp.cleanup()
            parser.error(str(exc))
    gen = torch.Generator().manual_seed(args.seed)
    setups = {}
    for spec in args.configs:
        width, _, frac = spec.partition(":")
        arch = Architecture(int(width), (30, 10), (30,))
        pop = Population.create(arch, args.cells, gen)
        if float(frac or 0) > 0:
            prune_units(pop, float(frac), args.seed)
        rows = (torch.rand(args.rows, arch.input_dim, generator=gen) < 0.3).float()
        setups[spec] = (arch, pop, rows)
    # each build trains its own copy of each population (the same state at the start)
    pops = {(tag, spec): setup[1].clone() for tag in builds for spec, setup in setups.items()}
    lrs = [1e-3] * args.cells
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    times: dict[str, list[float]] = {"matmul": []}
    with cpu_numerics(), torch.no_grad():
        torch.set_num_threads(args.threads)  # the matmul's threads; the kernels have their own
        for (tag, spec), pop in pops.items():  # warm-up: moments everywhere
            rows = setups[spec][2]
            builds[tag].train_epoch(pop, rows, 5, lrs, "bce", (0.5, 0.999), 1e-8, args.threads)
        for _ in range(args.repeats):
            for spec, (_, _, rows) in setups.items():
                for tag, k in builds.items():
                    pop = pops[(tag, spec)]
                    start = time.process_time()
                    k.train_epoch(pop, rows, 5, lrs, "bce", (0.5, 0.999), 1e-8, args.threads)
                    times.setdefault(f"{tag}epoch {spec}", []).append(time.process_time() - start)
                    start = time.process_time()
                    k.l1(pop, rows, args.threads)
                    times.setdefault(f"{tag}l1 {spec}", []).append(time.process_time() - start)
            start = time.process_time()
            for _ in range(3):
                torch.mm(a, b)
            times["matmul"].append(time.process_time() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    first = args.configs[0]
    out: dict[str, object] = {
        "benchmark": "kernels",
        "cells": args.cells,
        "rows": args.rows,
        "threads": args.threads,
        "repeats": args.repeats,
        "matmul_gflops": round(3 * 2 * 1024**3 / med["matmul"] / 1e9, 1),
    }
    for spec, (arch, _, _) in setups.items():
        work = args.cells * args.rows * arch.n_params
        out[spec] = {
            "epoch_cpu_seconds": round(med[f"epoch {spec}"], 5),
            "l1_cpu_seconds": round(med[f"l1 {spec}"], 5),
            "epoch_gflops": round(6 * work / med[f"epoch {spec}"] / 1e9, 1),
            "l1_gflops": round(2 * work / med[f"l1 {spec}"] / 1e9, 1),
            "epoch_ratio": round(med[f"epoch {spec}"] / med[f"epoch {first}"], 3),
            "l1_ratio": round(med[f"l1 {spec}"] / med[f"l1 {first}"], 3),
            "flop_ratio": round(arch.n_params / setups[first][0].n_params, 3),
        }
        if args.baseline_rev:
            entry = out[spec]
            assert isinstance(entry, dict)
            for what in ("epoch", "l1"):
                base = med[f"baseline {what} {spec}"]
                entry[f"baseline_{what}_cpu_seconds"] = round(base, 5)
                entry[f"{what}_vs_baseline"] = round(med[f"{what} {spec}"] / base, 3)
                entry[f"baseline_{what}_ratio"] = round(base / med[f"baseline {what} {first}"], 3)
    if args.baseline_rev:
        out["baseline_rev"] = args.baseline_rev
    tmp.cleanup()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
