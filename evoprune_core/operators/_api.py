"""The operator API: the context an operator receives, the masks it returns, its base class.

An operator knows nothing of engines, Optuna or MLflow. It is constructed with its
hyper-parameters (validated against its declared ``parameters``) and its ``prune`` method
maps a ``PruneContext`` - weights, masks and whatever it declared in ``needs`` - to new
masks for the same members. Masks never grow back: the result must be a subset of the
current masks (the engine intersects again, and ``evoprune_core.testing`` checks it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..params import Param, validate_params

__all__ = [
    "DENSE_LAYERS",
    "LAYER_KINDS",
    "NEEDS",
    "LayerMask",
    "LayerView",
    "Operator",
    "PruneContext",
    "alive_units",
    "outgoing_weights",
    "prune_fraction",
    "structured_mask",
]

#: What an operator may ask the engine for in ``needs``.
NEEDS = frozenset({"activations", "gradients", "labels"})

#: The kinds of parameter layer an operator may meet (``LayerView.kind``).
LAYER_KINDS = frozenset({"dense", "conv2d", "conv_transpose2d"})

#: What an operator that does not declare ``layer_kinds`` handles: operators written before
#: conv networks existed assumed a unit's incoming weights on axis 2, so they are refused on
#: a conv network (one line) instead of misreading its filters.
DENSE_LAYERS = frozenset({"dense"})


@dataclass(frozen=True)
class LayerView:
    """One parameter layer of the selected members, output units first.

    ``kind`` is "dense" (``torch.nn.Linear`` orientation: ``weight`` ``(n, out, in)``),
    "conv2d" or "conv_transpose2d" (``weight`` ``(n, out, in, k, k)`` - for a transposed
    convolution that is torch's ``(in, out, k, k)`` with the first two axes swapped, so axis 1
    is always the output unit: a neuron or a channel). ``activations`` are the layer's
    post-activation outputs on the calibration rows, ``(n, S, out)``; for a conv layer each
    channel's value on a row is its mean over the spatial positions. ``weight_grads``/
    ``bias_grads`` are gradients of the training loss for each of K calibration batches,
    ``(n, K, *weight.shape[1:])`` and ``(n, K, out)``. Each is ``None`` unless the operator
    declared the matching need.
    """

    name: str
    part: str
    index: int
    weight: Tensor
    bias: Tensor
    weight_mask: Tensor
    bias_mask: Tensor
    activation: str
    is_output: bool
    activations: Tensor | None = None
    weight_grads: Tensor | None = None
    bias_grads: Tensor | None = None
    kind: str = "dense"

    @property
    def unit_shape(self) -> tuple[int, ...]:
        """``(n, out, 1, ...)``: a per-unit ``(n, out)`` tensor reshaped to broadcast over
        the unit's incoming weights."""
        n, out = self.weight.shape[:2]
        return (n, out) + (1,) * (self.weight.dim() - 2)


@dataclass(frozen=True)
class LayerMask:
    """New bool masks of one layer: ``weight`` like ``LayerView.weight``, ``bias`` ``(n, out)``."""

    weight: Tensor
    bias: Tensor


@dataclass(frozen=True)
class PruneContext:
    """Everything an operator may read. Calibration rows never come from the test set."""

    layers: tuple[LayerView, ...]
    amount: float
    rng: torch.Generator
    members: tuple[int, ...]
    inputs: Tensor | None = None
    labels: Tensor | None = None

    @property
    def n(self) -> int:
        return len(self.members)

    def unchanged(self) -> list[LayerMask]:
        """The current masks, as an operator's no-op result."""
        return [LayerMask(lv.weight_mask.clone(), lv.bias_mask.clone()) for lv in self.layers]


class Operator:
    """Base class of pruning operators (built-in and plugin).

    Subclasses set ``name``, ``parameters`` (declared, tunable hyper-parameters), ``needs``
    (subset of ``NEEDS``), ``uses_amount`` (whether the pruning rate ``amount`` applies) and
    implement ``prune``. The constructor only validates and stores hyper-parameters.

    ``prunes = False`` declares an operator that never removes anything (the ``none``
    baseline): the engine then draws the event's random numbers as usual but builds no
    context and counts no pruning event.

    ``amount_exact`` declares that ``prune`` removes exactly ``round(amount * alive)`` alive
    entries of every member (rounded once per weight or bias tensor, or once per member); the
    conformance kit then checks the count to within that rounding. Override it with a
    property where it depends on the parameters (e.g. unstructured yes, structured no).

    ``layer_kinds`` declares the layers ``prune`` handles. The default, ``DENSE_LAYERS``,
    keeps operators written before conv networks existed safe: a run of a conv network with
    one is refused with one configuration error. An operator that handles conv layers too
    (units = output channels) sets ``layer_kinds = LAYER_KINDS``.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    parameters: ClassVar[tuple[Param, ...]] = ()
    needs: ClassVar[frozenset[str]] = frozenset()
    uses_amount: ClassVar[bool] = True
    prunes: ClassVar[bool] = True
    amount_exact: bool = False
    layer_kinds: ClassVar[frozenset[str]] = DENSE_LAYERS

    def __init__(self, **params: Any) -> None:
        self.params = validate_params(self.parameters, params, "pruning.operator_params")
        for key, value in self.params.items():
            setattr(self, key, value)

    def prune(self, ctx: PruneContext) -> list[LayerMask]:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


# -- helpers shared by operators -----------------------------------------------------------
def alive_units(lv: LayerView) -> Tensor:
    """Units (output neurons or channels) with an alive incoming weight or bias: ``(n, out)``."""
    return lv.weight_mask.flatten(2).any(2) | lv.bias_mask


def outgoing_weights(lv: LayerView, nxt: LayerView) -> Tensor:
    """The weights that read each unit of ``lv``, from the next layer ``nxt``: ``(n, O, units)``.

    Dense to dense: ``nxt.weight`` itself. A conv layer read by a conv layer: every output
    channel and kernel position of ``nxt`` (``O = out * k * k``). A conv layer read by a dense
    layer through a flatten: the ``h * w`` columns of each channel. A dense layer read by a
    conv layer through an unflatten: the filters reading the channel the unit lands in.
    """
    units = lv.weight.shape[1]
    w = nxt.weight
    n = w.shape[0]
    if w.dim() == 3:  # dense reader
        per = w.shape[2] // units
        return w.reshape(n, w.shape[1], units, per).transpose(2, 3).reshape(n, -1, units)
    by_in = w.movedim(2, -1).reshape(n, -1, w.shape[2])  # (n, out*k*k, in channels)
    if by_in.shape[2] == units:
        return by_in
    return by_in.repeat_interleave(units // by_in.shape[2], dim=2)


def prune_fraction(mask: Tensor, scores: Tensor, amount: float) -> Tensor:
    """Prune ``round(amount * alive)`` alive entries of lowest ``scores`` in every row.

    ``mask`` and ``scores`` are ``(n, m)``; returns the new bool mask.
    """
    alive = mask.sum(1)
    k = torch.round(alive.double() * amount).long()
    s = scores.masked_fill(~mask, float("inf"))
    ranks = s.argsort(dim=1, stable=True).argsort(dim=1, stable=True)
    return mask & (ranks >= k.unsqueeze(1))


def structured_mask(lv: LayerView, units: Tensor) -> LayerMask:
    """Masks with the whole incoming row (a conv channel: its filter) and bias of ``units``
    (``(n, out)`` bool) removed."""
    keep = ~units
    return LayerMask(lv.weight_mask & keep.view(lv.unit_shape), lv.bias_mask & keep)
