"""A finished study's artifacts on its parent run: tables, Optuna plots, statistics."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..reporting import build_stats, format_stats, study_figures, study_report, write_figures
from ._config import StudyConfig

if TYPE_CHECKING:
    from ..tracking import StudyRun, Tracking

__all__ = ["finish_study", "log_stats"]


def finish_study(
    cfg: StudyConfig, study: Any, tracker: Tracking, ids: StudyRun, status: str
) -> tuple[str, str]:
    """Study artifacts on the parent run (tables, Optuna plots, statistics); end it; return
    the table and where the Pareto front plot went."""

    trials = study.get_trials(deepcopy=False)
    text = study_report(trials, cfg.objectives, "text")
    plot = ""
    try:
        tracker.log_text(ids.run_id, study_report(trials, cfg.objectives, "markdown"), "best.md")
        tracker.log_text(ids.run_id, study_report(trials, cfg.objectives, "csv"), "best.csv")
        with tempfile.TemporaryDirectory() as tmp:
            for path in study_figures(study, cfg.objectives, Path(tmp)):
                tracker.log_artifact(ids.run_id, path, "optuna")
        plot = log_stats(cfg, trials, tracker, ids.run_id)
    finally:
        tracker.finish_study(ids, status)
    return text, plot


def log_stats(cfg: StudyConfig, trials: list[Any], tracker: Tracking, run_id: str) -> str:
    """``evoprune report --stats`` (JSON, Markdown) and its plots under the study run's
    ``stats/``; returns where ``pareto_front.png`` went ("" if nowhere)."""

    report = build_stats(trials, cfg.objectives, cfg.name)
    if not report.groups:
        return ""
    tracker.log_text(run_id, format_stats(report, "json"), "stats/stats.json")
    tracker.log_text(run_id, format_stats(report, "markdown"), "stats/stats.md")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for path in write_figures(report, Path(tmp)):
                tracker.log_artifact(run_id, path, "stats")
    except Exception as exc:  # noqa: BLE001 - a plot must not fail a finished study
        warnings.warn(f"evoprune: statistics plots skipped: {exc}", stacklevel=2)
        return ""
    return tracker.artifact_location(run_id, "stats/pareto_front.png")
