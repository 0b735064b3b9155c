"""N convolutional autoencoders in flat buffers: the conv counterpart of ``Population``.

:class:`ConvPopulation` (of a ``ConvArchitecture``, see ``_conv_arch``) has the same interface as ``Population`` - ``(N, P)`` buffers
``params``, ``masks``, ``exp_avg``, ``exp_avg_sq`` with the encoder's columns first, ``steps``,
``take``, ``adam_step``, ``prune``, inference on flat rows - so both engines drive it
unchanged; its two halves are :class:`~evoprune_core.population.LayerStack` views.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ._conv_arch import CONV_PRESETS, ConvArchitecture
from ._conv_export import CompactConvAutoencoder, compact_conv, live_masks
from ._layerstack import LayerStack, adam_update, apply_keep
from ._pairs import FlatPopulation
from ._persist import Persisted
from ._population import Sparsity

__all__ = ["CONV_PRESETS", "ConvArchitecture", "ConvPopulation", "LossFn"]

#: Per-member training loss of decoder logits ``(N, B, D)`` against rows ``(B, D)``: ``(N,)``.
LossFn = Callable[[Tensor, Tensor], Tensor]


class ConvPopulation(Persisted, FlatPopulation):
    """N conv autoencoders: pair ``i`` = (encoder i, decoder i), state in ``(N, P)`` buffers.

    Same contract as ``Population`` (see there): pruned entries are zero with first moment 0
    and second moment +inf, masks never grow. Inputs are flat rows ``(B, D)``; they are viewed
    as ``(B, c, h, w)`` images and moved to the buffers' device.
    """

    L1_CHUNK = 256
    arch: ConvArchitecture
    encoders: LayerStack
    decoders: LayerStack

    def __init__(self, arch: ConvArchitecture, buffers: dict[str, Tensor], steps: Tensor) -> None:
        super().__init__(arch, buffers, steps)
        split = arch.encoder_size
        p, m, a, a2 = (buffers[k] for k in self.BUFFERS)
        self.encoders = LayerStack(
            arch.encoder, arch.input_shape,
            p[:, :split], m[:, :split], a[:, :split], a2[:, :split], steps,
        )  # fmt: skip
        self.decoders = LayerStack(
            arch.decoder, arch.latent_shape,
            p[:, split:], m[:, split:], a[:, split:], a2[:, split:], steps,
        )  # fmt: skip

    def parts(self) -> tuple[tuple[str, LayerStack], tuple[str, LayerStack]]:
        return (("encoder", self.encoders), ("decoder", self.decoders))

    # -- training --------------------------------------------------------------------------
    def images(self, x: Tensor) -> Tensor:
        """Flat rows ``(B, D)`` as images ``(B, c, h, w)`` on the population's device."""
        return x.to(self.device).reshape(x.shape[0], *self.arch.input_shape)

    def gradients(
        self, x: Tensor, loss: LossFn, out: Tensor, logit_grad: LossFn | None = None
    ) -> Tensor | None:
        """Each pair's training loss on rows ``x`` (``(N,)``); its gradient into ``out``.

        With ``logit_grad`` (the loss's gradient w.r.t. the logits, ``(N, B, D)``) autograd
        starts from it instead of differentiating ``loss`` (fewer ops); nothing is returned.
        """
        xd = x.to(self.device)
        enc_leaves = self.encoders.leaves()
        dec_leaves = self.decoders.leaves()
        split = self.encoders.size
        flat = [t for pair in (*enc_leaves, *dec_leaves) for t in pair]
        value: Tensor | None = None
        with torch.enable_grad():
            z = self.encoders.forward(self.images(x), enc_leaves)
            logits = self.decoders.forward(z, dec_leaves).flatten(2)
            if logit_grad is None:
                value = loss(logits, xd)
                grads = torch.autograd.grad(value.sum(), flat, allow_unused=True)
            else:
                g = logit_grad(logits.detach(), xd)
                grads = torch.autograd.grad(logits, flat, g, allow_unused=True)
        views = [
            v
            for stack, cols in ((self.encoders, out[:, :split]), (self.decoders, out[:, split:]))
            for i in range(stack.n_layers)
            for v in (stack.weight(i, cols), stack.bias(i, cols))
        ]
        for view, g in zip(views, grads):
            if g is None:
                view.zero_()
            else:
                view.copy_(g)
        return None if value is None else value.detach()

    def partner_gradients(
        self,
        enc_partner: LayerStack,
        dec_partner: LayerStack,
        x: Tensor,
        loss: LossFn,
        out: Tensor,
    ) -> None:
        """Encoder m against the frozen decoder ``dec_partner`` m and decoder m against the
        frozen encoder ``enc_partner`` m; each network's gradient into its columns of ``out``."""
        xd = x.to(self.device)
        img = self.images(x)
        split = self.encoders.size
        enc_leaves = self.encoders.leaves()
        with torch.enable_grad():
            z = self.encoders.forward(img, enc_leaves)
            value = loss(dec_partner.forward(z).flatten(2), xd)
            self.encoders.backward(value.sum(), enc_leaves, out[:, :split])
        dec_leaves = self.decoders.leaves()
        z = enc_partner.forward(img)
        with torch.enable_grad():
            value = loss(self.decoders.forward(z, dec_leaves).flatten(2), xd)
            self.decoders.backward(value.sum(), dec_leaves, out[:, split:])

    def adam_step(
        self,
        grad: Tensor,
        lrs: Tensor | list[float],
        betas: tuple[float, float],
        eps: float,
        part: str | None = None,
        count: bool = True,
    ) -> None:
        """One Adam update of every member with its own learning rate, all members at once.

        ``part`` ("encoder" or "decoder") updates only that network's columns; ``count=False``
        leaves the step counts as they are (a second half-step of the same minibatch).
        """
        if count:
            self.steps.add_(1)
        cols = slice(None)
        if part is not None:
            split = self.encoders.size
            cols = slice(0, split) if part == "encoder" else slice(split, None)
        b = {k: self.buffers[k][:, cols] for k in self.BUFFERS}
        g = grad.to(self.device)[:, cols] * b["masks"]
        lr = torch.as_tensor(lrs, dtype=torch.float32)
        adam_update(b["params"], g, b["exp_avg"], b["exp_avg_sq"], self.steps, lr, betas, eps)

    def prune(self, keep: Tensor, members: Tensor | list[int] | None = None) -> None:
        """Intersect the masks of ``members`` (all by default) with ``keep`` (``(k, P)``, 0/1)."""
        keep = keep.to(self.device)
        if members is None:
            self.masks.mul_(keep)
        else:
            idx = self._idx(members)
            self.masks[idx] = self.masks[idx] * keep
        apply_keep(self.params, self.masks, self.buffers["exp_avg"], self.buffers["exp_avg_sq"])

    # -- inference -----------------------------------------------------------------------
    def reconstruct(self, x: Tensor) -> Tensor:
        """Every pair's reconstruction of flat rows ``x`` (``(B, D)``): ``(N, B, D)``."""
        with torch.no_grad():
            z = self.encoders.forward(self.images(x))
            return torch.sigmoid(self.decoders.forward(z).flatten(2))

    def activations(self, x: Tensor) -> list[Tensor]:
        """Every parameter layer's output after its activation (encoder first; the last one
        through the sigmoid): ``(N, B, *shape)`` each, on the CPU."""
        with torch.no_grad():
            rec: list[Tensor] = []
            z = self.encoders.forward(self.images(x), record=rec)
            self.decoders.forward(z, record=rec)
            rec[-1] = torch.sigmoid(rec[-1])
            return [r.cpu() for r in rec]

    def pair_l1(
        self, x: Tensor, encoders: Tensor | None = None, decoders: Tensor | None = None
    ) -> Tensor:
        """L1 of every (encoder e, decoder d) pairing on ``x``: ``(n_enc, n_dec)``, CPU."""
        with torch.no_grad():
            enc = self.encoders if encoders is None else self.encoders.take(encoders)
            dec = self.decoders if decoders is None else self.decoders.take(decoders)
            xd = x.to(self.device)
            b = x.shape[0]
            z = enc.forward(self.images(x))  # (Ne, B, L)
            y = torch.sigmoid(dec.forward(z.reshape(enc.n * b, -1)).flatten(2))
            err = (y.view(dec.n, enc.n, b, -1) - xd).abs().mean((2, 3))  # (Nd, Ne)
            return err.t().contiguous().cpu()

    def pairings_l1(self, x: Tensor, decoders: Tensor, encoders: Tensor) -> Tensor:
        """L1 on ``x`` of decoder ``decoders[j]`` with each encoder ``encoders[j, s]``: ``(n, m)``
        on the CPU. Only the listed pairings are evaluated; each equals the matching entry of
        ``pair_l1(x)`` to rounding (the decoders read per-member latents here)."""
        with torch.no_grad():
            b = x.shape[0]
            n, m = encoders.shape
            if n == 0:
                return torch.zeros(0, m)
            xd = x.to(self.device)
            used = torch.unique(encoders)  # sorted
            z = self.encoders.take(used).forward(self.images(x))  # (used, B, L)
            at = torch.searchsorted(used, encoders).to(self.device)
            per_dec = max(1, (4 << 20) // max(1, m * b * x.shape[1]))
            out = []
            for s in range(0, n, per_dec):
                dec = self.decoders.take(decoders[s : s + per_dec])
                lat = z[at[s : s + per_dec]]  # (n_s, m, B, L)
                y = torch.sigmoid(dec.forward(lat.reshape(dec.n, m * b, -1)).flatten(2))
                out.append((y.view(dec.n, m, b, -1) - xd).abs().mean((2, 3)))
            return torch.cat(out).cpu()

    # -- accounting and export -----------------------------------------------------------
    def sparsity(self, member: int = 0) -> Sparsity:
        """Alive entries per layer that the compact export keeps (see ``remaining_fractions``)."""
        live = iter(live_masks(self))
        layers: dict[str, tuple[int, int]] = {}
        totals = {}
        for part, stack in self.parts():
            alive_sum = total_sum = 0
            for i, pl in enumerate(stack.layers):
                w, b = next(live)
                alive = int(w[member].sum().item() + b[member].sum().item())
                layers[f"{part}.{i}"] = (alive, pl.end - pl.start)
                alive_sum += alive
                total_sum += pl.end - pl.start
            totals[part] = (alive_sum, total_sum)
        return Sparsity(layers, totals["encoder"], totals["decoder"])

    def remaining_fractions(self) -> dict[str, Tensor]:
        """Alive fraction of every member: ``{"encoder", "decoder", "whole"}``, ``(N,)`` each.

        What is really left: the alive entries the compact export keeps. Weights that read a
        removed channel (every unit feeding it pruned) or that belong to a channel nothing
        reads any more are not counted, though their masks are on (they cannot change an
        output, and the export removes them)."""
        live = iter(live_masks(self))
        out: dict[str, Tensor] = {}
        alive_all = torch.zeros(self.n)
        for part, stack in self.parts():
            alive = torch.zeros(self.n)
            for _ in stack.layers:
                w, b = next(live)
                alive += w.flatten(1).sum(1) + b.sum(1)
            out[part] = alive / stack.masks.shape[1]
            alive_all += alive
        out["whole"] = alive_all / self.masks.shape[1]
        return out

    def compact(self, member: int = 0) -> CompactConvAutoencoder:
        """Member ``member`` as ``torch.nn`` modules with dead channels physically removed."""
        return compact_conv(self, member)

    # -- persistence ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "format": "evoprune.conv-population/1",
            "arch": {"preset": self.arch.preset, "input_shape": list(self.arch.input_shape)},
            "buffers": {k: v.cpu() for k, v in self.buffers.items()},
            "steps": self.steps.cpu(),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> ConvPopulation:
        if state.get("format") != "evoprune.conv-population/1":
            raise ValueError("not an evoprune conv population file")
        a = state["arch"]
        arch = ConvArchitecture.from_preset(str(a["preset"]), tuple(a["input_shape"]))
        return cls(arch, dict(state["buffers"]), state["steps"])
