"""Fitness of formulas: prune a pre-trained autoencoder per task, fine-tune briefly, val L1.

Per task an autoencoder is pre-trained once (seeded, cached on disk) and its calibration
context (activations of each layer on training rows, labels or k-means pseudo-labels) is
built once. A candidate scores every hidden unit, and for each fraction f removes the
``round(f * units)`` lowest-scoring units of every hidden layer. All candidates x fractions
of a batch become ONE ``Population`` that fine-tunes together on the compute backend (native
C kernels or torch); its validation L1 (mean over fractions) is the task fitness, and the
geometric mean over tasks the fitness (lower is better). The test split is never read.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from torch import Tensor

from ..data import Dataset, build_dataset
from ..engines.runtime import Compute, calibration
from ..engines.steps import build_context, masks_to_flat, pseudo_labels
from ..operators import PruneContext
from ..population import Architecture, Population
from .compile import ShapeError, check_shapes, compile_tree, layer_sizes
from .config import FitnessConfig
from .operator import FormulaOperator, layer_inputs, score_layers, structured_masks

if TYPE_CHECKING:
    from ..plugins import Registry

__all__ = [
    "FitnessTask",
    "Task",
    "combine",
    "evaluate",
    "finetune_val",
    "geometric_mean",
    "prepare_task",
    "task_scores",
]


class FitnessTask(Protocol):
    """What evolution, fresh scores, comparisons and transfer need of a prepared task: an
    autoencoder's :class:`Task` or a classifier's ``classifier.ClassifierTask``."""

    @property
    def name(self) -> str: ...

    @property
    def seed(self) -> int: ...

    @property
    def inputs(self) -> list[dict[str, Any] | None]: ...

    @property
    def sizes(self) -> list[dict[str, int] | None]: ...

    def keep(self, scores: Sequence[Tensor | None], fraction: float) -> Tensor: ...

    def finetune(self, keeps: Tensor, cfg: FitnessConfig, compute: Compute) -> Tensor: ...


@dataclass(frozen=True)
class Task:
    """One fitness task: data, the pre-trained network, its calibration context and inputs."""

    name: str
    data: Dataset
    arch: Architecture
    pretrained: Population
    ctx: PruneContext
    inputs: list[dict[str, Any] | None]
    sizes: list[dict[str, int] | None]
    finetune_seed: int
    seed: int = 0  # the pre-training seed

    def keep(self, scores: Sequence[Tensor | None], fraction: float) -> Tensor:
        """``(1, P)`` 0/1: the network after removing ``fraction`` of each scored layer's units."""
        return masks_to_flat(
            self.pretrained, self.ctx, structured_masks(self.ctx, list(scores), fraction)
        )

    def finetune(self, keeps: Tensor, cfg: FitnessConfig, compute: Compute) -> Tensor:
        """Validation L1 ``(K,)`` (lower is better) of K pruned copies fine-tuned together."""
        k = keeps.shape[0]
        pop = self.pretrained.take([0] * k)
        pop.prune(keeps)
        order = torch.Generator().manual_seed(self.finetune_seed)
        trainer = compute.trainer("l1", (0.5, 0.999), 1e-8)
        for _ in range(cfg.finetune_epochs):
            trainer.epoch(pop, self.data.train, cfg.batch_size, [cfg.lr] * k, order)
        val = compute.l1(pop, self.data.val).double()
        return torch.where(torch.isfinite(val), val, torch.full_like(val, math.inf))


def _seed(*parts: Any) -> int:
    text = json.dumps(parts, sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:7], "big")


def pretrain(
    data: Dataset, arch: Architecture, cfg: FitnessConfig, seed: int, compute: Compute
) -> Population:
    """One autoencoder trained ``pretrain_epochs`` epochs (BCE, then L1 for the second half)."""
    gen = torch.Generator().manual_seed(_seed("init", seed))
    order = torch.Generator().manual_seed(_seed("order", seed))
    pop = Population.create(arch, 1, gen)
    for e in range(cfg.pretrain_epochs):
        loss = "bce" if e < cfg.pretrain_epochs // 2 else "l1"
        compute.trainer(loss, (0.5, 0.999), 1e-8).epoch(
            pop, data.train, cfg.batch_size, [cfg.lr], order
        )
    return pop


def prepare_task(
    name: str,
    cfg: FitnessConfig,
    seed: int,
    compute: Compute,
    registry: Registry,
    cache_dir: Path | None,
) -> Task:
    """Build the dataset, pre-train (or load the cached network) and the calibration context."""
    spec = registry.dataset(name).obj
    data = build_dataset(spec, {}, seed, where=f"fitness.tasks[{name}]")
    arch = cfg.network.architecture(data.dim)
    key = _seed(
        name, seed, cfg.network.model_dump(mode="json"), cfg.pretrain_epochs, cfg.lr,
        cfg.batch_size, compute.backend,
    )  # fmt: skip
    path = None if cache_dir is None else cache_dir / f"pretrained-{name}-{key:x}.pt"
    if path is not None and path.is_file():
        pop = Population.load(path)
    else:
        pop = pretrain(data, arch, cfg, seed, compute)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            pop.save(path)
    gen = torch.Generator().manual_seed(_seed("calibration", seed))
    rows, labels = calibration(data, cfg.calibration_rows, gen)
    if labels is None:
        labels = pseudo_labels(rows, cfg.pseudo_classes, _seed("kmeans", seed) % (2**31))
    ctx = build_context(pop, [0], FormulaOperator(), 0.0, rows, labels, gen)
    inputs = layer_inputs(ctx)
    classes = int(torch.unique(labels).numel())
    sizes = [
        None
        if inp is None
        else layer_sizes(
            units=lv.weight.shape[1],
            inputs=lv.weight.shape[2],
            outputs=ctx.layers[i + 1].weight.shape[1],
            rows=rows.shape[0],
            classes=classes,
        )
        for i, (lv, inp) in enumerate(zip(ctx.layers, inputs))
    ]
    return Task(name, data, arch, pop, ctx, inputs, sizes, _seed("finetune", seed), seed)


def task_scores(
    tree: Sequence[Any], task: FitnessTask, max_elements: int
) -> list[Tensor | None] | None:
    """The tree's unit scores on every scored layer of ``task``, or None when it is invalid.

    Invalid: a dimension mismatch, an intermediate larger than ``max_elements`` entries, or a
    score that is not finite on some unit (the pre-trained network is the probe input).
    """
    try:
        for sz in task.sizes:
            if sz is not None and check_shapes(tree, sz) > max_elements:
                return None
        scores = score_layers(compile_tree(tree), task.inputs)
    except (ShapeError, RuntimeError):  # RuntimeError: e.g. a singular solve
        return None
    if any(s is not None and not bool(torch.isfinite(s).all()) for s in scores):
        return None
    return scores


def evaluate(
    scores: Sequence[list[Tensor | None]],
    task: FitnessTask,
    cfg: FitnessConfig,
    compute: Compute,
) -> list[float]:
    """Mean validation L1 over the fractions for each candidate (its ``scores`` on ``task``).

    Every candidate x fraction is one member of a single population fine-tuned together;
    candidates that prune exactly the same units share their members (identical networks).
    """
    if not scores:
        return []
    fr = cfg.fractions
    rows: dict[bytes, int] = {}  # candidates whose masks are identical are fine-tuned once
    which: list[int] = []
    keeps: list[Tensor] = []
    for s in scores:
        keep = torch.cat([task.keep(s, f) for f in fr], 0)
        sig = keep.to(torch.uint8).numpy().tobytes()
        if sig not in rows:
            rows[sig] = len(keeps)
            keeps.append(keep)
        which.append(rows[sig])
    val = finetune_val(task, torch.cat(keeps, 0), cfg, compute).view(len(keeps), len(fr))
    means = val.mean(1)
    return [float(means[i]) for i in which]


def finetune_val(task: FitnessTask, keeps: Tensor, cfg: FitnessConfig, compute: Compute) -> Tensor:
    """The task's score ``(K,)`` (lower is better) of K copies of its pre-trained network
    pruned by ``keeps`` (``(K, P)`` 0/1) and fine-tuned together as one population; non-finite
    -> inf."""
    return task.finetune(keeps, cfg, compute)


def geometric_mean(values: Sequence[float], weights: Sequence[float] | None = None) -> float:
    """(Weighted) geometric mean; inf when a value is not finite and positive."""
    if any(not math.isfinite(v) or v <= 0 for v in values):
        return math.inf
    w = np.full(len(values), 1.0 / len(values)) if weights is None else np.asarray(weights)
    return float(np.exp(np.sum(w * np.log(values)) / np.sum(w)))


def combine(cfg: FitnessConfig, values: Sequence[float]) -> float:
    """The fitness (lower is better) from per-task values.

    Autoencoder tasks (validation L1): the weighted geometric mean. Classifier tasks (values
    are error rates): one minus the weighted geometric mean of the accuracies, as the paper's
    fitness (higher accuracy is lower here). Two tasks weigh ``alpha`` and ``1 - alpha``.
    """
    n = len(values)
    weights = [cfg.alpha, 1.0 - cfg.alpha] if n == 2 else None
    if cfg.kind == "classifier":
        if any(not math.isfinite(v) for v in values):
            return math.inf
        acc = geometric_mean([1.0 - v for v in values], weights)
        return math.inf if not math.isfinite(acc) else 1.0 - acc
    return geometric_mean(values, weights)
