"""Test accuracy of the pre-trained CNNs of an evolution file (a benchmark script, not a test:
pre-training LeNet-5 on mnist-5k for 20 epochs takes about 30 s of CPU per network; prints
JSON).

For one classifier task of the file (default: its first) and its pre-training seeds - the
selection seeds of the evolution seed (``fitness.pretrain_seeds`` of them) and the fresh seeds
(``fitness.fresh_seeds``), or ``--seeds`` - the network is pre-trained exactly as
``evoprune evolve`` does (same seeds, epochs, learning rate, numerics) and its accuracy on
the test split (which selection never reads) is printed per seed with the minimum and median.
``--cache`` reuses the networks an evolution already trained (``<store>/evolve/<name>/cache``).

    nice python benchmarks/pretrain_accuracy.py studies/evolve/paper-cnn.toml \
        [--task lenet5:mnist-5k] [--seeds 1 2 3] [--cache mlruns/evolve/paper-cnn/cache]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from evoprune_core.engines.runtime import cpu_numerics
from evoprune_core.evolve.classifier import prepare_classifier, pretrained_test_accuracy
from evoprune_core.evolve.config import is_classifier, load_evolve_config, selection_seeds
from evoprune_core.plugins import Registry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("file", nargs="?", default="studies/evolve/paper-cnn.toml")
    parser.add_argument("--task", help="network:dataset (default: the file's first task)")
    parser.add_argument("--seeds", type=int, nargs="+", help="pre-training seeds")
    parser.add_argument("--cache", type=Path, help="cache of pre-trained networks to reuse")
    args = parser.parse_args()
    registry = Registry.load()
    cfg = load_evolve_config(Path(args.file), [], registry)
    task = args.task or cfg.fitness.tasks[0]
    if not is_classifier(task):
        parser.error(f"--task: {task!r} is not a network:dataset classifier task")
    seeds = args.seeds or [
        *selection_seeds(cfg.seed, cfg.fitness.pretrain_seeds),
        *cfg.fitness.fresh_seeds,
    ]
    acc: dict[str, float] = {}
    start = time.perf_counter()
    with cpu_numerics():
        for seed in seeds:
            t = prepare_classifier(task, cfg.fitness, seed, registry, args.cache)
            acc[str(seed)] = round(pretrained_test_accuracy(t), 4)
    values = list(acc.values())
    print(
        json.dumps(
            {
                "file": args.file,
                "task": task,
                "pretrain_epochs": cfg.fitness.pretrain_epochs,
                "lr": cfg.fitness.lr,
                "batch_size": cfg.fitness.batch_size,
                "test_accuracy": acc,
                "min": min(values),
                "median": statistics.median(values),
                "at_least_95": sum(v >= 0.95 for v in values),
                "networks": len(values),
                "seconds": round(time.perf_counter() - start, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
