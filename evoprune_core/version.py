"""The installed evoprune version."""

from __future__ import annotations

import importlib.metadata as _md

try:
    __version__ = _md.version("evoprune")
except _md.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
