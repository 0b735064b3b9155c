"""Pairing encoders with decoders across a population's flat ``(N, P)`` buffers."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

__all__ = ["pair_buffers"]


def pair_buffers(
    buffers: dict[str, Tensor], keys: Iterable[str], split: int, encoders: Tensor, decoders: Tensor
) -> dict[str, Tensor]:
    """Copies of ``buffers[k]`` for each key: row k holds the encoder part (columns before
    ``split``) of member ``encoders[k]`` and the decoder part of member ``decoders[k]``."""
    return {
        k: torch.cat(
            [
                buffers[k][:, :split].index_select(0, encoders),
                buffers[k][:, split:].index_select(0, decoders),
            ],
            1,
        )
        for k in keys
    }
