"""Helpers for the end-to-end fault tests: running ``evoprune`` in a subprocess, waiting on it,
reading the store."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from tests.conftest import Project

SMALL_SPACE = '[space]\n"pruning.operator" = { choices = ["random", "magnitude"] }\n'


def journal(project: Project, name: str) -> Path:
    return project.journal / f"{name}.journal"


def load(project: Project, name: str) -> optuna.Study:
    backend = optuna.storages.journal.JournalFileBackend(str(journal(project, name)))
    return optuna.load_study(study_name=name, storage=optuna.storages.JournalStorage(backend))


def mlflow_runs(project: Project, name: str) -> list[Any]:
    client = MlflowClient(project.tracking_uri)
    exp = client.get_experiment_by_name(name)
    assert exp is not None
    return list(client.search_runs([exp.experiment_id], max_results=1000))


def assert_intact(project: Project, name: str, target: int) -> optuna.Study:
    """The invariants every surviving study keeps."""
    study = load(project, name)
    trials = study.trials
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == target
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    runs = mlflow_runs(project, name)
    assert not [r.info.run_id for r in runs if r.info.status == "RUNNING"]
    parents = [r for r in runs if r.data.tags.get("evoprune.role") == "study"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = {r.info.run_id: r for r in runs if r.data.tags.get("evoprune.role") == "trial"}
    owned = {t.user_attrs["evoprune.mlflow_run_id"]: t for t in trials}
    assert set(owned) == set(children)  # one run per trial, none without its trial
    for run_id, t in owned.items():
        run = children[run_id]
        assert run.data.tags["trial_number"] == str(t.number)
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert (run.info.status == "FINISHED") == (t.state == TrialState.COMPLETE), t.number
        if t.state == TrialState.COMPLETE:
            assert run.data.metrics["val_loss"] == pytest.approx(t.value)
    finished = [r for r in children.values() if r.info.status == "FINISHED"]
    assert len(finished) == target  # no completed trial counted twice
    return study


def evoprune(project: Project, *args: str, **kw: Any) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "evoprune_core.cli", *args]
    return subprocess.Popen(
        cmd, cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw
    )


def wait_for(predicate: Callable[[], Any], timeout: float = 600.0, what: str = "") -> Any:
    """Poll ``predicate`` until it is truthy; the deadline is generous (a loaded machine)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def finish(proc: subprocess.Popen[str], timeout: float = 600) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, err


def one_error_line(err: str) -> str:
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def tree(root: Path) -> dict[str, int]:
    """Every file under ``root`` with its size (to show that nothing was written)."""
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    return stat[0] in ("Z", "X")
