"""The pluggy hook specifications: what a plugin may provide, one hook per kind.

Each hook returns a list. A plugin package declares an entry point in the ``evoprune`` group
and implements any of these with ``@hookimpl``; see ``docs/plugins.md``.
"""

from __future__ import annotations

from typing import Any

import pluggy

__all__ = ["KINDS", "PROJECT", "HookSpecs", "hookimpl", "hookspec"]

PROJECT = "evoprune"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

#: kind -> hook that provides it
KINDS = {
    "engine": "evoprune_register_engines",
    "operator": "evoprune_register_operators",
    "schedule": "evoprune_register_schedules",
    "dataset": "evoprune_register_datasets",
    "tracker": "evoprune_register_trackers",
}


class HookSpecs:
    """The hooks a plugin may implement (each returns a list)."""

    @hookspec
    def evoprune_register_engines(self) -> list[Any]:
        """Engine classes (subclasses of ``evoprune_core.Engine``)."""

    @hookspec
    def evoprune_register_operators(self) -> list[Any]:
        """Operator classes (subclasses of ``evoprune_core.Operator``)."""

    @hookspec
    def evoprune_register_schedules(self) -> list[Any]:
        """Schedule classes (subclasses of ``evoprune_core.Schedule``)."""

    @hookspec
    def evoprune_register_datasets(self) -> list[Any]:
        """``evoprune_core.DatasetSpec`` instances."""

    @hookspec
    def evoprune_register_trackers(self) -> list[Any]:
        """Tracker classes (subclasses of ``evoprune_core.tracking.TrackerBackend``), selected
        by a study's or evolution's ``tracking = "<name>"``."""
