"""Declared, tunable parameters of operators, schedules and datasets."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import ConfigError

__all__ = ["Param", "validate_params"]

Kind = Literal["float", "int", "categorical", "bool", "str"]


@dataclass(frozen=True)
class Param:
    """One parameter a plugin component accepts, with the range a study may sample.

    ``low``/``high`` bound ``float`` and ``int`` parameters (inclusive); ``choices`` lists the
    values of a ``categorical``. ``tunable=False`` keeps a parameter out of study search spaces.
    """

    name: str
    kind: Kind
    default: Any
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = field(default_factory=tuple)
    help: str = ""
    tunable: bool = True

    def __post_init__(self) -> None:
        if self.kind in ("float", "int"):
            if self.low is None or self.high is None or self.low > self.high:
                raise ValueError(f"param {self.name!r}: numeric params need low <= high")
            if self.log and self.low <= 0:
                raise ValueError(f"param {self.name!r}: a log range needs low > 0")
        if self.kind == "categorical" and not self.choices:
            raise ValueError(f"param {self.name!r}: a categorical param needs choices")

    def allowed(self) -> str:
        """The allowed values, in words, for error messages."""
        if self.kind in ("float", "int"):
            return f"{self.kind} in [{self.low}, {self.high}]"
        if self.kind == "categorical":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        return self.kind

    def validate(self, value: Any) -> Any:
        """Return ``value`` converted to this parameter's kind; raise ``ValueError`` if bad."""
        if self.kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"expected {self.allowed()}, got {value!r}")
            value = float(value)
            if not math.isfinite(value) or not (self.low <= value <= self.high):
                raise ValueError(f"expected {self.allowed()}, got {value!r}")
            return value
        if self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                else:
                    raise ValueError(f"expected {self.allowed()}, got {value!r}")
            if not (self.low <= value <= self.high):
                raise ValueError(f"expected {self.allowed()}, got {value!r}")
            return int(value)
        if self.kind == "categorical":
            if value not in self.choices:
                raise ValueError(f"expected {self.allowed()}, got {value!r}")
            return value
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"expected true or false, got {value!r}")
            return value
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {value!r}")
        return value

    def describe(self) -> dict[str, Any]:
        """A JSON-able description (used by ``evoprune plugins --json``)."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "default": self.default}
        if self.kind in ("float", "int"):
            out.update(low=self.low, high=self.high, log=self.log)
        if self.kind == "categorical":
            out["choices"] = list(self.choices)
        if self.help:
            out["help"] = self.help
        out["tunable"] = self.tunable
        return out


def validate_params(
    declared: tuple[Param, ...], given: dict[str, Any], where: str
) -> dict[str, Any]:
    """Check ``given`` against ``declared``; fill defaults. ``where`` prefixes error messages."""
    by_name = {p.name: p for p in declared}
    for key in given:
        if key not in by_name:
            allowed = ", ".join(sorted(by_name)) or "none"
            raise ConfigError(f"{where}.{key}: unknown parameter; allowed: {allowed}")
    out: dict[str, Any] = {}
    for p in declared:
        if p.name in given:
            try:
                out[p.name] = p.validate(given[p.name])
            except ValueError as exc:
                raise ConfigError(f"{where}.{p.name}: {exc}") from None
        else:
            out[p.name] = p.default
    return out
