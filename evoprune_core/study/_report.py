"""A finished study's artifacts on its parent run: tables, Optuna plots, statistics."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from ..reporting import Attr, build_stats, format_stats, study_figures, study_report, write_figures
from ._config import StudyConfig

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from ..tracking import StudyRun, Tracking

__all__ = ["finish_study", "log_stats"]


def finish_study(
    cfg: StudyConfig,
    study: optuna.Study,
    tracker: Tracking,
    ids: StudyRun,
    status: str,
    seconds: float | None = None,
    state_dir: Path | None = None,
) -> tuple[str, str]:
    """Study artifacts on the parent run (tables, Optuna plots, statistics, the best trials'
    plots and models); end it with the time the study ran over all its sessions as its
    duration (``seconds``: this session's); return the table and where the Pareto front plot
    went. ``state_dir``: where a plugin tracker's trials kept their state (``artifacts``)."""

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
        if cfg.artifacts == "best":
            _best_artifacts(study, tracker, state_dir)
    finally:
        from ..tracking import Tracker

        if seconds is None or not isinstance(tracker, Tracker):
            tracker.finish_study(ids, status)  # the protocol's call: plugin trackers keep theirs
        else:
            tracker.finish_study(ids, status, seconds)
    return text, plot


def _best_artifacts(study: optuna.Study, tracker: Tracking, state_dir: Path | None) -> None:
    """Plots (reconstruction grids of image data too), masks and models of the best
    (Pareto-front) trials that have only their state: in their MLflow runs, or through a plugin
    tracker's ``log_artifact`` from the state kept in ``state_dir``."""
    from ..reporting import save_reconstructions
    from ..tracking import Tracker, complete_artifacts, complete_local

    try:
        best = study.best_trials
    except (ValueError, RuntimeError):  # no complete trial yet
        return
    for t in best:
        run_id = t.user_attrs.get(Attr.MLFLOW_RUN_ID)
        if not run_id:
            continue
        try:
            if isinstance(tracker, Tracker):
                complete_artifacts(tracker, run_id, save_reconstructions)
            elif state_dir is not None:
                complete_local(tracker, state_dir / f"t{t.number:04d}", save_reconstructions)
        except Exception as exc:  # noqa: BLE001 - artifacts must not fail a finished study
            warnings.warn(
                f"evoprune: trial {t.number}: plots and model not written: {exc}", stacklevel=2
            )


def log_stats(cfg: StudyConfig, trials: list[FrozenTrial], tracker: Tracking, run_id: str) -> str:
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
