"""Transfer and honesty: hall of fame vs seed metrics vs built-in operators, over seeds.

Every method prunes the same pre-trained network of a task (one per seed) at the same
fractions, fine-tunes on the same protocol as the fitness (all methods x fractions as one
population) and is scored by validation L1. Formulas remove whole units; ``magnitude`` and
``random`` remove individual weights and ``conjunctive`` ignores the fraction, so the
remaining fraction of parameters is reported beside each loss. The best evolved formula is
compared with every other method on paired (seed, fraction) cells: wins, one-sided
Wilcoxon signed-rank tests in each direction, Holm-corrected over the comparisons of a task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..engines.runtime import Compute
from ..engines.steps import build_context, masks_to_flat
from .compile import compile_tree
from .config import EvolveFile
from .fitness import FitnessTask, Task, finetune_val
from .grammar import parse
from .operator import score_layers
from .paired import holm
from .seeds import SEEDS

if TYPE_CHECKING:
    from ..plugins import Registry

__all__ = ["Method", "TransferResult", "methods_for", "run_transfer", "transfer_markdown"]


@dataclass(frozen=True)
class Method:
    """A row of the table: an evolved formula, a seed metric, or a built-in operator."""

    label: str
    kind: str  # "evolved", "seed", "builtin", "random_units"
    formula: str = ""
    operator: str = ""


@dataclass(frozen=True)
class TransferResult:
    """Per task and method: val L1 per (seed, fraction) cell, and remaining fractions."""

    tasks: tuple[str, ...]
    held_out: tuple[str, ...]
    methods: tuple[Method, ...]
    seeds: tuple[int, ...]
    fractions: tuple[float, ...]
    loss: dict[str, dict[str, list[float]]]  # task -> method label -> cells (seed-major)
    remaining: dict[str, dict[str, list[float]]]

    def to_json(self) -> dict[str, Any]:
        return {
            "tasks": list(self.tasks),
            "held_out": list(self.held_out),
            "seeds": list(self.seeds),
            "fractions": list(self.fractions),
            "methods": [vars(m) for m in self.methods],
            "val_l1": self.loss,
            "remaining_fraction": self.remaining,
            "comparisons": {t: comparisons(self, t) for t in self.tasks},
        }


def methods_for(cfg: EvolveFile, hall: list[str]) -> list[Method]:
    from .simplify import cache_key

    seed_keys = {cache_key(parse(text)): name for name, text in SEEDS.items()}
    out = []
    for i, f in enumerate(hall):
        same = seed_keys.get(cache_key(parse(f)))
        label = f"evolved #{i + 1}" + (f" (= seed {same})" if same else "")
        out.append(Method(label, "evolved", formula=f))
    out += [Method(f"seed {name}", "seed", formula=text) for name, text in SEEDS.items()]
    out.append(Method("random units", "random_units"))
    out += [Method(name, "builtin", operator=name) for name in cfg.transfer.operators]
    return out


def random_unit_scores(task: FitnessTask, seed: int) -> list[torch.Tensor | None]:
    """Uniform random scores per unit of every scored layer (the "random units" baseline)."""
    gen = torch.Generator().manual_seed(seed * 7919 + 17)
    return [
        None if sz is None else torch.rand((1, sz["U"]), generator=gen, dtype=torch.float64)
        for sz in task.sizes
    ]


def _keeps(
    method: Method, task: FitnessTask, fractions: list[float], registry: Registry, seed: int
) -> torch.Tensor:
    rows: list[torch.Tensor] = []
    if method.kind == "random_units":
        scores = random_unit_scores(task, seed)
        return torch.cat([task.keep(scores, f) for f in fractions], 0)
    if method.formula:
        raw = score_layers(compile_tree(parse(method.formula)), task.inputs)
        scores = [None if s is None else torch.nan_to_num(s, nan=float("-inf")) for s in raw]
        return torch.cat([task.keep(scores, f) for f in fractions], 0)
    assert isinstance(task, Task)  # built-in operators: autoencoder tasks only (checked on load)
    op = registry.operator(method.operator).obj()
    ctx0 = task.ctx
    for i, f in enumerate(fractions):
        rng = torch.Generator().manual_seed(seed * 1009 + i)
        assert ctx0.inputs is not None
        ctx = build_context(task.pretrained, [0], op, f, ctx0.inputs, ctx0.labels, rng)
        rows.append(
            masks_to_flat(task.pretrained, ctx, op.prune(ctx), f"operator {method.operator!r}")
        )
    return torch.cat(rows, 0)


def run_transfer(
    cfg: EvolveFile,
    hall: list[str],
    registry: Registry,
    compute: Compute,
    prepare: Callable[[str, int], FitnessTask],
    on_step: Callable[[str, int], None] | None = None,
) -> TransferResult:
    """Evaluate every method on the evolution tasks and the held-out task for every seed.

    ``prepare(task_name, seed)`` returns the ``Task`` (pre-trained network, context);
    ``on_step(task_name, seed)``, if given, is called after each task and seed (progress).
    """
    methods = methods_for(cfg, hall)
    fr = list(cfg.transfer.fractions or cfg.fitness.fractions)
    own = list(cfg.fitness.tasks) if cfg.transfer.evolution_tasks else []
    tasks = [*own, *cfg.transfer.held_out]
    loss: dict[str, dict[str, list[float]]] = {t: {m.label: [] for m in methods} for t in tasks}
    remaining: dict[str, dict[str, list[float]]] = {
        t: {m.label: [] for m in methods} for t in tasks
    }
    for name in tasks:
        for seed in cfg.transfer.seeds:
            task = prepare(name, seed)
            keeps = torch.cat([_keeps(m, task, fr, registry, seed) for m in methods], 0)
            val = finetune_val(task, keeps, cfg.fitness, compute).view(len(methods), len(fr))
            alive = (keeps.sum(1) / keeps.shape[1]).view(len(methods), len(fr))
            for i, m in enumerate(methods):
                loss[name][m.label].extend(float(v) for v in val[i])
                remaining[name][m.label].extend(float(v) for v in alive[i])
            if on_step is not None:
                on_step(name, seed)
    return TransferResult(
        tuple(tasks), tuple(cfg.transfer.held_out), tuple(methods), tuple(cfg.transfer.seeds),
        tuple(fr),
        loss, remaining,
    )  # fmt: skip


def comparisons(result: TransferResult, task: str) -> list[dict[str, Any]]:
    """The best evolved formula vs every other method on ``task`` (paired cells)."""
    from scipy.stats import wilcoxon

    best = result.methods[0]
    ours = np.array(result.loss[task][best.label])
    rows: list[dict[str, Any]] = []
    for m in result.methods[1:]:
        theirs = np.array(result.loss[task][m.label])
        diff = ours - theirs
        if np.all(diff == 0):
            p = p_worse = 1.0
        else:
            p = float(wilcoxon(ours, theirs, alternative="less", zero_method="zsplit").pvalue)
            p_worse = float(
                wilcoxon(ours, theirs, alternative="greater", zero_method="zsplit").pvalue
            )
        rows.append(
            {
                "method": m.label,
                "wins": int((diff < 0).sum()),
                "losses": int((diff > 0).sum()),
                "cells": int(diff.size),
                "median_difference": float(np.median(diff)),
                "p": p,
                "p_worse": p_worse,
            }
        )
    for row, adj, adj_worse in zip(
        rows, holm([r["p"] for r in rows]), holm([r["p_worse"] for r in rows])
    ):
        row["p_holm"] = adj
        row["p_worse_holm"] = adj_worse
        if adj < 0.05:
            row["verdict"] = "evolved better"
        elif adj_worse < 0.05:
            row["verdict"] = "evolved worse"
        else:
            row["verdict"] = "no significant difference"
    return rows


def _fmt(values: list[float]) -> str:
    a = np.array(values)
    if not np.all(np.isfinite(a)):
        return "diverged"
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return f"{med:.4f} [{q1:.4f}, {q3:.4f}]"


def transfer_markdown(result: TransferResult) -> str:
    """The table: median [IQR] val L1 per task, remaining fraction, and plain verdicts."""
    n_seeds, n_fr = len(result.seeds), len(result.fractions)
    head = [
        "method",
        *[f"{t}{' (held out)' if t in result.held_out else ''}" for t in result.tasks],
    ]
    lines = [
        "Validation score (L1 for autoencoder tasks, error = 1 - accuracy for classifier "
        f"tasks; lower is better) after pruning {', '.join(f'{f:g}' for f in result.fractions)} "
        "and "
        f"fine-tuning: median [IQR] over {n_seeds} seeds x {n_fr} fractions; "
        "(remaining fraction of parameters).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for m in result.methods:
        cells = [
            f"{_fmt(result.loss[t][m.label])} ({np.median(result.remaining[t][m.label]):.2f})"
            for t in result.tasks
        ]
        label = f"{m.label}: `{m.formula}`" if m.kind == "evolved" else m.label
        lines.append("| " + " | ".join([label, *cells]) + " |")
    best = result.methods[0].label
    lines += ["", f"Does {best} beat the others? (one-sided Wilcoxon signed-rank tests on "
              "paired (seed, fraction) cells, Holm-corrected per task and direction, alpha 0.05)",
              ""]  # fmt: skip
    for t in result.tasks:
        rows = comparisons(result, t)
        better = [r["method"] for r in rows if r["verdict"] == "evolved better"]
        worse = [r["method"] for r in rows if r["verdict"] == "evolved worse"]
        tag = " (held out)" if t in result.held_out else ""
        lines.append(
            f"- **{t}{tag}**: beats {', '.join(better) or 'none'}; "
            f"worse than {', '.join(worse) or 'none'}; "
            f"{len(rows) - len(better) - len(worse)} without a significant difference. "
            + "; ".join(
                f"{r['method']}: {r['wins']}/{r['cells']} wins, p_holm {r['p_holm']:.3g}"
                for r in rows
            )
        )
    verdict_all = all(
        r["verdict"] == "evolved better" for t in result.tasks for r in comparisons(result, t)
    )
    lines += [
        "",
        "Plainly: the best evolved formula "
        + ("beats every other method on every task." if verdict_all else
           "does not beat every other method on every task (see above)."),
    ]  # fmt: skip
    return "\n".join(lines) + "\n"
