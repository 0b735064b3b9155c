"""The Taylor operator: prune the entries (or units) whose removal changes the loss least.

Removing weight ``w`` changes the loss by about ``-w * dL/dw`` (first-order Taylor expansion),
so ``|w * dL/dw|`` is its importance. The engine computes ``dL/dw`` on each of K calibration
batches because the operator declares ``needs = {"gradients"}``; the importance is accumulated
over the batches (``aggregate``): the mean of ``|w * g_k|`` (default; robust when the batch
gradients cancel out near a minimum) or ``|w * mean_k g_k|``.
"""

from __future__ import annotations

import torch
from evoprune_core import LayerMask, Operator, Param, PruneContext
from evoprune_core.operators import LAYER_KINDS, alive_units, prune_fraction
from torch import Tensor

__all__ = ["TaylorPruning", "taylor_importance"]


def taylor_importance(value: Tensor, grads: Tensor, aggregate: str = "mean_abs") -> Tensor:
    """Importance of every entry: ``value`` is ``(n, *shape)``, ``grads`` ``(n, K, *shape)``."""
    if aggregate == "mean_abs":
        return (value.unsqueeze(1) * grads).abs().mean(1)
    return (value * grads.mean(1)).abs()


def _lowest(scores: Tensor, alive: Tensor, k: Tensor) -> Tensor:
    """The ``k[i]`` alive entries of lowest score in each row ``i`` of ``(n, m)`` ``scores``."""
    s = scores.masked_fill(~alive, float("inf"))
    ranks = s.argsort(dim=1, stable=True).argsort(dim=1, stable=True)
    return alive & (ranks < k.unsqueeze(1))


class TaylorPruning(Operator):
    """First-order Taylor pruning: remove the ``amount`` fraction of least important entries.

    Unstructured (default): every alive weight and bias is scored by ``|w * dL/dw|`` and the
    lowest ``round(amount * alive)`` are removed within each tensor (``scope="layer"``) or
    across the whole network of each member (``"global"``). Structured: a unit's importance is
    the summed importance of its alive incoming weights and bias; the lowest
    ``round(amount * alive units)`` units lose their whole incoming row and bias, per layer or
    (``"global"``, scores divided by their layer's mean) across layers. Structured pruning
    keeps at least one unit per layer and leaves the output layer (reconstructed pixels) alone
    unless ``include_output``. On a conv layer a unit is an output channel (its whole filter
    and bias).
    """

    name = "taylor"
    layer_kinds = LAYER_KINDS
    description = "first-order Taylor importance |w * dL/dw| over the calibration batches"
    needs = frozenset({"gradients"})
    parameters = (
        Param(
            "scope",
            "categorical",
            "layer",
            choices=("layer", "global"),
            help="rank within each layer, or across the whole network of a member",
        ),
        Param(
            "structured",
            "bool",
            False,
            help="score units by summed importance and remove whole incoming rows",
        ),
        Param(
            "aggregate",
            "categorical",
            "mean_abs",
            choices=("mean_abs", "abs_mean"),
            help="mean over batches of |w*g|, or |w * mean gradient|",
        ),
        Param(
            "include_output",
            "bool",
            False,
            tunable=False,
            help="structured only: also remove output units (reconstructed pixels)",
        ),
    )

    @property
    def amount_exact(self) -> bool:  # type: ignore[override]
        """Unstructured pruning removes ``round(amount * alive)`` entries; structured, units."""
        return not self.params["structured"]

    def prune(self, ctx: PruneContext) -> list[LayerMask]:
        scores = []
        for lv in ctx.layers:
            if lv.weight_grads is None or lv.bias_grads is None:
                raise ValueError("taylor needs gradients: the context has none")
            scores.append(
                (
                    taylor_importance(lv.weight, lv.weight_grads, self.params["aggregate"]),
                    taylor_importance(lv.bias, lv.bias_grads, self.params["aggregate"]),
                )
            )
        if self.params["structured"]:
            return self._structured(ctx, scores)
        return self._unstructured(ctx, scores)

    def _unstructured(
        self, ctx: PruneContext, scores: list[tuple[Tensor, Tensor]]
    ) -> list[LayerMask]:
        n = ctx.n
        masks = [t.reshape(n, -1) for lv in ctx.layers for t in (lv.weight_mask, lv.bias_mask)]
        flat = [t.reshape(n, -1) for pair in scores for t in pair]
        if self.params["scope"] == "layer":
            keep = [prune_fraction(m, s, ctx.amount) for m, s in zip(masks, flat)]
        else:
            joint = prune_fraction(torch.cat(masks, 1), torch.cat(flat, 1), ctx.amount)
            keep = list(joint.split([m.shape[1] for m in masks], 1))
        return [
            LayerMask(keep[2 * i].view_as(lv.weight_mask), keep[2 * i + 1].view_as(lv.bias_mask))
            for i, lv in enumerate(ctx.layers)
        ]

    def _structured(
        self, ctx: PruneContext, scores: list[tuple[Tensor, Tensor]]
    ) -> list[LayerMask]:
        out = ctx.unchanged()
        guided = [
            i
            for i, lv in enumerate(ctx.layers)
            if self.params["include_output"] or not lv.is_output
        ]
        alive = [alive_units(ctx.layers[i]) for i in guided]
        units = []
        for i, a in zip(guided, alive):
            lv, (ws, bs) = ctx.layers[i], scores[i]
            incoming = (ws * lv.weight_mask).flatten(2).sum(2)  # a neuron's row or a channel
            units.append((incoming + bs * lv.bias_mask).masked_fill(~a, 0.0))
        if not guided:
            return out
        if self.params["scope"] == "layer":
            chosen = []
            for u, a in zip(units, alive):
                count = a.sum(1)
                k = torch.minimum(torch.round(count.double() * ctx.amount).long(), count - 1)
                chosen.append(_lowest(u, a, k.clamp_min(0)))
        else:
            normed = []
            for u, a in zip(units, alive):
                mean = u.sum(1, keepdim=True) / a.sum(1, keepdim=True).clamp_min(1)
                normed.append(torch.where(mean > 0, u / mean.clamp_min(1e-30), u))
            joint_alive = torch.cat(alive, 1)
            k = torch.round(joint_alive.sum(1).double() * ctx.amount).long()
            joint = _lowest(torch.cat(normed, 1), joint_alive, k)
            chosen = []
            for sel, u, a in zip(joint.split([a.shape[1] for a in alive], 1), units, alive):
                # spare the most important selected unit of a layer that would lose them all
                emptied = (sel.sum(1) == a.sum(1)) & (a.sum(1) > 0)
                best = u.masked_fill(~sel, -1.0).argmax(1)
                spare = torch.zeros_like(sel)
                spare[torch.arange(ctx.n), best] = emptied
                chosen.append(sel & ~spare)
        for i, sel in zip(guided, chosen):
            lv = ctx.layers[i]
            keep = ~sel
            shape = keep.shape + (1,) * (lv.weight_mask.dim() - 2)
            out[i] = LayerMask(lv.weight_mask & keep.view(shape), lv.bias_mask & keep)
        return out
