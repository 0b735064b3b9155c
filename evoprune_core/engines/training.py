"""Batched gradient training shared by the engines: losses, one step, one epoch."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..population import Population

__all__ = ["LOSSES", "Trainer", "loss_value"]

LOSSES = ("l1", "mse", "bce")


def loss_value(logits: Tensor, x: Tensor, loss: str) -> Tensor:
    """Per-member training loss ``(N,)`` of decoder logits against targets ``x``."""
    if loss == "bce":
        # softplus(z) - x z == BCE(sigmoid(z), x), stable for large |z|
        return (torch.nn.functional.softplus(logits) - x * logits).mean((1, 2))
    y = torch.sigmoid(logits)
    if loss == "mse":
        return (y - x).pow(2).mean((1, 2))
    return (y - x).abs().mean((1, 2))


def loss_grad(logits: Tensor, x: Tensor, loss: str) -> Tensor:
    """Gradient of each member's mean loss w.r.t. its decoder logits."""
    y = torch.sigmoid(logits)
    scale = 1.0 / (x.shape[-1] * x.shape[-2])
    if loss == "bce":
        return (y - x).mul_(scale)
    slope = y * (1.0 - y)
    if loss == "mse":
        return (y - x).mul_(slope).mul_(2.0 * scale)
    return torch.sign(y - x).mul_(slope).mul_(scale)


@dataclass
class Trainer:
    """Trains a population pair-wise (encoder i with decoder i) with per-member Adam.

    ``train_encoders``/``train_decoders`` let a variant update only one side.
    """

    loss: str = "bce"
    betas: tuple[float, float] = (0.5, 0.999)
    eps: float = 1e-8

    def gradients(self, pop: Population, x: Tensor, grad: Tensor) -> None:
        """Fill the gradient buffer ``grad`` (``(N, P)``, like ``pop.params``) for rows ``x``."""
        enc_cache: list[Tensor] = []
        dec_cache: list[Tensor] = []
        h = torch.relu(pop.encoders.forward(x, enc_cache))
        logits = pop.decoders.forward(h, dec_cache)
        g = loss_grad(logits, x, self.loss)
        split = pop.encoders.size
        gh = pop.decoders.backward(dec_cache, g, grad[:, split:], input_grad=True)
        gz = torch.ops.aten.threshold_backward(gh, h, 0.0)
        pop.encoders.backward(enc_cache, gz, grad[:, :split])

    def step(self, pop: Population, x: Tensor, lrs: list[float], grad: Tensor) -> None:
        """One minibatch step of every pair on the shared rows ``x`` (``(B, D)``)."""
        self.gradients(pop, x, grad)
        pop.adam_step(grad, lrs, self.betas, self.eps)

    @torch.no_grad()
    def epoch(
        self,
        pop: Population,
        data: Tensor,
        batch_size: int,
        lrs: list[float],
        generator: torch.Generator,
    ) -> None:
        """One pass over ``data`` in a fresh shuffled order, minibatches shared by all pairs."""
        order = torch.randperm(data.shape[0], generator=generator)
        rows = data.index_select(0, order)
        grad = torch.empty_like(pop.params)
        for s in range(0, rows.shape[0], batch_size):
            self.step(pop, rows[s : s + batch_size], lrs, grad)
