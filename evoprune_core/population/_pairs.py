"""What the dense and the conv population share (``FlatPopulation``), and pairing encoders
with decoders across their flat ``(N, P)`` buffers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import torch
from torch import Tensor

__all__ = ["FlatPopulation", "check_out", "pair_buffers"]

P = TypeVar("P", bound="FlatPopulation")


def pair_buffers(
    buffers: dict[str, Tensor],
    keys: Iterable[str],
    split: int,
    encoders: Tensor,
    decoders: Tensor,
    out: dict[str, Tensor] | None = None,
) -> dict[str, Tensor]:
    """Copies of ``buffers[k]`` for each key: row k holds the encoder part (columns before
    ``split``) of member ``encoders[k]`` and the decoder part of member ``decoders[k]``.

    Each part is gathered straight into its columns of the result (one pass over the
    selected rows, no concatenation); ``out`` (``(len(encoders), P)`` per key, contiguous)
    receives them instead of fresh tensors and is returned.
    """
    got: dict[str, Tensor] = {}
    for k in keys:
        src = buffers[k]
        dst = src.new_empty((len(encoders), src.shape[1])) if out is None else out[k]
        torch.index_select(src[:, :split], 0, encoders, out=dst[:, :split])
        torch.index_select(src[:, split:], 0, decoders, out=dst[:, split:])
        got[k] = dst
    return got


def check_out(pop: Any, out: Any, n: int) -> None:
    """``out`` may receive ``n`` members of ``pop``: same class and architecture, its own
    contiguous buffers of ``n`` rows on the same device."""
    same = type(out) is type(pop) and out.arch == pop.arch and out is not pop
    if not same or out.n != n or out.device != pop.device:
        raise ValueError(f"out: need another {type(pop).__name__} of {n} members like this one")
    if not all(out.buffers[k].is_contiguous() for k in pop.BUFFERS):
        raise ValueError("out: its buffers must be contiguous")


class FlatPopulation:
    """What the dense and the conv population share: four flat ``(N, P)`` buffers with the
    encoder's columns first (split at ``encoders.size``) and ``steps``, and what needs nothing
    else - drawing a fresh population, copying members and pairs, swapping whole states, the
    chunked L1. A subclass builds its ``encoders``/``decoders`` views in ``__init__`` and sets
    ``L1_CHUNK``."""

    BUFFERS = ("params", "masks", "exp_avg", "exp_avg_sq")
    #: rows per chunk of ``l1``: the ``(N, chunk, D)`` intermediate stays cache-sized
    L1_CHUNK: int
    arch: Any
    encoders: Any
    decoders: Any

    def __init__(self, arch: Any, buffers: dict[str, Tensor], steps: Tensor) -> None:
        self.arch = arch
        self.buffers = buffers
        self.steps = steps

    @classmethod
    def create(
        cls: type[P],
        arch: Any,
        n: int,
        generator: torch.Generator,
        device: torch.device | str = "cpu",
    ) -> P:
        """``n`` fresh, unpruned members drawn from ``generator`` (on the CPU, then moved:
        the same seed gives the same weights on every device)."""
        total = arch.n_params
        zeros = torch.zeros(n, total, device=device)
        pop = cls(
            arch,
            {
                "params": zeros,
                "masks": torch.ones(n, total, device=device),
                "exp_avg": zeros.clone(),
                "exp_avg_sq": zeros.clone(),
            },
            torch.zeros(n, device=device),
        )
        pop.encoders.init_(generator)
        pop.decoders.init_(generator)
        return pop

    @property
    def n(self) -> int:
        return self.steps.shape[0]

    @property
    def device(self) -> torch.device:
        return self.buffers["params"].device

    @property
    def params(self) -> Tensor:
        return self.buffers["params"]

    @property
    def masks(self) -> Tensor:
        return self.buffers["masks"]

    def _idx(self, index: Tensor | Sequence[int]) -> Tensor:
        return torch.as_tensor(index, dtype=torch.long).to(self.device)

    def take(
        self: P,
        encoders: Tensor | Sequence[int],
        decoders: Tensor | Sequence[int] | None = None,
        out: P | None = None,
    ) -> P:
        """A new population of copies: pair k = (encoder ``encoders[k]``, decoder ``decoders[k]``).

        Optimiser state travels with each network; the step count follows the encoder.
        ``out`` (a population of the same class and architecture with ``len(encoders)``
        members, not this one) is overwritten with the copies and returned instead of a new one.
        """
        e = self._idx(encoders)
        d = e if decoders is None else self._idx(decoders)
        if out is not None:
            return self._take_into(out, e, d)
        buffers = pair_buffers(self.buffers, self.BUFFERS, self.encoders.size, e, d)
        return type(self)(self.arch, buffers, self.steps.index_select(0, e))

    def clone(self: P) -> P:
        return type(self)(
            self.arch, {k: v.clone() for k, v in self.buffers.items()}, self.steps.clone()
        )

    def reconstruct(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def l1(self, x: Tensor, chunk: int | None = None) -> Tensor:
        """Mean absolute reconstruction error of every pair on ``x``: ``(N,)`` on the CPU.

        Chunks of ``chunk`` rows (default ``L1_CHUNK``) with in-place element-wise work keep
        the ``(N, chunk, D)`` intermediate cache-sized.
        """
        step = self.L1_CHUNK if chunk is None else chunk
        with torch.no_grad():
            total = torch.zeros(self.n, dtype=torch.float64, device=self.device)
            for s in range(0, x.shape[0], step):
                xb = x[s : s + step].to(self.device)
                y = self.reconstruct(xb)
                total += y.sub_(xb).abs_().sum((1, 2), dtype=torch.float64)
            return (total / x.numel()).float().cpu()

    def _take_into(self: P, out: P, encoders: Tensor, decoders: Tensor) -> P:
        """``take`` into ``out`` (same class and architecture, ``len(encoders)`` members)."""
        check_out(self, out, len(encoders))
        split = self.encoders.size
        pair_buffers(self.buffers, self.BUFFERS, split, encoders, decoders, out.buffers)
        torch.index_select(self.steps, 0, encoders, out=out.steps)
        return out

    def swap(self: P, other: P) -> None:
        """Exchange every member's state (buffers, step counts) with ``other``, a population of
        the same architecture and size: replacing the whole population without a copy."""
        check_out(self, other, self.n)
        mine, theirs = dict(vars(self)), dict(vars(other))
        vars(self).update(theirs)
        vars(other).update(mine)
