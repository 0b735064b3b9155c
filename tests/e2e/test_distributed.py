"""Two 'machines' share one study through PostgreSQL and an mlflow server.

Needs a PostgreSQL database: set EVOPRUNE_TEST_POSTGRES_URL, e.g.
postgresql://evoprune:evoprune@127.0.0.1:5432/evoprune (the CI script starts one). Without it
the test skips, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import mlflow
import optuna
import pytest
from optuna.trial import TrialState

from tests.conftest import Project, require_service

URL = os.environ.get("EVOPRUNE_TEST_POSTGRES_URL", "")


@pytest.fixture(autouse=True)
def _postgres() -> None:
    require_service(
        bool(URL),
        "EVOPRUNE_TEST_POSTGRES_URL is not set (e.g. "
        "postgresql://evoprune:evoprune@127.0.0.1:5432/evoprune); no PostgreSQL to share a study",
    )


def test_two_workers_share_a_study_through_postgres_and_an_mlflow_server(
    project: Project, mlflow_server: str
) -> None:
    name = f"dist-{uuid.uuid4().hex[:8]}"
    path = project.study_file(name=name, n_trials=4, header='artifacts = "all"')
    optuna.storages.RDBStorage(URL)  # the tables exist before the workers race
    cmd = [
        sys.executable, "-m", "evoprune_core.cli", "study", str(path),
        "--storage", URL, "--tracking-uri", mlflow_server,
        "--store", str(project.store), "--quiet",
    ]  # fmt: skip
    try:
        procs = [
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            for _ in range(2)
        ]
        outputs = [p.communicate(timeout=300)[0].decode() for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outputs

        study = optuna.load_study(study_name=name, storage=URL)
        assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4
        assert sorted(t.number for t in study.trials) == [0, 1, 2, 3]

        mlflow.set_tracking_uri(mlflow_server)
        runs = mlflow.search_runs(experiment_names=[name], output_format="list")
        parents = [r for r in runs if r.data.tags.get("evoprune.role") == "study"]
        children = [r for r in runs if r.data.tags.get("evoprune.role") == "trial"]
        assert len(parents) == 1
        assert sorted(int(r.data.tags["trial_number"]) for r in children) == [0, 1, 2, 3]
        assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
        assert all(r.info.status == "FINISHED" for r in children)
        client = mlflow.MlflowClient(mlflow_server)
        files = {f.path for f in client.list_artifacts(children[0].info.run_id)}
        assert {"config.json", "history.csv", "model", "masks", "plots"} <= files
        assert not (project.store / "optuna").exists()  # nothing local with remote stores
    finally:
        try:
            optuna.delete_study(study_name=name, storage=URL)
        except KeyError:
            pass
