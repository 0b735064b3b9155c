"""Signals as interruptions: SIGTERM and SIGHUP end a command the way Ctrl-C does.

The first SIGINT, SIGTERM or SIGHUP raises in the main thread (``KeyboardInterrupt``, or its
subclass ``Terminated``), so the code that is running fails its trial, marks its MLflow runs
KILLED and stops its workers on the way out. Further signals during that clean-up are noted
but do not break it off (SIGKILL still does).
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator
from types import FrameType

__all__ = ["Terminated", "exit_status", "interruptible"]

_CAUGHT = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """A termination signal (SIGTERM, SIGHUP) arrived; handled like Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_status(exc: KeyboardInterrupt) -> int:
    """128 + the signal number, as a shell reports a process ended by it."""
    return 128 + (exc.signum if isinstance(exc, Terminated) else signal.SIGINT)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Within: the first signal raises; later ones wait for the clean-up to finish."""
    state = {"seen": 0}

    def handler(signum: int, frame: FrameType | None) -> None:
        state["seen"] += 1
        if state["seen"] > 1:
            print(
                f"{signal.Signals(signum).name}: still cleaning up (SIGKILL stops at once)",
                file=sys.stderr,
                flush=True,
            )
            return
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Terminated(signum)

    try:
        previous = {s: signal.signal(s, handler) for s in _CAUGHT}
    except ValueError:  # not the main thread (e.g. main() called from a thread): leave as is
        yield
        return
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
