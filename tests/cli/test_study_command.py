"""``evoprune study`` and ``evoprune ui``: bad files and options are one line, exit 2, nothing
created; the UI serves the project store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

import optuna
import pytest

from evoprune_core.cli import main
from evoprune_core.tracking import VIEW_TAG, runs_view
from tests.conftest import Project

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.mark.parametrize(
    ("header", "space", "message"),
    [
        ("colour = 1", "", "bad.toml: colour: unknown key; allowed: name, description, n_trials"),
        ('objectives = ["test_loss"]', "", "bad.toml: objectives.0: Input should be"),
        ("", '[space]\n"pruning.operator" = { choices = ["nope"] }', "unknown operator 'nope'"),
        (
            "",
            '[space]\n"pruning.amontt" = { low = 0.1, high = 0.2 }',
            "pruning.amontt: unknown key",
        ),
        ("", '[space]\n"pruning.amount" = { low = 0.1, high = 2.0 }', "pruning.amount: Input"),
        ('sampler = "grid"', '[space]\n"pruning.probability" = { low = 0.1, high = 0.9 }', "grid"),
        ("", '[space]\n"seed" = { choices = [1, 2] }', "space.seed: not allowed"),
    ],
)
def test_bad_study_file_is_one_line_exit_2_nothing_created(
    project: Project, capsys: pytest.CaptureFixture[str], header: str, space: str, message: str
) -> None:
    path = project.study_file(name="bad", header=header, space=space, file="bad.toml")
    assert main(project.args(path)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err
    assert not project.store.exists()


def test_bad_options_exit_2(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    path = project.study_file()
    assert main(project.args(path, "--storage", "redis://x")) == 2
    assert "--storage" in capsys.readouterr().err
    assert main(project.args(path, "--workers", "0")) == 2
    assert main(["report", "missing", "--store", str(project.store)]) == 2
    assert main(["ui", "--store", str(project.store)]) == 2
    assert not project.store.exists()


def test_ui_serves_the_project_store_and_prints_its_address(
    stored_project: Project, free_port: Any
) -> None:
    import urllib.request

    from mlflow import MlflowClient

    db = stored_project.store / "mlflow.db"
    client = MlflowClient(f"sqlite:///{db}")
    exp = client.create_experiment("demo-study")  # an older study: no shared view
    viewed = client.create_experiment("viewed")
    client.set_experiment_tag(viewed, VIEW_TAG, runs_view(["val_loss"]))
    port = free_port()
    cmd = [sys.executable, "-m", "evoprune_core.cli", "ui", "--store", str(stored_project.store)]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert line.startswith(f"MLflow UI at http://127.0.0.1:{port}")
        study_line = proc.stdout.readline().decode()
        assert study_line.strip() == (
            f"demo-study: http://127.0.0.1:{port}/#/experiments/{exp}"
            "/runs?workflowType=machine_learning"
        )
        assert proc.stdout.readline().decode().strip() == (  # its columns: tests/e2e
            f"viewed: http://127.0.0.1:{port}/#/experiments/{viewed}"
            "/runs?workflowType=machine_learning&viewStateShareKey=evoprune"
        )
        deadline, status = time.monotonic() + 600, 0  # a loaded machine: minutes
        while time.monotonic() < deadline and status != 200:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    status = r.status
            except OSError:
                time.sleep(0.5)
        assert status == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the UI and the workers it started
        proc.wait(timeout=30)
