"""``tracking = "none"``: no tracking store; a study writes only its Optuna storage."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from ._protocol import StudyRun, TrackerBackend

if TYPE_CHECKING:
    from pathlib import Path

    from ..config import RunConfig

__all__ = ["NoTracker", "NoTrial"]


class NoTrial:
    """A trial that records nothing."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def log_config(self, cfg: RunConfig, seeds: Iterable[int], number: int) -> None:
        pass

    def set_tags(self, tags: dict[str, str]) -> None:
        pass

    def generation(self, step: int, record: dict[str, float], prefix: str = "") -> None:
        pass

    def flush(self) -> None:
        pass

    def final(self, metrics: dict[str, float], step: int) -> None:
        pass

    def artifacts(
        self,
        cfg: RunConfig,
        seeds: Iterable[int],
        summaries: list[dict[str, Any]],
        model: Any,
        population: Any,
        input_example: Any,
    ) -> None:
        pass

    def succeed(self) -> None:
        pass

    def fail(self, exc: BaseException, status: str = "FAILED") -> None:
        pass


class NoTracker(TrackerBackend):
    """Tracks nothing: run ids are empty, so no trial stores one and nothing is reconciled."""

    name: ClassVar[str] = "none"
    description: ClassVar[str] = "no tracking: only the Optuna storage"
    uses_store: ClassVar[bool] = False

    def start_study(self, name: str, params: dict[str, Any]) -> StudyRun:
        return StudyRun("", "")

    def start_trial(self, study: StudyRun, name: str, number: int, tags: dict[str, str]) -> NoTrial:
        return NoTrial("")

    def close_run(self, run_id: str, status: str, error: str | None = None) -> None:
        pass

    def fail_finished_run(self, run_id: str, error: str) -> bool:
        return False

    def running_trial_runs(self, study: StudyRun, name: str) -> list[tuple[str, int]]:
        return []

    def finish_study(self, study: StudyRun, status: str = "FINISHED") -> None:
        pass

    def start_run(self, experiment: str, role: str, name: str, params: dict[str, Any]) -> StudyRun:
        return StudyRun("", "")

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int) -> None:
        pass

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        pass

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        pass

    def artifact_location(self, run_id: str, artifact_file: str) -> str:
        return ""
