"""Batched gradient training shared by the engines: losses, one step, one epoch."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..native import NativeKernels
from ..population import ConvPopulation, Population, Stack

__all__ = ["LOSSES", "Trainer", "loss_value", "reset_optimizer"]

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


def loss_grad(logits: Tensor, x: Tensor, loss: str, inplace: bool = False) -> Tensor:
    """Gradient of each member's mean loss w.r.t. its decoder logits.

    With ``inplace`` the result overwrites ``logits`` (saves two allocations per step).
    """
    y = torch.sigmoid_(logits) if inplace else torch.sigmoid(logits)
    scale = 1.0 / (x.shape[-1] * x.shape[-2])
    if loss == "bce":
        return y.sub_(x).mul_(scale) if inplace else (y - x).mul_(scale)
    slope = y * (1.0 - y)
    if loss == "mse":
        return (y - x).mul_(slope).mul_(2.0 * scale)
    return torch.sign(y - x).mul_(slope).mul_(scale)


def reset_optimizer(pop: Population | ConvPopulation) -> None:
    """Give every member a fresh Adam (moments and step count zero), as ``torch.optim.Adam``
    built anew would have; pruned entries keep their infinite second moment: still frozen."""
    pop.buffers["exp_avg"].zero_()
    pop.buffers["exp_avg_sq"].masked_fill_(pop.masks != 0, 0.0)
    pop.steps.zero_()


@dataclass
class Trainer:
    """Trains a population pair-wise (encoder i with decoder i) with per-member Adam.

    ``half_gradients``/``epoch_with_partners`` update one side against frozen partners (the
    coevolutionary "selected and random" variant). With ``native`` set, ``epoch`` runs in the
    fused C kernels on ``threads`` threads (same rows, same order, same Adam). With
    ``reset_each_step`` every minibatch step starts from a fresh Adam (the published Lipi-AE
    code builds one per minibatch: its first step is about ``lr * sign(g)``).
    """

    loss: str = "bce"
    betas: tuple[float, float] = (0.5, 0.999)
    eps: float = 1e-8
    native: NativeKernels | None = None
    threads: int = 1
    reset_each_step: bool = False

    def conv_loss(self, logits: Tensor, x: Tensor) -> Tensor:
        """Per-member training loss of a conv population (autograd differentiates it)."""
        return loss_value(logits, x, self.loss)

    def conv_logit_grad(self, logits: Tensor, x: Tensor) -> Tensor:
        """Gradient of each member's training loss w.r.t. its logits (the dense path's)."""
        return loss_grad(logits, x, self.loss)

    def gradients(self, pop: Population | ConvPopulation, x: Tensor, grad: Tensor) -> None:
        """Fill the gradient buffer ``grad`` (``(N, P)``, like ``pop.params``) for rows ``x``."""
        if isinstance(pop, ConvPopulation):
            pop.gradients(x, self.conv_loss, grad, self.conv_logit_grad)
            return
        x = x.to(pop.device)
        enc_cache: list[Tensor] = []
        dec_cache: list[Tensor] = []
        h = torch.relu(pop.encoders.forward(x, enc_cache))
        logits = pop.decoders.forward(h, dec_cache)
        g = loss_grad(logits, x, self.loss, inplace=True)
        split = pop.encoders.size
        gh = pop.decoders.backward(dec_cache, g, grad[:, split:], input_grad=True)
        gz = torch.ops.aten.threshold_backward(gh, h, 0.0)
        pop.encoders.backward(enc_cache, gz, grad[:, :split])

    def step(
        self, pop: Population | ConvPopulation, x: Tensor, lrs: list[float], grad: Tensor
    ) -> None:
        """One minibatch step of every pair on the shared rows ``x`` (``(B, D)``)."""
        self.gradients(pop, x, grad)
        pop.adam_step(grad, lrs, self.betas, self.eps)

    def epoch(
        self,
        pop: Population | ConvPopulation,
        data: Tensor,
        batch_size: int,
        lrs: list[float],
        generator: torch.Generator,
    ) -> None:
        """One pass over ``data`` in a fresh shuffled order, minibatches shared by all pairs."""
        with torch.no_grad():
            order = torch.randperm(data.shape[0], generator=generator)
            rows = data.index_select(0, order)
            if self.native is not None and self.native.supports(pop):
                self.native.train_epoch(
                    pop, rows, batch_size, lrs, self.loss, self.betas, self.eps, self.threads,
                    reset_each_step=self.reset_each_step,
                )  # fmt: skip
            else:
                self._pass(pop, rows, batch_size, lrs)

    def _pass(
        self, pop: Population | ConvPopulation, rows: Tensor, batch_size: int, lrs: list[float]
    ) -> None:
        grad = torch.empty_like(pop.params)
        for s in range(0, rows.shape[0], batch_size):
            if self.reset_each_step:
                reset_optimizer(pop)
            self.step(pop, rows[s : s + batch_size], lrs, grad)

    def half_gradients(
        self, train: Stack, partner: Stack, x: Tensor, out: Tensor, side: str
    ) -> None:
        """Gradients of ``train``'s parameters only, with ``partner`` (the other side) frozen.

        ``side`` says what ``train`` is ("encoder": ``train`` encodes and ``partner``
        decodes; "decoder": the reverse). ``out`` receives ``train``'s gradient columns.
        """
        x = x.to(train.params.device)
        if side == "encoder":
            enc_cache: list[Tensor] = []
            dec_cache: list[Tensor] = []
            h = torch.relu(train.forward(x, enc_cache))
            logits = partner.forward(h, dec_cache)
            g = loss_grad(logits, x, self.loss)
            gh = partner.backward(dec_cache, g, None, input_grad=True)
            assert gh is not None
            train.backward(enc_cache, torch.ops.aten.threshold_backward(gh, h, 0.0), out)
        else:
            dec_cache = []
            h = torch.relu_(partner.forward(x))
            logits = train.forward(h, dec_cache)
            train.backward(dec_cache, loss_grad(logits, x, self.loss), out)

    def epoch_with_partners(
        self,
        pop: Population | ConvPopulation,
        pool: Population | ConvPopulation,
        neighbours: Tensor,
        data: Tensor,
        batch_size: int,
        lrs: list[float],
        generator: torch.Generator,
        partner_generator: torch.Generator,
    ) -> None:
        """One epoch of the "selected and random" variant.

        Per minibatch, member i's encoder trains against a frozen copy of a random decoder of
        ``pool`` drawn from ``neighbours[i]``, and member i's decoder against a frozen copy of
        a random encoder drawn the same way (one Adam step for each network).
        """
        with torch.no_grad():
            order = torch.randperm(data.shape[0], generator=generator)
            rows = data.index_select(0, order)
            k = neighbours.shape[1]
            cells = torch.arange(pop.n)
            if self.native is not None and self.native.supports(pop) and self.native.supports(pool):
                partners = torch.stack(
                    [
                        neighbours[
                            cells, torch.randint(0, k, (2, pop.n), generator=partner_generator)
                        ]
                        for _ in range(0, rows.shape[0], batch_size)
                    ]
                )
                self.native.train_epoch(
                    pop, rows, batch_size, lrs, self.loss, self.betas, self.eps, self.threads,
                    pool=pool, partners=partners, reset_each_step=self.reset_each_step,
                )  # fmt: skip
                return
            if isinstance(pop, ConvPopulation) and isinstance(pool, ConvPopulation):
                self._conv_partners(pop, pool, neighbours, rows, batch_size, lrs, partner_generator)
                return
            assert isinstance(pop, Population) and isinstance(pool, Population)
            grad = torch.empty_like(pop.params)
            split = pop.encoders.size
            dev = pop.device
            enc_partner = Stack.standalone(pool.arch.encoder_dims, "relu", pop.n, dev)
            dec_partner = Stack.standalone(pool.arch.decoder_dims, "sigmoid", pop.n, dev)
            for s in range(0, rows.shape[0], batch_size):
                x = rows[s : s + batch_size]
                picks = torch.randint(0, k, (2, pop.n), generator=partner_generator)
                dec_rows = neighbours[cells, picks[0]].to(dev)
                enc_rows = neighbours[cells, picks[1]].to(dev)
                torch.index_select(pool.decoders.params, 0, dec_rows, out=dec_partner.params)
                torch.index_select(pool.encoders.params, 0, enc_rows, out=enc_partner.params)
                self.half_gradients(pop.encoders, dec_partner, x, grad[:, :split], "encoder")
                self.half_gradients(pop.decoders, enc_partner, x, grad[:, split:], "decoder")
                if self.reset_each_step:
                    reset_optimizer(pop)
                pop.steps.add_(1)
                pop.adam_step(grad, lrs, self.betas, self.eps, part="encoder", count=False)
                pop.adam_step(grad, lrs, self.betas, self.eps, part="decoder", count=False)

    def _conv_partners(
        self,
        pop: ConvPopulation,
        pool: ConvPopulation,
        neighbours: Tensor,
        rows: Tensor,
        batch_size: int,
        lrs: list[float],
        partner_generator: torch.Generator,
    ) -> None:
        """``epoch_with_partners`` for conv populations: same draws, same Adam half-steps."""
        grad = torch.empty_like(pop.params)
        k = neighbours.shape[1]
        cells = torch.arange(pop.n)
        for s in range(0, rows.shape[0], batch_size):
            x = rows[s : s + batch_size]
            picks = torch.randint(0, k, (2, pop.n), generator=partner_generator)
            dec_partner = pool.decoders.take(neighbours[cells, picks[0]])
            enc_partner = pool.encoders.take(neighbours[cells, picks[1]])
            pop.partner_gradients(enc_partner, dec_partner, x, self.conv_loss, grad)
            if self.reset_each_step:
                reset_optimizer(pop)
            pop.steps.add_(1)
            pop.adam_step(grad, lrs, self.betas, self.eps, part="encoder", count=False)
            pop.adam_step(grad, lrs, self.betas, self.eps, part="decoder", count=False)
