"""File-system checks made before work starts: writable directories, output file names."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from .errors import OutputError, StoreError

__all__ = ["check_output_file", "check_writable", "write_output"]


def check_writable(directory: Path, label: str) -> None:
    """Raise ``StoreError`` unless a file can really be created in ``directory``.

    A probe file rather than ``os.access``: it tells the truth for root, read-only mounts, full
    disks and ACLs alike.
    """
    probe = directory / f".evoprune-probe-{os.getpid()}"
    try:
        with open(probe, "wb") as fh:
            fh.write(b"x")
    except OSError as exc:
        raise StoreError(f"{label}: {directory}: not writable ({exc.strerror})") from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


def check_output_file(option: str, value: str | Path) -> Path:
    """A file the command will write at the end: not a directory, in a writable directory."""
    path = Path(value)
    if path.is_dir():
        raise StoreError(f"{option}: {path}: is a directory; give a file name")
    parent = path.resolve().parent
    if not parent.is_dir():
        raise StoreError(f"{option}: directory {parent} does not exist")
    check_writable(parent, option)
    return path


def write_output(option: str, path: str | Path, data: bytes | str) -> Path:
    """Write a result file whole or not at all; an I/O failure (a full disk) is an
    ``OutputError`` naming ``option`` and the file.

    A regular file is written next to its place, synced and renamed over it. A path that exists
    and is not a regular file (a device such as ``/dev/full``, a pipe) is written in place:
    renaming over it would replace the device.
    """
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    special = path.exists() and not path.is_file()
    target = path if special else path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(target, "wb") as fh:
            fh.write(raw)
            fh.flush()
            if not special:
                os.fsync(fh.fileno())
        if not special:
            target.replace(path)
    except OSError as exc:
        if not special:
            with contextlib.suppress(OSError):
                target.unlink()
        why = exc.strerror or type(exc).__name__
        raise OutputError(f"{option}: {path}: cannot write ({why}); nothing written") from None
    except BaseException:
        if not special:
            with contextlib.suppress(OSError):
                target.unlink()
        raise
    return path
