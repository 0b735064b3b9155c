"""Deprecated module path (kept for plugin engines written against ``docs/plugins.md``):
``engines.runtime`` (streams, compute, calibration) and ``engines.result`` (``RunResult``,
``Observer``)."""

from __future__ import annotations

import warnings

from .result import Observer, RunResult
from .runtime import (
    Compute,
    Streams,
    calibration,
    check_finite,
    cpu_numerics,
    resolve_compute,
)

__all__ = [
    "Compute",
    "Observer",
    "RunResult",
    "Streams",
    "calibration",
    "check_finite",
    "cpu_numerics",
    "resolve_compute",
]

warnings.warn(
    "evoprune_core.engines.common is deprecated: import from evoprune_core.engines.runtime and evoprune_core.engines.result",
    DeprecationWarning,
    stacklevel=2,
)
