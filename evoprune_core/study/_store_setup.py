"""Preparing a local store before any work: directories, writability, MLflow db, journal."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from .._fs import check_writable
from ..errors import StoreError
from ..tracking import ensure_mlflow_db, inspect_mlflow_db
from ._journal import repair_journal

if TYPE_CHECKING:
    from ._storage import Store

__all__ = ["check_store_path", "prepare_store"]


def check_store_path(store: Store) -> None:
    """Refuse, before anything is created, a store whose directories are files or unwritable."""
    for label, directory in _directories(store):
        node = directory
        while not node.exists() and node != node.parent:
            node = node.parent
        if not node.is_dir():
            raise StoreError(f"{label}: {node}: not a directory")
        check_writable(node, label)


def _directories(store: Store) -> list[tuple[str, Path]]:
    out = [("--store", store.root)]
    if store.journal is not None:
        out.append(("--storage", store.journal.parent))
    db = sqlite_db(store)
    if db is not None:
        out.append(("--tracking-uri", db.parent))
    return out


def sqlite_db(store: Store) -> Path | None:
    """The MLflow sqlite file of a local tracking URI."""
    if store.tracking_uri.startswith("sqlite:///"):
        return Path(store.tracking_uri[len("sqlite:///") :])
    return None


def prepare_store(store: Store) -> None:
    """Create directories, build or check the MLflow store, cut a torn journal tail.

    A corrupt MLflow file is refused before anything is written.
    """
    check_store_path(store)
    db = sqlite_db(store)
    if db is not None:
        if db.exists():
            inspect_mlflow_db(db)
        _mkdir(db.parent)
        note = ensure_mlflow_db(db, store.artifact_root)
        if note:
            warnings.warn(note, stacklevel=2)
    for _, directory in _directories(store):
        _mkdir(directory)
    if store.artifact_root is not None:
        _mkdir(store.artifact_root)
    if store.journal is not None:
        note = repair_journal(store.journal)
        if note:
            warnings.warn(note, stacklevel=2)


def _mkdir(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{directory}: cannot create ({exc.strerror})") from None
    check_writable(directory, str(directory))
