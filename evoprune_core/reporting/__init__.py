"""Reporting on studies: what trials store in Optuna, read once, shown as tables, statistics
and plots. It never needs MLflow.

``_attrs`` (``Attr``: the attribute names studies and trials carry), ``_trials`` (the one
trial reader and the one Pareto function), ``_table`` (best combinations: text, Markdown, CSV,
JSON), ``_statistics`` (Mann-Whitney, Holm, A12, Kruskal-Wallis), ``_compare`` (the groups and
tests of ``evoprune report --stats``), ``_stats_text`` / ``_stats_plots`` (their formats),
``_plots`` (Optuna's study figures).
"""

from __future__ import annotations

from ._attrs import Attr
from ._compare import (
    GROUPINGS,
    METRICS,
    Comparison,
    Group,
    StatsReport,
    build_stats,
    combination_key,
    groups_from_trials,
    pareto_groups,
)
from ._plots import study_figures
from ._statistics import (
    A12_THRESHOLDS,
    PERMUTATION_LIMIT,
    Summary,
    TestResult,
    a12,
    a12_magnitude,
    holm,
    kruskal_wallis,
    mann_whitney,
    summarize,
)
from ._stats_plots import box_figure, pareto_figure, write_figures
from ._stats_text import ALPHA, format_stats, verdict
from ._table import (
    FORMATS,
    TrialRow,
    best_combinations,
    format_rows,
    mean_std,
    pareto_front,
    rows_from_trials,
    study_report,
)
from ._trials import TrialResults, pareto, read_trials

__all__ = [
    "A12_THRESHOLDS",
    "ALPHA",
    "FORMATS",
    "GROUPINGS",
    "METRICS",
    "PERMUTATION_LIMIT",
    "Attr",
    "Comparison",
    "Group",
    "StatsReport",
    "Summary",
    "TestResult",
    "TrialResults",
    "TrialRow",
    "a12",
    "a12_magnitude",
    "best_combinations",
    "box_figure",
    "build_stats",
    "combination_key",
    "format_rows",
    "format_stats",
    "groups_from_trials",
    "holm",
    "kruskal_wallis",
    "mann_whitney",
    "mean_std",
    "pareto",
    "pareto_figure",
    "pareto_front",
    "pareto_groups",
    "read_trials",
    "rows_from_trials",
    "study_figures",
    "study_report",
    "summarize",
    "verdict",
    "write_figures",
]
