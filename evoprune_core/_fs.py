"""File-system checks made before work starts: writable directories, output file names."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from .errors import StoreError

__all__ = ["check_output_file", "check_writable"]


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
