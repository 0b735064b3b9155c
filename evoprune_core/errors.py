"""The one error family of evoprune; the CLI turns these into one line and exit status 2."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataError",
    "EvopruneError",
    "OutputError",
    "PluginError",
    "StoreError",
    "TrialFailed",
]


class EvopruneError(Exception):
    """Base class of every error evoprune raises on purpose (bad input, not bugs)."""

    exit_status = 2


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


class OutputError(StoreError):
    """A result could not be written after the work was done (a full disk, an I/O error):
    exit status 1, and nothing half-written is left behind."""

    exit_status = 1
