"""Reading trials: the one reader of what a study's trials store, and the one Pareto function.

Everything in ``reporting`` reads trials through :func:`read_trials` (Optuna's
``FrozenTrial`` objects or anything with ``number``, ``state`` and ``user_attrs``), so the
tables, the statistics and the plots agree on which trials count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ._attrs import Attr

if TYPE_CHECKING:
    from _typeshed import SupportsRichComparison

__all__ = ["StoredTrial", "TrialResults", "pareto", "read_trials"]

T = TypeVar("T")


class StoredTrial(Protocol):
    """What the reader needs of a trial (Optuna's ``FrozenTrial`` has it): its number, its
    state (whose ``name`` is ``"COMPLETE"`` when it finished) and its JSON user attributes."""

    @property
    def number(self) -> int: ...

    @property
    def state(self) -> object: ...

    @property
    def user_attrs(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class TrialResults:
    """One completed trial as a study stored it: its combination and one result per seed."""

    number: int
    combination: dict[str, Any]
    results: tuple[dict[str, Any], ...]
    baseline: bool
    mlflow_run_id: str


def read_trials(trials: Iterable[StoredTrial]) -> list[TrialResults]:
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
    order: Callable[[T], SupportsRichComparison],
) -> list[T]:
    """The items whose ``point`` (two values, both minimised) no other item's beats on both,
    sorted by ``order``; an item with a missing value takes no part."""
    pts: list[tuple[T, float, float]] = []
    for item in items:
        a, b = point(item)
        if a is not None and b is not None:
            pts.append((item, a, b))

    def dominated(a: float, b: float) -> bool:
        return any(c <= a and d <= b and (c < a or d < b) for _, c, d in pts)

    return sorted((item for item, a, b in pts if not dominated(a, b)), key=order)
