"""What a study (or an evolution) needs from tracking, and the base class of tracker plugins.

A study needs little from tracking (``Tracking``): start the study (found again on resume),
start a trial (``TrialTracking``: configuration, per-generation records, final metrics,
artifacts, success or failure), close a run whose worker died, finish the study, attach text
and files. An evolution starts a run of its own (``start_run``), logs metrics per generation
(``log_metrics``), attaches files and ends it (``close_run``). A tracker plugin subclasses ``TrackerBackend`` (which states these methods), sets
``name`` and registers through ``evoprune_register_trackers``; a study or an evolution picks
one with ``tracking = "<name>"``. ``evoprune_core.testing.check_tracker`` certifies one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from ..config import RunConfig
    from ..params import Param

__all__ = ["StudyRun", "TrackerBackend", "Tracking", "TrialTracking", "param_value"]


@dataclass(frozen=True)
class StudyRun:
    """Where a study is tracked: its experiment and its parent run."""

    experiment_id: str
    run_id: str


class TrialTracking(Protocol):
    """What a trial reports while and after it runs."""

    run_id: str

    def log_config(self, cfg: RunConfig, seeds: Iterable[int], number: int) -> None: ...

    def set_tags(self, tags: dict[str, str]) -> None: ...

    def generation(self, step: int, record: dict[str, float], prefix: str = "") -> None: ...

    def flush(self) -> None: ...

    def final(self, metrics: dict[str, float], step: int) -> None: ...

    def artifacts(
        self,
        cfg: RunConfig,
        seeds: Iterable[int],
        summaries: list[dict[str, Any]],
        model: Any,
        population: Any,
        input_example: Any,
    ) -> None: ...

    def succeed(self) -> None: ...

    def fail(self, exc: BaseException, status: str = "FAILED") -> None: ...


class Tracking(Protocol):
    """What a study needs from a tracking backend."""

    def start_study(self, name: str, params: dict[str, Any]) -> StudyRun: ...

    def start_trial(
        self, study: StudyRun, name: str, number: int, tags: dict[str, str]
    ) -> TrialTracking: ...

    def close_run(self, run_id: str, status: str, error: str | None = None) -> None: ...

    def fail_finished_run(self, run_id: str, error: str) -> bool: ...

    def running_trial_runs(self, study: StudyRun, name: str) -> list[tuple[str, int]]: ...

    def finish_study(self, study: StudyRun, status: str = "FINISHED") -> None: ...

    def start_run(
        self, experiment: str, role: str, name: str, params: dict[str, Any]
    ) -> StudyRun: ...

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int) -> None: ...

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None: ...

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None: ...

    def artifact_location(self, run_id: str, artifact_file: str) -> str: ...


class TrackerBackend:
    """Base class of tracker plugins: a ``Tracking`` built from the study's store locations.

    ``uses_store``: whether the tracker writes at the store's tracking URI (MLflow's sqlite
    file is then created and checked before any work); ``"none"`` does not.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    parameters: ClassVar[tuple[Param, ...]] = ()
    uses_store: ClassVar[bool] = True

    def __init__(self, tracking_uri: str, artifact_root: Path | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root

    def start_study(self, name: str, params: dict[str, Any]) -> StudyRun:
        raise NotImplementedError

    def start_trial(
        self, study: StudyRun, name: str, number: int, tags: dict[str, str]
    ) -> TrialTracking:
        raise NotImplementedError

    def close_run(self, run_id: str, status: str, error: str | None = None) -> None:
        raise NotImplementedError

    def fail_finished_run(self, run_id: str, error: str) -> bool:
        raise NotImplementedError

    def running_trial_runs(self, study: StudyRun, name: str) -> list[tuple[str, int]]:
        raise NotImplementedError

    def finish_study(self, study: StudyRun, status: str = "FINISHED") -> None:
        raise NotImplementedError

    def start_run(self, experiment: str, role: str, name: str, params: dict[str, Any]) -> StudyRun:
        """A run of its own (an evolution): ``role``/``name`` in ``experiment``, found again on
        resume; end it with ``close_run``."""
        raise NotImplementedError

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int) -> None:
        raise NotImplementedError

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        raise NotImplementedError

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        raise NotImplementedError

    def artifact_location(self, run_id: str, artifact_file: str) -> str:
        raise NotImplementedError


def param_value(value: Any) -> str:
    """How a configuration value is written as an MLflow param (and compared in tests)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return str(value)
