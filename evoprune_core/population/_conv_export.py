"""Export of a conv population member: ``torch.nn`` modules with dead channels removed.

Between two consecutive parameter layers lies a boundary of *slots*: the channels of a conv
output (read by a conv, or by a dense layer through a flatten: ``h*w`` inputs per slot), the
features between two dense layers, or the channels a dense layer's output is unflattened into
(``h*w`` units per slot). A slot is dead when every unit feeding it has all its incoming
weights and bias pruned and its activation maps 0 to 0 (ReLU, tanh, identity: the slot then
carries zeros through any pooling), or when every weight reading it is pruned. Dead slots are
removed physically from both layers - ``nn.Conv2d``/``nn.ConvTranspose2d``/``nn.Linear`` with
fewer channels or features - which leaves the outputs unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from ._layers import LayerSpec
from ._layerstack import _module

if TYPE_CHECKING:
    from ._conv import ConvPopulation

__all__ = ["CompactConvAutoencoder", "compact_conv"]

_ZERO_AT_ZERO = ("relu", "tanh", "identity")


class CompactConvAutoencoder(nn.Module):
    """A conv autoencoder exported from a population member; takes and returns flat rows."""

    def __init__(
        self, input_shape: tuple[int, ...], encoder: nn.Sequential, decoder: nn.Sequential
    ) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, x: Tensor) -> Tensor:
        img = x.reshape(x.shape[0], *self.input_shape)
        return self.decoder(self.encoder(img)).flatten(1)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _rows(kind: str, w: Tensor) -> Tensor:
    """Per output unit, its incoming weights flattened: ``(out, -1)``."""
    return (w.transpose(0, 1) if kind == "conv_transpose2d" else w).flatten(1)


def _readers(kind: str, w: Tensor) -> Tensor:
    """Per input unit, the weights reading it flattened: ``(in, -1)``."""
    return (w if kind == "conv_transpose2d" else w.transpose(0, 1)).flatten(1)


def compact_conv(pop: ConvPopulation, member: int = 0) -> CompactConvAutoencoder:
    """Member ``member`` of ``pop`` as modules with dead slots removed (see the module)."""
    specs: list[LayerSpec] = []
    ws: list[Tensor] = []
    bs: list[Tensor] = []
    acts: list[str] = []
    kinds: list[str] = []
    n_enc_specs = len(pop.arch.encoder)
    for _part, stack in pop.parts():
        specs.extend(stack.specs)
        for i, pl in enumerate(stack.layers):
            m = member
            ws.append((stack.weight(i)[m] * stack.weight(i, stack.masks)[m]).detach().cpu())
            bs.append((stack.bias(i)[m] * stack.bias(i, stack.masks)[m]).detach().cpu())
            acts.append(pl.act)
            kinds.append(pl.kind)
    # keep[j]: which output units of parameter layer j survive; keep_in[j]: which inputs
    keep_out: list[Tensor] = []
    keep_in: list[Tensor] = [torch.ones(_readers(kinds[0], ws[0]).shape[0], dtype=torch.bool)]
    slots_of: list[int] = []
    for j in range(len(ws) - 1):
        rows, readers = _rows(kinds[j], ws[j]), _readers(kinds[j + 1], ws[j + 1])
        units, inputs = rows.shape[0], readers.shape[0]
        slots = min(units, inputs)
        dead_in = ((rows != 0).any(1) | (bs[j] != 0)).logical_not()
        if acts[j] not in _ZERO_AT_ZERO:
            dead_in = torch.zeros_like(dead_in)
        unused = (readers != 0).any(1).logical_not()
        dead = dead_in.view(slots, -1).all(1) | unused.view(slots, -1).all(1)
        if bool(dead.all()):
            dead[0] = False  # a layer keeps one slot (an empty conv is not a module)
        alive = ~dead
        keep_out.append(alive.repeat_interleave(units // slots))
        keep_in.append(alive.repeat_interleave(inputs // slots))
        slots_of.append(int(alive.sum()))
    keep_out.append(torch.ones(_rows(kinds[-1], ws[-1]).shape[0], dtype=torch.bool))
    mods: list[nn.Module] = []
    j = 0
    for s in specs:
        if s.has_params:
            w, b, ko, ki = ws[j], bs[j], keep_out[j], keep_in[j]
            mod: nn.Module
            if s.kind == "conv2d":
                w = w[ko][:, ki]
                mod = nn.Conv2d(w.shape[1], w.shape[0], s.kernel, s.stride, s.padding)
            elif s.kind == "conv_transpose2d":
                w = w[ki][:, ko]
                mod = nn.ConvTranspose2d(
                    w.shape[0], w.shape[1], s.kernel, s.stride, s.padding, s.output_padding
                )
            else:
                w = w[ko][:, ki]
                mod = nn.Linear(w.shape[1], w.shape[0])
            with torch.no_grad():
                mod.weight.copy_(w)
                mod.bias.copy_(b[ko])
            mods.append(mod)
            j += 1
        elif s.kind == "unflatten":
            mods.append(nn.Unflatten(1, (slots_of[j - 1], *s.shape[1:])))
        else:
            mods.append(_module(s, ()))
    enc_count = n_enc_specs
    decoder = nn.Sequential(*mods[enc_count:], nn.Sigmoid())
    return CompactConvAutoencoder(pop.arch.input_shape, nn.Sequential(*mods[:enc_count]), decoder)
