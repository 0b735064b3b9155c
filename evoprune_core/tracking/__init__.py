"""Tracking: the ``Tracking`` protocols and the trackers (plugins of kind ``tracker``).

Built in: ``mlflow`` (``Tracker``, the default) and ``none`` (``NoTracker``). A study or an
evolution selects one with ``tracking = "<name>"``; see ``_protocol`` for the contract.
"""

from __future__ import annotations

from ._artifacts import (
    ARTIFACTS,
    TAG,
    Recon,
    complete_artifacts,
    complete_local,
    save_local_state,
    save_state,
)
from ._mlflow import (
    VIEW_KEY,
    VIEW_TAG,
    Tracker,
    TrialRun,
    default_tracking_uri,
    history_csv,
    runs_view,
)
from ._none import NoTracker, NoTrial
from ._protocol import StudyRun, TrackerBackend, Tracking, TrialTracking, param_value
from ._sqlite_store import ensure_mlflow_db, file_lock, inspect_mlflow_db, quiet_mlflow

__all__ = [
    "ARTIFACTS",
    "TAG",
    "VIEW_KEY",
    "VIEW_TAG",
    "NoTracker",
    "NoTrial",
    "Recon",
    "StudyRun",
    "Tracker",
    "TrackerBackend",
    "Tracking",
    "TrialRun",
    "TrialTracking",
    "builtin_trackers",
    "complete_artifacts",
    "complete_local",
    "default_tracking_uri",
    "ensure_mlflow_db",
    "file_lock",
    "history_csv",
    "inspect_mlflow_db",
    "param_value",
    "quiet_mlflow",
    "runs_view",
    "save_local_state",
    "save_state",
]


def builtin_trackers() -> list[type[TrackerBackend]]:
    return [Tracker, NoTracker]
