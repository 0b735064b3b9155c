"""Engines: ``Engine.run(resolved run, observer, dataset)`` -> ``RunResult``.

They know nothing of Optuna or of the plugin registry: the configuration layer hands them a
:class:`~evoprune_core.resolved.ResolvedRun`. The built-ins register through the same hook as
plugin engines (``evoprune_register_engines``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import SHARED_KEYS, Engine
from .canonical import CanonicalEngine, run_canonical
from .coevolution import CoevolutionEngine, run_coevolution
from .common import Observer, RunResult

if TYPE_CHECKING:
    from ..config import RunConfig
    from ..data import Dataset
    from ..plugins import Registry
    from ..resolved import ResolvedRun

__all__ = [
    "SHARED_KEYS",
    "CanonicalEngine",
    "CoevolutionEngine",
    "Engine",
    "Observer",
    "RunResult",
    "builtin_engines",
    "run",
    "run_canonical",
    "run_coevolution",
]


def builtin_engines() -> list[type[Engine]]:
    return [CanonicalEngine, CoevolutionEngine]


def run(
    cfg: RunConfig | ResolvedRun,
    registry: Registry | None = None,
    observer: Observer | None = None,
    dataset: Dataset | None = None,
) -> RunResult:
    """Convenience: resolve ``cfg`` (unless it already is) and run its engine."""
    from ..resolved import run_config

    return run_config(cfg, registry, observer, dataset)
