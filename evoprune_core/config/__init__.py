"""The run configuration: the schema (``_schema``) and reading TOML with overrides (``_toml``).

``evoprune_core.load_run`` / ``load_run_config`` (in ``evoprune_core.loading``) read a file,
apply ``--set`` overrides, validate it here and resolve its components once.
"""

from __future__ import annotations

from ._schema import (
    CoevolutionConfig,
    ComputeConfig,
    DataConfig,
    NetworkConfig,
    PruningConfig,
    RunConfig,
    TrainingConfig,
    resolve_run,
)
from ._toml import (
    apply_overrides,
    flatten,
    format_validation_error,
    parse_override,
    read_toml,
    set_dotted,
    validate,
)

__all__ = [
    "CoevolutionConfig",
    "ComputeConfig",
    "DataConfig",
    "NetworkConfig",
    "PruningConfig",
    "RunConfig",
    "TrainingConfig",
    "apply_overrides",
    "flatten",
    "format_validation_error",
    "parse_override",
    "read_toml",
    "resolve_run",
    "set_dotted",
    "validate",
]
