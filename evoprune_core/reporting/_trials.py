"""Reading trials: the one reader of what a study's trials store, and the one Pareto function.

Everything in ``reporting`` reads trials through :func:`read_trials` (Optuna's
``FrozenTrial`` objects or anything with ``number``, ``state`` and ``user_attrs``), so the
tables, the statistics and the plots agree on which trials count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ._attrs import Attr

__all__ = ["TrialResults", "pareto", "read_trials"]

T = TypeVar("T")


@dataclass(frozen=True)
class TrialResults:
    """One completed trial as a study stored it: its combination and one result per seed."""

    number: int
    combination: dict[str, Any]
    results: tuple[dict[str, Any], ...]
    baseline: bool
    mlflow_run_id: str


def read_trials(trials: Iterable[Any]) -> list[TrialResults]:
    """The completed trials that carry evoprune results, in the order given (others ignored)."""
    out = []
    for t in trials:
        if getattr(t.state, "name", "") != "COMPLETE":
            continue
        res = t.user_attrs.get(Attr.RESULTS)
        combo = t.user_attrs.get(Attr.COMBINATION)
        if not res or not combo:
            continue
        out.append(
            TrialResults(
                number=t.number,
                combination=combo,
                results=tuple(res),
                baseline=bool(t.user_attrs.get(Attr.BASELINE, False)),
                mlflow_run_id=str(t.user_attrs.get(Attr.MLFLOW_RUN_ID, "")),
            )
        )
    return out


def pareto(
    items: Sequence[T],
    point: Callable[[T], tuple[float | None, float | None]],
    order: Callable[[T], Any],
) -> list[T]:
    """The items whose ``point`` (two values, both minimised) no other item's beats on both,
    sorted by ``order``; an item with a missing value takes no part."""
    pts = [(item, *point(item)) for item in items]
    pts = [(item, a, b) for item, a, b in pts if a is not None and b is not None]

    def dominated(a: float, b: float) -> bool:
        return any(c <= a and d <= b and (c < a or d < b) for _, c, d in pts)

    return sorted((item for item, a, b in pts if not dominated(a, b)), key=order)
