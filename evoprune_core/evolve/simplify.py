"""sympy forms of formulas: the cache key (canonical form), readable infix and LaTeX.

Element-wise arithmetic maps to sympy arithmetic over real symbols (so ``add(P, Q)`` and
``add(Q, P)`` meet, ``sub(X, X)`` is 0); statistics and matrix operations are opaque sympy
functions of their (simplified) arguments, so no two different computations are merged.
Protected division is read as plain division: ``div(x, x)`` is 1 either way, but e.g.
``div(mul(a, b), b)`` becomes ``a`` although the protected form is 1 where ``b = 0``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sympy

from .primitives import TERMINALS, fold

__all__ = ["cache_key", "forms", "infix", "latex", "simplified", "to_sympy"]

_SYMBOLS = {t.name: sympy.Symbol(t.name, real=True) for t in TERMINALS}
_ARITHMETIC: dict[str, Any] = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "abs": sympy.Abs,
    "sq": lambda a: a**2,
    "sqrt": lambda a: sympy.sqrt(sympy.Abs(a)),
    "p4": lambda a: a + sympy.Float(1e-4),
    "p05": lambda a: a + sympy.Float(0.05),
}


def _apply(tag: str, args: list[Any]) -> Any:
    if tag.startswith("fn:"):
        return sympy.Function(tag[3:], real=True)(*args)
    return _ARITHMETIC[tag](*args)


def to_sympy(tree: Sequence[Any]) -> sympy.Expr:
    """The sympy expression of a tree (sympy's automatic canonical form)."""
    return fold(tree, _SYMBOLS.__getitem__, lambda prim, args: _apply(prim.sym, args))


def cache_key(tree: Sequence[Any]) -> str:
    """Formulas with the same key are evaluated once (the canonical sympy form, as text)."""
    return sympy.srepr(to_sympy(tree))


#: ``sympy.simplify`` takes seconds on large trees; larger formulas keep the canonical form.
SIMPLIFY_MAX_SIZE = 15


def simplified(tree: Sequence[Any]) -> sympy.Expr:
    """``sympy.simplify`` of small trees' expressions, the canonical form of larger ones."""
    expr = to_sympy(tree)
    if len(tree) > SIMPLIFY_MAX_SIZE:
        return expr
    try:
        return sympy.simplify(expr)
    except Exception:  # noqa: BLE001 - simplification is cosmetic
        return expr


def forms(tree: Sequence[Any]) -> tuple[str, str]:
    """(infix, LaTeX) of the simplified formula, simplifying once."""
    expr = simplified(tree)
    return sympy.sstr(expr), sympy.latex(expr)


def infix(tree: Sequence[Any]) -> str:
    """Readable infix text of the simplified formula."""
    return sympy.sstr(simplified(tree))


def latex(tree: Sequence[Any]) -> str:
    return sympy.latex(simplified(tree))
