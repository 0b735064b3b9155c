"""The local MLflow sqlite store: created atomically, checked, and repaired when half-made.

MLflow builds a fresh sqlite store in place: ``SqlAlchemyStore`` creates the initial tables,
then alembic runs every migration (some copy a table through ``_alembic_tmp_<name>``) and the
Default experiment is inserted. A process killed in between leaves a database that no later
start can open ("table ... already exists", "out-of-date database schema"), and two first
starts at once race on the same migrations. Here the schema is built under a file lock in a
temporary file next to the store, then renamed into place: the store is either absent or
complete. A database left half-made by an older crash (no runs in it) is moved aside and
rebuilt; one that holds runs is reported with the command that fixes it. A current schema
that still holds a migration's scratch table beside the real one is used, with a note.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import StoreError

__all__ = [
    "DbState",
    "StoreError",
    "ensure_mlflow_db",
    "file_lock",
    "inspect_mlflow_db",
    "quiet_mlflow",
]


def quiet_mlflow() -> None:
    """Import mlflow (~1.5 s) and turn its and alembic's loggers down to warnings.

    MLflow's import configures its loggers, so they are quieted right after it, by the code that
    needs mlflow: a study or evolution that tracks nothing (``tracking = "none"``) never imports
    it."""
    import mlflow  # noqa: F401

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


@dataclass(frozen=True)
class DbState:
    """What an MLflow sqlite file holds: its schema version, leftovers, and whether it has data."""

    version: str | None
    tables: frozenset[str]
    runs: int
    experiments: int

    @property
    def leftovers(self) -> list[str]:
        """Scratch tables of an interrupted alembic migration."""
        return sorted(t for t in self.tables if t.startswith("_alembic_tmp_"))

    @property
    def has_data(self) -> bool:
        """Runs, or an experiment besides Default: something a rebuild would lose."""
        return self.runs > 0 or self.experiments > 1


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if missing) for the block."""
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def inspect_mlflow_db(db: Path) -> DbState:
    """Read an MLflow sqlite file (a hot rollback journal is rolled back by sqlite first)."""
    try:
        with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
            tables = frozenset(
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            )
            version = None
            if "alembic_version" in tables:
                row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
                version = None if row is None else str(row[0])
            runs = (
                conn.execute("SELECT count(*) FROM runs").fetchone()[0] if "runs" in tables else 0
            )
            exps = 0
            if "experiments" in tables:
                exps = conn.execute("SELECT count(*) FROM experiments").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"{db}: not a usable MLflow sqlite database ({exc}); move it aside "
            f"(mv {db} {db}.bad) to start a fresh store, or restore a backup"
        ) from None
    return DbState(version, tables, int(runs), int(exps))


def _head_revision() -> str:
    quiet_mlflow()
    from mlflow.store.db.utils import _get_latest_schema_revision

    return str(_get_latest_schema_revision())


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _build(db: Path, artifact_root: Path | None) -> None:
    """Create a complete, migrated store in a temporary file, then rename it to ``db``."""
    quiet_mlflow()
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    tmp = db.with_name(f"{db.name}.creating-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    root = (artifact_root or db.parent / "artifacts").resolve().as_uri()
    store = SqlAlchemyStore(f"sqlite:///{tmp}", root)
    store.engine.dispose()
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, db)
    _fsync_dir(db.parent)


def ensure_mlflow_db(db: Path, artifact_root: Path | None = None) -> str | None:
    """Make ``db`` a complete MLflow store of this MLflow's schema; returns a note on repairs.

    Raises ``StoreError`` for a corrupt file, or a half-migrated or outdated one holding runs.
    """
    with file_lock(db.with_name(db.name + ".create-lock")):
        for stale in db.parent.glob(f"{db.name}.creating-*"):
            stale.unlink(missing_ok=True)  # an interrupted build; we hold the lock
        if not db.exists():
            _build(db, artifact_root)
            return None
        state = inspect_mlflow_db(db)
        head = _head_revision()
        if state.version == head and not state.leftovers:
            return None
        if state.version == head and all(
            t.removeprefix("_alembic_tmp_") in state.tables for t in state.leftovers
        ):
            drop = " ".join(f"DROP TABLE {t};" for t in state.leftovers)
            return (
                f"{db}: holds {', '.join(state.leftovers)}, scratch of an interrupted MLflow "
                f"migration; the schema is current and the store is used as it is (to drop it: "
                f"sqlite3 {db} '{drop}')"
            )
        if state.has_data:
            drop = "".join(f"DROP TABLE {t}; " for t in state.leftovers)
            fix = f"sqlite3 {db} '{drop.strip()}' && " if drop else ""
            raise StoreError(
                f"{db}: MLflow schema version {state.version or 'none'}, this MLflow needs "
                f"{head}; back the file up, then run: {fix}mlflow db upgrade sqlite:///{db}"
            )
        backup = db.with_name(f"{db.name}.broken-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(db, backup)
        for side in ("-journal", "-wal", "-shm"):
            extra = db.with_name(db.name + side)
            if extra.exists():
                os.replace(extra, backup.with_name(backup.name + side))
        _build(db, artifact_root)
        return (
            f"{db}: an MLflow store left half-created by an interrupted start (no runs in it) "
            f"was rebuilt; the old file is at {backup.name}"
        )
