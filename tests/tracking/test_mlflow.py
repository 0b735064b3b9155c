"""The MLflow tracker on a real sqlite store: parent found again, child runs, metrics, closing."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from evoprune_core.config import RunConfig
from evoprune_core.tracking import StudyRun, Tracker, history_csv, param_value
from tests.conftest import Project


@pytest.fixture
def tracker(stored_project: Project) -> Tracker:
    return Tracker(stored_project.tracking_uri, stored_project.store / "artifacts")


def test_param_values() -> None:
    assert param_value("x") == "x" and param_value(0.25) == "0.25" and param_value(3) == "3"
    assert param_value(True) == "True" and param_value([8, 4]) == "[8, 4]"
    assert param_value({"a": 1}) == '{"a": 1}'


def test_experiment_and_parent_run_are_found_again(
    tracker: Tracker, stored_project: Project
) -> None:
    exp = tracker.experiment("s")
    assert tracker.experiment("s") == exp
    location = tracker.client.get_experiment(exp).artifact_location
    assert location == (stored_project.store / "artifacts" / "s").as_uri()
    ids = tracker.start_study("s", {"n_trials": 3})
    parent = ids.run_id
    assert ids == StudyRun(exp, parent)
    tracker.finish_study(ids)
    assert tracker.client.get_run(parent).info.status == "FINISHED"
    assert tracker.start_study("s", {"n_trials": 3}) == ids  # found again, RUNNING again
    run = tracker.client.get_run(parent)
    assert run.info.status == "RUNNING" and run.data.params == {"n_trials": "3"}
    other = tracker.parent_run(tracker.experiment("t"), "t", {})
    assert other != parent


def test_trial_run_metrics_params_and_failure(tracker: Tracker, tmp_path: Path) -> None:
    ids = tracker.start_study("s", {})
    run = tracker.start_trial(ids, "s", 7, {"engine": "canonical"})
    cfg = RunConfig(generations=3)
    run.log_config(cfg, [1, 2], 7)
    for t in range(3):
        run.generation(t, {"generation": t, "val_loss": 0.5 - 0.1 * t, "pruning_events": 1})
    run.final({"val_loss": 0.3}, step=3)
    client = MlflowClient(tracker.tracking_uri)
    hist = client.get_metric_history(run.run_id, "val_loss")
    assert sorted((m.step, round(m.value, 6)) for m in hist) == [
        (0, 0.5), (1, 0.4), (2, 0.3), (3, 0.3)
    ]  # fmt: skip
    assert "generation" not in client.get_run(run.run_id).data.metrics
    got = client.get_run(run.run_id)
    assert got.data.tags["mlflow.parentRunId"] == ids.run_id
    assert got.data.tags["trial_number"] == "7" and got.data.tags["engine"] == "canonical"
    assert got.data.params["generations"] == "3" and got.data.params["seeds"] == "1,2"
    assert "seed" not in got.data.params and got.data.params["trial_number"] == "7"
    try:
        raise ValueError("bad thing")
    except ValueError as exc:
        run.fail(exc)
    got = client.get_run(run.run_id)
    assert got.info.status == "FAILED" and got.data.tags["error"] == "ValueError: bad thing"
    assert [f.path for f in client.list_artifacts(run.run_id)] == ["error.txt"]
    tracker.close_run(run.run_id, "KILLED", "late")  # an ended run is left alone
    assert client.get_run(run.run_id).info.status == "FAILED"


def test_close_run_ends_a_running_run_with_the_reason(tracker: Tracker) -> None:
    run = tracker.start_trial(tracker.start_study("s", {}), "s", 0, {})
    tracker.close_run(run.run_id, "FAILED", "worker died")
    got = tracker.client.get_run(run.run_id)
    assert got.info.status == "FAILED" and got.data.tags["error"] == "worker died"


def test_history_csv() -> None:
    summaries = [
        {"seed": 1, "history": [{"generation": 0, "val_loss": 0.5}]},
        {"seed": 2, "history": [{"generation": 0, "val_loss": 0.4, "lr": 0.1}]},
    ]
    assert history_csv(summaries) == ("seed,generation,val_loss,lr\n1,0,0.5,\n2,0,0.4,0.1\n")
