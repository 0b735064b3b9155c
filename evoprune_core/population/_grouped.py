"""The grouped-convolution program of a ``LayerStack`` (stacks with a stride-1 conv layer).

Image activations are ``(B, N*C, H, W)`` - member ``m``'s channels at ``m*C .. m*C+C-1`` -
channels-last in memory, so one oneDNN ``conv2d``/``conv_transpose2d`` with ``groups=N``
computes every member (the first layer, whose input all members share, is one ungrouped
convolution with the members' filters stacked); flat activations are ``(N, B, F)`` and a dense
layer is one ``baddbmm``. oneDNN convolves a stride-1 layer without copying its input k*k
times, which im2col (``_convops``) would: vgg-small's 3x3 stride-1 convs ran ~3 times slower
that way. Backward is autograd.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from ._layers import LayerSpec

if TYPE_CHECKING:
    from ._layerstack import LayerStack

__all__ = ["grouped_forward"]

_CL = torch.channels_last


def grouped_forward(
    stack: LayerStack,
    x: Tensor,
    params: Sequence[tuple[Tensor, Tensor]],
    record: list[Tensor] | None,
    act: dict[str, Callable[[Tensor], Tensor]],
) -> Tensor:
    """``LayerStack.forward`` as grouped convolutions (same contract)."""
    n = stack.n
    per_member = x.dim() == len(stack.in_shape) + 2
    h = x
    form = "members" if per_member else "shared"
    if per_member and len(stack.in_shape) == 3:
        h, form = _group(x), "grouped"
    layer = 0
    i = 0
    while i < len(stack.specs):
        s = stack.specs[i]
        if s.has_params:
            w, b = params[layer]
            h, form = _param_forward(s, w, b, h, form, n)
            pl = stack.layers[layer]
            if pl.act != "identity":
                h = act[pl.act](h)
                i += 1
            if record is not None:
                record.append(_as_members(h, form, n, stack.shapes[i]))
            layer += 1
        elif s.kind == "activation":
            h = act[s.fn](h)
        elif s.kind in ("max_pool2d", "avg_pool2d"):
            pool = F.max_pool2d if s.kind == "max_pool2d" else F.avg_pool2d
            h = pool(h, s.kernel, s.stride, s.padding)
        elif s.kind == "flatten":
            if form == "grouped":
                b_ = h.shape[0]
                h, form = h.reshape(b_, n, -1).transpose(0, 1), "members"
            else:
                h = h.flatten(-3)
        else:  # unflatten
            if form == "members":
                h, form = _group(torch.unflatten(h, 2, s.shape)), "grouped"
            else:
                h = torch.unflatten(h, 1, s.shape)
        i += 1
    return _as_members(h, form, n, stack.out_shape)


def _group(x: Tensor) -> Tensor:
    """``(N, B, C, H, W)`` -> ``(B, N*C, H, W)``, channels-last in memory (one copy)."""
    n, b, c, h, w = x.shape
    return x.permute(1, 3, 4, 0, 2).reshape(b, h, w, n * c).permute(0, 3, 1, 2)


def _as_members(h: Tensor, form: str, n: int, shape: tuple[int, ...]) -> Tensor:
    """Any internal form as ``(N, B, *shape)``."""
    if form == "shared":
        return h.unsqueeze(0).expand(n, *h.shape)
    if form == "grouped":
        return h.reshape(h.shape[0], n, *shape).transpose(0, 1)
    return h


def _param_forward(
    s: LayerSpec, w: Tensor, b: Tensor, h: Tensor, form: str, n: int
) -> tuple[Tensor, str]:
    """One parameter layer of all members; returns the output and its form."""
    if s.kind == "dense":
        if form == "shared":
            return torch.matmul(h, w.transpose(1, 2)) + b.unsqueeze(1), "members"
        return torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2)), "members"
    bias = b.reshape(-1)
    h = h.contiguous(memory_format=_CL)  # oneDNN's grouped convolutions are fastest in NHWC
    if s.kind == "conv2d":
        weight = w.reshape(-1, *w.shape[2:]).contiguous(memory_format=_CL)  # (N*out, in, k, k)
        groups = 1 if form == "shared" else n
        return F.conv2d(h, weight, bias, s.stride, s.padding, 1, groups), "grouped"
    if form == "shared":  # (in, N*out, k, k): the members' filters side by side
        weight = w.transpose(0, 1).reshape(w.shape[1], -1, *w.shape[3:])
        groups = 1
    else:
        weight = w.reshape(-1, *w.shape[2:])  # (N*in, out, k, k)
        groups = n
    weight = weight.contiguous(memory_format=_CL)
    out = F.conv_transpose2d(h, weight, bias, s.stride, s.padding, s.output_padding, groups)
    return out, "grouped"
