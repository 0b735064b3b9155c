"""Reporting on studies: what trials store in Optuna, read once, shown as tables, statistics
and plots. It never needs MLflow.

``_attrs`` (``Attr``: the attribute names studies and trials carry), ``_trials`` (the one
trial reader, the one row type ``TrialRow`` and the one Pareto function), ``_table`` (best
combinations: text, Markdown, CSV, JSON), ``_statistics`` (Mann-Whitney, Holm, A12,
Kruskal-Wallis), ``_compare`` (the groups and tests of ``evoprune report --stats``),
``_stats_text`` / ``_stats_plots`` (their formats), ``_plots`` (Optuna's study figures),
``_recon_plot`` (an image autoencoder's reconstruction grid).
"""

from __future__ import annotations

from ._attrs import Attr
from ._compare import (
    GROUP_FIELDS,
    GROUPINGS,
    Comparison,
    StatsReport,
    build_stats,
    groups_from_trials,
    pareto_groups,
)
from ._plots import study_figures
from ._recon_plot import save_reconstructions
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
    COLUMNS,
    FORMATS,
    best_combinations,
    format_rows,
    pareto_front,
    rows_from_trials,
    study_report,
    table_record,
)
from ._trials import METRICS, TrialRow, combination_key, mean_std, pareto, read_trials

__all__ = [
    "A12_THRESHOLDS",
    "ALPHA",
    "COLUMNS",
    "FORMATS",
    "GROUP_FIELDS",
    "GROUPINGS",
    "METRICS",
    "PERMUTATION_LIMIT",
    "Attr",
    "Comparison",
    "StatsReport",
    "Summary",
    "TestResult",
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
    "save_reconstructions",
    "study_figures",
    "study_report",
    "summarize",
    "table_record",
    "verdict",
    "write_figures",
]
