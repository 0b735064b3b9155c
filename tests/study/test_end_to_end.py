"""Studies end to end: hierarchy, metrics, artifacts and params in MLflow; resume after SIGKILL;
two local workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import mlflow
import optuna
import pytest
import torch
from mlflow import MlflowClient
from optuna.trial import TrialState

import evoprune_core
from evoprune_core.cli import main
from evoprune_core.plugins import Registry
from evoprune_core.study import (
    load_study_config,
    resolve_store,
    run_study,
)
from evoprune_core.tracking import param_value
from tests.conftest import TINY_BASE, Project

optuna.logging.set_verbosity(optuna.logging.WARNING)


def load_study(project: Project, name: str) -> optuna.Study:
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(project.journal / f"{name}.journal"))
    )
    return optuna.load_study(study_name=name, storage=storage)


def runs(project: Project, name: str) -> list[Any]:
    mlflow.set_tracking_uri(project.tracking_uri)
    return mlflow.search_runs(experiment_names=[name], output_format="list")


def artifact_paths(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    out: set[str] = set()
    for f in client.list_artifacts(run_id, path):
        out |= artifact_paths(client, run_id, f.path) if f.is_dir else {f.path}
    return out


def mlflow_key(optuna_name: str) -> str:
    parts = optuna_name.split(".")
    if parts[0] in ("operator", "schedule") and len(parts) == 3:
        return f"pruning.{parts[0]}_params.{parts[2]}"
    return optuna_name


def test_study_end_to_end_hierarchy_metrics_artifacts_params(
    stored_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project = stored_project
    path = project.study_file(n_trials=3, header='seeds = [1, 2]\nartifacts = "all"')
    assert main(project.args(path)) == 0
    out = capsys.readouterr().out
    assert "Best combinations" in out and "evoprune ui" in out and "3/3 trials complete" in out

    study = load_study(project, "tiny")
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 3 and len(study.trials) == 3
    assert complete[0].user_attrs["evoprune.baseline"] is True  # the enqueued baseline first

    all_runs = runs(project, "tiny")
    parents = [r for r in all_runs if r.data.tags.get("evoprune.role") == "study"]
    children = [r for r in all_runs if r.data.tags.get("evoprune.role") == "trial"]
    assert len(parents) == 1 and len(children) == 3
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert all(c.info.status == "FINISHED" for c in children)

    client = MlflowClient(project.tracking_uri)
    by_number = {int(c.data.tags["trial_number"]): c for c in children}
    assert sorted(by_number) == [t.number for t in complete]
    for t in complete:
        run = by_number[t.number]
        params = run.data.params
        assert run.info.run_id == t.user_attrs["evoprune.mlflow_run_id"]
        assert params["trial_number"] == str(t.number) and params["seeds"] == "1,2"
        for name, value in t.params.items():  # every sampled value is the run's parameter
            assert params[mlflow_key(name)] == param_value(value), name
        assert params["network.encoder"] == "[8, 4]" and params["generations"] == "2"
        tags = run.data.tags
        assert tags["study"] == "tiny" and tags["engine"] == "canonical"
        assert tags["operator"] == params["pruning.operator"]
        assert tags["schedule"] == params["pruning.schedule"]
        assert tags["operator_distribution"] == "evoprune" and tags["evoprune_version"]
        for kind in ("engine", "operator", "schedule", "dataset"):  # every component's origin
            assert tags[f"{kind}_distribution"] == "evoprune"
            assert tags[f"{kind}_version"] == evoprune_core.__version__
        assert tags["dataset"] == "bc-10-100-1000"
        # per-generation metrics with steps (per seed, then the mean), final value at step G
        hist = client.get_metric_history(run.info.run_id, "val_loss")
        assert sorted(m.step for m in hist) == [0, 1, 2]
        seed2 = client.get_metric_history(run.info.run_id, "seed2.val_loss")
        assert sorted(m.step for m in seed2) == [0, 1, 2]
        res = t.user_attrs["evoprune.results"]
        assert [r["seed"] for r in res] == [1, 2]
        mean_val = (res[0]["val_loss"] + res[1]["val_loss"]) / 2
        assert t.value == pytest.approx(mean_val)
        assert run.data.metrics["val_loss"] == pytest.approx(mean_val)
        for key in ("test_loss", "remaining_fraction", "encoder_remaining_fraction", "seconds"):
            assert key in run.data.metrics
        files = artifact_paths(client, run.info.run_id)
        for f in ("config.json", "history.csv", "plots/training.png", "plots/layer_sparsity.png"):
            assert f in files
        assert {"model/MLmodel", "masks/population.pt"} <= files
    baseline = by_number[0]
    assert baseline.data.params["pruning.operator"] == "none"
    assert baseline.data.metrics["remaining_fraction"] == 1.0
    parent_files = artifact_paths(client, parent.info.run_id)
    assert {"best.md", "best.csv", "study.toml", "optuna/optimization_history.html"} <= parent_files

    # the compact model loads back and runs
    model = mlflow.pytorch.load_model(f"runs:/{children[0].info.run_id}/model")
    assert model(torch.zeros(3, 1000)).shape == (3, 1000)

    # the same command again: nothing re-runs, the parent run is found again
    assert main(project.args(path)) == 0
    assert len(load_study(project, "tiny").trials) == 3
    again = runs(project, "tiny")
    assert len(again) == 4
    assert [r.info.run_id for r in again if r.data.tags.get("evoprune.role") == "study"] == [
        parent.info.run_id
    ]

    # the table again from storage
    capsys.readouterr()
    assert main(["report", str(path), "--store", str(project.store), "--format", "json"]) == 0
    table = json.loads(capsys.readouterr().out)["best_combinations"]
    assert len(table) == len({(t.params.get("pruning.operator", "none"),) for t in complete})
    assert table[0]["val_loss"] == min(t.value for t in complete)
    assert main(["report", "tiny", "--store", str(project.store), "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("table,trial,engine,operator")


def test_sigkill_mid_trial_then_resume(stored_project: Project) -> None:
    project = stored_project
    base = TINY_BASE.replace("generations = 2", "generations = 60")
    path = project.study_file(name="killed", n_trials=2, base=base)
    cmd = [sys.executable, "-m", "evoprune_core.cli", *project.args(path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    victim = None
    try:
        deadline = time.monotonic() + 120
        while victim is None and time.monotonic() < deadline:
            time.sleep(0.5)
            if not (project.journal / "killed.journal").exists():
                continue
            try:
                trials = load_study(project, "killed").trials
            except KeyError:  # the journal exists, the study is not in it yet
                continue
            done = [t for t in trials if t.state == TrialState.COMPLETE]
            running = [
                t
                for t in trials
                if t.state == TrialState.RUNNING and "evoprune.mlflow_run_id" in t.user_attrs
            ]
            if done and running:
                victim = running[0]
        assert victim is not None, "no trial was running"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    before = {t.number: t.value for t in load_study(project, "killed").trials if t.value}
    assert (
        MlflowClient(project.tracking_uri)
        .get_run(victim.user_attrs["evoprune.mlflow_run_id"])
        .info.status
        == "RUNNING"
    )

    assert main(project.args(path)) == 0

    study = load_study(project, "killed")
    assert study.trials[victim.number].state == TrialState.FAIL
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 2
    for number, value in before.items():  # no completed trial lost or re-run
        assert study.trials[number].state == TrialState.COMPLETE
        assert study.trials[number].value == value
    run = MlflowClient(project.tracking_uri).get_run(victim.user_attrs["evoprune.mlflow_run_id"])
    assert run.info.status == "FAILED" and "died" in run.data.tags["error"]
    assert not [r for r in runs(project, "killed") if r.info.status == "RUNNING"]


def test_two_local_workers_lose_and_duplicate_nothing(stored_project: Project) -> None:
    project = stored_project
    path = project.study_file(name="pair", n_trials=4)
    assert main(project.args(path, "--workers", "2")) == 0
    study = load_study(project, "pair")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4
    children = [r for r in runs(project, "pair") if r.data.tags.get("evoprune.role") == "trial"]
    assert sorted(int(r.data.tags["trial_number"]) for r in children) == [0, 1, 2, 3]
    assert len({r.data.tags["mlflow.parentRunId"] for r in children}) == 1
    assert {t.user_attrs["evoprune.mlflow_run_id"] for t in study.trials} == {
        r.info.run_id for r in children
    }
    pids = {t.user_attrs["evoprune.pid"] for t in study.trials}
    assert len(pids) in (1, 2)  # the two worker processes (which one wins each ask is a race)
    assert os.getpid() not in {t.user_attrs["evoprune.pid"] for t in study.trials}


def test_failing_trials_become_failed_runs_and_the_study_goes_on(
    stored_project: Project, registry: Registry
) -> None:
    project = stored_project
    space = """
[space]
"pruning.operator" = { choices = ["random", "boom"] }
"data.name" = { choices = ["bc-10-100-1000", "nan-rows"] }
"""
    header = 'sampler = "grid"\nbaseline = false'
    base = TINY_BASE + "[base.pruning]\nprobability = 1.0\n"
    path = project.study_file(name="faults", n_trials=4, header=header, base=base, space=space)
    cfg = load_study_config(path, registry)
    store = resolve_store(cfg.name, project.store, None, None)
    outcome = run_study(cfg, store, registry, quiet=True)
    assert (outcome.complete, outcome.failed, outcome.target) == (1, 3, 4)

    study = load_study(project, "faults")
    states = {(t.params["pruning.operator"], t.params["data.name"]): t.state for t in study.trials}
    assert states == {
        ("random", "bc-10-100-1000"): TrialState.COMPLETE,
        ("random", "nan-rows"): TrialState.FAIL,
        ("boom", "bc-10-100-1000"): TrialState.FAIL,
        ("boom", "nan-rows"): TrialState.FAIL,
    }
    children = {
        (r.data.params["pruning.operator"], r.data.params["data.name"]): r
        for r in runs(project, "faults")
        if r.data.tags.get("evoprune.role") == "trial"
    }
    assert children[("random", "bc-10-100-1000")].info.status == "FINISHED"
    nan_run = children[("random", "nan-rows")]
    assert nan_run.info.status == "FAILED"
    # the dataset is refused before any training: its rows are not finite
    assert (
        nan_run.data.tags["error"] == "DataError: dataset 'nan-rows': train has non-finite values"
    )
    boom = children[("boom", "bc-10-100-1000")]
    assert boom.info.status == "FAILED"
    assert boom.data.tags["error"] == "RuntimeError: boom operator exploded"
    assert boom.data.tags["operator_distribution"] == "test-ops"
