"""The attribute names evoprune stores on Optuna studies and trials, defined once."""

from __future__ import annotations

__all__ = ["Attr"]


class Attr:
    """Keys of ``study.user_attrs`` and ``trial.user_attrs`` (all under ``evoprune.``)."""

    # study
    PARENT_RUN_ID = "evoprune.parent_run_id"
    EXPERIMENT_ID = "evoprune.experiment_id"
    OBJECTIVES = "evoprune.objectives"
    IDENTITY = "evoprune.identity"  # hash of the study's content (see _identity)
    CONTENT = "evoprune.content"  # that content, to name what changed
    # trial: what it is
    BASELINE = "evoprune.baseline"
    DESIGN = "evoprune.design"
    COMBINATION = "evoprune.combination"
    # trial: what it produced
    RESULTS = "evoprune.results"
    ERROR = "evoprune.error"
    MLFLOW_RUN_ID = "evoprune.mlflow_run_id"
    # trial: the worker process that ran it
    HOST = "evoprune.host"
    PID = "evoprune.pid"
    PID_START = "evoprune.pid_start"
