"""Populations of masked autoencoders: shapes, batched maths, state, export.

``_arch`` (widths and presets), ``_stack`` (N perceptrons of one shape as views into flat
buffers: batched forward/backward), ``_population`` (N autoencoders: masks, Adam, pruning,
inference, accounting, persistence), ``_export`` (a member as a dense ``nn.Module``).
"""

from __future__ import annotations

from ._arch import PRESETS, Architecture, n_params
from ._export import CompactAutoencoder, compact
from ._population import Population, Sparsity
from ._stack import Stack

__all__ = [
    "PRESETS",
    "Architecture",
    "CompactAutoencoder",
    "Population",
    "Sparsity",
    "Stack",
    "compact",
    "n_params",
]
