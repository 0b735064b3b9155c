"""Deprecated module path: the training step lives in ``engines.steps`` with the pruning
event."""

from __future__ import annotations

import warnings

from .steps import LOSSES, Trainer, loss_value, reset_optimizer

__all__ = ["LOSSES", "Trainer", "loss_value", "reset_optimizer"]

warnings.warn(
    "evoprune_core.engines.training is deprecated: import from evoprune_core.engines.steps",
    DeprecationWarning,
    stacklevel=2,
)
