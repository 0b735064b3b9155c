"""One pruning event, as both engines run it: calibration rows, the operator's context, its
masks intersected with the population's (``prune_event``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..errors import PluginError
from ..operators import DENSE_LAYERS, LayerMask, LayerView, Operator, PruneContext
from ..population import ConvPopulation, Population
from .conv_pruning import conv_layer_views, conv_masks_to_flat
from .runtime import Streams, calibration
from .training import Trainer

if TYPE_CHECKING:
    from ..config import PruningConfig
    from ..data import Dataset

__all__ = [
    "PruneOutcome",
    "apply_operator",
    "build_context",
    "counted",
    "prune_event",
    "pseudo_labels",
    "zero_entries",
]


@dataclass(frozen=True)
class PruneOutcome:
    """Entries (weights + biases) alive before and after one event, summed over members.

    ``zeroed``: the entries the event's masks zero, counted as the published code counts
    pruned entries (already-zero ones included); equal to ``removed`` under persistent masks.
    """

    alive_before: int
    alive_after: int
    zeroed: int = 0
    events: int = 0

    @property
    def removed(self) -> int:
        return self.alive_before - self.alive_after


def pseudo_labels(rows: Tensor, k: int, seed: int) -> Tensor:
    """k-means cluster indices of ``rows``: labels for label-aware operators on unlabelled data."""
    from sklearn.cluster import KMeans

    k = max(1, min(k, rows.shape[0]))
    km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(rows.numpy())
    return torch.as_tensor(km.labels_, dtype=torch.long)


def build_context(
    pop: Population | ConvPopulation,
    members: list[int],
    operator: Operator,
    amount: float,
    rows: Tensor,
    labels: Tensor | None,
    rng: torch.Generator,
    loss: str = "bce",
    batches: int = 10,
) -> PruneContext:
    """The ``PruneContext`` for ``members``, with what ``operator.needs`` asks for.

    Tensors are copies: an operator cannot change the population by writing into them.
    """
    if isinstance(pop, ConvPopulation):
        kinds = getattr(operator, "layer_kinds", DENSE_LAYERS)
        if not {"conv2d", "conv_transpose2d"} <= set(kinds):
            raise PluginError(
                f"operator {operator.name!r} handles {', '.join(sorted(kinds))} layers only; "
                "this network has conv layers"
            )
    with torch.no_grad():
        sub = pop.take(members)
        needs = operator.needs
        acts = sub.activations(rows) if "activations" in needs else []
        grads: Tensor | None = None
        if "gradients" in needs:
            chunks = rows.tensor_split(min(batches, rows.shape[0]))
            buf = sub.params.new_empty((len(chunks),) + tuple(sub.params.shape))
            trainer = Trainer(loss)
            for k, chunk in enumerate(chunks):
                trainer.gradients(sub, chunk, buf[k])
            grads = buf.transpose(0, 1).mul_(sub.masks.unsqueeze(1)).cpu()  # (n, K, P), pruned 0
        if "labels" in needs and labels is None:
            labels = pseudo_labels(rows, 10, int(torch.randint(0, 2**31 - 1, (1,), generator=rng)))
        layers: list[LayerView] = []
        offset = 0
        if isinstance(sub, ConvPopulation):
            layers = conv_layer_views(sub, acts, grads)
        for part, stack in sub.parts() if isinstance(sub, Population) else ():
            for layer in range(stack.n_layers):
                gw = gb = None
                if grads is not None:
                    g = grads[:, :, offset : offset + stack.size]
                    a, b, c = stack.offsets[layer]
                    gw = g[:, :, a:b].reshape(sub.n, -1, stack.dims[layer], stack.dims[layer + 1])
                    gw = gw.transpose(2, 3).contiguous()
                    gb = g[:, :, b:c].contiguous()
                layers.append(
                    LayerView(
                        name=f"{part}.{layer}",
                        part=part,
                        index=layer,
                        weight=stack.weight(layer).transpose(1, 2).cpu().contiguous(),
                        bias=stack.bias(layer).cpu().clone(),
                        weight_mask=stack.weight(layer, stack.masks).transpose(1, 2).cpu() > 0,
                        bias_mask=stack.bias(layer, stack.masks).cpu() > 0,
                        activation=stack.final if layer == stack.n_layers - 1 else "relu",
                        is_output=part == "decoder" and layer == stack.n_layers - 1,
                        activations=acts[len(layers)] if acts else None,
                        weight_grads=gw,
                        bias_grads=gb,
                    )
                )
            offset += stack.size
        return PruneContext(
            layers=tuple(layers),
            amount=amount,
            rng=rng,
            members=tuple(members),
            inputs=rows.clone(),
            labels=None if labels is None or "labels" not in needs else labels.clone(),
        )


def masks_to_flat(
    pop: Population | ConvPopulation,
    ctx: PruneContext,
    masks: list[LayerMask],
    who: str = "operator",
) -> Tensor:
    """Concatenate per-layer boolean masks into the population's ``(k, P)`` layout (float 0/1).

    Masks of the wrong number, shape or dtype raise ``PluginError`` naming ``who``: a float
    mask would scale the weights instead of pruning them.
    """
    if len(masks) != len(ctx.layers):
        raise PluginError(f"{who} returned {len(masks)} layer masks, expected {len(ctx.layers)}")
    parts = []
    for lv, m in zip(ctx.layers, masks):
        for what, got, want in (
            ("weight", m.weight, lv.weight_mask),
            ("bias", m.bias, lv.bias_mask),
        ):
            if not isinstance(got, Tensor):
                raise PluginError(
                    f"{who} returned a {type(got).__name__} as the {what} mask for {lv.name}, "
                    "not a tensor"
                )
            if got.shape != want.shape:
                raise PluginError(
                    f"{who} returned a {what} mask of shape {tuple(got.shape)} for {lv.name}, "
                    f"expected {tuple(want.shape)}"
                )
            if got.dtype != torch.bool:
                raise PluginError(
                    f"{who} returned a {got.dtype} {what} mask for {lv.name}; allowed: torch.bool"
                )
        parts.append(m.weight.transpose(1, 2).reshape(ctx.n, -1))
        parts.append(m.bias.reshape(ctx.n, -1))
    if isinstance(pop, ConvPopulation):
        return conv_masks_to_flat(ctx.layers, masks, ctx.n).to(pop.masks.dtype)
    return torch.cat(parts, 1).to(pop.masks.dtype)


def prune_event(
    pop: Population | ConvPopulation,
    members: list[int],
    operator: Operator,
    pruning: PruningConfig,
    data: Dataset,
    streams: Streams,
    loss: str,
) -> PruneOutcome:
    """One pruning event on ``members``: calibration rows from the training set (stream
    ``prune``), the operator on their context (stream ``operator``), its masks applied.

    ``events`` counts the members pruned; an operator with ``prunes = False`` (the baseline)
    draws the same random numbers and counts none.
    """
    rows, labels = calibration(data, pruning.calibration_rows, streams.prune)
    out = apply_operator(
        pop,
        members,
        operator,
        pruning.amount,
        rows,
        labels,
        streams.operator,
        loss,
        pruning.calibration_batches,
        pruning.masks,
    )
    events = len(members) if operator.prunes else 0
    return PruneOutcome(out.alive_before, out.alive_after, out.zeroed, events)


def apply_operator(
    pop: Population | ConvPopulation,
    members: list[int],
    operator: Operator,
    amount: float,
    rows: Tensor,
    labels: Tensor | None,
    rng: torch.Generator,
    loss: str = "bce",
    batches: int = 10,
    masks: str = "persistent",
) -> PruneOutcome:
    """Run ``operator`` on ``members`` and intersect their masks with its result.

    ``masks = "regrow"`` (the published code): the entries are zeroed once and stay trainable;
    the masks stay as they are, and alive means non-zero.
    """
    if not members:
        return PruneOutcome(0, 0)
    idx = torch.as_tensor(members, dtype=torch.long, device=pop.masks.device)
    if not operator.prunes:  # the baseline: no context to build
        alive = int(counted(pop, masks).masks.index_select(0, idx).sum().item())
        return PruneOutcome(alive, alive)
    ctx = build_context(pop, members, operator, amount, rows, labels, rng, loss, batches)
    keep = masks_to_flat(pop, ctx, operator.prune(ctx), f"operator {operator.name!r}")
    before = int(counted(pop, masks).masks.index_select(0, idx).sum().item())
    zeroed = int((keep == 0).sum().item())
    if masks == "regrow":
        zero_entries(pop, keep, idx)
    else:
        pop.prune(keep, idx)
    after = int(counted(pop, masks).masks.index_select(0, idx).sum().item())
    return PruneOutcome(before, after, zeroed if masks == "regrow" else before - after)


def zero_entries(pop: Population | ConvPopulation, keep: Tensor, members: Tensor) -> None:
    """Zero the weights of ``members`` where ``keep`` is 0, once: masks and Adam moments stay
    (like ``torch.nn.utils.prune`` applied and removed), so training may grow them back."""
    at = members.to(pop.params.device)
    rows = pop.params[at]
    pop.params[at] = rows * keep.to(rows)


def counted(pop: Population | ConvPopulation, masks: str) -> Population | ConvPopulation:
    """``pop`` itself, or under ``masks = "regrow"`` a view whose masks are its non-zero
    entries (what its sparsity and remaining fractions then count)."""
    if masks != "regrow":
        return pop
    nonzero = (pop.params != 0).to(pop.masks.dtype)
    return type(pop)(pop.arch, {**pop.buffers, "masks": nonzero}, pop.steps)  # type: ignore[arg-type]
