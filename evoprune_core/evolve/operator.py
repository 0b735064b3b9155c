"""The ``formula`` operator: score units with a formula's compiled tree, prune the lowest.

The module imports no GP machinery at import time (the registry loads every built-in
operator); the expression is parsed and compiled when the operator is constructed.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError
from ..operators import (
    LAYER_KINDS,
    LayerMask,
    Operator,
    PruneContext,
    alive_units,
    outgoing_weights,
    prune_fraction,
    structured_mask,
)
from ..params import Param

__all__ = [
    "DEFAULT_EXPRESSION",
    "FormulaOperator",
    "layer_inputs",
    "layer_scores",
    "score_layers",
    "structured_masks",
]

#: SymDiv (a seed): what ``formula`` scores with unless told otherwise.
DEFAULT_EXPRESSION = (
    "add(add(div(var(P), p05(var(Q))), div(var(Q), p05(var(P)))), "
    "div(sq(sub(mP, mQ)), p05(add(var(P), var(Q)))))"
)


def layer_inputs(ctx: PruneContext) -> list[dict[str, Any] | None]:
    """Per layer: the formula terminals of its units; None for the output layer (not pruned)."""
    from .compile import unit_inputs

    labels = ctx.labels
    out: list[dict[str, Any] | None] = []
    for i, lv in enumerate(ctx.layers):
        if lv.is_output or i + 1 >= len(ctx.layers):
            out.append(None)
            continue
        acts = lv.activations
        if acts is None:
            raise ValueError("formula needs activations")
        y = torch.zeros(acts.shape[1], dtype=torch.long) if labels is None else labels
        incoming = lv.weight.flatten(2)  # a conv channel's whole filter
        outgoing = outgoing_weights(lv, ctx.layers[i + 1])
        out.append(unit_inputs(acts, incoming, outgoing, y))
    return out


def score_layers(scorer: Any, inputs: list[dict[str, Any] | None]) -> list[Tensor | None]:
    """The scorer's raw scores ``(n, units)`` per layer (None where ``inputs`` is None)."""
    return [None if inp is None else scorer(inp) for inp in inputs]


def layer_scores(scorer: Any, ctx: PruneContext) -> list[Tensor | None]:
    """Per layer: the formula's scores of its units ``(n, units)``; None for the output layer.

    Non-finite scores become -inf (such units are pruned first).
    """
    return [
        None if s is None else torch.nan_to_num(s, nan=float("-inf"))
        for s in score_layers(scorer, layer_inputs(ctx))
    ]


def structured_masks(
    ctx: PruneContext, scores: list[Tensor | None], amount: float
) -> list[LayerMask]:
    """Remove ``round(amount * alive)`` alive units of lowest score in every scored layer."""
    out = ctx.unchanged()
    for i, (lv, s) in enumerate(zip(ctx.layers, scores)):
        if s is None:
            continue
        alive = alive_units(lv)
        keep = prune_fraction(alive, s, amount)
        out[i] = structured_mask(lv, alive & ~keep)
    return out


class FormulaOperator(Operator):
    """Structured pruning by an (evolved) formula: the units of lowest score in each layer go.

    ``expression`` is formula text over the typed primitive set (see ``evoprune_core.evolve``),
    evaluated per class (dataset labels, else k-means pseudo-labels of the calibration rows)
    and summed over classes. Every hidden layer loses ``round(amount * alive units)`` units
    (whole incoming row and bias); the output layer is never pruned.
    """

    name = "formula"
    layer_kinds = LAYER_KINDS
    description = "structured pruning of the lowest-scoring units of an evolved formula"
    needs = frozenset({"activations", "labels"})
    parameters = (
        Param(
            "expression",
            "str",
            DEFAULT_EXPRESSION,
            help="formula text, e.g. from `evoprune evolve`'s hall of fame (default: SymDiv)",
        ),
    )

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        from .compile import compile_tree
        from .grammar import FormulaError, parse

        try:
            tree = parse(self.params["expression"])
        except FormulaError as exc:
            raise ConfigError(f"pruning.operators.formula.expression: {exc}") from None
        self._scorer = compile_tree(tree)

    def prune(self, ctx: PruneContext) -> list[LayerMask]:
        return structured_masks(ctx, layer_scores(self._scorer, ctx), ctx.amount)
