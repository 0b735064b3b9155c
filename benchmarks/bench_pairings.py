"""The coevolution's pairing evaluation: neighbourhood pairings against the full N x N matrix.

For each ``--cells`` N, one population (standard network, ``--dim`` inputs) and one evaluation
batch; ``sub_losses`` (each decoder with the encoders of its neighbourhoods only) and the
previous full matrix (``pair_l1`` of every encoder with every decoder, then gathered) are timed
in turn, ``--repeats`` rounds, on one thread (as in the engine). Prints JSON: median CPU
milliseconds of each, per cell, their ratio, and whether the two agree bit for bit.

    python benchmarks/bench_pairings.py [--cells 10 40 128] [--radius 1] [--dim 1000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from evoprune_core.engines.coevolution import neighbourhoods, pairings, sub_losses
from evoprune_core.engines.runtime import cpu_numerics
from evoprune_core.population import Architecture, Population


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, nargs="+", default=[10, 40, 128])
    parser.add_argument("--radius", type=int, default=1)
    parser.add_argument("--dim", type=int, default=1000)
    parser.add_argument("--eval-batch", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(0)
    out: dict[str, object] = {"benchmark": "pairings", "radius": args.radius, "dim": args.dim}
    with cpu_numerics(), torch.no_grad():
        for n in args.cells:
            pop = Population.create(Architecture(args.dim, (30, 10), (30,)), n, gen)
            x = (torch.rand(args.eval_batch, args.dim, generator=gen) < 0.3).float()
            nbr = neighbourhoods(n, args.radius)

            def full(pop: Population = pop, x: torch.Tensor = x, nbr: torch.Tensor = nbr):  # noqa: ANN202
                return pop.pair_l1(x)[nbr.unsqueeze(2), nbr.unsqueeze(1)]

            def mine(pop: Population = pop, x: torch.Tensor = x, nbr: torch.Tensor = nbr):  # noqa: ANN202
                return sub_losses(pop, x, nbr)

            same = torch.equal(full(), mine())
            times: dict[str, list[float]] = {"full": [], "neighbourhood": []}
            for _ in range(args.repeats):
                for key, fn in (("full", full), ("neighbourhood", mine)):
                    start = time.process_time()
                    fn()
                    times[key].append(time.process_time() - start)
            med = {k: statistics.median(v) for k, v in times.items()}
            out[str(n)] = {
                "pairings_evaluated": n * pairings(nbr, n).table.shape[1],
                "full_matrix_pairings": n * n,
                "full_ms": round(1000 * med["full"], 2),
                "neighbourhood_ms": round(1000 * med["neighbourhood"], 2),
                "neighbourhood_ms_per_cell": round(1000 * med["neighbourhood"] / n, 3),
                "ratio": round(med["neighbourhood"] / med["full"], 3),
                "bit_identical": same,
            }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
