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
    "NEEDS",
    "LayerMask",
    "LayerView",
    "Operator",
    "PruneContext",
    "alive_units",
    "prune_fraction",
    "structured_mask",
]

#: What an operator may ask the engine for in ``needs``.
NEEDS = frozenset({"activations", "gradients", "labels"})


@dataclass(frozen=True)
class LayerView:
    """One Linear layer of the selected members, in ``torch.nn.Linear`` orientation.

    ``activations`` are the layer's post-activation outputs on the calibration rows,
    ``(n, S, out)``; ``weight_grads``/``bias_grads`` are gradients of the training loss for
    each of K calibration batches, ``(n, K, out, in)`` and ``(n, K, out)``. Each is ``None``
    unless the operator declared the matching need.
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


@dataclass(frozen=True)
class LayerMask:
    """New 0/1 masks of one layer: ``weight`` ``(n, out, in)`` and ``bias`` ``(n, out)``, bool."""

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
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    parameters: ClassVar[tuple[Param, ...]] = ()
    needs: ClassVar[frozenset[str]] = frozenset()
    uses_amount: ClassVar[bool] = True
    prunes: ClassVar[bool] = True
    amount_exact: bool = False

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
    """Units (output rows) with at least one alive incoming weight or alive bias: ``(n, out)``."""
    return lv.weight_mask.any(2) | lv.bias_mask


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
    """Masks with the whole incoming row and bias of ``units`` (``(n, out)`` bool) removed."""
    keep = ~units
    return LayerMask(lv.weight_mask & keep.unsqueeze(2), lv.bias_mask & keep)
