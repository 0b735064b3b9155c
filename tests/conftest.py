"""Shared fixtures: a temporary project with a local store, and tiny study files."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

TINY_BASE = """
[base]
generations = 2
[base.data]
name = "bc-10-100-1000"
[base.network]
encoder = [8, 4]
[base.training]
batch_size = 50
"""

TINY_SPACE = """
[space]
"pruning.operator" = { choices = ["random", "variance", "conjunctive", "magnitude"] }
"pruning.schedule" = { choices = ["fixed", "increase", "exponential"] }
"pruning.probability" = { low = 0.5, high = 1.0 }
"pruning.amount" = { low = 0.05, high = 0.3, log = true }
"""


def study_trial(
    number: int,
    op: str,
    sched: str,
    results: list[dict[str, Any]],
    value: float,
    *,
    engine: str = "canonical",
    probability: float | None = None,
    amount: float | None = None,
) -> Any:
    """A completed Optuna trial as an evoprune study records it: per-seed results and the
    combination (``op = "none"`` is the no-pruning baseline)."""
    import optuna
    from optuna.trial import TrialState

    t = optuna.trial.create_trial(
        state=TrialState.COMPLETE,
        value=value,
        user_attrs={
            "evoprune.results": results,
            "evoprune.combination": {
                "engine": engine,
                "operator": op,
                "schedule": sched,
                "probability": probability,
                "amount": amount,
                "population": "1",
            },
            "evoprune.baseline": op == "none",
        },
    )
    t.number = number
    return t


def require_service(available: bool, reason: str) -> None:
    """Skip with ``reason`` when a service is missing; under ``CI=true`` fail instead.

    CI installs and starts every service (``.ci/services.sh``), so a missing one there is a
    broken set-up, not a reason to pass quietly.
    """
    if available:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


@dataclass(frozen=True)
class Project:
    """A temporary project directory: ``store`` is its mlruns/, ``tracking_uri`` its sqlite."""

    root: Path

    @property
    def store(self) -> Path:
        return self.root / "mlruns"

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.store / 'mlflow.db'}"

    @property
    def journal(self) -> Path:
        return self.store / "optuna"

    def study_file(
        self,
        name: str = "tiny",
        n_trials: int = 3,
        header: str = "",
        base: str = TINY_BASE,
        space: str = TINY_SPACE,
        file: str | None = None,
    ) -> Path:
        path = self.root / (file or f"{name}.toml")
        text = (
            f'name = "{name}"\nn_trials = {n_trials}\nsampler_seed = 0\n{header}\n{base}\n{space}'
        )
        path.write_text(text, encoding="utf-8")
        return path

    def args(self, path: Path, *extra: str) -> list[str]:
        return ["study", str(path), "--store", str(self.store), "--quiet", *extra]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A project with no store yet (for checks that nothing gets created)."""
    return Project(tmp_path)


@pytest.fixture(scope="session")
def empty_mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, migrated MLflow sqlite database, built once (creating one takes seconds)."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def stored_project(tmp_path: Path, empty_mlflow_db: Path) -> Project:
    """A project whose mlruns/ already holds an empty MLflow sqlite store."""
    project = Project(tmp_path)
    project.store.mkdir()
    shutil.copy(empty_mlflow_db, project.store / "mlflow.db")
    return project


@pytest.fixture
def free_port() -> Callable[[], int]:
    def pick() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    return pick


def start_mlflow_server(db: Path, artifacts: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """``mlflow server`` on 127.0.0.1:``port`` with a sqlite backend; returns once healthy."""
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{db}",
        "--artifacts-destination", str(artifacts),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    out = open(log, "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"mlflow server did not start: {log.read_text()[-2000:]}")


@pytest.fixture
def mlflow_server(
    tmp_path: Path, empty_mlflow_db: Path, free_port: Callable[[], int]
) -> Iterator[str]:
    """A running ``mlflow server`` (its own sqlite store in tmp_path); yields its URI."""
    db = tmp_path / "server" / "mlflow.db"
    db.parent.mkdir()
    shutil.copy(empty_mlflow_db, db)
    port = free_port()
    proc = start_mlflow_server(db, tmp_path / "server" / "artifacts", port, tmp_path / "server.log")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(proc)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server started by ``start_mlflow_server`` and every process it started."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def reference_loss(logits: object, x: object, loss: str) -> object:
    """A plain-torch training loss (BCE on logits, or L1 of the sigmoid) for reference models."""
    import torch
    from torch import nn

    if loss == "bce":
        return nn.functional.binary_cross_entropy_with_logits(logits, x)
    return (torch.sigmoid(logits) - x).abs().mean()
