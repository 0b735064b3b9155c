"""Named points where a test can hold a process, to deliver a signal at an exact moment.

With ``EVOPRUNE_TEST_PAUSE=<point>:<marker file>`` set, the process that reaches ``<point>``
writes its pid into the marker file and waits there until the file is removed (at most ten
minutes). A test waits for the marker, sends its signal, then removes the marker: the signal
arrives while the process stands at that point, however slow the machine is. Unset (always,
outside tests), a point costs one environment lookup.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["ENV", "pause_point"]

ENV = "EVOPRUNE_TEST_PAUSE"
_LIMIT = 600.0


def pause_point(name: str) -> None:
    """Hold here while the marker file of ``EVOPRUNE_TEST_PAUSE=<name>:<file>`` exists."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    point, _, marker = spec.partition(":")
    if point != name or not marker:
        return
    path = Path(marker)
    path.write_text(str(os.getpid()), encoding="utf-8")
    deadline = time.monotonic() + _LIMIT
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
