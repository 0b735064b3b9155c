"""The built-in engines, operators, schedules and datasets, registered through the public hooks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .hookspecs import hookimpl

if TYPE_CHECKING:
    from .data import DatasetSpec
    from .engines.base import Engine
    from .operators import Operator
    from .schedules import Schedule
    from .tracking import TrackerBackend

__all__ = [
    "evoprune_register_datasets",
    "evoprune_register_engines",
    "evoprune_register_operators",
    "evoprune_register_schedules",
    "evoprune_register_trackers",
]


@hookimpl
def evoprune_register_engines() -> list[type[Engine]]:
    from .engines import builtin_engines

    return builtin_engines()


@hookimpl
def evoprune_register_operators() -> list[type[Operator]]:
    from .evolve.operator import FormulaOperator
    from .operators import builtin_operators

    return [*builtin_operators(), FormulaOperator]


@hookimpl
def evoprune_register_schedules() -> list[type[Schedule]]:
    from .schedules import builtin_schedules

    return builtin_schedules()


@hookimpl
def evoprune_register_datasets() -> list[DatasetSpec]:
    from .data import builtin_datasets

    return builtin_datasets()


@hookimpl
def evoprune_register_trackers() -> list[type[TrackerBackend]]:
    from .tracking import builtin_trackers

    return builtin_trackers()
