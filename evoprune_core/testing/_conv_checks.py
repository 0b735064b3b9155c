"""The operator kit's conv check: an operator on a small conv autoencoder population.

An operator whose ``layer_kinds`` include the conv kinds must return, on a conv network, one
bool mask per layer of the layer's (output-channel-first) shapes, a subset of the current
masks at every amount, and prune nothing at amount 0 when it uses the amount. An operator
that declares dense layers only must be refused by the engine with one ``PluginError`` line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import torch

from ..errors import PluginError
from ..operators import LayerMask, Operator, PruneContext
from ..population import ConvArchitecture, ConvPopulation

if TYPE_CHECKING:
    from ._operators import KitSettings

__all__ = ["conv_context", "conv_network_check"]

_CONV = ConvArchitecture.from_preset("conv-small", (1, 8, 8))


def conv_population(n: int, seed: int) -> ConvPopulation:
    """``n`` conv-small members for 1x8x8 images, 25% pruned at random, channel 0 of the
    first conv layer dead (its filter and bias pruned)."""
    gen = torch.Generator().manual_seed(seed)
    pop = ConvPopulation.create(_CONV, n, gen)
    keep = (torch.rand(pop.masks.shape, generator=gen) >= 0.25).float()
    enc_keep = keep[:, : pop.encoders.size]
    pop.encoders.weight(0, enc_keep)[:, 0] = 0.0
    pop.encoders.bias(0, enc_keep)[:, 0] = 0.0
    pop.prune(keep)
    return pop


def conv_context(op: Operator, s: KitSettings, amount: float, n: int = 2) -> PruneContext:
    """A context of ``n`` kit conv networks (``s``: the kit's ``KitSettings``)."""
    from ..engines.steps import build_context

    pop = conv_population(n, s.seed)
    gen = torch.Generator().manual_seed(s.seed + 1)
    rows = torch.rand(s.rows, _CONV.input_dim, generator=gen)
    labels = torch.randint(0, 3, (s.rows,), generator=gen)
    rng = torch.Generator().manual_seed(s.seed)
    return build_context(pop, list(range(n)), op, amount, rows, labels, rng, "bce", s.batches)


def conv_network_check(
    op: Operator,
    s: KitSettings,
    prune: Callable[[Operator, PruneContext], list[LayerMask]],
    alive: Callable[[Iterable[Any]], int],
) -> None:
    """On a conv network: well-formed masks that never grow (or, for a dense-only operator,
    one clear refusal). ``prune`` runs the operator and checks its masks' structure; ``alive``
    counts alive entries (the kit's own helpers)."""
    conv = {"conv2d", "conv_transpose2d"} <= set(op.layer_kinds)
    if not conv:
        try:
            conv_context(op, s, s.amount)
        except PluginError as exc:
            text = str(exc)
            assert "\n" not in text and "conv" in text, f"unclear refusal: {text!r}"
            return
        raise AssertionError("a dense-only operator was given a conv network")
    for amount in (0.0, s.amount, 1.0):
        ctx = conv_context(op, s, amount)
        kinds = {lv.kind for lv in ctx.layers}
        assert kinds == {"conv2d", "conv_transpose2d", "dense"}, kinds
        out = prune(op, ctx)
        for lv, m in zip(ctx.layers, out):
            grown = int((m.weight & ~lv.weight_mask).sum() + (m.bias & ~lv.bias_mask).sum())
            assert grown == 0, f"conv network, amount={amount}: {lv.name}: {grown} entries grow"
        if amount == 0.0 and op.uses_amount:
            before = alive([LayerMask(lv.weight_mask, lv.bias_mask) for lv in ctx.layers])
            assert alive(out) == before, "conv network: amount 0 pruned entries"
