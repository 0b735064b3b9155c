"""One generation's two steps, as every engine runs them: training a population and one
pruning event.

Training (``Trainer``): batched gradients of every encoder/decoder pair (or of one side
against frozen partners), one Adam step per minibatch, one epoch over shuffled rows (in the
fused C kernels when ``native`` is set). The pruning event (``prune_event``): calibration rows
from the training set, the operator's ``PruneContext`` (``build_context``), its masks checked
(``masks_to_flat``) and intersected with the population's (``Population.prune``) or, under
``masks = "regrow"``, applied once (``zero_entries``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..errors import PluginError
from ..native import NativeKernels
from ..operators import DENSE_LAYERS, LayerMask, LayerView, Operator, PruneContext
from ..population import ConvPopulation, Population, Stack
from .conv_pruning import conv_layer_views, conv_masks_to_flat

if TYPE_CHECKING:
    from ..config import PruningConfig
    from ..data import Dataset
    from .runtime import Streams

__all__ = [
    "LOSSES",
    "PruneOutcome",
    "Trainer",
    "apply_operator",
    "build_context",
    "calibration",
    "counted",
    "loss_value",
    "masks_to_flat",
    "prune_event",
    "pseudo_labels",
    "reset_optimizer",
    "zero_entries",
]

# -- training ---------------------------------------------------------------------------

LOSSES = ("l1", "mse", "bce")


def loss_value(logits: Tensor, x: Tensor, loss: str) -> Tensor:
    """Per-member training loss ``(N,)`` of decoder logits against targets ``x``."""
    if loss == "bce":
        # softplus(z) - x z == BCE(sigmoid(z), x), stable for large |z|
        return (torch.nn.functional.softplus(logits) - x * logits).mean((1, 2))
    y = torch.sigmoid(logits)
    if loss == "mse":
        return (y - x).pow(2).mean((1, 2))
    return (y - x).abs().mean((1, 2))


def loss_grad(logits: Tensor, x: Tensor, loss: str, inplace: bool = False) -> Tensor:
    """Gradient of each member's mean loss w.r.t. its decoder logits.

    With ``inplace`` the result overwrites ``logits`` (saves two allocations per step).
    """
    y = torch.sigmoid_(logits) if inplace else torch.sigmoid(logits)
    scale = 1.0 / (x.shape[-1] * x.shape[-2])
    if loss == "bce":
        return y.sub_(x).mul_(scale) if inplace else (y - x).mul_(scale)
    slope = y * (1.0 - y)
    if loss == "mse":
        return (y - x).mul_(slope).mul_(2.0 * scale)
    return torch.sign(y - x).mul_(slope).mul_(scale)


def reset_optimizer(pop: Population | ConvPopulation) -> None:
    """Give every member a fresh Adam (moments and step count zero), as ``torch.optim.Adam``
    built anew would have; pruned entries keep their infinite second moment: still frozen."""
    pop.buffers["exp_avg"].zero_()
    pop.buffers["exp_avg_sq"].masked_fill_(pop.masks != 0, 0.0)
    pop.steps.zero_()


@dataclass
class Trainer:
    """Trains a population pair-wise (encoder i with decoder i) with per-member Adam.

    ``half_gradients``/``epoch_with_partners`` update one side against frozen partners (the
    coevolutionary "selected and random" variant). With ``native`` set, ``epoch`` runs in the
    fused C kernels on ``threads`` threads (same rows, same order, same Adam). With
    ``reset_each_step`` every minibatch step starts from a fresh Adam (the published Lipi-AE
    code builds one per minibatch: its first step is about ``lr * sign(g)``).
    """

    loss: str = "bce"
    betas: tuple[float, float] = (0.5, 0.999)
    eps: float = 1e-8
    native: NativeKernels | None = None
    threads: int = 1
    reset_each_step: bool = False

    def conv_loss(self, logits: Tensor, x: Tensor) -> Tensor:
        """Per-member training loss of a conv population (autograd differentiates it)."""
        return loss_value(logits, x, self.loss)

    def conv_logit_grad(self, logits: Tensor, x: Tensor) -> Tensor:
        """Gradient of each member's training loss w.r.t. its logits (the dense path's)."""
        return loss_grad(logits, x, self.loss)

    def gradients(self, pop: Population | ConvPopulation, x: Tensor, grad: Tensor) -> None:
        """Fill the gradient buffer ``grad`` (``(N, P)``, like ``pop.params``) for rows ``x``."""
        if isinstance(pop, ConvPopulation):
            pop.gradients(x, self.conv_loss, grad, self.conv_logit_grad)
            return
        x = x.to(pop.device)
        enc_cache: list[Tensor] = []
        dec_cache: list[Tensor] = []
        h = torch.relu(pop.encoders.forward(x, enc_cache))
        logits = pop.decoders.forward(h, dec_cache)
        g = loss_grad(logits, x, self.loss, inplace=True)
        split = pop.encoders.size
        gh = pop.decoders.backward(dec_cache, g, grad[:, split:], input_grad=True)
        gz = torch.ops.aten.threshold_backward(gh, h, 0.0)
        pop.encoders.backward(enc_cache, gz, grad[:, :split])

    def step(
        self, pop: Population | ConvPopulation, x: Tensor, lrs: list[float], grad: Tensor
    ) -> None:
        """One minibatch step of every pair on the shared rows ``x`` (``(B, D)``)."""
        self.gradients(pop, x, grad)
        pop.adam_step(grad, lrs, self.betas, self.eps)

    def epoch(
        self,
        pop: Population | ConvPopulation,
        data: Tensor,
        batch_size: int,
        lrs: list[float],
        generator: torch.Generator,
        buffer: Tensor | None = None,
    ) -> None:
        """One pass over ``data`` in a fresh shuffled order, minibatches shared by all pairs.

        ``buffer`` (like ``data``) receives the shuffled rows instead of a fresh tensor: a
        caller running many epochs saves an allocation of the whole data set per epoch.
        """
        with torch.no_grad():
            order = torch.randperm(data.shape[0], generator=generator)
            if buffer is None:
                rows = data.index_select(0, order)
            else:
                rows = torch.index_select(data, 0, order, out=buffer)
            if self.native is not None and self.native.supports(pop):
                self.native.train_epoch(
                    pop, rows, batch_size, lrs, self.loss, self.betas, self.eps, self.threads,
                    reset_each_step=self.reset_each_step,
                )  # fmt: skip
            else:
                self._pass(pop, rows, batch_size, lrs)

    def _pass(
        self, pop: Population | ConvPopulation, rows: Tensor, batch_size: int, lrs: list[float]
    ) -> None:
        grad = torch.empty_like(pop.params)
        for s in range(0, rows.shape[0], batch_size):
            if self.reset_each_step:
                reset_optimizer(pop)
            self.step(pop, rows[s : s + batch_size], lrs, grad)

    def half_gradients(
        self, train: Stack, partner: Stack, x: Tensor, out: Tensor, side: str
    ) -> None:
        """Gradients of ``train``'s parameters only, with ``partner`` (the other side) frozen.

        ``side`` says what ``train`` is ("encoder": ``train`` encodes and ``partner``
        decodes; "decoder": the reverse). ``out`` receives ``train``'s gradient columns.
        """
        x = x.to(train.params.device)
        if side == "encoder":
            enc_cache: list[Tensor] = []
            dec_cache: list[Tensor] = []
            h = torch.relu(train.forward(x, enc_cache))
            logits = partner.forward(h, dec_cache)
            g = loss_grad(logits, x, self.loss)
            gh = partner.backward(dec_cache, g, None, input_grad=True)
            assert gh is not None
            train.backward(enc_cache, torch.ops.aten.threshold_backward(gh, h, 0.0), out)
        else:
            dec_cache = []
            h = torch.relu_(partner.forward(x))
            logits = train.forward(h, dec_cache)
            train.backward(dec_cache, loss_grad(logits, x, self.loss), out)

    def epoch_with_partners(
        self,
        pop: Population | ConvPopulation,
        pool: Population | ConvPopulation,
        neighbours: Tensor,
        data: Tensor,
        batch_size: int,
        lrs: list[float],
        generator: torch.Generator,
        partner_generator: torch.Generator,
    ) -> None:
        """One epoch of the "selected and random" variant.

        Per minibatch, member i's encoder trains against a frozen copy of a random decoder of
        ``pool`` drawn from ``neighbours[i]``, and member i's decoder against a frozen copy of
        a random encoder drawn the same way (one Adam step for each network).
        """
        with torch.no_grad():
            order = torch.randperm(data.shape[0], generator=generator)
            rows = data.index_select(0, order)
            k = neighbours.shape[1]
            cells = torch.arange(pop.n)
            if self.native is not None and self.native.supports(pop) and self.native.supports(pool):
                partners = torch.stack(
                    [
                        neighbours[
                            cells, torch.randint(0, k, (2, pop.n), generator=partner_generator)
                        ]
                        for _ in range(0, rows.shape[0], batch_size)
                    ]
                )
                self.native.train_epoch(
                    pop, rows, batch_size, lrs, self.loss, self.betas, self.eps, self.threads,
                    pool=pool, partners=partners, reset_each_step=self.reset_each_step,
                )  # fmt: skip
                return
            if isinstance(pop, ConvPopulation) and isinstance(pool, ConvPopulation):
                self._conv_partners(pop, pool, neighbours, rows, batch_size, lrs, partner_generator)
                return
            assert isinstance(pop, Population) and isinstance(pool, Population)
            grad = torch.empty_like(pop.params)
            split = pop.encoders.size
            dev = pop.device
            enc_partner = Stack.standalone(pool.arch.encoder_dims, "relu", pop.n, dev)
            dec_partner = Stack.standalone(pool.arch.decoder_dims, "sigmoid", pop.n, dev)
            for s in range(0, rows.shape[0], batch_size):
                x = rows[s : s + batch_size]
                picks = torch.randint(0, k, (2, pop.n), generator=partner_generator)
                dec_rows = neighbours[cells, picks[0]].to(dev)
                enc_rows = neighbours[cells, picks[1]].to(dev)
                torch.index_select(pool.decoders.params, 0, dec_rows, out=dec_partner.params)
                torch.index_select(pool.encoders.params, 0, enc_rows, out=enc_partner.params)
                self.half_gradients(pop.encoders, dec_partner, x, grad[:, :split], "encoder")
                self.half_gradients(pop.decoders, enc_partner, x, grad[:, split:], "decoder")
                if self.reset_each_step:
                    reset_optimizer(pop)
                pop.steps.add_(1)
                pop.adam_step(grad, lrs, self.betas, self.eps, part="encoder", count=False)
                pop.adam_step(grad, lrs, self.betas, self.eps, part="decoder", count=False)

    def _conv_partners(
        self,
        pop: ConvPopulation,
        pool: ConvPopulation,
        neighbours: Tensor,
        rows: Tensor,
        batch_size: int,
        lrs: list[float],
        partner_generator: torch.Generator,
    ) -> None:
        """``epoch_with_partners`` for conv populations: same draws, same Adam half-steps."""
        grad = torch.empty_like(pop.params)
        k = neighbours.shape[1]
        cells = torch.arange(pop.n)
        for s in range(0, rows.shape[0], batch_size):
            x = rows[s : s + batch_size]
            picks = torch.randint(0, k, (2, pop.n), generator=partner_generator)
            dec_partner = pool.decoders.take(neighbours[cells, picks[0]])
            enc_partner = pool.encoders.take(neighbours[cells, picks[1]])
            pop.partner_gradients(enc_partner, dec_partner, x, self.conv_loss, grad)
            if self.reset_each_step:
                reset_optimizer(pop)
            pop.steps.add_(1)
            pop.adam_step(grad, lrs, self.betas, self.eps, part="encoder", count=False)
            pop.adam_step(grad, lrs, self.betas, self.eps, part="decoder", count=False)


# -- one pruning event ------------------------------------------------------------------


def calibration(
    data: Dataset, rows: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``rows`` training rows (and labels) drawn without replacement."""
    idx = torch.randperm(data.train.shape[0], generator=gen)[:rows]
    labels = None if data.train_labels is None else data.train_labels[idx]
    return data.train[idx], labels


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
