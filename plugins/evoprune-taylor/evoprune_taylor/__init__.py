"""evoprune-taylor: first-order Taylor pruning, registered through evoprune's plugin hooks.

The entry point ``taylor = "evoprune_taylor"`` (group ``evoprune``) points at this module;
evoprune registers it with pluggy, which finds the ``@hookimpl`` functions below.
"""

from __future__ import annotations

from evoprune_core import Operator, hookimpl

from .operator import TaylorPruning, taylor_importance

__all__ = ["TaylorPruning", "evoprune_register_operators", "taylor_importance"]
__version__ = "0.1.0"


@hookimpl
def evoprune_register_operators() -> list[type[Operator]]:
    """The operators this plugin provides."""
    return [TaylorPruning]
