"""What the operator, schedule and dataset checks share: declared parameters and their values."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ..params import Param

__all__ = [
    "check_name",
    "check_param_declarations",
    "in_range_values",
    "out_of_range_values",
    "run_named",
]


def run_named(label: str, name: str, call: Callable[[], None]) -> None:
    """Run one check; any failure becomes ``AssertionError("<label>: check '<name>' ...")``."""
    try:
        call()
    except AssertionError as exc:
        raise AssertionError(f"{label}: check {name!r} failed: {exc}") from None
    except Exception as exc:
        raise AssertionError(
            f"{label}: check {name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc


def check_name(name: object, what: str) -> None:
    """A component name: letters, digits, ``_ . -``."""
    assert isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9_.\-]+", name), (
        f"{what} name {name!r} is not a non-empty identifier (letters, digits, _ . -)"
    )


def check_param_declarations(params: object, reserved: tuple[str, ...] = ()) -> None:
    """``Param`` instances with unique names, none ``reserved``, and valid defaults."""
    assert isinstance(params, tuple), "parameters must be a tuple of evoprune_core.Param"
    names = [getattr(p, "name", None) for p in params]
    assert len(names) == len(set(names)), f"parameter names repeat: {names}"
    for p in params:
        assert isinstance(p, Param), f"parameter {p!r} is not an evoprune_core.Param"
        assert p.name not in reserved, (
            f"parameter {p.name!r} is reserved: the engine passes it (do not declare it)"
        )
        try:
            p.validate(p.default)
        except ValueError as exc:
            raise AssertionError(f"parameter {p.name!r}: default {p.default!r}: {exc}") from None


def in_range_values(p: Param) -> list[Any]:
    """Values a study may sample for ``p``: bounds and midpoint, every choice, both bools."""
    if p.kind == "float":
        assert p.low is not None and p.high is not None
        return [p.low, (p.low + p.high) / 2, p.high]
    if p.kind == "int":
        assert p.low is not None and p.high is not None
        return sorted({int(p.low), int((p.low + p.high) // 2), int(p.high)})
    if p.kind == "categorical":
        return list(p.choices)
    if p.kind == "bool":
        return [False, True]
    return [p.default]


def out_of_range_values(p: Param) -> list[Any]:
    """Values just outside ``p``'s declaration, which must be refused."""
    if p.kind in ("float", "int"):
        assert p.low is not None and p.high is not None
        return [p.low - 1, p.high + 1]
    if p.kind == "categorical":
        return ["<not a choice>"]
    if p.kind == "bool":
        return ["yes"]
    return []
