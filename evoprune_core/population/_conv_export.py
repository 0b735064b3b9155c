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

__all__ = ["CompactConvAutoencoder", "compact_conv", "live_masks", "slot_keeps"]

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
        out: Tensor = self.decoder(self.encoder(img))
        return out.flatten(1)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _rows(kind: str, w: Tensor) -> Tensor:
    """Per member and output unit, its incoming weights flattened: ``(n, out, -1)``."""
    return (w.transpose(1, 2) if kind == "conv_transpose2d" else w).flatten(2)


def _readers(kind: str, w: Tensor) -> Tensor:
    """Per member and input unit, the weights reading it flattened: ``(n, in, -1)``."""
    return (w if kind == "conv_transpose2d" else w.transpose(1, 2)).flatten(2)


def slot_keeps(
    kinds: list[str], acts: list[str], ws: list[Tensor], bs: list[Tensor]
) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
    """Which output units (``keep_out[j]``) and inputs (``keep_in[j]``) of each parameter layer
    ``j`` survive, and the alive slots of each boundary, for a batch of members at once.

    ``ws[j]`` is ``(n, *weight shape)`` and ``bs[j]`` ``(n, out)``: non-zero where an entry is
    alive (the pruned weights and bias, or the masks themselves). Returns boolean
    ``keep_out[j]`` ``(n, out)``, ``keep_in[j]`` ``(n, in)`` and ``alive[j]`` ``(n, slots)``
    between layers ``j`` and ``j + 1`` (see the module for what a dead slot is).
    """
    n = ws[0].shape[0]
    keep_out: list[Tensor] = []
    keep_in = [torch.ones(n, _readers(kinds[0], ws[0]).shape[1], dtype=torch.bool)]
    alive_slots: list[Tensor] = []
    for j in range(len(ws) - 1):
        rows, readers = _rows(kinds[j], ws[j]), _readers(kinds[j + 1], ws[j + 1])
        units, inputs = rows.shape[1], readers.shape[1]
        slots = min(units, inputs)
        dead_in = ((rows != 0).any(2) | (bs[j] != 0)).logical_not()
        if acts[j] not in _ZERO_AT_ZERO:
            dead_in = torch.zeros_like(dead_in)
        unused = (readers != 0).any(2).logical_not()
        dead = dead_in.view(n, slots, -1).all(2) | unused.view(n, slots, -1).all(2)
        dead[dead.all(1), 0] = False  # a layer keeps one slot (an empty conv is not a module)
        alive = ~dead
        keep_out.append(alive.repeat_interleave(units // slots, dim=1))
        keep_in.append(alive.repeat_interleave(inputs // slots, dim=1))
        alive_slots.append(alive)
    keep_out.append(torch.ones(n, _rows(kinds[-1], ws[-1]).shape[1], dtype=torch.bool))
    return keep_out, keep_in, alive_slots


def live_masks(pop: ConvPopulation) -> list[tuple[Tensor, Tensor]]:
    """Per parameter layer (encoder, then decoder), the ``(n, *weight shape)`` and ``(n, out)``
    masks of the entries that are alive *and* that the compact export keeps: alive entries of
    a dead slot's units, or reading a dead slot, are left out (they cannot change an output).
    What the sparsity and the remaining fractions count."""
    kinds: list[str] = []
    acts: list[str] = []
    ws: list[Tensor] = []
    bs: list[Tensor] = []
    for _part, stack in pop.parts():
        for i, pl in enumerate(stack.layers):
            ws.append(stack.weight(i, stack.masks).detach().cpu())
            bs.append(stack.bias(i, stack.masks).detach().cpu())
            kinds.append(pl.kind)
            acts.append(pl.act)
    keep_out, keep_in, _ = slot_keeps(kinds, acts, ws, bs)
    out = []
    for j, (w, b) in enumerate(zip(ws, bs)):
        ko, ki = keep_out[j], keep_in[j]
        extra = (1,) * (w.dim() - 3)
        if kinds[j] == "conv_transpose2d":  # (n, in, out, ...)
            keep = ki.view(*ki.shape, 1, *extra) & ko.view(ko.shape[0], 1, ko.shape[1], *extra)
        else:  # (n, out, in, ...)
            keep = ko.view(*ko.shape, 1, *extra) & ki.view(ki.shape[0], 1, ki.shape[1], *extra)
        out.append((w * keep, b * ko))
    return out


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
    keeps = slot_keeps(kinds, acts, [w[None] for w in ws], [b[None] for b in bs])
    keep_out = [k[0] for k in keeps[0]]
    keep_in = [k[0] for k in keeps[1]]
    slots_of = [int(a[0].sum()) for a in keeps[2]]
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
            assert mod.bias is not None  # built with a bias
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
