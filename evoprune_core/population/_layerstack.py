"""N networks of one generic layer list, trained as one program (im2col + batched matmul).

API (stable; the CNN classifiers of issue 22 build on it)::

    from evoprune_core.population import LayerStack, conv2d, dense, flatten, activation, ...

    specs = (conv2d(6, 5, padding=2), activation("relu"), max_pool2d(2), flatten(), dense(10))
    stack = LayerStack.standalone(specs, (1, 28, 28), n=10)   # own zeroed buffers, all alive
    stack.init_(torch.Generator().manual_seed(0))             # like torch.nn's default init
    y = stack.forward(x)                 # x (B, 1, 28, 28) shared or (N, B, 1, 28, 28) -> (N, B, 10)
    grad = torch.zeros_like(stack.params)
    loss = stack.value_and_grad(x, per_member_loss, grad)   # (N,) losses; grad filled
    stack.adam_step(grad, lrs=[1e-3] * 10, betas=(0.9, 0.999), eps=1e-8)
    stack.prune(keep)                    # keep (N, P) 0/1: masks persist, nothing regrows
    stack.reset_optimizer()              # a fresh Adam per member (pruned entries stay frozen)
    stack.to_module(3)                   # member 3 as a torch.nn.Sequential (masked weights)

State: four ``(N, P)`` buffers - ``params``, ``masks`` (0/1), ``exp_avg``, ``exp_avg_sq`` - and
``steps`` ``(N,)``, usually column views into a population's buffers. ``layers`` lists the
parameter layers (:class:`~evoprune_core.population.ParamLayer`); ``weight(i, buf)`` and
``bias(i, buf)`` are ``(N, *torch layout)`` and ``(N, out)`` views of any buffer. A pruned entry
is 0 with first moment 0 and second moment +inf, so Adam never moves it; a pruned *channel* is
all of its weights and its bias pruned.

How it runs: image activations are kept as ``(N, C, H, W, B)`` - members outermost, the
minibatch innermost - and every strided conv and transposed-conv layer of all members is one
im2col and one ``bmm`` (see ``_convops``: a written-out backward); the first layer, whose
input all members share, unfolds it once and multiplies it with every member's filters in
one ``mm``. That is the program of a stack whose conv layers are all strided (the conv
autoencoders). A stack with a stride-1 conv layer (or none) runs as grouped convolutions
instead (``_grouped``: oneDNN, ``groups=N``, channels-last): im2col would copy k*k times the
input of a stride-1 layer, and vgg-small's 3x3 convs ran ~3 times slower that way. Flat activations are ``(N, F, B)`` and a dense layer is one
``baddbmm``; flattening an image is then a view. Backward is autograd over that program
(the conv layers' own backward inside); Adam is one set of element-wise ops over all
``(N, P)`` entries with a learning rate per member. No Python loop runs over the members.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._convops import conv2d_members, conv_transpose2d_members
from ._grouped import grouped_forward
from ._layers import LayerSpec, ParamLayer, infer_shapes, param_layers

__all__ = ["LayerStack", "adam_update", "apply_keep"]

_ACT: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "identity": lambda t: t,
}


def adam_update(
    params: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    steps: Tensor,
    lrs: Tensor | Sequence[float],
    betas: tuple[float, float],
    eps: float,
) -> None:
    """One Adam step of every row of the ``(N, P)`` buffers, each with its own lr and step count.

    ``steps`` (``(N,)``) must already count this step. Same formula as ``torch.optim.Adam``
    (no weight decay); an entry with second moment +inf and first moment 0 does not move.
    """
    b1, b2 = betas
    lr = torch.as_tensor(lrs, dtype=params.dtype, device=params.device).reshape(-1, 1)
    st = steps.to(params.dtype).reshape(-1, 1)
    exp_avg.lerp_(grad, 1.0 - b1)
    exp_avg_sq.mul_(b2).addcmul_(grad, grad, value=1.0 - b2)
    step_size = lr / (1.0 - b1**st)
    denom = exp_avg_sq.sqrt().div_((1.0 - b2**st).sqrt()).add_(eps)
    params.sub_(exp_avg.div(denom).mul_(step_size))


def apply_keep(params: Tensor, masks: Tensor, exp_avg: Tensor, exp_avg_sq: Tensor) -> None:
    """Make every entry whose mask is 0 pruned: weight 0, first moment 0, second moment +inf."""
    dead = masks == 0
    params.masked_fill_(dead, 0.0)
    exp_avg.masked_fill_(dead, 0.0)
    exp_avg_sq.masked_fill_(dead, float("inf"))


class LayerStack:
    """N networks of the layer list ``specs`` whose state lives in ``(N, P)`` buffers."""

    def __init__(
        self,
        specs: tuple[LayerSpec, ...],
        in_shape: tuple[int, ...],
        params: Tensor,
        masks: Tensor,
        exp_avg: Tensor,
        exp_avg_sq: Tensor,
        steps: Tensor | None = None,
    ) -> None:
        self.specs = tuple(specs)
        self.in_shape = tuple(in_shape)
        self.shapes = infer_shapes(self.specs, self.in_shape)
        self.layers: list[ParamLayer] = param_layers(self.specs, self.in_shape)
        self.params = params
        self.masks = masks
        self.exp_avg = exp_avg
        self.exp_avg_sq = exp_avg_sq
        self.steps = torch.zeros(params.shape[0], device=params.device) if steps is None else steps
        convs = [sp.stride for sp in self.specs if sp.kind in ("conv2d", "conv_transpose2d")]
        #: im2col + bmm (all conv layers strided) or grouped convolutions (see the module doc)
        self.im2col = bool(convs) and min(convs) >= 2
        size = self.layers[-1].end if self.layers else 0
        if params.shape[1] != size:
            raise ValueError(f"buffer has {params.shape[1]} columns, the layers need {size}")

    @staticmethod
    def count(specs: tuple[LayerSpec, ...], in_shape: tuple[int, ...]) -> int:
        """Entries (weights + biases) of one member."""
        layers = param_layers(tuple(specs), tuple(in_shape))
        return layers[-1].end if layers else 0

    @classmethod
    def standalone(
        cls,
        specs: tuple[LayerSpec, ...],
        in_shape: tuple[int, ...],
        n: int,
        device: torch.device | str = "cpu",
    ) -> LayerStack:
        """A stack with its own zero buffers (all entries alive, Adam fresh)."""
        total = cls.count(specs, in_shape)
        zeros = torch.zeros(n, total, device=device)
        return cls(
            specs,
            in_shape,
            zeros,
            torch.ones(n, total, device=device),
            zeros.clone(),
            zeros.clone(),
            torch.zeros(n, device=device),
        )

    def init_(self, generator: torch.Generator) -> None:
        """Draw every parameter layer like ``torch.nn``'s default: U(-1/sqrt(fan_in), ...).

        ``fan_in`` is ``weight.shape[1] * k * k`` in torch's layout (for a transposed conv
        that is its output channels, as in torch). Drawn on the CPU from ``generator``.
        """
        for i, pl in enumerate(self.layers):
            fan_in = math.prod(pl.weight_shape[1:])
            bound = 1.0 / fan_in**0.5
            for t in (self.weight(i), self.bias(i)):
                draw = torch.rand(t.shape, generator=generator) * (2 * bound) - bound
                t.copy_(draw.to(t.device))
        apply_keep(self.params, self.masks, self.exp_avg, self.exp_avg_sq)

    # -- views ---------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return self.params.shape[0]

    @property
    def size(self) -> int:
        return self.params.shape[1]

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.shapes[-1] if self.shapes else self.in_shape

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    def weight(self, layer: int, buffer: Tensor | None = None) -> Tensor:
        """Parameter layer ``layer``'s weights, ``(N, *torch layout)``, a view of ``buffer``."""
        buf = self.params if buffer is None else buffer
        pl = self.layers[layer]
        return torch.unflatten(buf[:, pl.start : pl.bias_start], 1, pl.weight_shape)

    def bias(self, layer: int, buffer: Tensor | None = None) -> Tensor:
        buf = self.params if buffer is None else buffer
        pl = self.layers[layer]
        return buf[:, pl.bias_start : pl.end]

    def take(self, index: Tensor | list[int]) -> LayerStack:
        """A standalone stack with copies of the members at ``index`` (repeats allowed)."""
        idx = torch.as_tensor(index, dtype=torch.long, device=self.params.device)
        return LayerStack(
            self.specs,
            self.in_shape,
            self.params.index_select(0, idx),
            self.masks.index_select(0, idx),
            self.exp_avg.index_select(0, idx),
            self.exp_avg_sq.index_select(0, idx),
            self.steps.index_select(0, idx),
        )

    # -- computation ---------------------------------------------------------------------
    def forward(
        self,
        x: Tensor,
        params: Sequence[tuple[Tensor, Tensor]] | None = None,
        record: list[Tensor] | None = None,
    ) -> Tensor:
        """Every member's output, ``(N, B, *out_shape)``.

        ``x`` is ``(B, *in_shape)`` (shared by all members) or ``(N, B, *in_shape)``.
        ``params`` replaces the weights (per parameter layer ``(weight, bias)`` shaped like
        ``weight(i)``/``bias(i)``; autograd flows through them). With ``record`` a list, each
        parameter layer's output after its activation is appended, ``(N, B, *shape)``.
        """
        n = self.n
        if params is None:
            params = [(self.weight(i), self.bias(i)) for i in range(self.n_layers)]
        if not self.im2col:
            return grouped_forward(self, x, params, record, _ACT)
        per_member = x.dim() == len(self.in_shape) + 2
        h = x
        form = "members" if per_member else "shared"
        if len(self.in_shape) == 3:  # images -> (N or 1, C, H, W, B)
            h = x.permute(0, 2, 3, 4, 1) if per_member else x.permute(1, 2, 3, 0).unsqueeze(0)
            h, form = h.contiguous(), ("image" if per_member else "shared_image")
        layer = 0
        i = 0
        while i < len(self.specs):
            s = self.specs[i]
            if s.has_params:
                w, b = params[layer]
                h, form = _param_forward(s, w, b, h, form)
                pl = self.layers[layer]
                if pl.act != "identity":
                    h = _ACT[pl.act](h)
                    i += 1
                if record is not None:
                    record.append(_as_members(h, form, n))
                layer += 1
            elif s.kind == "activation":
                h = _ACT[s.fn](h)
            elif s.kind in ("max_pool2d", "avg_pool2d"):
                pool = F.max_pool2d if s.kind == "max_pool2d" else F.avg_pool2d
                nx, c, hh, ww, b_ = h.shape  # pooled as (N*C, B, H, W), channels-last
                y = pool(
                    h.reshape(nx * c, hh, ww, b_).permute(0, 3, 1, 2), s.kernel, s.stride, s.padding
                )
                h = y.permute(0, 2, 3, 1).reshape(nx, c, *y.shape[2:], b_)
            elif s.kind == "flatten":  # torch's (c, h, w) order
                h = h.flatten(1, 3)  # (N, C*H*W, B): a view
                h, form = (h, "features") if form == "image" else (h[0].t(), "shared")
            else:  # unflatten: (N, F, B) -> (N, C, H, W, B)
                shared = form == "shared"
                if shared:
                    h = h.t().unsqueeze(0)
                elif form == "members":
                    h = h.transpose(1, 2)
                h = torch.unflatten(h, 1, s.shape).contiguous()
                form = "shared_image" if shared else "image"
            i += 1
        return _as_members(h, form, n)

    def value_and_grad(self, x: Tensor, loss: Callable[[Tensor], Tensor], out: Tensor) -> Tensor:
        """Per-member ``loss(forward(x))`` (``(N,)``), its gradient written into ``out``.

        ``out`` is ``(N, P)`` like ``params``. Member m's gradient is that of its own loss.
        """
        leaves = self.leaves()
        with torch.enable_grad():
            value = loss(self.forward(x, leaves))
            self.backward(value.sum(), leaves, out)
        return value.detach()

    def leaves(self) -> list[tuple[Tensor, Tensor]]:
        """Each parameter layer's (weight, bias) as fresh autograd leaves sharing the storage."""
        return [
            (self.weight(i).detach().requires_grad_(), self.bias(i).detach().requires_grad_())
            for i in range(self.n_layers)
        ]

    def backward(
        self,
        total: Tensor,
        leaves: list[tuple[Tensor, Tensor]],
        out: Tensor | None,
        inputs: Sequence[Tensor] = (),
    ) -> list[Tensor]:
        """Gradients of ``total`` w.r.t. ``leaves`` written into ``out``'s views (if given);
        returns the gradients w.r.t. ``inputs``. Unused leaves get zero gradients."""
        flat = [t for pair in leaves for t in pair] if out is not None else []
        grads = torch.autograd.grad(total, [*flat, *inputs], allow_unused=True)
        if out is not None:
            for i in range(self.n_layers):
                for j, view in enumerate((self.weight(i, out), self.bias(i, out))):
                    g = grads[2 * i + j]
                    if g is None:
                        view.zero_()
                    else:
                        view.copy_(g)
        return [
            g if g is not None else torch.zeros_like(t) for g, t in zip(grads[len(flat) :], inputs)
        ]

    # -- optimisation and pruning ----------------------------------------------------------
    def adam_step(
        self,
        grad: Tensor,
        lrs: Tensor | Sequence[float],
        betas: tuple[float, float],
        eps: float,
        count: bool = True,
    ) -> None:
        """One Adam step of every member with its own lr (``grad`` masked here)."""
        if count:
            self.steps.add_(1)
        grad = grad * self.masks
        adam_update(self.params, grad, self.exp_avg, self.exp_avg_sq, self.steps, lrs, betas, eps)

    def prune(self, keep: Tensor, members: Tensor | list[int] | None = None) -> None:
        """Intersect the masks of ``members`` (all by default) with ``keep`` (``(k, P)``, 0/1)."""
        if members is None:
            self.masks.mul_(keep)
        else:
            idx = torch.as_tensor(members, dtype=torch.long, device=self.masks.device)
            self.masks[idx] = self.masks[idx] * keep
        apply_keep(self.params, self.masks, self.exp_avg, self.exp_avg_sq)

    def reset_optimizer(self) -> None:
        """A fresh Adam for every member; pruned entries keep their +inf second moment."""
        self.exp_avg.zero_()
        self.exp_avg_sq.masked_fill_(self.masks != 0, 0.0)
        self.steps.zero_()

    # -- accounting and export -----------------------------------------------------------
    def channel_masks(self, layer: int) -> Tensor:
        """``(N, out)`` bool: units of parameter layer ``layer`` with any alive weight or bias."""
        pl = self.layers[layer]
        w = self.weight(layer, self.masks)
        if pl.kind == "conv_transpose2d":
            w = w.transpose(1, 2)
        return (w.flatten(2) != 0).any(2) | (self.bias(layer, self.masks) != 0)

    def to_module(self, member: int) -> nn.Sequential:
        """Member ``member`` as ``torch.nn`` modules (its current, masked weights)."""
        mods: list[nn.Module] = []
        layer = 0
        for i, s in enumerate(self.specs):
            if s.has_params:
                pl = self.layers[layer]
                mod: nn.Module
                if s.kind == "conv2d":
                    mod = nn.Conv2d(pl.in_shape[0], s.out, s.kernel, s.stride, s.padding)
                elif s.kind == "conv_transpose2d":
                    mod = nn.ConvTranspose2d(
                        pl.in_shape[0], s.out, s.kernel, s.stride, s.padding, s.output_padding
                    )
                else:
                    mod = nn.Linear(pl.in_shape[0], s.out)
                assert mod.bias is not None  # built with a bias
                with torch.no_grad():
                    mod.weight.copy_(self.weight(layer)[member])
                    mod.bias.copy_(self.bias(layer)[member])
                mods.append(mod.to(self.params.device))
                layer += 1
            else:
                mods.append(_module(s, self.shapes[i - 1] if i else self.in_shape))
        return nn.Sequential(*mods)


def _module(s: LayerSpec, in_shape: tuple[int, ...]) -> nn.Module:
    if s.kind == "max_pool2d":
        return nn.MaxPool2d(s.kernel, s.stride, s.padding)
    if s.kind == "avg_pool2d":
        return nn.AvgPool2d(s.kernel, s.stride, s.padding)
    if s.kind == "flatten":
        return nn.Flatten()
    if s.kind == "unflatten":
        return nn.Unflatten(1, s.shape)
    activations: dict[str, type[nn.Module]] = {
        "relu": nn.ReLU,
        "sigmoid": nn.Sigmoid,
        "tanh": nn.Tanh,
        "identity": nn.Identity,
    }
    return activations[s.fn]()


def _as_members(h: Tensor, form: str, n: int) -> Tensor:
    """Any internal form as ``(N, B, *shape)`` (images ``(N, B, C, H, W)``, a view)."""
    if form == "shared":
        return h.unsqueeze(0).expand(n, *h.shape)
    if form == "features":
        return h.transpose(1, 2)
    if form == "shared_image":
        h = h.expand(n, *h.shape[1:])
    if form in ("image", "shared_image"):
        return h.permute(0, 4, 1, 2, 3)
    return h


def _param_forward(s: LayerSpec, w: Tensor, b: Tensor, h: Tensor, form: str) -> tuple[Tensor, str]:
    """One parameter layer of all members; returns the output and its form."""
    if s.kind == "dense":  # output (N, out, B): the minibatch innermost, as for images
        if form == "shared":
            return torch.matmul(w, h.t()) + b.unsqueeze(2), "features"
        if form == "members":
            h = h.transpose(1, 2)
        return torch.baddbmm(b.unsqueeze(2), w, h), "features"
    if s.kind == "conv2d":
        return conv2d_members(h, w, b, s.stride, s.padding), "image"
    out = conv_transpose2d_members(h, w, b, s.stride, s.padding, s.output_padding)
    return out, "image"
