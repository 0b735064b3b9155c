"""Pruning schedules: the probability p_t of a pruning event at generation t of T."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from .params import Param, validate_params

__all__ = [
    "Decrease",
    "Exponential",
    "FinalN",
    "Fixed",
    "Increase",
    "PopulationScaled",
    "PruneAfter",
    "Schedule",
    "builtin_schedules",
]


class Schedule:
    """Base class: ``schedule(t, T, n)`` is the pruning probability at 0-based generation ``t``.

    ``probability`` is the base probability p; ``n`` the sub-population size (2r+1 in the
    coevolutionary engine, 1 in the canonical one). F = T - 1 is the last generation.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    parameters: ClassVar[tuple[Param, ...]] = ()

    def __init__(self, probability: float, **params: Any) -> None:
        if not 0.0 <= probability <= 1.0:
            raise ValueError("probability must lie in [0, 1]")
        self.probability = float(probability)
        self.params = validate_params(self.parameters, params, "pruning.schedule_params")

    def rate(self, t: int, last: int, n: int) -> float:
        """p_t for generation ``t`` with last generation ``last`` (= T - 1)."""
        raise NotImplementedError

    def __call__(self, t: int, generations: int, n: int = 1) -> float:
        if not 0 <= t < generations:
            raise ValueError(f"generation {t} outside [0, {generations})")
        return min(1.0, max(0.0, self.rate(t, generations - 1, n)))

    def __repr__(self) -> str:
        args = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}(probability={self.probability}{args})"


def _progress(t: int, last: int) -> float:
    """t / F, with a one-generation run counting as finished."""
    return t / last if last > 0 else 1.0


class Fixed(Schedule):
    name = "fixed"
    description = "p at every generation"

    def rate(self, t: int, last: int, n: int) -> float:
        return self.probability


class Increase(Schedule):
    name = "increase"
    description = "p t / F: linear ramp from 0 to p"

    def rate(self, t: int, last: int, n: int) -> float:
        return self.probability * _progress(t, last)


class Decrease(Schedule):
    name = "decrease"
    description = "p (1 - t / F): linear ramp from p to 0"

    def rate(self, t: int, last: int, n: int) -> float:
        return self.probability * (1.0 - _progress(t, last))


class PopulationScaled(Schedule):
    name = "population"
    description = "p t / (F n): the increasing ramp shared by the n solutions of a sub-population"

    def rate(self, t: int, last: int, n: int) -> float:
        return self.probability * _progress(t, last) / max(1, n)


class Exponential(Schedule):
    name = "exponential"
    description = "p (1 - exp(-k t / F)): saturating ramp, steepness k"
    parameters = (Param("steepness", "float", 2.0, low=0.1, high=20.0, log=True),)

    def rate(self, t: int, last: int, n: int) -> float:
        return self.probability * (1.0 - math.exp(-self.params["steepness"] * _progress(t, last)))


class FinalN(Schedule):
    name = "final_n"
    description = "p once t >= start F (the last 25% by default), else 0"
    parameters = (Param("start", "float", 0.75, low=0.0, high=1.0),)

    def rate(self, t: int, last: int, n: int) -> float:
        return self.probability if t >= self.params["start"] * last else 0.0


class PruneAfter(Schedule):
    name = "prune_after"
    description = "p at the last generation only (pruning after training)"

    def rate(self, t: int, last: int, n: int) -> float:
        return self.probability if t == last else 0.0


def builtin_schedules() -> list[type[Schedule]]:
    return [Fixed, Increase, Decrease, PopulationScaled, Exponential, FinalN, PruneAfter]
