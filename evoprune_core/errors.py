"""The one error family of evoprune; the CLI turns these into one line and exit status 2."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataError",
    "EvopruneError",
    "PluginError",
    "StoreError",
    "TrialFailed",
]


class EvopruneError(Exception):
    """Base class of every error evoprune raises on purpose (bad input, not bugs)."""


class ConfigError(EvopruneError):
    """A configuration file or override is invalid."""


class DataError(EvopruneError):
    """A dataset cannot be built or read."""


class PluginError(EvopruneError):
    """A plugin is missing, broken or ambiguous."""


class StoreError(EvopruneError):
    """A store or output location cannot be used (unwritable, corrupt, half-migrated)."""


class TrialFailed(EvopruneError):
    """A run diverged (NaN or infinite loss) or otherwise cannot produce a result."""
