"""The RDB paths of study storage, on a local sqlite URL (PostgreSQL takes the same paths).

RDB storage with heartbeats, the heartbeat thread, stale-trial failing across machines,
dead-worker detection on this host (a reused pid), the lock, and a whole study on sqlite.
"""

from __future__ import annotations

import os
import socket
import time
import zlib
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from evoprune_core._compat import storage_of, trial_id
from evoprune_core.cli import main
from evoprune_core.study import (
    HEARTBEAT_INTERVAL,
    heartbeat,
    open_storage,
    process_identity,
    reap_dead_trials,
    resolve_store,
    study_lock,
)
from tests.conftest import Project, require_service


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'optuna.db'}"


def _study(storage: Any, name: str = "s") -> optuna.Study:
    return optuna.create_study(study_name=name, storage=storage)


def test_an_rdb_url_opens_an_rdb_storage_with_heartbeats(tmp_path: Path) -> None:
    def on_stale(study: Any, trial: Any) -> None:
        pass

    store = resolve_store("s", tmp_path, _url(tmp_path), None)
    assert store.journal is None and store.storage == _url(tmp_path)
    storage = open_storage(store, on_stale)
    assert isinstance(storage, optuna.storages.RDBStorage)
    assert storage.get_heartbeat_interval() == HEARTBEAT_INTERVAL == 5
    assert storage.grace_period == 20  # seconds without a heartbeat before a trial is stale
    assert storage.get_heartbeat_stale_trial_callback() is on_stale


def test_heartbeat_records_and_a_silent_trial_is_failed(tmp_path: Path) -> None:
    store = resolve_store("s", tmp_path, _url(tmp_path), None)
    storage = open_storage(store)
    study = _study(storage)
    beating, silent = study.ask(), study.ask()
    with heartbeat(storage, trial_id(beating)):
        time.sleep(0.05)
    # a machine that checks with a short grace period sees the beating trial go stale
    ended: list[int] = []
    quick = optuna.storages.RDBStorage(
        store.storage,
        heartbeat_interval=1,
        grace_period=1,
        heartbeat_stale_trial_callback=lambda s, t: ended.append(t.number),
    )
    time.sleep(2.2)  # sqlite's now() counts whole seconds
    quick_study = optuna.load_study(study_name="s", storage=quick)
    assert reap_dead_trials(quick_study, lambda run, why: None) == []  # no pids recorded
    states = {t.number: t.state for t in quick_study.trials}
    # only the trial that had heartbeats can go stale; the other never beat
    assert states == {beating.number: TrialState.FAIL, silent.number: TrialState.RUNNING}
    assert ended == [beating.number]


def test_heartbeat_is_a_no_op_without_an_rdb(tmp_path: Path) -> None:
    store = resolve_store("s", tmp_path, str(tmp_path / "s.journal"), None)
    store.prepare()
    storage = open_storage(store)
    study = _study(storage)
    trial = study.ask()
    with heartbeat(storage, trial_id(trial)):
        pass
    assert not hasattr(storage, "record_heartbeat")


@pytest.mark.parametrize(
    ("attrs", "reaped"),
    [
        ({}, False),  # this very process, as recorded
        ({"evoprune.pid_start": "1"}, True),  # same pid, another start time: a reused pid
        ({"evoprune.pid": 2**22 + 7}, True),  # no such process
        ({"evoprune.host": "elsewhere"}, False),  # another machine: its heartbeat decides
    ],
    ids=["alive", "reused-pid", "gone", "other-host"],
)
def test_dead_workers_are_found_on_an_rdb(tmp_path: Path, attrs: dict, reaped: bool) -> None:
    store = resolve_store("s", tmp_path, _url(tmp_path), None)
    storage = open_storage(store)
    study = _study(storage)
    trial = study.ask()
    identity = process_identity()
    assert identity["evoprune.host"] == socket.gethostname()
    assert identity["evoprune.pid"] == os.getpid() and identity["evoprune.pid_start"] != ""
    for key, value in {**identity, **attrs, "evoprune.mlflow_run_id": "r1"}.items():
        trial.set_user_attr(key, value)
    closed: list[tuple[str, str]] = []
    got = reap_dead_trials(study, lambda run, why: closed.append((run, why)))
    assert got == ([trial.number] if reaped else [])
    state = study.trials[trial.number].state
    assert state == (TrialState.FAIL if reaped else TrialState.RUNNING)
    if reaped:
        pid = {**identity, **attrs}["evoprune.pid"]
        assert closed == [
            ("r1", f"worker {socket.gethostname()}:{pid} died during the trial (no heartbeat); "
                   "the trial was failed")
        ]  # fmt: skip
    else:
        assert closed == []


def test_sqlite_storage_is_locked_by_a_file_next_to_it(tmp_path: Path) -> None:
    store = resolve_store("s", tmp_path, _url(tmp_path), None)
    storage = open_storage(store)
    with study_lock(store, storage, "s"):
        assert (tmp_path / "optuna.db.evoprune-lock").exists()


def test_a_postgresql_study_is_locked_through_the_storage_a_loaded_study_holds(
    tmp_path: Path,
) -> None:
    """The clean-up at a study's start locks with ``storage_of(study)``: Optuna's cache wrapper
    (no ``engine`` of its own) once made it raise, and the clean-up was silently skipped."""
    url = os.environ.get("EVOPRUNE_TEST_POSTGRES_URL", "")
    require_service(bool(url), "EVOPRUNE_TEST_POSTGRES_URL is not set; no PostgreSQL to lock")
    from sqlalchemy import create_engine, text

    name = f"lock-{os.getpid()}-{time.monotonic_ns()}"
    store = resolve_store(name, tmp_path, url, None)
    study = optuna.load_study(study_name=_study(open_storage(store), name).study_name, storage=url)
    key = zlib.crc32(f"evoprune:{name}".encode()) & 0x7FFFFFFF
    other = create_engine(url)
    try:
        with study_lock(store, storage_of(study), name), other.connect() as conn:
            taken = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
        assert taken is False  # held by the study's lock
        with other.connect() as conn:
            taken = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        assert taken is True  # and released after it
    finally:
        other.dispose()
        optuna.delete_study(study_name=name, storage=url)


def test_a_study_runs_on_a_sqlite_rdb(stored_project: Project) -> None:
    project = stored_project
    url = f"sqlite:///{project.root / 'optuna.db'}"
    path = project.study_file(name="rdb", n_trials=2)
    assert main(project.args(path, "--storage", url)) == 0
    study = optuna.load_study(study_name="rdb", storage=url)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert not project.journal.exists()  # the RDB holds the study, no journal file
    assert {t.user_attrs["evoprune.pid"] for t in study.trials} == {os.getpid()}
    runs = MlflowClient(project.tracking_uri).search_runs(
        [MlflowClient(project.tracking_uri).get_experiment_by_name("rdb").experiment_id]
    )
    children = [r for r in runs if r.data.tags.get("evoprune.role") == "trial"]
    assert sorted(int(r.data.tags["trial_number"]) for r in children) == [0, 1]
    assert all(r.info.status == "FINISHED" for r in children)
    # resuming on the same URL adds nothing: the target is met
    assert main(project.args(path, "--storage", url)) == 0
    assert len(optuna.load_study(study_name="rdb", storage=url).trials) == 2
