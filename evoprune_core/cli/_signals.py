"""Signals as interruptions: SIGTERM and SIGHUP end a command the way Ctrl-C does.

The first SIGINT, SIGTERM or SIGHUP raises in the main thread (``KeyboardInterrupt``, or its
subclass ``Terminated``), so the code that is running fails its trial, marks its MLflow runs
KILLED and stops its workers on the way out. A second signal during that clean-up is noted
but does not break it off; a third ends the process at once. One that arrives during an import
or while SQLAlchemy works (a statement, a commit, a connection's close) is raised once the main
thread is out of it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator
from types import FrameType

from .._parent import parent_gone

__all__ = ["Terminated", "exit_status", "interruptible"]

_CAUGHT = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_RECHECK = 0.05
_SQLALCHEMY = "/sqlalchemy/"


class Terminated(KeyboardInterrupt):
    """A termination signal (SIGTERM, SIGHUP) arrived; handled like Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_status(exc: KeyboardInterrupt) -> int:
    """128 + the signal number, as a shell reports a process ended by it."""
    return 128 + (exc.signum if isinstance(exc, Terminated) else signal.SIGINT)


def _importing(frame: FrameType | None) -> bool:
    """Whether the main thread is inside an import (module code or its loader)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _held_back(frame: FrameType | None) -> bool:
    """Whether the main thread is where an interruption must wait: inside an import (module
    code or its loader), or anywhere in SQLAlchemy: an interrupted close is logged with its
    traceback, and a write interrupted half-way through a statement or commit left its
    connection holding the sqlite lock, so the clean-up's own writes found the store locked."""
    while frame is not None:
        code = frame.f_code
        if code.co_filename.startswith("<frozen importlib") or (
            _SQLALCHEMY in code.co_filename.replace("\\", "/")
        ):
            return True
        frame = frame.f_back
    return False


def _held_by_sqlalchemy(frame: FrameType | None) -> bool:
    while frame is not None:
        if _SQLALCHEMY in frame.f_code.co_filename.replace("\\", "/"):
            return True
        frame = frame.f_back
    return False


@contextlib.contextmanager
def interruptible(insist: bool = True) -> Iterator[Callable[[], None]]:
    """Within: the first signal raises; later ones wait for the clean-up to finish.

    It yields a checkpoint: called, it raises a signal that is being held back at once
    (otherwise the next 50 ms check raises it, which may again find the main thread in an
    import or in SQLAlchemy, and a start that is all imports could run on into its first
    writes). ``main`` calls it between reading its command line and running the command.

    ``insist = False`` (a study's worker process): later signals never cut the clean-up short.
    A worker's parent-death signal arrives once for every thread of the dying parent, so
    repeats say nothing about a user; the parent bounds a worker's clean-up itself.

    A signal that arrives while a module is being imported is held back until the import is
    over (checked every 50 ms with SIGALRM): an exception raised inside a library's import can
    be swallowed by it (numpy, scipy) and leave the library half-initialised. So is one that
    arrives while SQLAlchemy works - a statement, a commit, a connection's close - which it
    ends cleanly before the interruption is raised.

    A study's worker whose study process is gone (``parent_gone``) is not held back: nothing
    waits for it, so the interruption is raised at once even inside an import (a library that
    swallows it leaves the worker to its loop, which stops before the next trial when its
    study is gone). Its clean-up (the trial failed, its run ended) still runs.
    """
    state: dict[str, int] = {"seen": 0, "pending": 0}

    def _orphan_importing(frame: FrameType | None) -> bool:
        """A worker without its study, inside an import (not SQLAlchemy: its writes finish)."""
        return parent_gone() and _importing(frame) and not _held_by_sqlalchemy(frame)

    def deliver(signum: int) -> None:
        state["seen"] += 1
        name = signal.Signals(signum).name
        if state["seen"] > 1 and not insist:
            return
        if state["seen"] > 2:  # the user insists: stop now, clean-up or not
            print(f"{name}: stopped during the clean-up", file=sys.stderr, flush=True)
            os._exit(128 + signum)
        if state["seen"] > 1:
            print(
                f"{name}: still cleaning up (once more stops at once)", file=sys.stderr, flush=True
            )
            return
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Terminated(signum)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if state["pending"]:
            return  # one is already on its way
        if state["seen"] == 0 and _held_back(frame) and not _orphan_importing(frame):
            state["pending"] = signum
            signal.setitimer(signal.ITIMER_REAL, _RECHECK)
            return
        deliver(signum)

    def checkpoint() -> None:
        if state["pending"]:
            signal.setitimer(signal.ITIMER_REAL, 0)
            held, state["pending"] = state["pending"], 0
            deliver(held)

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        if not state["pending"]:
            return
        if _held_back(frame) and not _orphan_importing(frame):
            signal.setitimer(signal.ITIMER_REAL, _RECHECK)
            return
        held, state["pending"] = state["pending"], 0
        deliver(held)

    try:
        previous = {s: signal.signal(s, on_signal) for s in _CAUGHT}
        previous[signal.SIGALRM] = signal.signal(signal.SIGALRM, on_alarm)
    except ValueError:  # not the main thread (e.g. main() called from a thread): leave as is
        yield lambda: None
        return
    try:
        yield checkpoint
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for s, h in previous.items():
            signal.signal(s, h)
