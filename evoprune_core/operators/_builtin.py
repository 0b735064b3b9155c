"""The built-in pruning operators: none, random, magnitude, variance, conjunctive."""

from __future__ import annotations

import torch
from torch import Tensor

from ..params import Param
from ._api import (
    LAYER_KINDS,
    LayerMask,
    LayerView,
    Operator,
    PruneContext,
    alive_units,
    prune_fraction,
    structured_mask,
)

__all__ = [
    "ConjunctivePruning",
    "MagnitudePruning",
    "NoPruning",
    "RandomPruning",
    "VariancePruning",
    "builtin_operators",
]


# -- helpers of the built-ins ----------------------------------------------------------------
def _unit_probabilities(weights: Tensor, sizes: Tensor, amount: float) -> Tensor:
    """Per-unit pruning probabilities ``min(1, c * w)`` whose size-weighted mean is ``amount``.

    ``weights`` and ``sizes`` are ``(m,)``; ``c`` is found by bisection (water filling).
    """
    total = sizes.sum()
    if total == 0 or amount <= 0 or weights.max() <= 0:
        return torch.zeros_like(weights)
    target = amount * total
    lo, hi = 0.0, 1.0
    while float((torch.clamp(hi * weights, max=1.0) * sizes).sum()) < target and hi < 1e12:
        hi *= 2.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if float((torch.clamp(mid * weights, max=1.0) * sizes).sum()) < target:
            lo = mid
        else:
            hi = mid
    return torch.clamp(hi * weights, max=1.0)


def _guided_layers(ctx: PruneContext, include_output: bool) -> list[tuple[int, LayerView]]:
    return [(i, lv) for i, lv in enumerate(ctx.layers) if include_output or not lv.is_output]


# -- built-in operators --------------------------------------------------------------------
class NoPruning(Operator):
    """Prunes nothing: the no-pruning baseline."""

    name = "none"
    layer_kinds = LAYER_KINDS
    description = "no pruning (baseline)"
    uses_amount = False
    prunes = False

    def prune(self, ctx: PruneContext) -> list[LayerMask]:
        return ctx.unchanged()


class RandomPruning(Operator):
    """Remove ``round(amount * alive)`` alive entries of every weight and bias tensor, uniformly."""

    name = "random"
    layer_kinds = LAYER_KINDS
    description = "uniformly random unstructured pruning of a fraction of alive entries"
    amount_exact = True

    def prune(self, ctx: PruneContext) -> list[LayerMask]:
        out = []
        for lv in ctx.layers:
            masks = []
            for m in (lv.weight_mask, lv.bias_mask):
                flat = m.reshape(ctx.n, -1)
                scores = torch.rand(flat.shape, generator=ctx.rng)
                masks.append(prune_fraction(flat, scores, ctx.amount).view_as(m))
            out.append(LayerMask(*masks))
        return out


class MagnitudePruning(Operator):
    """Remove the ``amount`` fraction of alive weights with the smallest ``|w|``."""

    name = "magnitude"
    layer_kinds = LAYER_KINDS
    description = "unstructured pruning of the smallest-magnitude weights"
    amount_exact = True
    parameters = (
        Param(
            "scope",
            "categorical",
            "layer",
            choices=("layer", "global"),
            help="rank within each tensor, or across all weights of a member",
        ),
    )

    def prune(self, ctx: PruneContext) -> list[LayerMask]:
        if self.params["scope"] == "layer":
            out = []
            for lv in ctx.layers:
                w = prune_fraction(
                    lv.weight_mask.reshape(ctx.n, -1),
                    lv.weight.abs().reshape(ctx.n, -1),
                    ctx.amount,
                )
                b = prune_fraction(lv.bias_mask, lv.bias.abs(), ctx.amount)
                out.append(LayerMask(w.view_as(lv.weight_mask), b))
            return out
        flats = [t.reshape(ctx.n, -1) for lv in ctx.layers for t in (lv.weight_mask, lv.bias_mask)]
        vals = [t.abs().reshape(ctx.n, -1) for lv in ctx.layers for t in (lv.weight, lv.bias)]
        keep = prune_fraction(torch.cat(flats, 1), torch.cat(vals, 1), ctx.amount)
        parts = keep.split([f.shape[1] for f in flats], 1)
        return [
            LayerMask(parts[2 * i].view_as(lv.weight_mask), parts[2 * i + 1].view_as(lv.bias_mask))
            for i, lv in enumerate(ctx.layers)
        ]


class VariancePruning(Operator):
    """Activation-variance guided pruning.

    Per unit j the spread s_j of its activation over the calibration rows is min-max normalised
    over the layer's alive units; every alive incoming weight and the bias of unit j is pruned
    with probability ``min(1, c * w_j)``, ``w_j = 1 - s_j`` (``direction="low"``: low-spread
    units carry little information) or ``s_j`` (``"high"``, the published code's behaviour),
    with ``c`` chosen so the expected pruned fraction of the layer's alive entries is ``amount``.
    ``rate = "spread"`` drops ``c`` (the published code): the probability is ``w_j`` itself and
    ``amount`` is ignored, so one event removes a data-dependent share (25-44% there).
    """

    name = "variance"
    layer_kinds = LAYER_KINDS
    description = "prune incoming weights of low- (or high-) activation-spread units"
    needs = frozenset({"activations"})
    parameters = (
        Param(
            "direction",
            "categorical",
            "low",
            choices=("low", "high"),
            help="prune low-spread units (paper text) or high-spread units (published code)",
        ),
        Param("spread", "categorical", "std", choices=("std", "var")),
        Param(
            "include_output",
            "bool",
            False,
            tunable=False,
            help="also prune the output layer (each unit is a reconstructed pixel)",
        ),
        Param(
            "rate",
            "categorical",
            "amount",
            choices=("amount", "spread"),
            tunable=False,
            help="expected pruned fraction = amount, or each unit's normalised spread is its "
            "probability and amount is ignored (the published code)",
        ),
    )

    def prune(self, ctx: PruneContext) -> list[LayerMask]:
        out = ctx.unchanged()
        for i, lv in _guided_layers(ctx, self.params["include_output"]):
            acts = lv.activations
            assert acts is not None, "variance needs activations"
            spread = acts.std(1) if self.params["spread"] == "std" else acts.var(1)
            alive = alive_units(lv)
            sizes = (lv.weight_mask.flatten(2).sum(2) + lv.bias_mask).double()
            wmasks, bmasks = [], []
            for k in range(ctx.n):
                s = spread[k].double()
                a = alive[k]
                w = torch.zeros_like(s)
                if a.any():
                    lo, hi = s[a].min(), s[a].max()
                    norm = (s - lo) / (hi - lo) if hi > lo else torch.full_like(s, 0.5)
                    w = torch.where(
                        a,
                        1.0 - norm if self.params["direction"] == "low" else norm,
                        torch.zeros_like(s),
                    )
                if self.params["rate"] == "spread":
                    p = w.float()
                else:
                    p = _unit_probabilities(w, sizes[k] * a, ctx.amount).float()
                wdraw = torch.rand(lv.weight_mask[k].shape, generator=ctx.rng) < p.view(
                    lv.unit_shape[1:]
                )
                bdraw = torch.rand(lv.bias_mask[k].shape, generator=ctx.rng) < p
                wmasks.append(lv.weight_mask[k] & ~wdraw)
                bmasks.append(lv.bias_mask[k] & ~bdraw)
            out[i] = LayerMask(torch.stack(wmasks), torch.stack(bmasks))
        return out


class ConjunctivePruning(Operator):
    """Activation-threshold ("conjunctive", published as "lexicase") structured pruning.

    For each of ``cases`` calibration rows the layer's activations are min-max normalised over
    its alive units and units below ``threshold`` are flagged. The units flagged in every case
    (the intersection) lose their whole incoming row and bias: they are (nearly) dead ReLUs.
    ``stop = "one_left"`` reproduces the published code's shortcut instead: the intersection is
    taken case by case and stops as soon as at most one unit is left, which then goes - a live
    unit that merely ranked low on the first cases, so every event removes a unit and a trained
    network is emptied layer by layer. ``amount`` does not apply. A layer keeps ``min_units``
    alive units (min-max over a single unit would otherwise flag and remove it).
    """

    name = "conjunctive"
    layer_kinds = LAYER_KINDS
    description = "structured pruning of units whose activation is low in every case"
    needs = frozenset({"activations"})
    uses_amount = False
    parameters = (
        Param(
            "threshold",
            "float",
            0.1,
            low=0.01,
            high=0.5,
            help="normalised activation below which a unit is flagged in a case",
        ),
        Param("cases", "int", 100, low=1, high=1000, help="calibration rows used as cases"),
        Param(
            "stop",
            "categorical",
            "all_cases",
            choices=("all_cases", "one_left"),
            help="prune units flagged in every case, or stop once at most one unit is left "
            "(the published code)",
        ),
        Param(
            "min_units",
            "int",
            1,
            low=0,
            high=100_000,
            tunable=False,
            help="alive units every layer keeps (0 lets a layer die)",
        ),
        Param("include_output", "bool", False, tunable=False),
    )

    def prune(self, ctx: PruneContext) -> list[LayerMask]:
        out = ctx.unchanged()
        tau = self.params["threshold"]
        for i, lv in _guided_layers(ctx, self.params["include_output"]):
            acts = lv.activations
            assert acts is not None, "conjunctive needs activations"
            acts = acts[:, : self.params["cases"]]  # (n, K, units)
            alive = alive_units(lv)  # (n, units)
            big = torch.finfo(acts.dtype).max
            lo = acts.masked_fill(~alive.unsqueeze(1), big).amin(2, keepdim=True)
            hi = acts.masked_fill(~alive.unsqueeze(1), -big).amax(2, keepdim=True)
            span = hi - lo
            norm = torch.where(
                span > 0, (acts - lo) / span.clamp_min(1e-30), torch.zeros_like(acts)
            )
            flagged = (norm < tau) & alive.unsqueeze(1)  # (n, K, units)
            running = flagged.long().cumprod(1).bool()  # intersection after each case
            last = torch.full((ctx.n,), acts.shape[1] - 1)
            if self.params["stop"] == "one_left":
                small = running.sum(2) <= 1  # (n, K)
                last = torch.where(small.any(1), small.long().argmax(1), last)
            units = running[torch.arange(ctx.n), last]  # (n, units)
            # never empty a layer: keep at least `min_units` alive units, sparing the
            # selected units of highest mean normalised activation
            spare = (alive.sum(1) - units.sum(1) - self.params["min_units"]).clamp(max=0).neg()
            if bool((spare > 0).any()):
                score = norm.mean(1).masked_fill(~units, -1.0)
                ranks = score.argsort(dim=1, descending=True, stable=True).argsort(dim=1)
                units = units & (ranks >= spare.unsqueeze(1))
            out[i] = structured_mask(lv, units)
        return out


def builtin_operators() -> list[type[Operator]]:
    """The operators of this module (``formula`` is registered by ``evoprune_core.evolve``)."""
    return [NoPruning, RandomPruning, MagnitudePruning, VariancePruning, ConjunctivePruning]
