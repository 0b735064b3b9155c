"""Keeping MLflow in step with Optuna after faults: reaped trials and orphaned runs.

Both need more than the ``Tracking`` protocol offers (a run's status, a search for RUNNING
runs, ending a run that already FINISHED), so they use the MLflow client of a ``Tracker`` and
do nothing for a backend without one.
"""

from __future__ import annotations

from typing import Any

from ..tracking import StudyRun
from ._keys import Attr

__all__ = ["close_orphan_runs", "fail_reaped_run"]

LOST = "the trial's result was lost from the Optuna journal (torn write); it is re-run"


def fail_reaped_run(tracker: Any, run_id: str, why: str) -> None:
    """End a reaped trial's run as FAILED; also one that FINISHED but whose result Optuna lost
    (a torn journal), so that Optuna and MLflow agree on every trial."""
    client = getattr(tracker, "client", None)
    if client is None:
        tracker.close_run(run_id, "FAILED", why)
        return
    status = client.get_run(run_id).info.status
    if status == "RUNNING":
        tracker.close_run(run_id, "FAILED", why)
    elif status == "FINISHED":
        client.set_tag(run_id, "error", LOST)
        client.set_terminated(run_id, "FAILED")


def close_orphan_runs(study: Any, tracker: Any, ids: StudyRun) -> list[str]:
    """End RUNNING trial runs that no RUNNING trial owns (a worker stopped between creating
    the run and recording it on its trial). Returns their run ids."""
    from optuna.trial import TrialState

    client = getattr(tracker, "client", None)
    if client is None:
        return []
    found = client.search_runs(
        [ids.experiment_id],
        filter_string=(
            f"tags.`evoprune.role` = 'trial' and tags.study = '{study.study_name}' "
            "and attributes.status = 'RUNNING'"
        ),
        max_results=10_000,
    )
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    closed = []
    for run in found:
        trial = trials.get(int(run.data.tags.get("trial_number", -1)))
        owner = None if trial is None else trial.user_attrs.get(Attr.MLFLOW_RUN_ID)
        live = trial is not None and trial.state == TrialState.RUNNING
        if live and owner in (None, run.info.run_id):
            continue
        state = "missing" if trial is None else trial.state.name
        why = f"orphaned: its trial is {state} and does not own this run"
        tracker.close_run(run.info.run_id, "FAILED", why)
        closed.append(run.info.run_id)
    return closed
