"""Export of a population member: a dense ``nn.Module`` with dead units removed."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from ._population import Population

__all__ = ["CompactAutoencoder", "compact"]


class CompactAutoencoder(nn.Module):
    """A dense autoencoder exported from a population member (plain ``nn.Linear`` layers)."""

    def __init__(
        self, enc_w: list[Tensor], enc_b: list[Tensor], dec_w: list[Tensor], dec_b: list[Tensor]
    ) -> None:
        super().__init__()
        self.encoder = _dense(enc_w, enc_b, final=nn.ReLU())
        self.decoder = _dense(dec_w, dec_b, final=nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.decoder(self.encoder(x))
        return out

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _dense(ws: list[Tensor], bs: list[Tensor], final: nn.Module) -> nn.Sequential:
    mods: list[nn.Module] = []
    for i, (w, b) in enumerate(zip(ws, bs)):
        lin = nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(w)
            lin.bias.copy_(b)
        mods.append(lin)
        mods.append(final if i == len(ws) - 1 else nn.ReLU())
    return nn.Sequential(*mods)


def compact(pop: Population, member: int = 0) -> CompactAutoencoder:
    """Member ``member`` as a dense ``nn.Module`` with dead units physically removed.

    The module is on the CPU. A hidden unit is dead when its incoming weights and bias are all pruned (it outputs
    ReLU(0) = 0) or when all its outgoing weights are pruned (nothing reads it); removing
    either kind leaves the outputs unchanged.
    """
    ws: list[Tensor] = []
    bs: list[Tensor] = []
    for _part, stack in pop.parts():
        for layer in range(stack.n_layers):
            w = stack.weight(layer)[member] * stack.weight(layer, stack.masks)[member]
            ws.append(w.t().cpu())
            bs.append((stack.bias(layer)[member] * stack.bias(layer, stack.masks)[member]).cpu())
    n_enc = pop.encoders.n_layers
    # units of the outputs of layers 0..L-2 may be removed (the last layer is the output)
    keep_units = []
    for i in range(len(ws) - 1):
        incoming = (ws[i] != 0).any(1) | (bs[i] != 0)
        outgoing = (ws[i + 1] != 0).any(0)
        keep_units.append(incoming & outgoing)
    layers_w: list[Tensor] = []
    layers_b: list[Tensor] = []
    for i, (w, b) in enumerate(zip(ws, bs)):
        rows = keep_units[i] if i < len(ws) - 1 else torch.ones(w.shape[0], dtype=torch.bool)
        cols = keep_units[i - 1] if i > 0 else torch.ones(w.shape[1], dtype=torch.bool)
        layers_w.append(w[rows][:, cols].clone())
        layers_b.append(b[rows].clone())
    return CompactAutoencoder(
        layers_w[:n_enc], layers_b[:n_enc], layers_w[n_enc:], layers_b[n_enc:]
    )
