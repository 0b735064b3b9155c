"""Batched network maths: N multilayer perceptrons of one shape in ``(N, P)`` column views."""

from __future__ import annotations

import torch
from torch import Tensor

from ._arch import n_params

__all__ = ["Stack"]


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
    def standalone(
        cls, dims: tuple[int, ...], final: str, n: int, device: torch.device | str = "cpu"
    ) -> Stack:
        """A stack with its own zero-initialised buffers (all entries alive)."""
        total = n_params(tuple(dims))
        zeros = torch.zeros(n, total, device=device)
        ones = torch.ones(n, total, device=device)
        return cls(dims, final, zeros, ones, zeros.clone(), zeros.clone())

    def init_(self, generator: torch.Generator) -> None:
        """Draw every layer like ``torch.nn.Linear``: U(-1/sqrt(in), 1/sqrt(in))."""
        for layer, fan_in in enumerate(self.dims[:-1]):
            bound = 1.0 / fan_in**0.5
            for t in (self._weights[layer], self._biases[layer]):
                draw = torch.rand(t.shape, generator=generator) * (2 * bound) - bound
                t.copy_(draw.to(t.device))

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
        idx = torch.as_tensor(index, dtype=torch.long).to(self.params.device)
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
