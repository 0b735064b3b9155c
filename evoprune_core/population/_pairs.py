"""Pairing encoders with decoders across a population's flat ``(N, P)`` buffers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

import torch
from torch import Tensor

__all__ = ["Paired", "check_out", "pair_buffers"]

P = TypeVar("P", bound="Paired")


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


class Paired:
    """What the dense and the conv population share for selection: gathering pairs into a
    reused population and swapping whole states (both keep flat ``(N, P)`` buffers split
    at ``encoders.size``, and ``steps``)."""

    BUFFERS: tuple[str, ...]
    buffers: dict[str, Tensor]
    steps: Tensor

    def _take_into(self: P, out: P, encoders: Tensor, decoders: Tensor) -> P:
        """``take`` into ``out`` (same class and architecture, ``len(encoders)`` members)."""
        check_out(self, out, len(encoders))
        split = self.encoders.size  # type: ignore[attr-defined]
        pair_buffers(self.buffers, self.BUFFERS, split, encoders, decoders, out.buffers)
        torch.index_select(self.steps, 0, encoders, out=out.steps)
        return out

    def swap(self: P, other: P) -> None:
        """Exchange every member's state (buffers, step counts) with ``other``, a population of
        the same architecture and size: replacing the whole population without a copy."""
        check_out(self, other, self.n)  # type: ignore[attr-defined]
        mine, theirs = dict(vars(self)), dict(vars(other))
        vars(self).update(theirs)
        vars(other).update(mine)
