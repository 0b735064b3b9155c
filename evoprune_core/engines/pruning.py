"""Deprecated module path (kept for plugin engines written against ``docs/plugins.md``): the
pruning event lives in ``engines.steps`` with the training step."""

from __future__ import annotations

import warnings

from .steps import (
    PruneOutcome,
    apply_operator,
    build_context,
    counted,
    masks_to_flat,
    prune_event,
    pseudo_labels,
    zero_entries,
)

__all__ = [
    "PruneOutcome",
    "apply_operator",
    "build_context",
    "counted",
    "masks_to_flat",
    "prune_event",
    "pseudo_labels",
    "zero_entries",
]

warnings.warn(
    "evoprune_core.engines.pruning is deprecated: import from evoprune_core.engines.steps",
    DeprecationWarning,
    stacklevel=2,
)
