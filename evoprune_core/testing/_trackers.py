"""Conformance checks for tracker plugins (``evoprune_register_trackers``).

A tracker is exercised the way a study uses it: start the study (twice: a resume finds the
same run again), start trials, record a generation and final metrics, succeed one, fail one,
close one whose worker died, find the runs still RUNNING, attach text and a file, finish;
and as an evolution uses it: a run of its own, found again on resume, with metrics.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from ..config import RunConfig
from ..tracking import StudyRun, TrackerBackend, Tracking

__all__ = ["TRACKER_CHECKS", "check_tracker", "tracker_checks"]

TrackerCheck = Callable[[type[TrackerBackend], str, "Path | None"], None]


def _build(cls: type[TrackerBackend], uri: str, root: Path | None) -> Tracking:
    return cls(uri, root)


def check_declaration(cls: type[TrackerBackend], uri: str, root: Path | None) -> None:
    assert isinstance(cls, type) and issubclass(cls, TrackerBackend), (
        f"{cls!r} is not a TrackerBackend subclass"
    )
    assert re.fullmatch(r"[A-Za-z0-9_.\-]+", cls.name or ""), f"{cls.__name__}: no valid name"
    assert isinstance(cls.uses_store, bool), f"{cls.name}: uses_store must be a bool"


def check_study_is_found_again(cls: type[TrackerBackend], uri: str, root: Path | None) -> None:
    tracker = _build(cls, uri, root)
    first = tracker.start_study("kit-study", {"n_trials": 2})
    assert isinstance(first, StudyRun), f"{cls.name}: start_study returned {first!r}"
    assert isinstance(first.run_id, str) and isinstance(first.experiment_id, str)
    again = _build(cls, uri, root).start_study("kit-study", {"n_trials": 2})
    assert again == first, f"{cls.name}: a resumed study got {again}, not {first}"
    tracker.finish_study(first)


def check_trial_lifecycle(cls: type[TrackerBackend], uri: str, root: Path | None) -> None:
    tracker = _build(cls, uri, root)
    study = tracker.start_study("kit-trials", {})
    ok = tracker.start_trial(study, "kit-trials", 0, {"baseline": "false"})
    assert isinstance(ok.run_id, str), f"{cls.name}: a trial's run_id must be a str"
    ok.log_config(RunConfig(), [1, 2], 0)
    ok.set_tags({"engine": "canonical"})
    ok.generation(0, {"val_loss": 0.5, "remaining_fraction": 1.0})
    ok.generation(1, {"val_loss": 0.25, "remaining_fraction": 0.5}, prefix="seed1/")
    ok.flush()
    ok.final({"val_loss": 0.25}, 1)
    ok.succeed()
    bad = tracker.start_trial(study, "kit-trials", 1, {})
    bad.fail(RuntimeError("kit: a trial that raised"))
    dead = tracker.start_trial(study, "kit-trials", 2, {})
    running = tracker.running_trial_runs(study, "kit-trials")
    assert all(isinstance(r, str) and isinstance(n, int) for r, n in running), running
    ended = {ok.run_id, bad.run_id} - {""}
    assert not ended & {r for r, _ in running}, f"{cls.name}: ended runs still RUNNING"
    if dead.run_id:
        assert (dead.run_id, 2) in running, f"{cls.name}: trial 2 not RUNNING: {running}"
        tracker.close_run(dead.run_id, "FAILED", "kit: the worker died")
        left = {r for r, _ in tracker.running_trial_runs(study, "kit-trials")}
        assert dead.run_id not in left, f"{cls.name}: close_run left the run RUNNING"
    lost = tracker.fail_finished_run(ok.run_id, "kit: result lost") if ok.run_id else False
    assert isinstance(lost, bool), f"{cls.name}: fail_finished_run must return a bool"
    tracker.finish_study(study)


def check_study_artifacts(cls: type[TrackerBackend], uri: str, root: Path | None) -> None:
    tracker = _build(cls, uri, root)
    study = tracker.start_study("kit-artifacts", {})
    tracker.log_text(study.run_id, "# best\n", "best.md")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "figure.html"
        path.write_text("<html></html>", encoding="utf-8")
        tracker.log_artifact(study.run_id, path, "optuna")
    where = tracker.artifact_location(study.run_id, "best.md")
    assert isinstance(where, str), f"{cls.name}: artifact_location must return a str"
    tracker.finish_study(study, "FINISHED")


def check_run_of_its_own(cls: type[TrackerBackend], uri: str, root: Path | None) -> None:
    tracker = _build(cls, uri, root)
    run = tracker.start_run("kit-evolve", "evolution", "kit-abc", {"seed": 1})
    assert isinstance(run, StudyRun), f"{cls.name}: start_run returned {run!r}"
    again = _build(cls, uri, root).start_run("kit-evolve", "evolution", "kit-abc", {"seed": 1})
    assert again == run, f"{cls.name}: a resumed run got {again}, not {run}"
    other = tracker.start_run("kit-evolve", "evolution", "kit-xyz", {"seed": 2})
    assert other.run_id != run.run_id or not run.run_id, f"{cls.name}: two names, one run"
    tracker.log_metrics(run.run_id, {"best_fitness": 0.5}, 0)
    tracker.close_run(run.run_id, "FINISHED")
    tracker.close_run(other.run_id, "FAILED", "kit: stopped")


TRACKER_CHECKS: tuple[TrackerCheck, ...] = (
    check_declaration,
    check_study_is_found_again,
    check_trial_lifecycle,
    check_study_artifacts,
    check_run_of_its_own,
)


def tracker_checks(cls: type[TrackerBackend]) -> Iterator[tuple[str, TrackerCheck]]:
    """``(name, check)`` pairs of every tracker check."""
    for check in TRACKER_CHECKS:
        yield check.__name__, check


def check_tracker(
    cls: type[TrackerBackend], tracking_uri: str = "", artifact_root: Path | None = None
) -> None:
    """Run every tracker check against ``cls(tracking_uri, artifact_root)`` (a fresh store:
    the checks create a study and runs in it); raise ``AssertionError`` naming the first that
    fails."""
    for name, check in tracker_checks(cls):
        try:
            check(cls, tracking_uri, artifact_root)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None
