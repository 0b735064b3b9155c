"""Parse formula text such as ``div(abs(sub(mP, mQ)), p4(add(std(P), std(Q))))`` into a tree.

Grammar (whitespace is ignored)::

    formula := call
    call    := NAME | NAME "(" call ("," call)* ")"
    NAME    := [A-Za-z_][A-Za-z0-9_]*

A bare NAME is a terminal (X, P, Q, N, mX, mP, mQ, WI, WO, W); a NAME with arguments is a
primitive, whose overload is chosen by the argument types. Nothing is ever evaluated as
Python: any other character, an unknown name, a wrong argument count, a type or dimension
mismatch is a ``FormulaError`` naming the character position.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from deap import gp

from ...errors import ConfigError
from ..compile import ShapeError, check_shapes
from ..primitives import (
    PRIMITIVES,
    TERMINALS,
    Scalar,
    fold,
    overloads,
    primitive_set,
    type_name,
)

__all__ = ["FormulaError", "parse", "to_text"]

MAX_LENGTH = 20_000
MAX_NESTING = 60
_TERMINAL_TYPES = {t.name: t.type for t in TERMINALS}
_NAMES = sorted({p.name for p in PRIMITIVES})


class FormulaError(ConfigError):
    """Formula text that does not parse or type-check; ``position`` is a character offset."""

    def __init__(self, position: int, message: str) -> None:
        super().__init__(f"position {position}: {message}")
        self.position = position


@dataclass(frozen=True)
class _Token:
    kind: str  # "name", "(", ")", ",", "end"
    text: str
    pos: int


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "(),":
            out.append(_Token(ch, ch, i))
            i += 1
        elif ch.isascii() and (ch.isalpha() or ch == "_"):
            j = i + 1
            while j < len(text) and text[j].isascii() and (text[j].isalnum() or text[j] == "_"):
                j += 1
            out.append(_Token("name", text[i:j], i))
            i = j
        else:
            raise FormulaError(i, f"unexpected character {ch!r}; allowed: names, '(', ')', ','")
    out.append(_Token("end", "", len(text)))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.nodes: list[Any] = []
        self.positions: list[int] = []

    def peek(self) -> _Token:
        return self.toks[self.i]

    def take(self, kind: str) -> _Token:
        tok = self.peek()
        if tok.kind != kind:
            shown = "the end" if tok.kind == "end" else repr(tok.text)
            raise FormulaError(tok.pos, f"expected {kind!r}, found {shown}")
        self.i += 1
        return tok

    def call(self, depth: int) -> type:
        """Parse one call; append its nodes (prefix order); return its type."""
        if depth > MAX_NESTING:
            raise FormulaError(self.peek().pos, f"nested deeper than {MAX_NESTING} levels")
        tok = self.peek()
        if tok.kind != "name":
            shown = "the end" if tok.kind == "end" else repr(tok.text)
            raise FormulaError(tok.pos, f"expected a name, found {shown}")
        self.i += 1
        pset = primitive_set()
        if self.peek().kind != "(":
            if tok.text not in _TERMINAL_TYPES:
                hint = " (a primitive needs arguments)" if overloads(tok.text) else ""
                raise FormulaError(
                    tok.pos,
                    f"unknown name {tok.text!r}{hint}; allowed terminals: "
                    + ", ".join(_TERMINAL_TYPES),
                )
            self.nodes.append(pset.mapping[tok.text])
            self.positions.append(tok.pos)
            return _TERMINAL_TYPES[tok.text]
        cands = overloads(tok.text)
        if not cands:
            raise FormulaError(
                tok.pos, f"unknown primitive {tok.text!r}; allowed: {', '.join(_NAMES)}"
            )
        slot = len(self.nodes)
        self.nodes.append(None)
        self.positions.append(tok.pos)
        self.take("(")
        types = [self.call(depth + 1)]
        while self.peek().kind == ",":
            self.i += 1
            types.append(self.call(depth + 1))
        self.take(")")
        for prim in cands:
            if tuple(types) == prim.args:
                self.nodes[slot] = pset.mapping[prim.key]
                return prim.ret
        got = ", ".join(type_name(t) for t in types)
        allowed = "; ".join(f"{tok.text}({', '.join(type_name(a) for a in p.args)})" for p in cands)
        raise FormulaError(tok.pos, f"no {tok.text}({got}); allowed: {allowed}")


def parse(text: str) -> gp.PrimitiveTree:
    """The typed tree of ``text``; raises ``FormulaError`` (position, what, allowed)."""
    if not isinstance(text, str):
        raise FormulaError(0, f"expected formula text, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise FormulaError(MAX_LENGTH, f"longer than {MAX_LENGTH} characters")
    p = _Parser(text)
    ret = p.call(0)
    end = p.peek()
    if end.kind != "end":
        raise FormulaError(end.pos, f"unexpected {end.text!r} after the formula")
    if ret is not Scalar:
        raise FormulaError(0, f"the formula is a {type_name(ret)}; it must be a Scalar per unit")
    tree = gp.PrimitiveTree(p.nodes)
    try:
        check_shapes(tree)
    except ShapeError as exc:
        raise FormulaError(p.positions[exc.index], str(exc)) from None
    return tree


def to_text(tree: Sequence[Any]) -> str:
    """The formula text of a tree (what ``parse`` reads back)."""
    return fold(tree, str, lambda prim, parts: f"{prim.name}({', '.join(parts)})")
