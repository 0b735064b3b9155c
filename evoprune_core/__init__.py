"""evoprune: evolutionary pruning of autoencoders - operators, schedules, engines, studies.

The public names are imported on first use (PEP 562), so that ``evoprune`` starts without
loading torch and an early Ctrl-C still ends as ``interrupted``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .version import __version__

if TYPE_CHECKING:
    from .config import RunConfig
    from .data import Dataset, DatasetSpec, binary_clustering, digits, from_file
    from .engines import Engine, Observer, RunResult
    from .errors import ConfigError, DataError, EvopruneError, PluginError, TrialFailed
    from .loading import load_run, load_run_config, run
    from .operators import LayerMask, LayerView, Operator, PruneContext
    from .params import Param
    from .plugins import Registry, hookimpl
    from .population import Architecture, CompactAutoencoder, Population, Sparsity
    from .resolved import Provenance, ResolvedRun, resolve
    from .schedules import Schedule

__all__ = [
    "Architecture",
    "CompactAutoencoder",
    "ConfigError",
    "DataError",
    "Dataset",
    "DatasetSpec",
    "Engine",
    "EvopruneError",
    "LayerMask",
    "LayerView",
    "Observer",
    "Operator",
    "Param",
    "PluginError",
    "Population",
    "Provenance",
    "PruneContext",
    "Registry",
    "ResolvedRun",
    "RunConfig",
    "RunResult",
    "Schedule",
    "Sparsity",
    "TrialFailed",
    "__version__",
    "binary_clustering",
    "digits",
    "from_file",
    "hookimpl",
    "load_run",
    "load_run_config",
    "resolve",
    "run",
]

_EXPORTS = {
    "RunConfig": ".config",
    "load_run": ".loading",
    "load_run_config": ".loading",
    "Dataset": ".data",
    "DatasetSpec": ".data",
    "binary_clustering": ".data",
    "digits": ".data",
    "from_file": ".data",
    "Engine": ".engines",
    "Observer": ".engines",
    "RunResult": ".engines",
    "run": ".loading",
    "ConfigError": ".errors",
    "DataError": ".errors",
    "EvopruneError": ".errors",
    "PluginError": ".errors",
    "TrialFailed": ".errors",
    "LayerMask": ".operators",
    "LayerView": ".operators",
    "Operator": ".operators",
    "PruneContext": ".operators",
    "Param": ".params",
    "Registry": ".plugins",
    "hookimpl": ".plugins",
    "Architecture": ".population",
    "CompactAutoencoder": ".population",
    "Population": ".population",
    "Sparsity": ".population",
    "Provenance": ".resolved",
    "ResolvedRun": ".resolved",
    "resolve": ".resolved",
    "Schedule": ".schedules",
}


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
