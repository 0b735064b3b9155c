"""``artifacts = "best"`` (the default): plots and models for the best trials at the end."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import mlflow.pytorch
import pytest
import torch
from mlflow import MlflowClient

from evoprune_core.cli import main
from tests.conftest import Project

SPACE = '[space]\n"pruning.operator" = { choices = ["random", "magnitude"] }\n'


def _files(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    out: set[str] = set()
    for f in client.list_artifacts(run_id, path):
        out |= _files(client, run_id, f.path) if f.is_dir else {f.path}
    return out


def _trials(project: Project, name: str) -> list[object]:
    client = MlflowClient(project.tracking_uri)
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id], max_results=100)
    return sorted(
        (r for r in runs if r.data.tags["evoprune.role"] == "trial"),
        key=lambda r: int(r.data.tags["trial_number"]),
    )


STATE = {"config.json", "history.csv", "state/summaries.json", "state/population.pt",
         "state/input_example.npy", "state/meta.json"}  # fmt: skip
RICH = {"plots/training.png", "plots/layer_sparsity.png", "masks/population.pt", "model/MLmodel"}


def test_best_writes_plots_and_model_for_the_best_trial_only(
    stored_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    import optuna

    project = stored_project
    path = project.study_file(n_trials=3, space=SPACE)
    assert main(project.args(path)) == 0
    err = capsys.readouterr().err
    assert "plots and model not written" not in err
    assert "Downloading artifacts" not in err  # --quiet: MLflow's progress bar too
    client = MlflowClient(project.tracking_uri)
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(project.journal / "tiny.journal"))
    )
    best = optuna.load_study(study_name="tiny", storage=storage).best_trial.number
    for run in _trials(project, "tiny"):
        files = _files(client, run.info.run_id)
        number = int(run.data.tags["trial_number"])
        if number == best:
            assert run.data.tags["artifacts"] == "complete"
            assert STATE | RICH <= files
            mlflow.set_tracking_uri(project.tracking_uri)
            model = mlflow.pytorch.load_model(f"runs:/{run.info.run_id}/model")
            assert model(torch.zeros(3, 1000)).shape == (3, 1000)
        else:
            assert run.data.tags["artifacts"] == "deferred"
            assert files == STATE  # the state the plots and model would be made from


def test_all_and_none(stored_project: Project) -> None:
    project = stored_project
    for mode, expected in (("all", {"complete"}), ("none", {"none"})):
        path = project.study_file(name=mode, n_trials=2, header=f'artifacts = "{mode}"')
        assert main(project.args(path)) == 0
        client = MlflowClient(project.tracking_uri)
        runs = _trials(project, mode)
        assert {r.data.tags["artifacts"] for r in runs} == expected
        files = _files(client, runs[1].info.run_id)
        if mode == "all":
            assert {"config.json", "history.csv"} | RICH <= files
        else:
            assert files == {"config.json", "history.csv"}


def test_a_deferred_trial_is_completed_on_resume(stored_project: Project) -> None:
    """A best trial whose study ended before its plots were written gets them next time."""
    from evoprune_core.tracking import Tracker, complete_artifacts

    project = stored_project
    path = project.study_file(n_trials=2, space=SPACE)
    assert main(project.args(path)) == 0
    client = MlflowClient(project.tracking_uri)
    done = next(r for r in _trials(project, "tiny") if r.data.tags["artifacts"] == "complete")
    client.set_tag(done.info.run_id, "artifacts", "deferred")  # as if the study was killed
    root = Path(client.get_run(done.info.run_id).info.artifact_uri.removeprefix("file://"))
    for sub in ("plots", "model", "masks"):
        shutil.rmtree(root / sub)
    assert _files(client, done.info.run_id) == STATE
    (root / "state" / "meta.json").unlink()  # a state saved by an earlier version: dense
    tracker = Tracker(project.tracking_uri, project.store / "artifacts")
    assert complete_artifacts(tracker, done.info.run_id) is True
    assert (STATE - {"state/meta.json"}) | RICH <= _files(client, done.info.run_id)
    assert client.get_run(done.info.run_id).data.tags["artifacts"] == "complete"
    assert complete_artifacts(tracker, done.info.run_id) is False  # once
