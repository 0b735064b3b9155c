"""Scores on fresh pre-training seeds: what every reported figure of an evolution uses.

Selection sees ``fitness.pretrain_seeds`` networks per task; their accidents (which units one
particular network happens to need) are what a formula can overfit. The hall of fame, the
winners of ``--compare`` and the hand-made comparators are therefore re-scored on networks
pre-trained from ``fitness.fresh_seeds``, never used in selection: every candidate x fraction
of one network is one population fine-tuned together (the fitness protocol), and a
candidate's value on a (task, seed) is its mean over the fractions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .config import EvolveFile, FitnessConfig
from .fitness import FitnessTask, combine, finetune_val
from .transfer import Method, _keeps

if TYPE_CHECKING:
    from ..engines.runtime import Compute
    from ..plugins import Registry

__all__ = ["FreshScores", "score_fresh", "spread"]


def spread(values: Sequence[float]) -> dict[str, Any]:
    """``{"median", "iqr", "n"}`` of the finite values (IQR = q3 - q1); None when none is."""
    a = np.array([v for v in values if math.isfinite(v)], dtype=float)
    if a.size == 0:
        return {"median": None, "iqr": None, "n": 0, "diverged": len(values)}
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    out: dict[str, Any] = {"median": float(med), "iqr": float(q3 - q1), "n": int(a.size)}
    if a.size < len(values):
        out["diverged"] = len(values) - int(a.size)
    return out


@dataclass(frozen=True)
class FreshScores:
    """``values[label][task]``: one value per fresh seed (in ``seeds`` order)."""

    tasks: tuple[str, ...]
    seeds: tuple[int, ...]
    values: dict[str, dict[str, list[float]]]
    fitness_cfg: FitnessConfig

    def overall(self, label: str) -> list[float]:
        """Per fresh seed: the geometric mean over tasks (the fitness's combination)."""
        return [
            combine(self.fitness_cfg, [self.values[label][t][i] for t in self.tasks])
            for i in range(len(self.seeds))
        ]

    def fitness(self, label: str) -> float:
        """The fitness computed on the fresh seeds: geometric mean over tasks of the means."""
        means = []
        for t in self.tasks:
            v = self.values[label][t]
            means.append(float(np.mean(v)) if all(map(math.isfinite, v)) else math.inf)
        return combine(self.fitness_cfg, means)

    def summary(self, label: str) -> dict[str, Any]:
        return {t: spread(self.values[label][t]) for t in self.tasks}


def score_fresh(
    cfg: EvolveFile,
    methods: Sequence[Method],
    prepare: Callable[[str, int], FitnessTask],
    compute: Compute,
    registry: Registry,
    progress: Callable[[str], None] | None = None,
) -> FreshScores:
    """Every method on every fitness task's network of every fresh seed."""
    fr = list(cfg.fitness.fractions)
    tasks = tuple(cfg.fitness.tasks)
    seeds = tuple(cfg.fitness.fresh_seeds)
    values: dict[str, dict[str, list[float]]] = {m.label: {t: [] for t in tasks} for m in methods}
    for name in tasks:
        for seed in seeds:
            if progress is not None:
                progress(f"fresh seed {seed} of {name}")
            task = prepare(name, seed)
            keeps = torch.cat([_keeps(m, task, fr, registry, seed) for m in methods], 0)
            val = finetune_val(task, keeps, cfg.fitness, compute).view(len(methods), len(fr))
            for i, m in enumerate(methods):
                row = [float(v) for v in val[i]]
                values[m.label][name].append(
                    float(np.mean(row)) if all(map(math.isfinite, row)) else math.inf
                )
    return FreshScores(tasks, seeds, values, cfg.fitness)
