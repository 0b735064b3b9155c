"""Where a study lives (Optuna storage, MLflow store), its lock, and dead-worker detection.

Local default: an Optuna journal file under ``mlruns/optuna/`` (safe for several worker
processes) and MLflow in ``sqlite:///mlruns/mlflow.db`` with artifacts under
``mlruns/artifacts/``. Across machines: an RDB URL (PostgreSQL) and an ``mlflow server`` URI.

A worker records its host, pid and process start time on each trial it runs. A RUNNING trial
whose process is gone (same host) is failed and its MLflow run ended; with an RDB storage
Optuna's heartbeat does the same across machines (journal storage has no heartbeat).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .._compat import rdb_engine, rdb_stale_callback_kwarg, storage_of
from ..errors import ConfigError, StoreError
from ..reporting import Attr
from ..tracking import file_lock

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial


@runtime_checkable
class _Heartbeats(Protocol):
    """An Optuna storage that records heartbeats (an RDB storage, cached or not)."""

    def get_heartbeat_interval(self) -> int | None: ...

    def record_heartbeat(self, trial_id: int) -> None: ...


__all__ = [
    "HEARTBEAT_INTERVAL",
    "Store",
    "heartbeat",
    "open_storage",
    "process_identity",
    "reap_dead_trials",
    "resolve_store",
    "study_lock",
]

HEARTBEAT_INTERVAL = 5
CONNECT_TIMEOUT = 10  # seconds to reach a database server before the command gives up
GRACE_PERIOD = 20
_TRACKING_SCHEMES = ("sqlite:///", "http://", "https://", "postgresql", "mysql", "mssql")


@dataclass(frozen=True)
class Store:
    """Resolved locations; nothing exists yet until ``prepare()``."""

    root: Path
    storage: str
    tracking_uri: str

    @property
    def journal(self) -> Path | None:
        return None if "://" in self.storage else Path(self.storage)

    @property
    def artifact_root(self) -> Path | None:
        """Artifacts of a local sqlite store live next to its database; a server decides."""
        if self.tracking_uri.startswith("sqlite:///"):
            return Path(self.tracking_uri[len("sqlite:///") :]).parent / "artifacts"
        return None

    def artifact_state(self, study: str) -> Path:
        """Where a plugin tracker's trials keep the state of their deferred plots and models
        (``artifacts = "best"``): one directory per trial, ``t0007``."""
        return self.root / "artifact-state" / study

    def prepare(self) -> None:
        """Create the local directories and MLflow store, repair a torn journal (after
        validation). Repairs are reported as warnings; an unusable store raises ``StoreError``."""
        from ._store_setup import prepare_store

        prepare_store(self)


def resolve_store(
    name: str,
    store_dir: str | Path,
    storage: str | None,
    tracking_uri: str | None,
    tracked: bool = True,
) -> Store:
    """Defaults under ``store_dir``; ``storage`` is an RDB URL or a journal file path.

    ``tracked=False`` (a tracker that writes no store, ``tracking = "none"``): no tracking URI,
    so no MLflow file is created or checked.
    """
    from ..tracking import default_tracking_uri

    root = Path(store_dir).resolve()
    if storage is None:
        storage = str(root / "optuna" / f"{name}.journal")
    elif "://" not in storage:
        storage = str(Path(storage.removeprefix("journal:")).resolve())
    elif storage.split("://")[0].split("+")[0] not in ("sqlite", "postgresql", "mysql"):
        raise ConfigError(
            f"--storage: {storage!r}: expected a journal file path or an RDB URL "
            "(postgresql://..., mysql://..., sqlite:///...)"
        )
    if not tracked:
        return Store(root, storage, "")
    uri = tracking_uri or default_tracking_uri(root)
    if not uri.startswith(_TRACKING_SCHEMES):
        raise ConfigError(
            f"--tracking-uri: {uri!r}: expected sqlite:///<abs path>/mlflow.db or "
            "http(s)://host:port of an mlflow server"
        )
    return Store(root, storage, uri)


def open_storage(
    store: Store, on_stale: Callable[[optuna.Study, FrozenTrial], None] | None = None
) -> BaseStorage:
    """An Optuna storage: journal file, or RDB with heartbeats (``on_stale`` ends MLflow runs)."""
    import optuna.storages.journal

    if store.journal is not None:
        backend = optuna.storages.journal.JournalFileBackend(str(store.journal))
        return optuna.storages.JournalStorage(backend)
    kwargs: dict[str, Any] = {
        "heartbeat_interval": HEARTBEAT_INTERVAL,
        "grace_period": GRACE_PERIOD,
    }
    if on_stale is not None:
        kwargs[rdb_stale_callback_kwarg()] = on_stale
    if store.storage.startswith(("postgresql", "mysql")):
        kwargs["engine_kwargs"] = {"connect_args": {"connect_timeout": CONNECT_TIMEOUT}}
    for attempt in range(3):  # two machines creating the tables at once: one retries
        try:
            return optuna.storages.RDBStorage(store.storage, **kwargs)
        except ImportError as exc:
            raise StoreError(
                f"--storage: {_shown(store.storage)}: no database driver ({exc}); install one "
                "(psycopg for PostgreSQL, PyMySQL for MySQL)"
            ) from None
        except Exception as exc:
            unreachable = _unreachable(exc)
            if unreachable is not None:
                raise StoreError(
                    f"--storage: {_shown(store.storage)}: cannot connect ({unreachable}); "
                    f"check that the database server runs and accepts connections"
                ) from None
            if attempt == 2:
                raise
            time.sleep(1.0 + attempt)
    raise AssertionError("unreachable")


def _shown(url: str) -> str:
    """An RDB URL with its password hidden."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL SQLAlchemy cannot parse is shown without a password
        return url.split("@")[-1]


def _unreachable(exc: BaseException) -> str | None:
    """The first line of a failed connection's reason (refused, timed out, bad login), or
    ``None`` when ``exc`` is something else."""
    from sqlalchemy.exc import OperationalError

    if not isinstance(exc, OperationalError):
        return None
    text = str(getattr(exc, "orig", None) or exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line.removeprefix("connection failed: ")


@contextlib.contextmanager
def study_lock(store: Store, storage: BaseStorage, name: str) -> Iterator[None]:
    """Serialise 'count trials, then ask' and study set-up across workers and machines.

    A file lock for journal and sqlite storages, an advisory lock for PostgreSQL.
    """
    path: Path | None = store.journal
    if path is None and store.storage.startswith("sqlite:///"):
        path = Path(store.storage[len("sqlite:///") :])
    if path is not None:
        with file_lock(path.with_name(path.name + ".evoprune-lock")):
            yield
        return
    if store.storage.startswith("postgresql"):
        from sqlalchemy import text

        key = zlib.crc32(f"evoprune:{name}".encode()) & 0x7FFFFFFF
        with rdb_engine(storage).connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
        return
    yield


def _proc_stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw.rsplit(")", 1)[-1].split()


def process_identity() -> dict[str, Any]:
    """This process: host, pid and (Linux) start time, recorded on each trial it runs."""
    stat = _proc_stat(os.getpid())
    return {
        Attr.HOST: socket.gethostname(),
        Attr.PID: os.getpid(),
        Attr.PID_START: stat[19] if stat else "",
    }


def _alive(attrs: dict[str, Any]) -> bool | None:
    """Whether the process that ran a trial lives; ``None`` when it cannot be told here."""
    if attrs.get(Attr.HOST) != socket.gethostname() or Attr.PID not in attrs:
        return None
    pid = int(attrs[Attr.PID])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = _proc_stat(pid)
    if stat is None or stat[0] in ("Z", "X"):
        return False
    start = attrs.get(Attr.PID_START)
    return not (start and stat[19] != start)


def reap_dead_trials(study: optuna.Study, close_run: Callable[[str, str], None]) -> list[int]:
    """Fail RUNNING trials whose worker died; end their MLflow runs. Returns their numbers."""
    import optuna
    from optuna.trial import TrialState

    reaped = []
    now = datetime.now()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        alive = _alive(t.user_attrs)
        orphan = Attr.PID not in t.user_attrs and (
            t.datetime_start is None or now - t.datetime_start > timedelta(seconds=60)
        )
        if alive is not False and not orphan:
            continue
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError, RuntimeError):
            study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
            reaped.append(t.number)
            run_id = t.user_attrs.get(Attr.MLFLOW_RUN_ID)
            if run_id:
                close_run(
                    run_id,
                    f"worker {t.user_attrs.get('evoprune.host')}:{t.user_attrs.get('evoprune.pid')}"
                    " died during the trial (no heartbeat); the trial was failed",
                )
    if hasattr(storage_of(study), "record_heartbeat"):
        optuna.storages.fail_stale_trials(study)
    return reaped


@contextlib.contextmanager
def heartbeat(storage: BaseStorage, trial_id: int) -> Iterator[None]:
    """Record Optuna heartbeats of a trial run through ask/tell (RDB storages only)."""
    interval = storage.get_heartbeat_interval() if isinstance(storage, _Heartbeats) else None
    if not isinstance(storage, _Heartbeats) or not interval:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while True:
            with contextlib.suppress(Exception):
                storage.record_heartbeat(trial_id)
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name=f"evoprune-heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
