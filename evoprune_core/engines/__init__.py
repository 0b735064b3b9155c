"""Engines: ``Engine.run(resolved run, observer, dataset)`` -> ``RunResult``.

They know nothing of Optuna or of the plugin registry: the configuration layer hands them a
:class:`~evoprune_core.resolved.ResolvedRun`. The built-ins register through the same hook as
plugin engines (``evoprune_register_engines``). To run a configuration file, see
``evoprune_core.load_run`` / ``evoprune_core.run``.
"""

from __future__ import annotations

from .base import SHARED_KEYS, Engine
from .canonical import CanonicalEngine, run_canonical
from .coevolution import CoevolutionEngine, run_coevolution
from .result import Observer, RunResult

__all__ = [
    "SHARED_KEYS",
    "CanonicalEngine",
    "CoevolutionEngine",
    "Engine",
    "Observer",
    "RunResult",
    "builtin_engines",
    "run_canonical",
    "run_coevolution",
]


def builtin_engines() -> list[type[Engine]]:
    return [CanonicalEngine, CoevolutionEngine]
