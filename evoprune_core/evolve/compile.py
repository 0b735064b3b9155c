"""Compile a typed tree into one vectorised torch function that scores every unit of a layer.

``unit_inputs(...)`` turns a layer's activations, labels and weights into the terminals, with
leading ``(networks, units, classes)`` dimensions; ``compile_tree(tree)`` returns a ``Scorer``
whose call evaluates the tree once for all units of all networks and all classes (no Python
loop over units) and sums the per-class scores. ``check_shapes`` infers every node's
symbolic shape and the size of its largest intermediate before anything runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from deap import gp
from torch import Tensor

from .primitives import TERMINALS, Prim, Terminal, Value, by_key, fold

__all__ = [
    "DTYPE",
    "Scorer",
    "ShapeError",
    "check_shapes",
    "compile_tree",
    "layer_sizes",
    "unit_inputs",
]

#: Formulas are evaluated in double precision (variances of near-constant units).
DTYPE = torch.float64
_TERMINALS: dict[str, Terminal] = {t.name: t for t in TERMINALS}


class ShapeError(ValueError):
    """A dimension mismatch at node ``index`` of a tree (prefix order)."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


def layer_sizes(units: int, inputs: int, outputs: int, rows: int, classes: int) -> dict[str, int]:
    return {"U": units, "I": inputs, "O": outputs, "S": rows, "C": classes}


def check_shapes(tree: Sequence[Any], sizes: dict[str, int] | None = None) -> int:
    """Check every node's dimensions; return the largest intermediate's entries per network.

    ``sizes`` maps the symbols U, I, O, S, C to numbers (default: all 1, a pure shape check).
    Raises ``ShapeError`` naming the first offending node.
    """
    sz = sizes or {}
    biggest = 0

    def visit(i: int) -> tuple[tuple[str, ...], bool, bool, int]:
        nonlocal biggest
        node = tree[i]
        if isinstance(node, gp.Terminal):
            t = _TERMINALS[node.name]
            shape, unit, cls, nxt = t.shape, t.per_unit, t.per_class, i + 1
        else:
            prim = by_key(node.name)
            shapes, unit, cls, nxt = [], False, False, i + 1
            for _ in prim.args:
                s, u, c, nxt = visit(nxt)
                shapes.append(s)
                unit, cls = unit or u, cls or c
            try:
                shape = prim.shape(*shapes)
            except ValueError as exc:
                raise ShapeError(i, f"{prim.name}: {exc}") from None
        n = (sz.get("U", 1) if unit else 1) * (sz.get("C", 1) if cls else 1)
        for d in shape:
            n *= sz.get(d, 1)
        biggest = max(biggest, n)
        return shape, unit, cls, nxt

    shape, _, _, end = visit(0)
    if shape != () or end != len(tree):
        raise ShapeError(0, "the formula must give one number per unit")
    return biggest


@torch.no_grad()
def unit_inputs(
    activations: Tensor,
    weight: Tensor,
    outgoing: Tensor | None,
    labels: Tensor,
) -> dict[str, Value]:
    """The terminals of one layer of ``M`` networks.

    ``activations`` ``(M, S, U)`` on S calibration rows, ``weight`` ``(M, U, I)`` (torch's
    Linear orientation), ``outgoing`` ``(M, O, U)`` (the next layer's weight; None for the
    output layer: WO is then empty), ``labels`` ``(S,)`` class indices (P is class c, Q the rest).
    """
    acts = activations.to(DTYPE).transpose(1, 2).unsqueeze(2)  # (M, U, 1, S)
    classes = torch.unique(labels)
    onehot = (labels.unsqueeze(0) == classes.unsqueeze(1)).to(DTYPE)  # (C, S)
    p_mask = onehot.unsqueeze(0).unsqueeze(0)  # (1, 1, C, S)
    q_mask = 1.0 - p_mask
    w = weight.to(DTYPE)
    m, u = w.shape[0], w.shape[1]
    wo = (
        torch.zeros(m, u, 1, 0, dtype=DTYPE)
        if outgoing is None
        else outgoing.to(DTYPE).transpose(1, 2).unsqueeze(2)
    )
    x, p, q = Value(acts), Value(acts, p_mask), Value(acts, q_mask)
    from .primitives import _vmean  # the same masked mean the primitives use

    return {
        "X": x,
        "P": p,
        "Q": q,
        "N": Value(p_mask.sum(-1)),
        "mX": Value(_vmean(x)),
        "mP": Value(_vmean(p)),
        "mQ": Value(_vmean(q)),
        "WI": Value(w.unsqueeze(2)),
        "WO": Value(wo),
        "W": Value(w.unsqueeze(1).unsqueeze(1)),
    }


def _program(tree: Sequence[Any]) -> Callable[[dict[str, Value]], Value]:
    """A closure evaluating ``tree`` (prefix order) on a terminal dictionary."""

    def leaf(name: str) -> Callable[[dict[str, Value]], Value]:
        return lambda env: env[name]

    def node(prim: Prim, children: list[Any]) -> Callable[[dict[str, Value]], Value]:
        run = prim.run
        if len(children) == 1:
            (a,) = children
            return lambda env: run(a(env))
        a, b = children
        return lambda env: run(a(env), b(env))

    return fold(tree, leaf, node)


@dataclass(frozen=True)
class Scorer:
    """A compiled formula: ``scorer(inputs)`` -> scores ``(M, U)``, summed over classes."""

    fn: Callable[[dict[str, Value]], Value]

    @torch.no_grad()
    def __call__(self, inputs: dict[str, Value]) -> Tensor:
        m, u = inputs["WI"].data.shape[:2]
        c = inputs["N"].data.shape[2]
        out = self.fn(inputs).data
        return out.expand(m, u, c).sum(2)


def compile_tree(tree: Sequence[Any]) -> Scorer:
    """Compile a typed tree (checked by ``check_shapes``) into a ``Scorer``."""
    check_shapes(tree)
    return Scorer(_program(tree))
