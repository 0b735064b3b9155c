"""The typed design space: Matrix / Vector / Scalar, terminals and primitives with protected ops.

Every primitive has one text name (``add``) and one overload per argument types (``add`` of
two vectors is the DEAP primitive ``add_vv``). Each overload carries its torch implementation
(batched: every value has leading ``(networks, units, classes)`` dimensions, size 1 where it
does not vary), its shape rule (symbolic trailing dimensions, checked before anything runs)
and its sympy form (for simplification and LaTeX).

A vector may carry a 0/1 mask (P and Q are the unit's activations with the rows of the other
classes masked out); statistics read only the entries the mask keeps, element-wise operations
intersect masks, and matrix operations zero the masked entries first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar

import torch
from deap import gp
from torch import Tensor

__all__ = [
    "fold",
    "DIVISION_EPS",
    "PRIMITIVES",
    "RIDGE",
    "TERMINALS",
    "TYPES",
    "Matrix",
    "Prim",
    "Scalar",
    "Terminal",
    "Value",
    "Vector",
    "names",
    "overloads",
    "primitive_set",
    "type_name",
    "used_names",
]


class _TypeMeta(type):
    """The tree types hash by a fixed number, not by memory address.

    DEAP's one-point crossover draws the crossover type from a *set* of types; with the
    default (address-based) hash its order, and so the evolution, changed between processes.
    """

    _CODES: ClassVar[dict[str, int]] = {"Scalar": 1, "Vector": 2, "Matrix": 3}

    def __hash__(cls) -> int:
        return _TypeMeta._CODES[cls.__name__]


class Scalar(metaclass=_TypeMeta):
    """A number per unit (and class)."""


class Vector(metaclass=_TypeMeta):
    """A vector per unit (and class); its length is a symbol: S rows, I inputs, O outputs, U units."""


class Matrix(metaclass=_TypeMeta):
    """A matrix per unit (and class), e.g. the layer's weight matrix W (U x I)."""


TYPES: dict[str, type] = {"Scalar": Scalar, "Vector": Vector, "Matrix": Matrix}
_CODE: dict[type, str] = {Scalar: "s", Vector: "v", Matrix: "m"}

#: Division by |b| below this returns 1 (so div(x, x) = 1 everywhere, as sympy simplifies it).
DIVISION_EPS = 1e-12
#: Ridge of the regularised pseudo-inverse ``rinv(A) = (A^T A + RIDGE I)^-1 A^T``.
RIDGE = 1e-3
_GM_STEPS = 30


def type_name(t: type) -> str:
    return t.__name__


@dataclass(frozen=True)
class Value:
    """A batched value: ``data`` ``(M, U, C, *trailing)``; ``mask`` (vectors only) or None."""

    data: Tensor
    mask: Tensor | None = None

    def dense(self) -> Tensor:
        """The data with masked entries set to zero."""
        if self.mask is None:
            return self.data
        return torch.where(self.mask > 0, self.data, torch.zeros((), dtype=self.data.dtype))


Shape = tuple[str, ...]


@dataclass(frozen=True)
class Terminal:
    """A named input: its type, its symbolic trailing shape, what it varies over."""

    name: str
    type: type
    shape: Shape
    per_unit: bool
    per_class: bool
    help: str


TERMINALS: tuple[Terminal, ...] = (
    Terminal("X", Vector, ("S",), True, False, "the unit's activations on all calibration rows"),
    Terminal("P", Vector, ("S",), True, True, "activations on the rows of class c"),
    Terminal("Q", Vector, ("S",), True, True, "activations on the rows of the other classes"),
    Terminal("N", Scalar, (), False, True, "number of rows of class c (|P|)"),
    Terminal("mX", Scalar, (), True, False, "mean of X"),
    Terminal("mP", Scalar, (), True, True, "mean of P"),
    Terminal("mQ", Scalar, (), True, True, "mean of Q"),
    Terminal("WI", Vector, ("I",), True, False, "the unit's incoming weights"),
    Terminal("WO", Vector, ("O",), True, False, "the unit's outgoing weights"),
    Terminal("W", Matrix, ("U", "I"), False, False, "the layer's weight matrix (units x inputs)"),
)


@dataclass(frozen=True)
class Prim:
    """One overload of a primitive."""

    name: str  # the text name, e.g. "add"
    args: tuple[type, ...]
    ret: type
    run: Callable[..., Value]
    shape: Callable[..., Shape]  # raises ValueError on a dimension mismatch
    sym: str  # how ``simplify`` writes it: an arithmetic tag, or "fn:<name>" (opaque)
    help: str = ""

    @property
    def key(self) -> str:
        """The DEAP primitive name, e.g. ``add_vv`` (the bare name for a single overload)."""
        if len(overloads(self.name)) == 1:
            return self.name
        return self.name + "_" + "".join(_CODE[a] for a in self.args)


# -- torch helpers ---------------------------------------------------------------------------
def _merge(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    if a is None:
        return b
    if b is None:
        return a
    return a * b


def _div(a: Tensor, b: Tensor) -> Tensor:
    ok = b.abs() > DIVISION_EPS
    safe = torch.where(ok, b, torch.ones((), dtype=b.dtype))
    return torch.where(ok, a / safe, torch.ones((), dtype=a.dtype))


def _lift(x: Tensor, k: int) -> Tensor:
    """A scalar ``(M, U, C)`` with ``k`` trailing singleton dimensions (for broadcasting)."""
    return x.reshape(x.shape + (1,) * k)


def _binary(fn: Callable[[Tensor, Tensor], Tensor], ka: int, kb: int) -> Callable[..., Value]:
    def run(a: Value, b: Value) -> Value:
        x = _lift(a.data, kb - ka) if ka < kb else a.data
        y = _lift(b.data, ka - kb) if kb < ka else b.data
        return Value(fn(x, y), _merge(a.mask, b.mask))

    return run


def _unary(fn: Callable[[Tensor], Tensor]) -> Callable[..., Value]:
    return lambda a: Value(fn(a.data), a.mask)


def _count(v: Value) -> Tensor:
    if v.mask is None:
        return torch.full(v.data.shape[:-1], float(v.data.shape[-1]), dtype=v.data.dtype)
    return v.mask.sum(-1)


def _vmean(v: Value) -> Tensor:
    n = _count(v)
    return _div(v.dense().sum(-1), n) * (n > 0)


def _vvar(v: Value) -> Tensor:
    m = _vmean(v).unsqueeze(-1)
    dev = Value((v.data - m) ** 2, v.mask)
    return _vmean(dev)


def _flat(m: Value) -> Value:
    return Value(m.data.flatten(-2))


def _ridge_pinv(a: Tensor) -> Tensor:
    """``(A^T A + r I)^-1 A^T``, solved on the smaller side (the push-through identity)."""
    rows, cols = a.shape[-2], a.shape[-1]
    at = a.transpose(-1, -2)
    if cols <= rows:
        eye = torch.eye(cols, dtype=a.dtype)
        return torch.linalg.solve(at @ a + RIDGE * eye, at)
    eye = torch.eye(rows, dtype=a.dtype)
    return at @ torch.linalg.inv(a @ at + RIDGE * eye)


def geometric_median(w: Tensor, steps: int = _GM_STEPS) -> Tensor:
    """Geometric median of the rows of ``w`` (``(..., rows, cols)`` -> ``(..., cols)``), Weiszfeld."""
    z = w.mean(-2)
    for _ in range(steps):
        d = (w - z.unsqueeze(-2)).norm(dim=-1).clamp_min(1e-8)
        inv = 1.0 / d
        z = (w * inv.unsqueeze(-1)).sum(-2) / inv.sum(-1, keepdim=True)
    return z


# -- shape rules -------------------------------------------------------------------------------
def _same(a: Shape, b: Shape) -> Shape:
    if a != b:
        raise ValueError(f"lengths differ: {'x'.join(a)} vs {'x'.join(b)}")
    return a


def _first(a: Shape, b: Shape = ()) -> Shape:
    return a


def _second(a: Shape, b: Shape) -> Shape:
    return b


def _scalar(*_: Shape) -> Shape:
    return ()


def _square(a: Shape) -> Shape:
    if a[0] != a[1]:
        raise ValueError(f"trace of a non-square {a[0]}x{a[1]} matrix")
    return ()


def _mm(a: Shape, b: Shape) -> Shape:
    if a[1] != b[0]:
        raise ValueError(f"matmul of {a[0]}x{a[1]} and {b[0]}x{b[1]}")
    return (a[0], b[1])


def _mv(a: Shape, b: Shape) -> Shape:
    if a[1] != b[0]:
        raise ValueError(f"matvec of {a[0]}x{a[1]} and {b[0]}")
    return (a[0],)


# -- the table ---------------------------------------------------------------------------------
S, V, M = Scalar, Vector, Matrix
_RANK = {S: 0, V: 1, M: 2}
_ELEMENTWISE_BINARY: dict[str, tuple[Callable[[Tensor, Tensor], Tensor], str]] = {
    "add": (torch.add, "add"),
    "sub": (torch.sub, "sub"),
    "mul": (torch.mul, "mul"),
    "div": (_div, "div"),
}
_ELEMENTWISE_UNARY: dict[str, tuple[Callable[[Tensor], Tensor], str, str]] = {
    "abs": (torch.abs, "abs", "absolute value"),
    "sq": (torch.square, "sq", "square"),
    "sqrt": (lambda x: torch.sqrt(x.abs()), "sqrt", "sqrt(|x|)"),
    "p4": (lambda x: x + 1e-4, "p4", "x + 0.0001"),
    "p05": (lambda x: x + 0.05, "p05", "x + 0.05"),
}


def _f(name: str) -> str:
    """An opaque function in the sympy form (see ``simplify``)."""
    return "fn:" + name


def _stat(fn: Callable[[Value], Tensor], flat: bool = False) -> Callable[..., Value]:
    if flat:
        return lambda m: Value(fn(_flat(m)))
    return lambda v: Value(fn(v))


def _build() -> tuple[Prim, ...]:
    out: list[Prim] = []
    for name, (tf, sf) in _ELEMENTWISE_BINARY.items():
        for a, b in ((S, S), (V, V), (V, S), (S, V), (M, M), (M, S), (S, M)):
            ret = a if _RANK[a] >= _RANK[b] else b
            shape = _same if a is b else (_first if _RANK[a] > _RANK[b] else _second)
            out.append(Prim(name, (a, b), ret, _binary(tf, _RANK[a], _RANK[b]), shape, sf))
    for name, (uf, usf, doc) in _ELEMENTWISE_UNARY.items():
        for a in (S, V, M):
            out.append(Prim(name, (a,), a, _unary(uf), _first, usf, doc))
    stats: list[tuple[str, Callable[[Value], Tensor], str]] = [
        ("mean", _vmean, "mean of the entries"),
        ("sum", lambda v: v.dense().sum(-1), "sum of the entries"),
        ("var", _vvar, "variance of the entries (population)"),
        ("std", lambda v: torch.sqrt(_vvar(v)), "standard deviation of the entries"),
        ("count", _count, "number of entries"),
    ]
    for name, fn, doc in stats:
        out.append(Prim(name, (V,), S, _stat(fn), _scalar, _f(name), doc))
        out.append(Prim(name, (M,), S, _stat(fn, flat=True), _scalar, _f(name), doc))
    out += [
        Prim("tr", (M,), S, lambda m: Value(m.data.diagonal(dim1=-2, dim2=-1).sum(-1)), _square,
             _f("tr"), "trace"),
        Prim("mm", (M, M), M, lambda a, b: Value(a.data @ b.data), _mm, _f("mm"), "matrix product"),
        Prim("mv", (M, V), V, lambda a, v: Value((a.data @ v.dense().unsqueeze(-1)).squeeze(-1)),
             _mv, _f("mv"), "matrix times vector"),
        Prim("rinv", (M,), M, lambda m: Value(_ridge_pinv(m.data)), lambda a: (a[1], a[0]),
             _f("rinv"), "ridge pseudo-inverse (A^T A + 0.001 I)^-1 A^T"),
        Prim("outer", (V, V), M, lambda a, b: Value(a.dense().unsqueeze(-1) * b.dense().unsqueeze(-2)),
             lambda a, b: (a[0], b[0]), _f("outer"), "outer product"),
        Prim("T", (M,), M, lambda m: Value(m.data.transpose(-1, -2)), lambda a: (a[1], a[0]),
             _f("T"), "transpose"),
        Prim("amean", (M,), V, lambda m: Value(m.data.mean(-2)), lambda a: (a[1],), _f("amean"),
             "mean of the rows (axis 0)"),
        Prim("gm", (M,), V, lambda m: Value(geometric_median(m.data)), lambda a: (a[1],), _f("gm"),
             "geometric median of the rows (Weiszfeld)"),
    ]  # fmt: skip
    return tuple(out)


PRIMITIVES: tuple[Prim, ...] = _build()
_BY_NAME: dict[str, tuple[Prim, ...]] = {}
for _p in PRIMITIVES:
    _BY_NAME[_p.name] = _BY_NAME.get(_p.name, ()) + (_p,)
_BY_KEY: dict[str, Prim] = {}


def overloads(name: str) -> tuple[Prim, ...]:
    """Every overload of the text name ``name`` (empty if unknown)."""
    return _BY_NAME.get(name, ())


def by_key(key: str) -> Prim:
    """The overload with DEAP name ``key``."""
    if not _BY_KEY:
        _BY_KEY.update({p.key: p for p in PRIMITIVES})
    return _BY_KEY[key]


def _unused(*_: Any) -> None:  # DEAP wants a callable per primitive; trees are never run by it
    raise RuntimeError("evolved trees are compiled by evoprune_core.evolve.compile")


@lru_cache(maxsize=16)
def primitive_set(exclude: frozenset[str] = frozenset()) -> gp.PrimitiveSetTyped:
    """The DEAP typed primitive set (root type Scalar, no arguments: inputs are terminals).

    ``exclude`` leaves out primitives by text name (all their overloads) and terminals; a
    type left without terminals (W is the only Matrix) drops the primitives that read it.
    """
    pset = gp.PrimitiveSetTyped("unit", [], Scalar)
    terminals = [t for t in TERMINALS if t.name not in exclude]
    # a type without a terminal cannot end a branch: leave out what consumes it
    reachable = {t.type for t in terminals}
    for p in PRIMITIVES:
        if p.name not in exclude and set(p.args) <= reachable:
            pset.addPrimitive(_unused, list(p.args), p.ret, name=p.key)
    for t in terminals:
        pset.addTerminal(t.name, t.type, name=t.name)
    return pset


def names() -> list[str]:
    """Every primitive and terminal name, sorted (for error messages)."""
    return sorted({p.name for p in PRIMITIVES} | {t.name for t in TERMINALS})


def used_names(tree: Any) -> set[str]:
    """The primitive and terminal text names a tree uses."""
    out = set()
    for node in tree:
        out.add(node.name if isinstance(node, gp.Terminal) else by_key(node.name).name)
    return out


def fold(
    tree: Sequence[Any],
    terminal: Callable[[str], Any],
    primitive: Callable[[Prim, list[Any]], Any],
) -> Any:
    """Fold a prefix-order tree bottom-up: ``terminal(name)`` at leaves, ``primitive(prim,
    children)`` at inner nodes. Raises ``ValueError`` when the tree is not one whole term."""

    def visit(i: int) -> tuple[Any, int]:
        node = tree[i]
        if isinstance(node, gp.Terminal):
            return terminal(node.name), i + 1
        prim = by_key(node.name)
        children = []
        nxt = i + 1
        for _ in prim.args:
            child, nxt = visit(nxt)
            children.append(child)
        return primitive(prim, children), nxt

    out, end = visit(0)
    if end != len(tree):
        raise ValueError("malformed tree")
    return out
