"""A population of N masked autoencoders stored as stacked tensors (the canonical engine: N=1).

Every member's weights, biases, masks and Adam moments live in flat ``(N, P)`` buffers; each
layer is a view into them, stored input-major (``(N, in, out)``) so a batched forward is one
``bmm`` per layer. Masks persist: a pruned entry stays zero through training (its gradient and
Adam moments are zeroed too) and nothing ever un-prunes it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .errors import ConfigError

__all__ = [
    "PRESETS",
    "Architecture",
    "CompactAutoencoder",
    "Population",
    "Sparsity",
    "Stack",
]

#: Network presets: (encoder widths incl. latent, decoder hidden widths).
PRESETS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "standard": ((30, 10), (30,)),
    "small": ((30, 2), (30,)),
    "large": ((60, 30, 10), (30, 60)),
}


@dataclass(frozen=True)
class Architecture:
    """Layer widths of an autoencoder: ``input -> encoder... (latent) -> decoder... -> input``."""

    input_dim: int
    encoder: tuple[int, ...]
    decoder: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.input_dim < 1 or not self.encoder or min(self.encoder + self.decoder + (1,)) < 1:
            raise ConfigError(f"invalid architecture {self}: widths must be >= 1, latent required")

    @classmethod
    def from_preset(cls, preset: str, input_dim: int) -> Architecture:
        if preset not in PRESETS:
            raise ConfigError(f"network.preset: unknown {preset!r}; allowed: {', '.join(PRESETS)}")
        enc, dec = PRESETS[preset]
        return cls(input_dim, enc, dec)

    @property
    def encoder_dims(self) -> tuple[int, ...]:
        return (self.input_dim, *self.encoder)

    @property
    def decoder_dims(self) -> tuple[int, ...]:
        return (self.encoder[-1], *self.decoder, self.input_dim)

    @property
    def n_params(self) -> int:
        return _n_params(self.encoder_dims) + _n_params(self.decoder_dims)


def _n_params(dims: tuple[int, ...]) -> int:
    return sum(i * o + o for i, o in zip(dims[:-1], dims[1:]))


class Stack:
    """N multilayer perceptrons of one shape whose state lives in ``(N, P)`` column views.

    Hidden layers use ReLU; the last layer's activation is ``final`` ("relu" for an encoder,
    whose latent is rectified, "sigmoid" for a decoder). ``forward`` returns the last layer's
    *pre-activation* so losses can work on logits. The state tensors (``params``, ``masks``,
    ``exp_avg``, ``exp_avg_sq``) are usually views into the buffers of a ``Population``.
    """

    def __init__(
        self,
        dims: tuple[int, ...],
        final: str,
        params: Tensor,
        masks: Tensor,
        exp_avg: Tensor,
        exp_avg_sq: Tensor,
    ) -> None:
        self.dims = tuple(dims)
        self.final = final
        self.params = params
        self.masks = masks
        self.exp_avg = exp_avg
        self.exp_avg_sq = exp_avg_sq
        self.offsets: list[tuple[int, int, int]] = []
        off = 0
        for i, o in zip(self.dims[:-1], self.dims[1:]):
            self.offsets.append((off, off + i * o, off + i * o + o))
            off += i * o + o
        if params.shape[1] != off:
            raise ValueError(f"buffer has {params.shape[1]} columns, dims need {off}")
        self._weights = [self.weight(layer) for layer in range(self.n_layers)]
        self._biases = [self.bias(layer) for layer in range(self.n_layers)]
        self._biases_b = [b.unsqueeze(1) for b in self._biases]
        self._grad_views: tuple[tuple[int, int], list[Tensor], list[Tensor]] | None = None

    @classmethod
    def standalone(cls, dims: tuple[int, ...], final: str, n: int) -> Stack:
        """A stack with its own zero-initialised buffers (all entries alive)."""
        total = _n_params(tuple(dims))
        zeros = torch.zeros(n, total)
        return cls(dims, final, zeros, torch.ones(n, total), zeros.clone(), zeros.clone())

    def init_(self, generator: torch.Generator) -> None:
        """Draw every layer like ``torch.nn.Linear``: U(-1/sqrt(in), 1/sqrt(in))."""
        for layer, fan_in in enumerate(self.dims[:-1]):
            bound = 1.0 / fan_in**0.5
            for t in (self._weights[layer], self._biases[layer]):
                t.copy_(torch.rand(t.shape, generator=generator) * (2 * bound) - bound)

    # -- views ---------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return self.params.shape[0]

    @property
    def n_layers(self) -> int:
        return len(self.dims) - 1

    @property
    def size(self) -> int:
        """Entries (weights + biases) of one member."""
        return self.params.shape[1]

    def weight(self, layer: int, buffer: Tensor | None = None) -> Tensor:
        """Layer ``layer``'s weights as an ``(N, in, out)`` view of ``buffer`` (default params)."""
        buf = self.params if buffer is None else buffer
        a, b, _ = self.offsets[layer]
        return buf[:, a:b].view(buf.shape[0], self.dims[layer], self.dims[layer + 1])

    def bias(self, layer: int, buffer: Tensor | None = None) -> Tensor:
        buf = self.params if buffer is None else buffer
        _, b, c = self.offsets[layer]
        return buf[:, b:c]

    def take(self, index: Tensor | list[int]) -> Stack:
        """A standalone stack with copies of the members at ``index`` (repeats allowed)."""
        idx = torch.as_tensor(index, dtype=torch.long)
        return Stack(
            self.dims,
            self.final,
            *(
                t.index_select(0, idx)
                for t in (self.params, self.masks, self.exp_avg, self.exp_avg_sq)
            ),
        )

    # -- computation ---------------------------------------------------------------------
    def forward(self, h: Tensor, cache: list[Tensor] | None = None) -> Tensor:
        """Last layer's pre-activation, ``(N, B, out)``.

        ``h`` is ``(B, in)`` (the same rows for every member) or ``(N, B, in)``. With ``cache``
        a list, the input of every layer is appended to it (for ``backward``).
        """
        if h.dim() == 2:
            h = h.unsqueeze(0).expand(self.n, -1, -1)
        last = self.n_layers - 1
        for layer in range(self.n_layers):
            if cache is not None:
                cache.append(h)
            z = torch.baddbmm(self._biases_b[layer], h, self._weights[layer])
            h = torch.relu_(z) if layer < last else z
        return h

    def backward(
        self, cache: list[Tensor], grad: Tensor, out: Tensor | None, input_grad: bool = False
    ) -> Tensor | None:
        """Back-propagate ``grad`` (w.r.t. the last pre-activation) into the buffer ``out``.

        Gradients of pruned entries are left unmasked: Adam never moves them (see
        ``Population.prune``). Returns the gradient w.r.t. the input when ``input_grad``.
        With ``out=None`` no parameter gradients are formed (a frozen stack: only the input
        gradient is propagated, and ``input_grad`` must be set).
        """
        gws: list[Tensor] | None = None
        gbs: list[Tensor] | None = None
        if out is not None:
            key = (out.data_ptr(), out.stride(0))
            if self._grad_views is None or self._grad_views[0] != key:
                self._grad_views = (
                    key,
                    [self.weight(layer, out) for layer in range(self.n_layers)],
                    [self.bias(layer, out) for layer in range(self.n_layers)],
                )
            _, gws, gbs = self._grad_views
        for layer in range(self.n_layers - 1, -1, -1):
            h = cache[layer]
            if gws is not None and gbs is not None:
                torch.bmm(h.transpose(1, 2), grad, out=gws[layer])
                torch.sum(grad, 1, out=gbs[layer])
            elif not input_grad:
                break
            if layer > 0 or input_grad:
                grad = torch.bmm(grad, self._weights[layer].transpose(1, 2))
                if layer > 0:
                    grad = torch.ops.aten.threshold_backward(grad, h, 0.0)
        return grad if input_grad else None

    def layer_counts(self) -> list[tuple[int, int, Tensor, Tensor]]:
        """Per layer: (weights total, biases total, alive weights per member, alive biases)."""
        out = []
        for layer in range(self.n_layers):
            w = self.weight(layer, self.masks)
            b = self.bias(layer, self.masks)
            out.append((w[0].numel(), b[0].numel(), w.sum((1, 2)), b.sum(1)))
        return out


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


class Population:
    """N autoencoders: pair ``i`` = (encoder i, decoder i); in coevolution they mix freely.

    State lives in four ``(N, P_enc + P_dec)`` buffers - ``params``, ``masks`` (0/1),
    ``exp_avg``, ``exp_avg_sq`` (Adam moments) - plus ``steps`` (Adam step count per member).
    ``encoders`` and ``decoders`` are ``Stack`` views of their columns. A pruned entry is zero
    with an infinite second moment, so Adam's update there is exactly 0: pruned weights stay
    pruned with no per-step masking pass.
    """

    BUFFERS = ("params", "masks", "exp_avg", "exp_avg_sq")

    def __init__(self, arch: Architecture, buffers: dict[str, Tensor], steps: Tensor) -> None:
        self.arch = arch
        self.buffers = buffers
        self.steps = steps
        split = _n_params(arch.encoder_dims)
        enc = [buffers[k][:, :split] for k in self.BUFFERS]
        dec = [buffers[k][:, split:] for k in self.BUFFERS]
        self.encoders = Stack(arch.encoder_dims, "relu", *enc)
        self.decoders = Stack(arch.decoder_dims, "sigmoid", *dec)
        self._rows: list[list[Tensor]] | None = None

    @classmethod
    def create(cls, arch: Architecture, n: int, generator: torch.Generator) -> Population:
        """``n`` fresh, unpruned members drawn from ``generator``."""
        total = arch.n_params
        zeros = torch.zeros(n, total)
        pop = cls(
            arch,
            {
                "params": zeros,
                "masks": torch.ones(n, total),
                "exp_avg": zeros.clone(),
                "exp_avg_sq": zeros.clone(),
            },
            torch.zeros(n),
        )
        pop.encoders.init_(generator)
        pop.decoders.init_(generator)
        return pop

    @property
    def n(self) -> int:
        return self.steps.shape[0]

    @property
    def params(self) -> Tensor:
        return self.buffers["params"]

    @property
    def masks(self) -> Tensor:
        return self.buffers["masks"]

    def parts(self) -> tuple[tuple[str, Stack], tuple[str, Stack]]:
        return (("encoder", self.encoders), ("decoder", self.decoders))

    def take(
        self, encoders: Tensor | list[int], decoders: Tensor | list[int] | None = None
    ) -> Population:
        """A new population of copies: pair k = (encoder ``encoders[k]``, decoder ``decoders[k]``).

        Optimiser state travels with each network; the step count follows the encoder.
        """
        e = torch.as_tensor(encoders, dtype=torch.long)
        d = e if decoders is None else torch.as_tensor(decoders, dtype=torch.long)
        split = self.encoders.size
        buffers = {
            k: torch.cat(
                [
                    self.buffers[k][:, :split].index_select(0, e),
                    self.buffers[k][:, split:].index_select(0, d),
                ],
                1,
            )
            for k in self.BUFFERS
        }
        return Population(self.arch, buffers, self.steps.index_select(0, e))

    def clone(self) -> Population:
        return Population(
            self.arch, {k: v.clone() for k, v in self.buffers.items()}, self.steps.clone()
        )

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
        b1, b2 = betas
        kw = dict(beta1=b1, beta2=b2, weight_decay=0.0, eps=eps, amsgrad=False, maximize=False)
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
            torch._fused_adam_(
                [ps[c]], [grads[c]], [ms[c]], [vs[c]], [], [ss[c]], lr=lr_list[c], **kw
            )

    def prune(self, keep: Tensor, members: Tensor | list[int] | None = None) -> None:
        """Intersect the masks of ``members`` (all by default) with ``keep`` (``(k, P)``, 0/1).

        Pruned entries get weight 0, first moment 0 and second moment +inf; masks never grow.
        """
        masks = self.masks
        if members is None:
            masks.mul_(keep)
        else:
            idx = torch.as_tensor(members, dtype=torch.long)
            masks[idx] = masks[idx] * keep
        dead = masks == 0
        self.params.masked_fill_(dead, 0.0)
        self.buffers["exp_avg"].masked_fill_(dead, 0.0)
        self.buffers["exp_avg_sq"].masked_fill_(dead, float("inf"))

    # -- inference -----------------------------------------------------------------------
    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """Every pair's reconstruction of ``x`` (``(B, D)`` shared or ``(N, B, D)``): ``(N, B, D)``."""
        z = torch.relu_(self.encoders.forward(x))
        return torch.sigmoid_(self.decoders.forward(z))  # a fresh tensor: in place is safe

    @torch.no_grad()
    def l1(self, x: Tensor, chunk: int = 32) -> Tensor:
        """Mean absolute reconstruction error of every pair on ``x``: ``(N,)``.

        Chunks of ``chunk`` rows with in-place element-wise work keep the ``(N, chunk, D)``
        intermediate cache-sized.
        """
        total = torch.zeros(self.n, dtype=torch.float64)
        for s in range(0, x.shape[0], chunk):
            xb = x[s : s + chunk]
            y = self.reconstruct(xb)
            total += y.sub_(xb).abs_().sum((1, 2), dtype=torch.float64)
        return (total / x.numel()).float()

    @torch.no_grad()
    def pair_l1(
        self, x: Tensor, encoders: Tensor | None = None, decoders: Tensor | None = None
    ) -> Tensor:
        """L1 of every (encoder e, decoder d) pairing on ``x``: ``(n_enc, n_dec)``.

        ``encoders``/``decoders`` select members (default all). All latents are computed once
        and every decoder reconstructs all of them in one batched pass.
        """
        enc = self.encoders if encoders is None else self.encoders.take(encoders)
        dec = self.decoders if decoders is None else self.decoders.take(decoders)
        b = x.shape[0]
        z = torch.relu_(enc.forward(x))  # (Ne, B, L)
        flat = z.reshape(enc.n * b, -1)
        y = torch.sigmoid(dec.forward(flat))  # (Nd, Ne*B, D)
        err = (y.view(dec.n, enc.n, b, -1) - x).abs().mean((2, 3))  # (Nd, Ne)
        return err.t().contiguous()

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
            out[part] = stack.masks.sum(1) / stack.masks.shape[1]
        total = self.encoders.masks.shape[1] + self.decoders.masks.shape[1]
        out["whole"] = (self.encoders.masks.sum(1) + self.decoders.masks.sum(1)) / total
        return out

    def compact(self, member: int = 0) -> CompactAutoencoder:
        """Member ``member`` as a dense ``nn.Module`` with dead units physically removed.

        A hidden unit is dead when its incoming weights and bias are all pruned (it outputs
        ReLU(0) = 0) or when all its outgoing weights are pruned (nothing reads it); removing
        either kind leaves the outputs unchanged.
        """
        ws: list[Tensor] = []
        bs: list[Tensor] = []
        for _part, stack in self.parts():
            for layer in range(stack.n_layers):
                ws.append(
                    (stack.weight(layer)[member] * stack.weight(layer, stack.masks)[member]).t()
                )
                bs.append(stack.bias(layer)[member] * stack.bias(layer, stack.masks)[member])
        n_enc = self.encoders.n_layers
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

    # -- persistence ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "format": "evoprune.population/1",
            "arch": {
                "input_dim": self.arch.input_dim,
                "encoder": list(self.arch.encoder),
                "decoder": list(self.arch.decoder),
            },
            "buffers": dict(self.buffers),
            "steps": self.steps,
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Population:
        if state.get("format") != "evoprune.population/1":
            raise ValueError("not an evoprune population file")
        a = state["arch"]
        arch = Architecture(int(a["input_dim"]), tuple(a["encoder"]), tuple(a["decoder"]))
        return cls(arch, dict(state["buffers"]), state["steps"])

    def save(self, path: str | Path) -> None:
        """Write the population (weights, masks, optimiser state) atomically."""
        path = Path(path)
        buf = io.BytesIO()
        torch.save(self.state_dict(), buf)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(buf.getvalue())
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> Population:
        return cls.from_state_dict(torch.load(Path(path), weights_only=True))


class CompactAutoencoder(nn.Module):
    """A dense autoencoder exported from a population member (plain ``nn.Linear`` layers)."""

    def __init__(
        self, enc_w: list[Tensor], enc_b: list[Tensor], dec_w: list[Tensor], dec_b: list[Tensor]
    ) -> None:
        super().__init__()
        self.encoder = _dense(enc_w, enc_b, final=nn.ReLU())
        self.decoder = _dense(dec_w, dec_b, final=nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))

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
