"""Pruning operators: the API (``_api``) and the built-ins (``_builtin``).

Plugin operators subclass :class:`Operator`; see ``docs/plugins.md``.
"""

from __future__ import annotations

from ._api import (
    NEEDS,
    LayerMask,
    LayerView,
    Operator,
    PruneContext,
    alive_units,
    prune_fraction,
    structured_mask,
)
from ._builtin import (
    ConjunctivePruning,
    MagnitudePruning,
    NoPruning,
    RandomPruning,
    VariancePruning,
    builtin_operators,
)
from ._builtin import _unit_probabilities as _unit_probabilities  # pinned by a unit test

__all__ = [
    "NEEDS",
    "ConjunctivePruning",
    "LayerMask",
    "LayerView",
    "MagnitudePruning",
    "NoPruning",
    "Operator",
    "PruneContext",
    "RandomPruning",
    "VariancePruning",
    "alive_units",
    "builtin_operators",
    "prune_fraction",
    "structured_mask",
]
