"""Populations of masked networks: shapes, batched maths, state, export.

``_arch`` (widths and presets), ``_stack`` (N perceptrons of one shape as views into flat
buffers: batched forward/backward), ``_population`` (N autoencoders: masks, Adam, pruning,
inference, accounting, persistence), ``_export`` (a member as a dense ``nn.Module``);
``_layers`` (generic layer specs: conv2d, conv_transpose2d, dense, pools, flatten/unflatten,
activations), ``_layerstack`` (N networks of one layer list as one grouped program, with Adam
and persistent masks), ``_conv_arch`` (the conv presets ``conv-small`` and ``conv-standard``),
``_conv`` (N conv autoencoders), ``_conv_export`` (a conv member with dead channels removed).
"""

from __future__ import annotations

from ._arch import PRESETS, Architecture, n_params
from ._conv import ConvPopulation
from ._conv_arch import CONV_PRESETS, ConvArchitecture
from ._export import CompactAutoencoder, compact
from ._layers import (
    ACTIVATIONS,
    KINDS,
    LayerSpec,
    ParamLayer,
    activation,
    avg_pool2d,
    conv2d,
    conv_transpose2d,
    dense,
    flatten,
    infer_shapes,
    max_pool2d,
    unflatten,
)
from ._layerstack import LayerStack, adam_update
from ._population import Population, Sparsity
from ._stack import Stack

__all__ = [
    "ACTIVATIONS",
    "CONV_PRESETS",
    "KINDS",
    "PRESETS",
    "Architecture",
    "CompactAutoencoder",
    "ConvArchitecture",
    "ConvPopulation",
    "LayerSpec",
    "LayerStack",
    "ParamLayer",
    "Population",
    "Sparsity",
    "Stack",
    "activation",
    "adam_update",
    "avg_pool2d",
    "compact",
    "conv2d",
    "conv_transpose2d",
    "dense",
    "flatten",
    "infer_shapes",
    "max_pool2d",
    "n_params",
    "unflatten",
]
