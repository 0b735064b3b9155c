"""The operator context of a conv population: one ``LayerView`` per parameter layer.

A conv layer's pruning unit is an output channel. Its weights are shown output-first -
``(n, out, in, k, k)`` for conv2d, and torch's ``(in, out, k, k)`` of a transposed conv with
the first two axes swapped - and its activations are each channel's mean over the spatial
positions of every calibration row, ``(n, S, out)``, so an operator written against units
reads a conv layer like a dense one. Masks come back in the same orientation.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..operators import LayerMask, LayerView
from ..population import ConvPopulation

__all__ = ["conv_layer_views", "conv_masks_to_flat", "unit_activations"]


def _out_first(kind: str, t: Tensor) -> Tensor:
    """``(..., w0, w1, k, k)`` torch layout -> output units first (swap for a transposed conv)."""
    return t.transpose(-4, -3) if kind == "conv_transpose2d" else t


def unit_activations(act: Tensor) -> Tensor:
    """``(n, S, c, h, w)`` -> each channel's spatial mean ``(n, S, c)``; flat ``(n, S, f)`` as is."""
    return act.mean((3, 4)) if act.dim() == 5 else act


def conv_layer_views(
    sub: ConvPopulation, acts: list[Tensor], grads: Tensor | None
) -> list[LayerView]:
    """Views of every parameter layer of ``sub`` (copies on the CPU); ``grads`` ``(n, K, P)``."""
    layers: list[LayerView] = []
    offset = 0
    for part, stack in sub.parts():
        for i, pl in enumerate(stack.layers):
            kind = pl.kind
            gw = gb = None
            if grads is not None:
                g = grads[:, :, offset : offset + stack.size]
                gw = g[:, :, pl.start : pl.bias_start].unflatten(2, pl.weight_shape)
                gw = _out_first(kind, gw).contiguous()
                gb = g[:, :, pl.bias_start : pl.end].contiguous()
            last = part == "decoder" and i == stack.n_layers - 1
            layers.append(
                LayerView(
                    name=f"{part}.{i}",
                    part=part,
                    index=i,
                    weight=_out_first(kind, stack.weight(i)).cpu().contiguous(),
                    bias=stack.bias(i).cpu().clone(),
                    weight_mask=_out_first(kind, stack.weight(i, stack.masks)).cpu() > 0,
                    bias_mask=stack.bias(i, stack.masks).cpu() > 0,
                    activation="sigmoid" if last else pl.act,
                    is_output=last,
                    activations=unit_activations(acts[len(layers)]) if acts else None,
                    weight_grads=gw,
                    bias_grads=gb,
                    kind=kind,
                )
            )
        offset += stack.size
    return layers


def conv_masks_to_flat(layers: tuple[LayerView, ...], masks: list[LayerMask], n: int) -> Tensor:
    """Checked per-layer masks back into the population's ``(n, P)`` column layout (0/1)."""
    parts = []
    for lv, m in zip(layers, masks):
        parts.append(_out_first(lv.kind, m.weight).reshape(n, -1))
        parts.append(m.bias.reshape(n, -1))
    return torch.cat(parts, 1).float()
