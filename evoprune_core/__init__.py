"""evoprune: evolutionary pruning of autoencoders - operators, schedules, engines, studies."""

from __future__ import annotations

from .config import RunConfig, load_run, load_run_config
from .data import Dataset, DatasetSpec, binary_clustering, digits, from_file
from .engines import Engine, Observer, RunResult, run
from .errors import ConfigError, DataError, EvopruneError, PluginError, TrialFailed
from .operators import LayerMask, LayerView, Operator, PruneContext
from .params import Param
from .plugins import Registry, hookimpl
from .population import Architecture, CompactAutoencoder, Population, Sparsity
from .resolved import Provenance, ResolvedRun, resolve
from .schedules import Schedule
from .version import __version__

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
