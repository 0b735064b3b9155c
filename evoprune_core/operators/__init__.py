"""Pruning operators: the API (``_api``) and the built-ins (``_builtin``).

Plugin operators subclass :class:`Operator`; see ``docs/plugins.md``.
"""

from __future__ import annotations

from ._api import (
    DENSE_LAYERS,
    LAYER_KINDS,
    NEEDS,
    LayerMask,
    LayerView,
    Operator,
    PruneContext,
    alive_units,
    outgoing_weights,
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
    "DENSE_LAYERS",
    "LAYER_KINDS",
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
    "outgoing_weights",
    "prune_fraction",
    "structured_mask",
]
