"""A torn Optuna journal tail: detected, backed up, and cut back to the last whole record.

Optuna's ``JournalFileBackend`` appends one JSON record per line under its lock. A crash in
the middle of a write (or a full disk) can leave the last line without its newline or cut
inside the JSON. Optuna then silently ignores that line on reading, but the next append lands
on the same line and every later read fails with ``JSONDecodeError``. Here the partial tail is
removed (the whole file is first copied to ``<journal>.torn-<time>``): a trial whose finishing
record was lost stays RUNNING with a dead worker, so the next start fails it and runs it again.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from ..errors import StoreError

__all__ = ["repair_journal", "whole_records"]

_MAX_TORN = 2  # more unreadable records at the end than a crash leaves: damage, not a tear


def whole_records(data: bytes) -> tuple[int, int]:
    """Bytes of ``data`` up to its last readable record, and how many records trail it."""
    end, dropped = len(data), 0
    while end > 0 and dropped <= _MAX_TORN:
        start = data.rfind(b"\n", 0, end - 1) + 1
        if data[end - 1 : end] == b"\n":
            try:
                json.loads(data[start:end])
                break
            except ValueError:
                pass
        dropped += 1
        end = start
    return end, dropped


def _lock(path: Path) -> object:
    import optuna.storages.journal

    return optuna.storages.journal.JournalFileSymlinkLock(str(path))


def repair_journal(path: Path) -> str | None:
    """Cut a torn tail off the journal at ``path``; return a one-line note, or None if whole.

    Read without a lock first (a journal that is whole is never written to); a tail that looks
    torn is checked again under Optuna's journal lock, since a live writer may be mid-line.
    Raises ``StoreError`` when a record in the middle of the file is unreadable.
    """
    if not path.is_file() or whole_records(path.read_bytes())[1] == 0:
        return None
    try:
        lock = _lock(path)
        lock.acquire()  # type: ignore[attr-defined]
        try:
            return _cut(path)
        finally:
            lock.release()  # type: ignore[attr-defined]
    except OSError as exc:
        raise StoreError(
            f"{path}: the last journal record was cut short by a crash, and the file cannot "
            f"be repaired here ({exc.strerror}); run `evoprune study` where it is writable"
        ) from None


def _cut(path: Path) -> str | None:
    data = path.read_bytes()
    keep, dropped = whole_records(data)
    if dropped == 0:
        return None
    if dropped > _MAX_TORN:
        raise StoreError(
            f"{path}: the end of the journal is unreadable over more than {_MAX_TORN} "
            "records (not a torn write); restore a backup or move the file aside"
        )
    _check_interior(path, data[:keep])
    backup = path.with_name(f"{path.name}.torn-{time.strftime('%Y%m%d-%H%M%S')}")
    shutil.copy2(path, backup)
    with open(path, "rb+") as fh:
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())
    return (
        f"{path}: the last {dropped} journal record(s) ({len(data) - keep} bytes) were cut short "
        f"by a crash and were dropped (backup: {backup.name}); a trial they would have finished "
        "is failed and run again by the next `evoprune study`"
    )


def _check_interior(path: Path, data: bytes) -> None:
    for number, line in enumerate(data.splitlines(), start=1):
        try:
            json.loads(line)
        except ValueError:
            raise StoreError(
                f"{path}: line {number}: not a journal record (the file is damaged inside, "
                "not only at its end); restore a backup or move the file aside"
            ) from None
