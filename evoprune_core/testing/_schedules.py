"""Conformance checks for pruning schedules (the ``rate(t, last, n)`` contract)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import ConfigError
from ..schedules import Schedule
from ._common import (
    check_name,
    check_param_declarations,
    in_range_values,
    out_of_range_values,
    run_named,
)

__all__ = ["SCHEDULE_CHECKS", "check_schedule", "schedule_checks"]

ScheduleLike = Schedule | type[Schedule]
#: (generations T, sub-population size n) pairs every check walks through
_SHAPES = ((1, 1), (2, 1), (7, 3), (400, 1), (400, 3))


def _build(schedule: ScheduleLike, probability: float) -> Schedule:
    if isinstance(schedule, type):
        assert issubclass(schedule, Schedule), f"{schedule!r} is not a Schedule subclass"
        return schedule(probability)
    assert isinstance(schedule, Schedule), f"{schedule!r} is not a Schedule"
    return type(schedule)(probability, **schedule.params)


def _rates(s: Schedule) -> list[float]:
    return [s(t, big_t, n) for big_t, n in _SHAPES for t in range(big_t)]


def check_declaration(schedule: ScheduleLike) -> None:
    """A valid name, a description, and well-formed declared parameters."""
    cls = schedule if isinstance(schedule, type) else type(schedule)
    check_name(cls.name, "schedule")
    assert isinstance(cls.description, str), "description must be a string"
    check_param_declarations(cls.parameters, reserved=("probability",))


def check_range(schedule: ScheduleLike) -> None:
    """``rate`` returns a finite number for every t of runs of 1 to 400 generations, and the
    probability it yields lies in [0, 1] (one generation: ``last == 0``, no division by 0)."""
    s = _build(schedule, 0.5)
    for big_t, n in _SHAPES:
        for t in range(big_t):
            raw = s.rate(t, big_t - 1, n)
            assert isinstance(raw, (int, float)) and not isinstance(raw, bool), (
                f"rate({t}, {big_t - 1}, {n}) returned {raw!r}, not a number"
            )
            assert math.isfinite(raw), f"rate({t}, {big_t - 1}, {n}) = {raw}"
            assert 0.0 <= s(t, big_t, n) <= 1.0


def check_probability_scales(schedule: ScheduleLike) -> None:
    """p = 0 never prunes; p = 1 prunes at some generation; a larger p is never lower."""
    zero, half, one = (_rates(_build(schedule, p)) for p in (0.0, 0.5, 1.0))
    assert max(zero) == 0.0, "probability 0 still gives a positive pruning probability"
    assert max(one) > 0.0, "probability 1 never gives a positive pruning probability"
    assert all(a <= b + 1e-12 for a, b in zip(half, one)), "p = 1 gives less than p = 0.5"


def check_deterministic(schedule: ScheduleLike) -> None:
    """A schedule is a pure function of (t, T, n): same values twice, in any order."""
    s = _build(schedule, 0.5)
    forward = _rates(s)
    again = _rates(_build(schedule, 0.5))
    backward = [s(t, big_t, n) for big_t, n in reversed(_SHAPES) for t in reversed(range(big_t))]
    assert forward == again, "two instances with the same parameters differ"
    assert forward == list(reversed(backward)), "values depend on the order of calls (state)"


def check_parameters(schedule: ScheduleLike) -> None:
    """Every bound, midpoint and choice is accepted; values just outside are refused."""
    cls = schedule if isinstance(schedule, type) else type(schedule)
    base = {} if isinstance(schedule, type) else dict(schedule.params)
    for p in cls.parameters:
        for value in in_range_values(p):
            try:
                s = cls(0.5, **{**base, p.name: value})
            except Exception as exc:
                raise AssertionError(
                    f"parameter {p.name}={value!r} (declared {p.allowed()}) is refused: {exc}"
                ) from None
            check_range(s)
        for bad in out_of_range_values(p):
            try:
                cls(0.5, **{**base, p.name: bad})
            except ConfigError:
                continue
            raise AssertionError(f"parameter {p.name}={bad!r} outside its range is accepted")


SCHEDULE_CHECKS: dict[str, Callable[[ScheduleLike], None]] = {
    "declaration": check_declaration,
    "range": check_range,
    "probability_scales": check_probability_scales,
    "deterministic": check_deterministic,
    "parameters": check_parameters,
}


def schedule_checks(schedule: ScheduleLike) -> Iterator[tuple[str, Callable[[Any], None]]]:
    """Yield ``(check_name, check)``; call ``check(schedule)``."""
    for name, check in SCHEDULE_CHECKS.items():
        yield name, _named(name, check)


def _named(name: str, check: Callable[[ScheduleLike], None]) -> Callable[[Any], None]:
    def run(schedule: ScheduleLike) -> None:
        run_named(getattr(schedule, "name", repr(schedule)), name, lambda: check(schedule))

    return run


def check_schedule(schedule: ScheduleLike) -> None:
    """Run every schedule check; raise ``AssertionError`` naming the first that fails."""
    for _name, check in schedule_checks(schedule):
        check(schedule)
