"""N masked autoencoders with persistent masks and per-member Adam state in flat buffers.

Every member's weights, biases, masks and Adam moments live in flat ``(N, P)`` buffers; each
layer is a view into them, stored input-major (``(N, in, out)``) so a batched forward is one
``bmm`` per layer. Masks persist: a pruned entry stays zero through training (its gradient and
Adam moments are zeroed too) and nothing ever un-prunes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .._compat import fused_adam_
from ._arch import Architecture, n_params
from ._export import CompactAutoencoder, compact
from ._pairs import FlatPopulation
from ._persist import Persisted
from ._stack import Stack

__all__ = ["Population", "Sparsity"]

#: torch's CPU bmm takes its plain loop below this many multiply-adds per batch entry
_SMALL_GEMM = 400


@dataclass(frozen=True)
class Sparsity:
    """True alive/total counts (weights + biases) of one member, per layer and per part."""

    layers: dict[str, tuple[int, int]]
    encoder: tuple[int, int]
    decoder: tuple[int, int]

    @property
    def whole(self) -> tuple[int, int]:
        return (self.encoder[0] + self.decoder[0], self.encoder[1] + self.decoder[1])

    def fraction(self, part: str = "whole") -> float:
        alive, total = self.whole if part == "whole" else getattr(self, part)
        return alive / total

    def as_dict(self) -> dict[str, Any]:
        return {
            "remaining_fraction": self.fraction(),
            "encoder_remaining_fraction": self.fraction("encoder"),
            "decoder_remaining_fraction": self.fraction("decoder"),
            "layers": {k: {"alive": a, "total": t} for k, (a, t) in self.layers.items()},
        }


def _rows(stack: Stack, index: Tensor) -> Stack:
    """Members ``index`` of ``stack`` for a forward pass: views when they are consecutive,
    else copies of the weights alone."""
    index = index.to(stack.params.device)
    n = len(index)
    if n and int(index[-1]) - int(index[0]) == n - 1 and bool((index.diff() == 1).all()):
        lo = int(index[0])
        views = (stack.params, stack.masks, stack.exp_avg, stack.exp_avg_sq)
        return Stack(stack.dims, stack.final, *(t[lo : lo + n] for t in views))
    params = stack.params.index_select(0, index)
    return Stack(stack.dims, stack.final, params, params, params, params)


class Population(Persisted, FlatPopulation):
    """N autoencoders: pair ``i`` = (encoder i, decoder i); in coevolution they mix freely.

    State lives in four ``(N, P_enc + P_dec)`` buffers - ``params``, ``masks`` (0/1),
    ``exp_avg``, ``exp_avg_sq`` (Adam moments) - plus ``steps`` (Adam step count per member).
    ``encoders`` and ``decoders`` are ``Stack`` views of their columns. A pruned entry is zero
    with an infinite second moment, so Adam's update there is exactly 0: pruned weights stay
    pruned with no per-step masking pass.

    The buffers may live on any torch device (``create(..., device=)``): inputs are moved to
    it; losses, activations and exports come back on the CPU.
    """

    L1_CHUNK = 32
    arch: Architecture
    encoders: Stack
    decoders: Stack

    def __init__(self, arch: Architecture, buffers: dict[str, Tensor], steps: Tensor) -> None:
        super().__init__(arch, buffers, steps)
        split = n_params(arch.encoder_dims)
        enc = [buffers[k][:, :split] for k in self.BUFFERS]
        dec = [buffers[k][:, split:] for k in self.BUFFERS]
        self.encoders = Stack(arch.encoder_dims, "relu", *enc)
        self.decoders = Stack(arch.decoder_dims, "sigmoid", *dec)
        self._rows: list[list[Tensor]] | None = None

    def parts(self) -> tuple[tuple[str, Stack], tuple[str, Stack]]:
        return (("encoder", self.encoders), ("decoder", self.decoders))

    # -- optimisation and pruning --------------------------------------------------------
    def adam_step(
        self,
        grad: Tensor,
        lrs: Tensor | list[float],
        betas: tuple[float, float],
        eps: float,
        part: str | None = None,
        count: bool = True,
    ) -> None:
        """One Adam update of every member with its own learning rate (fused kernel).

        ``part`` ("encoder" or "decoder") updates only that network's columns (``grad`` still
        has all ``P`` columns); ``count=False`` leaves the step counts as they are (a second
        half-step of the same minibatch).
        """
        lr_list = lrs.tolist() if isinstance(lrs, Tensor) else list(lrs)
        if count:
            self.steps.add_(1)
        if self._rows is None:
            self._rows = [
                list(self.buffers[k].unbind(0)) for k in ("params", "exp_avg", "exp_avg_sq")
            ]
            self._rows.append(list(self.steps.unbind(0)))
        ps, ms, vs, ss = self._rows
        grads = grad.unbind(0)
        if part is not None:
            split = self.encoders.size
            cols = slice(0, split) if part == "encoder" else slice(split, None)
            ps, ms, vs = ([r[cols] for r in rows] for rows in (ps, ms, vs))
            grads = tuple(g[cols] for g in grads)
        for c in range(self.n):
            fused_adam_([ps[c]], [grads[c]], [ms[c]], [vs[c]], [ss[c]], lr_list[c], betas, eps)

    def prune(self, keep: Tensor, members: Tensor | list[int] | None = None) -> None:
        """Intersect the masks of ``members`` (all by default) with ``keep`` (``(k, P)``, 0/1).

        Pruned entries get weight 0, first moment 0 and second moment +inf; masks never grow.
        """
        masks = self.masks
        keep = keep.to(self.device)
        if members is None:
            masks.mul_(keep)
        else:
            idx = self._idx(members)
            masks[idx] = masks[idx] * keep
        dead = masks == 0
        self.params.masked_fill_(dead, 0.0)
        self.buffers["exp_avg"].masked_fill_(dead, 0.0)
        self.buffers["exp_avg_sq"].masked_fill_(dead, float("inf"))

    # -- inference -----------------------------------------------------------------------
    def reconstruct(self, x: Tensor) -> Tensor:
        """Every pair's reconstruction of ``x`` (``(B, D)`` shared or ``(N, B, D)``): ``(N, B, D)``
        on the population's device."""
        with torch.no_grad():
            z = torch.relu_(self.encoders.forward(x.to(self.device)))
            return torch.sigmoid_(self.decoders.forward(z))  # a fresh tensor: in place is safe

    def activations(self, x: Tensor) -> list[Tensor]:
        """Every layer's post-activation output on ``x`` (encoder first): ``(N, B, out)`` each.

        The training forward pass with its layer-input cache: the cache holds each hidden
        layer's rectified output, the two ends are activated here.
        """
        with torch.no_grad():
            enc_cache: list[Tensor] = []
            dec_cache: list[Tensor] = []
            latent = torch.relu(self.encoders.forward(x.to(self.device), enc_cache))
            out = torch.sigmoid(self.decoders.forward(latent, dec_cache))
            return [t.cpu() for t in (*enc_cache[1:], latent, *dec_cache[1:], out)]

    def pair_l1(
        self, x: Tensor, encoders: Tensor | None = None, decoders: Tensor | None = None
    ) -> Tensor:
        """L1 of every (encoder e, decoder d) pairing on ``x``: ``(n_enc, n_dec)``.

        ``encoders``/``decoders`` select members (default all). All latents are computed once
        and every decoder reconstructs all of them in one batched pass.
        """
        with torch.no_grad():
            enc = self.encoders if encoders is None else self.encoders.take(encoders)
            dec = self.decoders if decoders is None else self.decoders.take(decoders)
            b = x.shape[0]
            x = x.to(self.device)
            z = torch.relu_(enc.forward(x))  # (Ne, B, L)
            flat = z.reshape(enc.n * b, -1)
            y = torch.sigmoid(dec.forward(flat))  # (Nd, Ne*B, D)
            err = (y.view(dec.n, enc.n, b, -1) - x).abs().mean((2, 3))  # (Nd, Ne)
            return err.t().contiguous().cpu()

    def pairings_l1(self, x: Tensor, decoders: Tensor, encoders: Tensor) -> Tensor:
        """L1 on ``x`` of decoder ``decoders[j]`` with each encoder ``encoders[j, s]``: ``(n, m)``.

        Only the listed pairings are evaluated (``n x m`` of them), each with the same batched
        ops as ``pair_l1``, so an entry equals ``pair_l1(x)[encoders[j, s], decoders[j]]``
        bit for bit. Decoders are processed in chunks that keep the reconstructions ~16 MB.
        """
        with torch.no_grad():
            b = x.shape[0]
            n, m = encoders.shape
            # torch multiplies a batch entry of fewer than _SMALL_GEMM entries (rows x in x out)
            # with a plain loop, larger ones with BLAS (the rounding differs): pad each
            # decoder's rows to BLAS size whenever pair_l1's full matrix would be BLAS-sized
            dims = self.decoders.dims
            smallest = min(i * o for i, o in zip(dims[:-1], dims[1:]))
            rows = -(-_SMALL_GEMM // smallest)  # ceil: rows per decoder for BLAS
            pad = min(-(-rows // b), self.n) - m
            if pad > 0:
                encoders = torch.cat([encoders, encoders[:, :1].expand(n, pad)], 1)
            w = encoders.shape[1]
            used = torch.unique(encoders)  # sorted
            x = x.to(self.device)
            z = torch.relu_(_rows(self.encoders, used).forward(x))  # (used, B, L)
            encoders = torch.searchsorted(used, encoders).to(self.device)
            per_dec = max(1, (4 << 20) // max(1, w * b * x.shape[1]))
            out = []
            for s in range(0, n, per_dec):
                dec = _rows(self.decoders, decoders[s : s + per_dec])
                lat = z[encoders[s : s + per_dec]]  # (n_s, w, B, L)
                y = torch.sigmoid(dec.forward(lat.reshape(dec.n, w * b, -1)))  # (n_s, w*B, D)
                out.append((y.view(dec.n, w, b, -1) - x).abs().mean((2, 3)))
            return torch.cat(out)[:, :m].cpu() if out else torch.zeros(0, m)

    # -- accounting and export -----------------------------------------------------------
    def sparsity(self, member: int = 0) -> Sparsity:
        layers: dict[str, tuple[int, int]] = {}
        totals = {}
        for part, stack in self.parts():
            alive_sum = total_sum = 0
            for layer, (wt, bt, wa, ba) in enumerate(stack.layer_counts()):
                alive = int(wa[member].item() + ba[member].item())
                layers[f"{part}.{layer}"] = (alive, wt + bt)
                alive_sum += alive
                total_sum += wt + bt
            totals[part] = (alive_sum, total_sum)
        return Sparsity(layers, totals["encoder"], totals["decoder"])

    def remaining_fractions(self) -> dict[str, Tensor]:
        """Alive fraction of every member: ``{"encoder": (N,), "decoder": (N,), "whole": (N,)}``."""
        out: dict[str, Tensor] = {}
        for part, stack in self.parts():
            out[part] = (stack.masks.sum(1) / stack.masks.shape[1]).cpu()
        total = self.encoders.masks.shape[1] + self.decoders.masks.shape[1]
        out["whole"] = ((self.encoders.masks.sum(1) + self.decoders.masks.sum(1)) / total).cpu()
        return out

    def compact(self, member: int = 0) -> CompactAutoencoder:
        """Member ``member`` as a dense ``nn.Module`` with dead units physically removed."""
        return compact(self, member)

    # -- persistence ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "format": "evoprune.population/1",
            "arch": {
                "input_dim": self.arch.input_dim,
                "encoder": list(self.arch.encoder),
                "decoder": list(self.arch.decoder),
            },
            "buffers": {k: v.cpu() for k, v in self.buffers.items()},
            "steps": self.steps.cpu(),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Population:
        if state.get("format") != "evoprune.population/1":
            raise ValueError("not an evoprune population file")
        a = state["arch"]
        arch = Architecture(int(a["input_dim"]), tuple(a["encoder"]), tuple(a["decoder"]))
        return cls(arch, dict(state["buffers"]), state["steps"])
