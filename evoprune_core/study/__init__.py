"""Optuna studies of evoprune runs: study files, search space, objective, storage, workers.

``load_study_config`` reads and validates a study file; ``run_study`` sets up (or resumes) the
study, its MLflow experiment and parent run, runs the workers and reports. The implementation
lives in private modules: ``_config`` (study files and the conditional search space),
``_trial`` (one trial: sample, run every seed, track, tell Optuna), ``_storage`` (where a
study lives, its lock, dead workers), ``_runner`` (``run_study``), ``_setup`` (designs, sampler,
tracker, parent run), ``_workers`` (in-process and K worker processes), ``_reconcile`` (resume
after faults), ``_report`` (the finished study's artifacts); and for reliability
``_store_setup`` (directories and the tracker's store before any work), ``_journal`` (a torn
journal tail), ``_preflight`` (checks before anything is created). The attribute names stored
in Optuna are ``evoprune_core.reporting.Attr`` (also exported here).
"""

from __future__ import annotations

from ..errors import StoreError
from ..reporting import Attr
from ._config import (
    OBJECTIVES,
    Dist,
    StudyConfig,
    StudyFileModel,
    grid_designs,
    load_study_config,
    sample_updates,
    with_owned_params,
)
from ._journal import repair_journal
from ._preflight import check_study
from ._runner import StudyOutcome, run_study
from ._setup import make_sampler, plan_text, setup_study, target_trials, tracker_for
from ._storage import (
    HEARTBEAT_INTERVAL,
    Store,
    heartbeat,
    open_storage,
    process_identity,
    reap_dead_trials,
    resolve_store,
    study_lock,
)
from ._store_setup import check_store_path
from ._trial import run_trial
from ._workers import work

__all__ = [
    "HEARTBEAT_INTERVAL",
    "OBJECTIVES",
    "Attr",
    "Dist",
    "Store",
    "StudyConfig",
    "StudyFileModel",
    "StoreError",
    "StudyOutcome",
    "check_store_path",
    "check_study",
    "grid_designs",
    "heartbeat",
    "load_study_config",
    "make_sampler",
    "open_storage",
    "plan_text",
    "process_identity",
    "reap_dead_trials",
    "repair_journal",
    "resolve_store",
    "run_study",
    "run_trial",
    "sample_updates",
    "setup_study",
    "study_lock",
    "target_trials",
    "tracker_for",
    "with_owned_params",
    "work",
]
