"""Deprecated module path: the training step lives in ``engines.steps`` with the pruning
event."""

from __future__ import annotations

from .steps import LOSSES, Trainer, loss_value, reset_optimizer

__all__ = ["LOSSES", "Trainer", "loss_value", "reset_optimizer"]
