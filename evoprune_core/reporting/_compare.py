"""The statistics of a study: groups of per-seed results, tests against a reference, Holm.

A *group* is what the seeds replicate. ``grouping="trial"`` (the default): one completed
trial, i.e. one fully sampled configuration (engine, operator, schedule, probability, amount,
population, plugin parameters) run on every seed of the study. ``grouping="combination"``:
every trial of one ``engine/operator/schedule`` pooled, whatever else was sampled; the pooled
values then mix configurations (say so when you use it). Per-seed values come from each
trial's ``evoprune.results`` user attribute, so a report needs neither MLflow nor the runs.

Every group is compared with its reference on every tested metric (two-sided Mann-Whitney U,
Vargha-Delaney A12); the family for Holm's adjustment is every test of one metric in the
report. Default reference: the no-pruning baseline of the group's own engine; ``against``
names one group for all (``engine/operator/schedule``, ``engine/none`` for a baseline, or
``trial:N``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import ConfigError
from ._statistics import TestResult, holm, mann_whitney
from ._trials import METRICS, StoredTrial, TrialRow, pareto, read_trials

__all__ = [
    "GROUP_FIELDS",
    "GROUPINGS",
    "METRICS",
    "ONE_SEED",
    "Comparison",
    "StatsReport",
    "build_stats",
    "groups_from_trials",
    "pareto_groups",
]

GROUPINGS = ("trial", "combination")
ONE_SEED = (
    "one seed per group: no test is possible; medians only, no effect sizes (add seeds to "
    "compare groups)"
)
GROUP_FIELDS = (
    "key",
    "engine",
    "operator",
    "schedule",
    "probability",
    "amount",
    "population",
    "baseline",
    "trials",
    "seeds",
    "values",
)
"""What ``StatsReport.to_dict`` keeps of each group (a :class:`TrialRow`)."""


@dataclass(frozen=True)
class Comparison:
    """One test: ``group`` against ``reference`` on ``metric``, with its Holm-adjusted p."""

    metric: str
    group: str
    reference: str
    result: TestResult
    p_holm: float | None


@dataclass(frozen=True)
class StatsReport:
    """Groups, the tests of every group against its reference, and notes for the reader."""

    study: str
    grouping: str
    metrics: tuple[str, ...]
    against: str | None
    groups: tuple[TrialRow, ...]
    comparisons: tuple[Comparison, ...]
    notes: tuple[str, ...] = ()

    def group(self, key: str) -> TrialRow:
        return next(g for g in self.groups if g.key == key)

    def to_dict(self) -> dict[str, Any]:
        """Everything, per-seed values included, as JSON-ready data (``from_dict`` inverts)."""
        data = asdict(self)
        data["groups"] = tuple({k: raw[k] for k in GROUP_FIELDS} for raw in data["groups"])
        for g, raw in zip(self.groups, data["groups"]):
            raw["summary"] = {
                m: {**asdict(g.summary(m)), "iqr": g.summary(m).iqr} for m in g.values
            }  # derived from the values; from_dict ignores it
        for c, raw in zip(self.comparisons, data["comparisons"]):
            raw["result"]["direction"] = c.result.direction
        data["pareto_front"] = [g.key for g in pareto_groups(self.groups)]  # derived too
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StatsReport:
        groups = tuple(
            TrialRow(
                **{k: v for k, v in g.items() if k not in ("trials", "seeds", "values", "summary")},
                trials=tuple(g["trials"]),
                seeds=tuple(g["seeds"]),
                values={m: tuple(v) for m, v in g["values"].items()},
            )
            for g in data["groups"]
        )
        comparisons = tuple(
            Comparison(
                c["metric"],
                c["group"],
                c["reference"],
                TestResult(**{k: v for k, v in c["result"].items() if k != "direction"}),
                c["p_holm"],
            )
            for c in data["comparisons"]
        )
        return cls(
            study=data["study"],
            grouping=data["grouping"],
            metrics=tuple(data["metrics"]),
            against=data["against"],
            groups=groups,
            comparisons=comparisons,
            notes=tuple(data["notes"]),
        )


def groups_from_trials(trials: Iterable[StoredTrial], grouping: str = "trial") -> list[TrialRow]:
    """The groups of the completed trials that carry evoprune results, in trial order: one row
    per trial, or (``combination``) the rows of each combination pooled into one."""
    if grouping not in GROUPINGS:
        raise ConfigError(f"--group: unknown grouping {grouping!r}; allowed: trial, combination")
    per_trial = sorted(read_trials(trials), key=lambda g: g.trials)
    if grouping == "trial":
        return per_trial
    pooled: dict[str, list[TrialRow]] = {}
    for g in per_trial:
        pooled.setdefault(g.combination, []).append(g)
    return [TrialRow.pool(key, members) for key, members in pooled.items()]


def _resolve_against(groups: Sequence[TrialRow], against: str, grouping: str) -> TrialRow:
    """The group ``against`` names; a bad name is one ConfigError line listing the choices."""
    combos = sorted({g.combination for g in groups})
    allowed = ", ".join(combos)
    if grouping == "trial":
        allowed += ", or trial:<number> of a completed trial"
    if against.startswith("trial:"):
        found = [g for g in groups if against in (g.key, *(f"trial:{t}" for t in g.trials))]
        if grouping == "trial" and found:
            return found[0]
        raise ConfigError(f"--against: no group {against!r} in this report; allowed: {allowed}")
    found = [g for g in groups if g.combination == against]
    if not found:
        raise ConfigError(f"--against: unknown combination {against!r}; allowed: {allowed}")
    if len(found) > 1:
        keys = ", ".join(g.key for g in found)
        raise ConfigError(
            f"--against: {against!r} is ambiguous ({len(found)} trials); "
            f"allowed: one of {keys}, or --group combination"
        )
    return found[0]


def build_stats(
    trials: Iterable[StoredTrial],
    metrics: Sequence[str],
    study: str = "",
    grouping: str = "trial",
    against: str | None = None,
) -> StatsReport:
    """Group the trials, test every group against its reference on every metric, adjust."""
    bad = [m for m in metrics if m not in METRICS]
    if bad or not metrics:
        raise ConfigError(f"--metric: unknown metric {bad[0] if bad else ''!r}; allowed: "
                          + ", ".join(METRICS))  # fmt: skip
    groups = groups_from_trials(trials, grouping)
    notes: list[str] = []
    if not groups:
        return StatsReport(
            study,
            grouping,
            tuple(metrics),
            against,
            (),
            (),
            ("no completed trials with evoprune results",),
        )
    if against is not None:
        ref = _resolve_against(groups, against, grouping)
        refs = {g.key: ref for g in groups if g.key != ref.key}
    else:
        baselines: dict[str, TrialRow] = {}
        for g in groups:
            if g.baseline and g.engine not in baselines:
                baselines[g.engine] = g
        extra = [g.key for g in groups if g.baseline and baselines[g.engine] is not g]
        if extra:
            notes.append(f"several baselines per engine; compared with the first: {extra} unused")
        refs = {}
        for g in groups:
            if g.engine not in baselines:
                continue
            if baselines[g.engine] is not g:
                refs[g.key] = baselines[g.engine]
        missing = sorted({g.engine for g in groups} - set(baselines))
        if missing:
            notes.append(
                f"no no-pruning baseline for engine(s) {', '.join(missing)}: not tested "
                "(use --against)"
            )
    if grouping == "combination" and any(len(g.trials) > 1 for g in groups):
        notes.append(
            "grouped by combination: a group pools every trial of one engine/operator/schedule, "
            "whatever probability, amount and population they sampled"
        )
    comparisons: list[Comparison] = []
    if all(len(g.seeds) < 2 for g in groups):
        notes.insert(0, ONE_SEED)
        metrics_tested: Sequence[str] = ()
    else:
        metrics_tested = metrics
    for metric in metrics_tested:
        pending = []
        for g in groups:
            other = refs.get(g.key)
            if other is None:
                continue
            if metric not in g.values or metric not in other.values:
                notes.append(f"{g.key} or {other.key} has no {metric}: not tested")
                continue
            pending.append((g.key, other.key, mann_whitney(g.values[metric], other.values[metric])))
        adjusted = holm([r.p for _, _, r in pending])
        comparisons += [
            Comparison(metric, gk, rk, r, padj) for (gk, rk, r), padj in zip(pending, adjusted)
        ]
    return StatsReport(
        study, grouping, tuple(metrics), against, tuple(groups), tuple(comparisons), tuple(notes)
    )


def pareto_groups(
    groups: Sequence[TrialRow], x: str = "remaining_fraction", y: str = "val_loss"
) -> list[TrialRow]:
    """Groups whose medians of ``x`` and ``y`` no other group beats on both (both minimised),
    sorted by ``y``."""
    return pareto(
        groups,
        lambda g: (g.summary(x).median, g.summary(y).median),
        lambda g: (g.summary(y).median, g.trials),
    )
