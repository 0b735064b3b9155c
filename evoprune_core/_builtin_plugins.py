"""The built-in engines, operators, schedules and datasets, registered through the public hooks."""

from __future__ import annotations

from typing import Any

from .hookspecs import hookimpl

__all__ = [
    "evoprune_register_datasets",
    "evoprune_register_engines",
    "evoprune_register_operators",
    "evoprune_register_schedules",
    "evoprune_register_trackers",
]


@hookimpl
def evoprune_register_engines() -> list[Any]:
    from .engines import builtin_engines

    return builtin_engines()


@hookimpl
def evoprune_register_operators() -> list[Any]:
    from .evolve.operator import FormulaOperator
    from .operators import builtin_operators

    return [*builtin_operators(), FormulaOperator]


@hookimpl
def evoprune_register_schedules() -> list[Any]:
    from .schedules import builtin_schedules

    return builtin_schedules()


@hookimpl
def evoprune_register_datasets() -> list[Any]:
    from .data import builtin_datasets

    return builtin_datasets()


@hookimpl
def evoprune_register_trackers() -> list[Any]:
    from .tracking import builtin_trackers

    return builtin_trackers()
