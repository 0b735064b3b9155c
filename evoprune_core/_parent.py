"""A study's worker process and the study process that started it."""

from __future__ import annotations

import os

__all__ = ["PARENT_ENV", "parent_gone"]

PARENT_ENV = "EVOPRUNE_STUDY_PARENT"


def parent_gone() -> bool:
    """Whether this is a study's worker process whose study process has died (the worker was
    re-parented): the study names itself in ``EVOPRUNE_STUDY_PARENT`` when it starts workers."""
    expected = os.environ.get(PARENT_ENV, "")
    return expected.isdigit() and os.getppid() != int(expected)
