"""Optuna studies of evoprune runs: study files, search space, objective, storage, workers.

``load_study_config`` reads and validates a study file; ``run_study`` sets up (or resumes) the
study, its MLflow experiment and parent run, runs the workers and reports. The implementation
lives in private modules: ``_config`` (study files and the conditional search space),
``_trial`` (one trial: sample, run every seed, track, tell Optuna), ``_storage`` (where a
study lives, its lock, dead workers), ``_runner`` (set-up, workers, resume, report), ``_keys``
(the attribute names stored in Optuna); and for reliability ``_store_setup``, ``_sqlite_store``
(the MLflow store built atomically, checked, repaired), ``_journal`` (a torn journal tail),
``_preflight`` (checks before anything is created).
"""

from __future__ import annotations

from ..errors import StoreError
from ._config import (
    OBJECTIVES,
    Dist,
    StudyConfig,
    grid_designs,
    load_study_config,
    sample_updates,
    with_owned_params,
)
from ._journal import repair_journal
from ._keys import Attr
from ._preflight import check_study
from ._runner import (
    StudyOutcome,
    make_sampler,
    plan_text,
    run_study,
    setup_study,
    target_trials,
    work,
)
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

__all__ = [
    "HEARTBEAT_INTERVAL",
    "OBJECTIVES",
    "Attr",
    "Dist",
    "Store",
    "StudyConfig",
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
    "with_owned_params",
    "work",
]
