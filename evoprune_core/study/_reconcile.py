"""Resuming after faults: fail the trials of dead workers, end the runs no live trial owns."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from .._compat import storage_of
from ..reporting import Attr
from ._storage import Store, reap_dead_trials, study_lock

if TYPE_CHECKING:
    import optuna

    from ..tracking import StudyRun, Tracking
    from ._config import StudyConfig

__all__ = ["close_orphan_runs", "fail_reaped_run", "reconcile"]

LOST = "the trial's result was lost from the Optuna journal (torn write); it is re-run"


def fail_reaped_run(tracker: Tracking, run_id: str, why: str) -> None:
    """End a reaped trial's run as FAILED; also one that FINISHED but whose result Optuna lost
    (a torn journal), so that Optuna and tracking agree on every trial."""
    if not tracker.fail_finished_run(run_id, LOST):
        tracker.close_run(run_id, "FAILED", why)


def close_orphan_runs(study: optuna.Study, tracker: Tracking, ids: StudyRun) -> list[str]:
    """End RUNNING trial runs that no RUNNING trial owns (a worker stopped between creating
    the run and recording it on its trial). Returns their run ids."""
    from optuna.trial import TrialState

    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    closed = []
    for run_id, number in tracker.running_trial_runs(ids, study.study_name):
        trial = trials.get(number)
        owner = None if trial is None else trial.user_attrs.get(Attr.MLFLOW_RUN_ID)
        live = trial is not None and trial.state == TrialState.RUNNING
        if live and owner in (None, run_id):
            continue
        state = "missing" if trial is None else trial.state.name
        why = f"orphaned: its trial is {state} and does not own this run"
        tracker.close_run(run_id, "FAILED", why)
        closed.append(run_id)
    return closed


def reconcile(
    cfg: StudyConfig, store: Store, study: optuna.Study, tracker: Tracking, ids: StudyRun
) -> None:
    """Fail the trials of workers that are gone and end trial runs no live trial owns."""
    storage = storage_of(study)
    with contextlib.suppress(Exception), study_lock(store, storage, cfg.name):
        reap_dead_trials(study, lambda run, why: fail_reaped_run(tracker, run, why))
        close_orphan_runs(study, tracker, ids)
