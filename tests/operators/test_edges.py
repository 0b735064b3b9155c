"""Operator edge cases that mutation testing showed untested: thresholds, scales, flags."""

from __future__ import annotations

import pytest
import torch

from evoprune_core.operators import (
    ConjunctivePruning,
    LayerMask,
    LayerView,
    PruneContext,
    VariancePruning,
)


def layer(acts: torch.Tensor, *, output: bool = False, with_acts: bool = True) -> LayerView:
    """One member's layer of ``acts.shape[1]`` units with 3 inputs each, all alive."""
    units = acts.shape[1]
    return LayerView(
        name="decoder.1" if output else "encoder.0",
        part="decoder" if output else "encoder",
        index=1 if output else 0,
        weight=torch.ones(1, units, 3),
        bias=torch.ones(1, units),
        weight_mask=torch.ones(1, units, 3, dtype=torch.bool),
        bias_mask=torch.ones(1, units, dtype=torch.bool),
        activation="sigmoid" if output else "relu",
        is_output=output,
        activations=acts.unsqueeze(0) if with_acts else None,
    )


def prune(op: object, *layers: LayerView, amount: float = 0.3) -> list[LayerMask]:
    ctx = PruneContext(
        layers=layers, amount=amount, rng=torch.Generator().manual_seed(0), members=(0,)
    )
    return op.prune(ctx)  # type: ignore[attr-defined]


def removed_units(m: LayerMask) -> list[int]:
    return [u for u in range(m.bias.shape[1]) if not m.bias[0, u] and not m.weight[0, u].any()]


ACTS = torch.tensor([0.0, 0.05, 0.08, 0.5]).expand(3, 4)  # normalised 0, .1, .16, 1


def test_conjunctive_flags_strictly_below_the_threshold() -> None:
    acts = torch.tensor([0.0, 0.25, 1.0, 1.0]).expand(3, 4)  # unit 1 sits exactly on 0.25
    assert removed_units(prune(ConjunctivePruning(threshold=0.25, cases=3), layer(acts))[0]) == [0]


@pytest.mark.parametrize("scale", [1.0, 0.01, 100.0])
def test_conjunctive_does_not_depend_on_the_activation_scale(scale: float) -> None:
    # min-max normalised: unit 0 (0.0) and unit 1 (exactly 0.1 after normalising) ...
    masks = prune(ConjunctivePruning(threshold=0.15, cases=3), layer(ACTS * scale))
    assert removed_units(masks[0]) == [0, 1]  # ... are below 0.15; 0.16 and 1 are not


def test_conjunctive_prunes_the_output_layer_only_when_asked() -> None:
    hidden, out = layer(ACTS), layer(ACTS, output=True)
    default = prune(ConjunctivePruning(threshold=0.15, cases=3), hidden, out)
    assert removed_units(default[0]) == [0, 1] and removed_units(default[1]) == []
    both = prune(ConjunctivePruning(threshold=0.15, cases=3, include_output=True), hidden, out)
    assert removed_units(both[0]) == [0, 1] and removed_units(both[1]) == [0, 1]


@pytest.mark.parametrize(
    ("op", "name"), [(ConjunctivePruning(), "conjunctive"), (VariancePruning(), "variance")]
)
def test_guided_operators_say_they_need_activations(op: object, name: str) -> None:
    with pytest.raises(AssertionError, match=f"^{name} needs activations$"):
        prune(op, layer(ACTS, with_acts=False))


# -- conjunctive, member by member ---------------------------------------------------------
def two_members(a: torch.Tensor, b: torch.Tensor) -> LayerView:
    """Two members' layers (units x 3 inputs, all alive) with activations ``a`` and ``b``."""
    one = layer(a)
    return LayerView(
        **{
            **one.__dict__,
            "weight": one.weight.expand(2, -1, -1),
            "bias": one.bias.expand(2, -1),
            "weight_mask": one.weight_mask.expand(2, -1, -1),
            "bias_mask": one.bias_mask.expand(2, -1),
            "activations": torch.stack([a, b]),
        }
    )


def prune2(op: object, lv: LayerView) -> list[list[int]]:
    ctx = PruneContext(layers=(lv,), amount=0.3, rng=torch.Generator(), members=(0, 1))
    m = op.prune(ctx)[0]  # type: ignore[attr-defined]
    return [removed_units(LayerMask(m.weight[k : k + 1], m.bias[k : k + 1])) for k in (0, 1)]


def test_conjunctive_one_left_stops_per_member() -> None:
    # member 0: flags {0, 1, 2}, then {0, 1} twice: never one left -> the full intersection
    # member 1: flags {0, 1}, then {0}: one left after case 1 -> unit 0 goes
    a = torch.tensor([[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    b = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 1.0, 1.0, 1.0], [1.0, 0.0, 1.0, 0.0]])
    op = ConjunctivePruning(threshold=0.1, cases=3, stop="one_left")
    assert prune2(op, two_members(a, b)) == [[0, 1], [0]]


def test_conjunctive_spares_units_per_member_by_mean_activation() -> None:
    # units 0 and 1 flagged in both members; min_units = 3 spares one of them in each:
    # the one with the higher mean normalised activation (member 0: unit 1, member 1: unit 0)
    a = torch.tensor([0.0, 0.05, 1.0, 1.0]).expand(2, 4)
    b = torch.tensor([0.05, 0.0, 1.0, 1.0]).expand(2, 4)
    op = ConjunctivePruning(threshold=0.1, cases=2, min_units=3)
    assert prune2(op, two_members(a, b)) == [[0], [1]]
    c = torch.tensor([0.0, 0.05, 0.06, 1.0]).expand(2, 4)  # member 1: three flagged, one alive
    assert prune2(op, two_members(a, c)) == [[0], [0]]  # keeps 3: spares units 2 and 1


# -- the water filling behind variance -----------------------------------------------------
def test_unit_probabilities_exact() -> None:
    from evoprune_core.operators import _unit_probabilities

    w = torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64)
    six = torch.full((3,), 6.0, dtype=torch.float64)
    got = _unit_probabilities(w, six, 0.2)  # c = 0.4: 6 (0.4 + 0.2) = 0.2 x 18
    torch.testing.assert_close(got, torch.tensor([0.4, 0.2, 0.0], dtype=torch.float64))
    got = _unit_probabilities(w, six, 0.6)  # unit 0 saturates: 6 + 6 (0.5 c) = 10.8, c = 1.6
    torch.testing.assert_close(got, torch.tensor([1.0, 0.8, 0.0], dtype=torch.float64))
    skewed = torch.tensor([1.0, 0.1], dtype=torch.float64)
    got = _unit_probabilities(skewed, torch.ones(2, dtype=torch.float64), 0.9)  # c = 8
    torch.testing.assert_close(got, torch.tensor([1.0, 0.8], dtype=torch.float64))
    one = torch.ones(1, dtype=torch.float64)
    assert _unit_probabilities(one, one, 1.0).tolist() == [1.0]  # a layer of one entry
    for weights, sizes, amount in ((w, six, 0.0), (w, six * 0, 0.5), (w * 0, six, 0.5)):
        assert torch.equal(_unit_probabilities(weights, sizes, amount), torch.zeros(3).double())


# -- variance --------------------------------------------------------------------------------
SPREADS = torch.tensor([1.0, 2.0, 3.0, 3.0])  # std of each unit's activations over 4 rows


def spread_acts(spreads: torch.Tensor) -> torch.Tensor:
    sign = torch.tensor([1.0, -1.0, 1.0, -1.0]).unsqueeze(1)
    return 10.0 + sign * spreads * (3**0.5 / 2)  # unbiased std over the 4 rows = spreads


def wide(acts: torch.Tensor, *, output: bool = False) -> LayerView:
    """A layer of ``acts.shape[1]`` units with 500 inputs each: pruned counts track p."""
    lv = layer(acts, output=output)
    units = acts.shape[1]
    return LayerView(
        **{
            **lv.__dict__,
            "weight": torch.ones(1, units, 500),
            "weight_mask": torch.ones(1, units, 500, dtype=torch.bool),
        }
    )


def pruned_per_unit(m: LayerMask) -> list[int]:
    return (~m.weight[0]).sum(1).tolist()


def test_variance_std_and_var_spreads_differ() -> None:
    acts = spread_acts(SPREADS)
    std = prune(VariancePruning(direction="high", spread="std"), wide(acts), amount=0.3)
    var = prune(VariancePruning(direction="high", spread="var"), wide(acts), amount=0.3)
    # p ~ normalised spread: std 0, .5, 1, 1 (c = 0.48); var 0, 3/8, 1, 1 (c = 0.509)
    assert pruned_per_unit(std[0]) == [0, 114, 258, 239]
    assert pruned_per_unit(var[0]) == [0, 92, 267, 257]


def test_variance_equal_spreads_prune_uniformly() -> None:
    acts = spread_acts(torch.full((4,), 2.0))  # no spread between units: every w is 0.5
    masks = prune(VariancePruning(), wide(acts), amount=0.5)
    assert pruned_per_unit(masks[0]) == [249, 243, 265, 252]  # p = 0.5 for every unit


def test_variance_prunes_the_output_layer_only_when_asked() -> None:
    acts = spread_acts(SPREADS)
    hidden, out = wide(acts), wide(acts, output=True)
    default = prune(VariancePruning(), hidden, out, amount=0.3)
    assert sum(pruned_per_unit(default[1])) == 0 and sum(pruned_per_unit(default[0])) > 0
    both = prune(VariancePruning(include_output=True), hidden, out, amount=0.3)
    assert sum(pruned_per_unit(both[1])) > 0


def test_variance_leaves_a_dead_layer_alone() -> None:
    lv = wide(spread_acts(SPREADS))
    dead = LayerView(
        **{
            **lv.__dict__,
            "weight_mask": torch.zeros_like(lv.weight_mask),
            "bias_mask": torch.zeros_like(lv.bias_mask),
        }
    )
    m = prune(VariancePruning(), dead, amount=0.5)[0]
    assert not m.weight.any() and not m.bias.any()


def test_parameters_are_also_attributes() -> None:
    op = ConjunctivePruning(threshold=0.2, stop="one_left")
    assert (op.threshold, op.stop, op.cases) == (0.2, "one_left", 100)  # type: ignore[attr-defined]
