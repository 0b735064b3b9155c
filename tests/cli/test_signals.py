"""Signals (``cli/_signals.py``): SIGTERM, SIGINT and Ctrl-C at any moment end a study cleanly,
workers included."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from evoprune_core._pause import ENV as PAUSE_ENV
from tests._processes import (
    SMALL_SPACE,
    evoprune,
    finish,
    journal,
    load,
    mlflow_runs,
    pid_gone,
    wait_for,
)
from tests.conftest import TINY_BASE, Project

optuna.logging.set_verbosity(optuna.logging.WARNING)


SLOW_BASE = TINY_BASE.replace("generations = 2", "generations = 2000")  # killed long before


def until_interrupted(timeout: float = 120.0) -> None:
    """Run Python code until a signal's handler raises (a generous deadline, then fail)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.01)
    raise AssertionError(f"no interruption within {timeout} s")


def running_trials(project: Project, name: str) -> list[Any]:
    if not journal(project, name).exists():
        return []
    try:
        trials = load(project, name).trials
    except (KeyError, ValueError):
        return []
    return [
        t
        for t in trials
        if t.state == TrialState.RUNNING and "evoprune.mlflow_run_id" in t.user_attrs
    ]


def test_sigterm_mid_trial_fails_it_kills_the_runs_and_exits_143(stored_project: Project) -> None:
    project = stored_project
    path = project.study_file(name="term", n_trials=2, base=SLOW_BASE, space=SMALL_SPACE)
    proc = evoprune(project, *project.args(path))
    try:
        victim = wait_for(lambda: running_trials(project, "term"), what="a running trial")[0]
        os.kill(proc.pid, signal.SIGTERM)
    finally:
        rc, err = finish(proc)
    assert rc == 143
    assert err.strip().splitlines()[-1] == "interrupted (SIGTERM)" and "Traceback" not in err
    study = load(project, "term")
    assert study.trials[victim.number].state == TrialState.FAIL
    assert not running_trials(project, "term")
    runs = {r.info.run_id: r for r in mlflow_runs(project, "term")}
    assert runs[victim.user_attrs["evoprune.mlflow_run_id"]].info.status == "KILLED"
    parent = next(r for r in runs.values() if r.data.tags.get("evoprune.role") == "study")
    assert parent.info.status == "KILLED"
    assert not [r for r in runs.values() if r.info.status == "RUNNING"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_a_signal_to_the_parent_stops_its_workers(stored_project: Project, sig: int) -> None:
    project = stored_project
    path = project.study_file(name="crew", n_trials=4, base=SLOW_BASE, space=SMALL_SPACE)
    proc = evoprune(project, *project.args(path, "--workers", "2"))
    try:
        busy = wait_for(
            lambda: len(running_trials(project, "crew")) == 2 and running_trials(project, "crew"),
            what="two running trials",  # two workers start and import torch: minutes if loaded
        )
        os.kill(proc.pid, sig)
    finally:
        rc, err = finish(proc)
    assert rc == {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGKILL: -9}[sig], err
    workers = {t.user_attrs["evoprune.pid"] for t in busy}
    assert len(workers) == 2 and proc.pid not in workers
    wait_for(lambda: all(pid_gone(p) for p in workers), what="the workers to stop")
    study = load(project, "crew")
    assert [study.trials[t.number].state for t in busy] == [TrialState.FAIL] * 2, err
    runs = {r.info.run_id: r for r in mlflow_runs(project, "crew")}
    statuses = {runs[t.user_attrs["evoprune.mlflow_run_id"]].info.status for t in busy}
    assert statuses <= {"KILLED", "FAILED"}, err  # FAILED: ended by the other worker's reaping
    if sig != signal.SIGKILL:  # the parent run too is KILLED; after SIGKILL the next start ends it
        assert not [r for r in runs.values() if r.info.status == "RUNNING"]


@pytest.mark.parametrize(
    "point", ["import", "run-started", "study-set-up", "trial-started", "trial"]
)
def test_ctrl_c_at_any_moment_ends_interrupted(project: Project, point: str) -> None:
    """Ctrl-C held at a chosen point (``EVOPRUNE_TEST_PAUSE``), however slow the machine:
    inside an import (held until it is over: numpy and scipy swallow an exception raised inside
    their imports), the parent run just created (before set-up has its id), set-up, a trial's
    run just created (before the trial holds its id), a trial."""
    path = project.study_file(name="intr", n_trials=2, base=SLOW_BASE, space=SMALL_SPACE)
    marker = project.root / "paused"
    env = dict(os.environ)
    if point != "trial":
        env[PAUSE_ENV] = f"{point}:{marker}"
    proc = evoprune(project, *project.args(path), env=env)
    try:
        if point == "trial":
            wait_for(lambda: running_trials(project, "intr"), what="a running trial")
        else:
            wait_for(marker.exists, what=f"the start to reach {point}")
        proc.send_signal(signal.SIGINT)
        marker.unlink(missing_ok=True)
    finally:
        rc, err = finish(proc)
    assert rc == 130, err
    assert err.strip().splitlines()[-1] == "interrupted" and "Traceback" not in err
    if point == "import":
        assert not project.store.exists()  # stopped before anything was written
        return
    runs = mlflow_runs(project, "intr")
    assert not [r for r in runs if r.info.status == "RUNNING"]
    (parent,) = [r for r in runs if r.data.tags.get("evoprune.role") == "study"]
    assert parent.info.status == "KILLED"
    assert not running_trials(project, "intr")
    if point in ("trial", "trial-started"):
        assert [t.state for t in load(project, "intr").trials][:1] == [TrialState.FAIL]
    if point == "trial-started":  # the trial never held its run's id: the tracker ended it
        (trial,) = [r for r in runs if r.data.tags.get("evoprune.role") == "trial"]
        assert (trial.info.status, trial.info.run_name) == ("KILLED", "t0000 canonical baseline")
        with sqlite3.connect(project.store / "mlflow.db") as db:  # the store is unlocked
            db.execute("BEGIN IMMEDIATE")
            db.rollback()


def test_a_worker_lets_repeated_signals_pass_during_its_clean_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A worker's parent-death signal comes once per thread of the dying parent: after the
    first, none may end the worker's clean-up (a user's process would exit at the third)."""
    from evoprune_core.cli._signals import Terminated, interruptible

    with interruptible(insist=False):
        with pytest.raises(Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            until_interrupted()
        for _ in range(3):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
    assert capsys.readouterr().err == ""


def test_a_signal_while_sqlalchemy_closes_a_connection_waits_for_the_close(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SQLAlchemy's pool logs an interruption of a connection's close with its traceback (the
    user saw one under "interrupted"): the signal is raised once the close is over."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    from evoprune_core.cli._signals import interruptible

    closed: list[bool] = []

    class SlowToClose:
        """A sqlite3 connection whose close receives Ctrl-C half-way."""

        def __init__(self) -> None:
            self._conn = sqlite3.connect(tmp_path / "db.sqlite")

        def __getattr__(self, name: str) -> Any:
            return getattr(self._conn, name)

        def close(self) -> None:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.3)
            self._conn.close()
            closed.append(True)

    engine = sqlalchemy.create_engine("sqlite://", creator=SlowToClose, poolclass=NullPool)
    with interruptible(), pytest.raises(KeyboardInterrupt):
        with engine.connect() as conn:
            assert conn.exec_driver_sql("select 1").scalar() == 1
        until_interrupted()  # the held signal is raised here, 50 ms after the close
    assert closed == [True]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_a_signal_during_a_write_waits_for_it_and_leaves_the_store_unlocked(
    tmp_path: Path,
) -> None:
    """A worker's SIGTERM arrived in the middle of an MLflow write (inside SQLAlchemy's
    INSERT, seen under load in `test_a_signal_to_the_parent_stops_its_workers[9]`): the
    clean-up's own writes then found the store locked and the run stayed RUNNING. The signal
    now waits until SQLAlchemy is done: the write completes (without the hold it is cut and its
    row lost) and the store takes the next write."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    from evoprune_core.cli._signals import Terminated, interruptible

    db = tmp_path / "db.sqlite"

    class SlowInsert:
        """A sqlite3 cursor whose INSERT receives SIGTERM half-way."""

        def __init__(self, cursor: sqlite3.Cursor) -> None:
            self._cursor = cursor

        def __getattr__(self, name: str) -> Any:
            return getattr(self._cursor, name)

        def execute(self, sql: str, *args: Any) -> Any:
            if sql.startswith("INSERT"):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.3)  # the slow moment: the statement is still running
            return self._cursor.execute(sql, *args)

    class Connection:
        def __init__(self) -> None:
            self._conn = sqlite3.connect(db, timeout=0.1)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._conn, name)

        def cursor(self) -> SlowInsert:
            return SlowInsert(self._conn.cursor())

    engine = sqlalchemy.create_engine("sqlite://", creator=Connection, poolclass=NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE tags (k TEXT)")
    with interruptible(insist=False), pytest.raises(Terminated):
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO tags VALUES ('error')")
        until_interrupted()  # raised here, once SQLAlchemy has committed
    with sqlite3.connect(db, timeout=0.1) as other:  # the clean-up's write: not locked
        other.execute("INSERT INTO tags VALUES ('KILLED')")
    with sqlite3.connect(db) as other:
        assert [r[0] for r in other.execute("SELECT k FROM tags")] == ["error", "KILLED"]


def test_a_signal_held_back_by_an_import_is_raised_at_the_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C inside an import waits for the import's end; the 50 ms re-check could land in
    the next import each time (a start is nearly all imports), and the study then wrote its
    store before the interruption came (CI, `test_ctrl_c_at_any_moment_ends_interrupted[import]`).
    The checkpoint `main` calls before running a command raises it at once. The re-check is
    slowed to 60 s here, so only the checkpoint can raise it."""
    from evoprune_core.cli import _signals

    monkeypatch.setattr(_signals, "_RECHECK", 60.0)
    (tmp_path / "evp_slow_import.py").write_text(
        "import os, signal, time\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        "time.sleep(0.2)\n"
        "DONE = True\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with _signals.interruptible() as checkpoint:
        import evp_slow_import  # type: ignore[import-not-found]

        assert evp_slow_import.DONE  # the import ran to its end: the signal was held back
        time.sleep(0.1)  # nothing raises it on its own now
        with pytest.raises(KeyboardInterrupt):
            checkpoint()
        checkpoint()  # delivered once
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
