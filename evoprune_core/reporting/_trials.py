"""Reading trials: the one reader of what a study's trials store, the one row type it reads
them into, and the one Pareto function.

Everything in ``reporting`` reads trials through :func:`read_trials` (Optuna's
``FrozenTrial`` objects or anything with ``number``, ``state`` and ``user_attrs``) into
:class:`TrialRow`, so the tables, the statistics and the plots agree on which trials count and
on their values. A table shows a row's means (``TrialRow.mean_std``), the statistics its
per-seed values (``TrialRow.summary``); ``report --stats --group combination`` pools the rows
of one combination into one row of the same type (``TrialRow.pool``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ._attrs import Attr
from ._statistics import Summary, summarize

if TYPE_CHECKING:
    from _typeshed import SupportsRichComparison

__all__ = [
    "METRICS",
    "StoredTrial",
    "TrialRow",
    "combination_key",
    "mean_std",
    "pareto",
    "read_trials",
]

T = TypeVar("T")
V = TypeVar("V")

METRICS = ("val_loss", "test_loss", "train_loss", "remaining_fraction")
"""Per-seed metrics a row carries (those every seed of the trial recorded)."""


class StoredTrial(Protocol):
    """What the reader needs of a trial (Optuna's ``FrozenTrial`` has it): its number, its
    state (whose ``name`` is ``"COMPLETE"`` when it finished) and its JSON user attributes."""

    @property
    def number(self) -> int: ...

    @property
    def state(self) -> object: ...

    @property
    def user_attrs(self) -> Mapping[str, Any]: ...


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = sum(values) / n
    if n == 1:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def combination_key(engine: str, operator: str, schedule: str) -> str:
    """``engine/operator/schedule``; without a schedule (``"-"``, a baseline) ``engine/operator``."""
    return f"{engine}/{operator}" if schedule == "-" else f"{engine}/{operator}/{schedule}"


@dataclass(frozen=True)
class TrialRow:
    """One completed trial as the study stored it: its combination and, per seed, each metric.

    ``key`` is ``trial:N``; a row pooled from several trials (:meth:`pool`) is keyed by its
    combination and lists every trial and seed it holds. ``values[metric]`` has one value per
    seed, in the order of ``seeds``; a metric some seed did not record is left out.
    """

    key: str
    engine: str
    operator: str
    schedule: str
    probability: float | None
    amount: float | None
    population: str
    baseline: bool
    trials: tuple[int, ...]
    seeds: tuple[int, ...]
    values: dict[str, tuple[float, ...]] = field(default_factory=dict)
    mlflow_run_id: str = field(default="", compare=False)
    """Where the trial's MLflow run is (tables show it; the statistics' JSON leaves it out, so
    it takes no part in equality)."""

    @property
    def trial(self) -> int:
        """The trial's number (a pooled row: its first trial's)."""
        return self.trials[0]

    @property
    def combination(self) -> str:
        """``engine/operator/schedule``; a baseline is ``engine/none``."""
        return combination_key(self.engine, self.operator, self.schedule)

    def summary(self, metric: str) -> Summary:
        """Median, quartiles, mean and std of ``metric`` over the seeds (empty if not recorded)."""
        return summarize(self.values.get(metric, ()))

    def mean_std(self, metric: str) -> tuple[float, float]:
        """Mean and sample std of ``metric`` over the seeds (KeyError if not recorded)."""
        return mean_std(self.values[metric])

    @classmethod
    def pool(cls, key: str, rows: Sequence[TrialRow]) -> TrialRow:
        """One row of ``rows`` (one combination) together: their trials, seeds and values
        concatenated; a setting they do not share is ``None`` (population ``"mixed"``)."""
        first = rows[0]
        metrics = [m for m in METRICS if all(m in r.values for r in rows)]

        def same(vals: set[V]) -> V | None:
            return vals.pop() if len(vals) == 1 else None

        return cls(
            key=key,
            engine=first.engine,
            operator=first.operator,
            schedule=first.schedule,
            probability=same({r.probability for r in rows}),
            amount=same({r.amount for r in rows}),
            population=same({r.population for r in rows}) or "mixed",
            baseline=all(r.baseline for r in rows),
            trials=tuple(t for r in rows for t in r.trials),
            seeds=tuple(s for r in rows for s in r.seeds),
            values={m: tuple(v for r in rows for v in r.values[m]) for m in metrics},
        )


def read_trials(trials: Iterable[StoredTrial]) -> list[TrialRow]:
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
            TrialRow(
                key=f"trial:{t.number}",
                engine=combo["engine"],
                operator=combo["operator"],
                schedule=combo["schedule"],
                probability=combo.get("probability"),
                amount=combo.get("amount"),
                population=str(combo.get("population", "1")),
                baseline=bool(t.user_attrs.get(Attr.BASELINE, False)),
                trials=(t.number,),
                seeds=tuple(int(r["seed"]) for r in res),
                values={
                    m: tuple(float(r[m]) for r in res) for m in METRICS if all(m in r for r in res)
                },
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
