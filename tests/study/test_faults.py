"""Faults of the local store (``study/_store_setup.py``, ``study/_journal.py``): a store killed
while it was created, half-migrated, shared by two first starts; a torn or damaged journal."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from evoprune_core.cli import main
from evoprune_core.study._journal import whole_records
from tests._processes import (
    SMALL_SPACE,
    assert_intact,
    evoprune,
    finish,
    journal,
    load,
    one_error_line,
    tree,
    wait_for,
)
from tests.conftest import Project

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_sigkill_while_the_store_is_created_then_rerun(project: Project) -> None:
    path = project.study_file(name="first", n_trials=2, space=SMALL_SPACE)
    proc = evoprune(project, *project.args(path))
    try:  # the chosen moment: the schema is being built in its temporary file
        wait_for(lambda: list(project.store.glob("mlflow.db.creating-*")), what="the build")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        finish(proc)
    assert not (project.store / "mlflow.db").exists()  # never a half-made store in place
    assert main(project.args(path)) == 0
    assert not list(project.store.glob("mlflow.db.creating-*"))
    assert_intact(project, "first", 2)


def _half_migrated(db: Path, empty_db: Path, with_run: bool) -> None:
    """The state an interrupted migration left (older evoprune): an earlier schema version and
    alembic's scratch table."""
    db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(empty_db, db)
    if with_run:
        client = MlflowClient(f"sqlite:///{db}")
        client.create_run(client.create_experiment("earlier work"))
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '4465047574b1'")
        conn.execute("CREATE TABLE _alembic_tmp_experiments (x INTEGER)")


def test_half_created_store_from_an_older_crash_is_rebuilt(
    project: Project, empty_mlflow_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = project.store / "mlflow.db"
    _half_migrated(db, empty_mlflow_db, with_run=False)
    path = project.study_file(name="healed", n_trials=1, space=SMALL_SPACE)
    assert main(project.args(path)) == 0
    err = capsys.readouterr().err
    assert f"warning: {db}: an MLflow store left half-created" in err, err
    backups = list(project.store.glob("mlflow.db.broken-*"))
    assert len(backups) == 1
    assert_intact(project, "healed", 1)


def test_half_migrated_store_with_runs_is_reported_with_its_fix(
    project: Project, empty_mlflow_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = project.store / "mlflow.db"
    _half_migrated(db, empty_mlflow_db, with_run=True)
    before = tree(project.store)
    path = project.study_file(name="kept", n_trials=1, space=SMALL_SPACE)
    assert main(project.args(path)) == 2
    err = one_error_line(capsys.readouterr().err)
    assert f"error: {db}: MLflow schema version 4465047574b1" in err
    assert f"sqlite3 {db} 'DROP TABLE _alembic_tmp_experiments;' && mlflow db upgrade" in err
    assert {k: v for k, v in tree(project.store).items() if "lock" not in k} == before


def test_current_store_with_a_leftover_scratch_table_is_used_with_a_note(
    project: Project, empty_mlflow_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = project.store / "mlflow.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(empty_mlflow_db, db)
    client = MlflowClient(f"sqlite:///{db}")
    kept = client.create_run(client.create_experiment("earlier work")).info.run_id
    with sqlite3.connect(db) as conn:  # the schema is current; only the scratch table is left
        conn.execute("CREATE TABLE _alembic_tmp_latest_metrics (x INTEGER)")
    path = project.study_file(name="used", n_trials=1, space=SMALL_SPACE)
    assert main(project.args(path)) == 0
    err = capsys.readouterr().err
    assert f"warning: {db}: holds _alembic_tmp_latest_metrics, scratch of an interrupted" in err, (
        err
    )
    assert f"sqlite3 {db} 'DROP TABLE _alembic_tmp_latest_metrics;'" in err
    assert not list(project.store.glob("mlflow.db.broken-*"))  # not rebuilt
    assert MlflowClient(f"sqlite:///{db}").get_run(kept).info.run_id == kept
    assert_intact(project, "used", 1)


def test_two_first_starts_at_once_share_one_store(project: Project) -> None:
    path = project.study_file(name="race", n_trials=2, space=SMALL_SPACE)
    procs = [evoprune(project, *project.args(path)) for _ in range(2)]
    results = [finish(p) for p in procs]
    assert [rc for rc, _ in results] == [0, 0], results
    assert all("Traceback" not in err for _, err in results)
    assert_intact(project, "race", 2)


def test_torn_journal_tail_is_cut_backed_up_reported_and_rerun(
    stored_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project = stored_project
    path = project.study_file(name="torn", n_trials=2, space=SMALL_SPACE)
    rc, err = finish(evoprune(project, *project.args(path)))
    assert rc == 0, err
    before = {t.number: t.value for t in load(project, "torn").trials}
    j = journal(project, "torn")
    whole = j.read_bytes()
    os.truncate(j, len(whole) - 5)  # what a crash in the middle of a write leaves

    assert main(["report", "torn", "--store", str(project.store)]) == 0
    out = capsys.readouterr()
    assert out.err.count("\n") == 1, out.err
    assert out.err.startswith(f"warning: {j}: the last 1 journal record(s)")
    backup = next(project.journal.glob("torn.journal.torn-*"))
    assert backup.read_bytes() == whole[:-5]
    assert j.read_bytes() == whole[: whole.rstrip(b"\n").rfind(b"\n") + 1]
    lost = [t for t in load(project, "torn").trials if t.state == TrialState.RUNNING]
    assert len(lost) == 1  # the record that finished it was the torn one

    assert main(project.args(path)) == 0
    study = assert_intact(project, "torn", 2)
    assert study.trials[lost[0].number].state == TrialState.FAIL  # failed, then re-run
    for number, value in before.items():
        if number != lost[0].number:
            assert study.trials[number].value == value
    assert whole_records(j.read_bytes())[1] == 0
    assert all(json.loads(line) for line in j.read_bytes().splitlines())


def test_journal_damaged_inside_is_an_error_not_a_repair(
    stored_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project = stored_project
    j = journal(project, "inner")
    j.parent.mkdir(parents=True)
    j.write_bytes(b'{"op_code": 0}\nnot json\n{"op_code": 1}\n{"op_co')
    assert main(["report", "inner", "--store", str(project.store)]) == 2
    err = one_error_line(capsys.readouterr().err)
    assert f"{j}: line 2: not a journal record" in err
    assert not list(project.journal.glob("*.torn-*"))
