"""Guided operators ignore dead units: a layer with one equals the same layer without it."""

from __future__ import annotations

import pytest
import torch

from evoprune_core.operators import (
    ConjunctivePruning,
    LayerMask,
    LayerView,
    NoPruning,
    Operator,
    PruneContext,
    VariancePruning,
)

IN = 5


def layer(acts: torch.Tensor, dead: bool) -> LayerView:
    """One member's hidden layer; with ``dead`` a fourth unit whose inputs and bias are pruned.

    A dead ReLU unit outputs 0 on every row, so its activations are zero.
    """
    units = acts.shape[1] + dead
    wmask = torch.ones(1, units, IN, dtype=torch.bool)
    bmask = torch.ones(1, units, dtype=torch.bool)
    if dead:
        acts = torch.cat([acts, torch.zeros(acts.shape[0], 1)], 1)
        wmask[0, -1] = False
        bmask[0, -1] = False
    return LayerView(
        name="encoder.0",
        part="encoder",
        index=0,
        weight=torch.ones(1, units, IN),
        bias=torch.ones(1, units),
        weight_mask=wmask,
        bias_mask=bmask,
        activation="relu",
        is_output=False,
        activations=acts.unsqueeze(0),
    )


def prune(op: Operator, lv: LayerView, amount: float) -> LayerMask:
    ctx = PruneContext(
        layers=(lv,), amount=amount, rng=torch.Generator().manual_seed(0), members=(0,)
    )
    return op.prune(ctx)[0]


def pruned_units(m: LayerMask) -> list[int]:
    """Units that lost every incoming weight and their bias."""
    return [u for u in range(m.bias.shape[1]) if not m.bias[0, u] and not m.weight[0, u].any()]


def check_same_with_and_without(op: Operator, acts: torch.Tensor, amount: float) -> list[int]:
    with_dead = prune(op, layer(acts, dead=True), amount)
    without = prune(op, layer(acts, dead=False), amount)
    assert torch.equal(with_dead.weight[:, :-1], without.weight)
    assert torch.equal(with_dead.bias[:, :-1], without.bias)
    assert not with_dead.weight[0, -1].any() and not with_dead.bias[0, -1]  # stays dead
    return pruned_units(without)


def test_variance_normalises_over_alive_units_only() -> None:
    # spreads 1, 1, 3 (alive) and 0 (dead): over alive units unit 2 alone has weight 1
    sign = torch.tensor([1.0, -1.0, 1.0, -1.0]).unsqueeze(1)
    acts = 5.0 + sign * torch.tensor([1.0, 1.0, 3.0])
    op = VariancePruning(direction="high")
    # a third of the alive entries = unit 2's 6 entries: pruned with probability exactly 1
    assert check_same_with_and_without(op, acts, amount=1 / 3) == [2]


def test_conjunctive_normalises_over_alive_units_only() -> None:
    acts = torch.tensor([1.0, 1.05, 3.0]).expand(4, 3)  # normalised 0, 0.025, 1 when alive
    op = ConjunctivePruning(cases=4, threshold=0.1)
    assert check_same_with_and_without(op, acts, amount=0.3) == [0, 1]


@pytest.mark.parametrize("amount", [0.0, 0.5, 1.0])
def test_none_keeps_partly_pruned_masks_exactly(amount: float) -> None:
    acts = torch.rand(4, 3, generator=torch.Generator().manual_seed(1))
    lv = layer(acts, dead=True)
    wmask = lv.weight_mask.clone()
    wmask[0, 0, :2] = False  # and two pruned weights of a live unit
    lv = LayerView(**{**lv.__dict__, "weight_mask": wmask})
    m = prune(NoPruning(), lv, amount)
    assert torch.equal(m.weight, wmask) and torch.equal(m.bias, lv.bias_mask)
    assert int(m.weight.sum()) + int(m.bias.sum()) == 3 * IN - 2 + 3
