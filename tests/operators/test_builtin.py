"""Built-in pruning operators on hand-built cases, and through the engine's context builder."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import torch

from evoprune_core.engines.steps import (
    PruneOutcome,
    apply_operator,
    build_context,
    pseudo_labels,
)
from evoprune_core.errors import ConfigError, PluginError
from evoprune_core.operators import (
    ConjunctivePruning,
    LayerMask,
    LayerView,
    MagnitudePruning,
    NoPruning,
    PruneContext,
    RandomPruning,
    VariancePruning,
)
from evoprune_core.population import Architecture, Population


def _layer(
    weight: torch.Tensor,
    acts: torch.Tensor | None = None,
    *,
    output: bool = False,
    wmask: torch.Tensor | None = None,
) -> LayerView:
    n, out, _ = weight.shape
    return LayerView(
        name="encoder.0",
        part="encoder",
        index=0,
        weight=weight,
        bias=torch.ones(n, out),
        weight_mask=torch.ones_like(weight, dtype=torch.bool) if wmask is None else wmask,
        bias_mask=torch.ones(n, out, dtype=torch.bool),
        activation="relu",
        is_output=output,
        activations=acts,
    )


def _ctx(*layers: LayerView, amount: float = 0.1, seed: int = 0) -> PruneContext:
    n = layers[0].weight.shape[0]
    return PruneContext(
        layers=layers,
        amount=amount,
        rng=torch.Generator().manual_seed(seed),
        members=tuple(range(n)),
    )


def test_random_prunes_exact_counts_of_alive_entries() -> None:
    w = torch.randn(2, 10, 30)
    wmask = torch.ones(2, 10, 30, dtype=torch.bool)
    wmask[1, :, :10] = False  # member 1 has 200 alive weights
    masks = RandomPruning().prune(_ctx(_layer(w, wmask=wmask), amount=0.25))
    assert int(masks[0].weight[0].sum()) == 300 - 75
    assert int(masks[0].weight[1].sum()) == 200 - 50
    assert int(masks[0].bias[0].sum()) == 10 - 2  # round(2.5) -> 2 (banker's) per tensor
    assert not (masks[0].weight & ~wmask).any()  # never un-prunes


def test_random_same_rng_same_masks_and_different_seed_differs() -> None:
    w = torch.randn(1, 10, 30)
    a = RandomPruning().prune(_ctx(_layer(w), seed=5))[0].weight
    b = RandomPruning().prune(_ctx(_layer(w), seed=5))[0].weight
    c = RandomPruning().prune(_ctx(_layer(w), seed=6))[0].weight
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_magnitude_prunes_the_smallest_weights() -> None:
    w = torch.arange(1, 41, dtype=torch.float32).view(1, 4, 10)
    w = w * torch.where(torch.arange(40).view(1, 4, 10) % 2 == 0, 1.0, -1.0)  # signs mixed
    masks = MagnitudePruning().prune(_ctx(_layer(w), amount=0.25))
    pruned = ~masks[0].weight[0]
    assert int(pruned.sum()) == 10
    assert set(w[0][pruned].abs().tolist()) == {float(v) for v in range(1, 11)}


def test_magnitude_global_scope_ranks_across_layers() -> None:
    small = torch.full((1, 2, 5), 0.01)
    big = torch.full((1, 2, 5), 5.0)
    op = MagnitudePruning(scope="global")
    masks = op.prune(_ctx(_layer(small), _layer(big), amount=0.4))
    # 10 + 2 + 10 + 2 = 24 entries (biases are 1.0), 0.4 * 24 -> 10: all small weights go
    assert int((~masks[0].weight).sum()) == 10 and int((~masks[1].weight).sum()) == 0


def _spread_acts() -> torch.Tensor:
    """Four units over 50 rows; spreads ordered unit 2 < unit 0 < unit 3 < unit 1."""
    g = torch.Generator().manual_seed(0)
    base = torch.randn(1, 50, 4, generator=g)
    scale = torch.tensor([1.0, 9.0, 0.0, 3.0])
    return (base * scale).abs() + 1.0


def test_variance_prunes_the_lowest_spread_units_first() -> None:
    acts = _spread_acts()
    w = torch.randn(1, 4, 2000)
    masks = VariancePruning().prune(_ctx(_layer(w, acts), amount=0.4))
    pruned = (~masks[0].weight[0]).sum(1)  # per unit
    assert int(pruned[1]) == 0  # highest spread: probability 0
    assert int(pruned[2]) > int(pruned[0]) > int(pruned[3])
    assert int(pruned[2]) >= 1000  # lowest spread is pruned the most


def test_variance_high_direction_reverses_the_order() -> None:
    acts = _spread_acts()
    w = torch.randn(1, 4, 2000)
    masks = VariancePruning(direction="high").prune(_ctx(_layer(w, acts), amount=0.4))
    pruned = (~masks[0].weight[0]).sum(1)
    assert int(pruned[2]) == 0
    assert int(pruned[1]) > int(pruned[3]) > int(pruned[0])


def test_variance_expected_fraction_is_amount() -> None:
    g = torch.Generator().manual_seed(1)
    acts = torch.rand(1, 200, 50, generator=g) * torch.linspace(0.1, 2.0, 50)
    w = torch.randn(1, 50, 400)
    masks = VariancePruning().prune(_ctx(_layer(w, acts), amount=0.1))
    frac = 1 - masks[0].weight.float().mean().item()
    assert frac == pytest.approx(0.1, abs=0.01)
    # the draws are seeded: the exact count (expected: 0.1 x 20050 alive entries = 2005)
    assert (int((~masks[0].weight).sum()), int((~masks[0].bias).sum())) == (2028, 6)


def test_variance_skips_the_output_layer_by_default() -> None:
    acts = _spread_acts()
    w = torch.randn(1, 4, 100)
    masks = VariancePruning().prune(_ctx(_layer(w, acts, output=True), amount=0.5))
    assert masks[0].weight.all()


def test_conjunctive_is_the_intersection_of_flagged_units() -> None:
    # 5 units, 3 cases; normalised activation < 0.1 flags a unit
    acts = torch.tensor(
        [
            [
                [0.0, 0.05, 1.0, 0.5, 0.02],  # flags 0, 1, 4
                [0.0, 0.9, 1.0, 0.01, 0.05],  # flags 0, 3, 4
                [0.0, 0.3, 1.0, 0.6, 0.08],  # flags 0, 4
            ]
        ]
    )
    w = torch.randn(1, 5, 3)
    masks = ConjunctivePruning(threshold=0.1, cases=3).prune(_ctx(_layer(w, acts)))
    removed = ~masks[0].bias[0]
    assert removed.tolist() == [True, False, False, False, True]  # {0,1,4} & {0,3,4} & {0,4}
    assert not masks[0].weight[0, 0].any() and not masks[0].weight[0, 4].any()
    assert masks[0].weight[0, 1:4].all()  # structured: other rows untouched


def test_conjunctive_stops_once_at_most_one_unit_is_left() -> None:
    acts = torch.tensor(
        [
            [
                [0.0, 0.05, 1.0, 0.5],  # flags 0, 1
                [0.5, 0.0, 1.0, 0.6],  # flags 1 -> intersection {1}: stop here
                [0.7, 0.8, 1.0, 0.0],  # would flag only 3 (intersection empty) - never reached
            ]
        ]
    )
    op = ConjunctivePruning(threshold=0.1, cases=3, stop="one_left")
    masks = op.prune(_ctx(_layer(torch.randn(1, 4, 2), acts)))
    assert (~masks[0].bias[0]).tolist() == [False, True, False, False]
    # by default only units flagged in all three cases go: here none
    masks = ConjunctivePruning(threshold=0.1, cases=3).prune(
        _ctx(_layer(torch.randn(1, 4, 2), acts))
    )
    assert masks[0].bias[0].all()


def test_conjunctive_never_empties_a_layer() -> None:
    acts = torch.zeros(1, 10, 3)  # constant: every unit flagged in every case
    masks = ConjunctivePruning(cases=10).prune(_ctx(_layer(torch.randn(1, 3, 2), acts)))
    assert int(masks[0].bias[0].sum()) == 1


def test_none_operator_changes_nothing() -> None:
    ctx = _ctx(_layer(torch.randn(2, 3, 4)))
    masks = NoPruning().prune(ctx)
    assert masks[0].weight.all() and masks[0].bias.all()


def test_declared_parameters_are_validated() -> None:
    with pytest.raises(
        ConfigError, match=r"pruning.operator_params.threshold: expected float in \[0.01, 0.5\]"
    ):
        ConjunctivePruning(threshold=0.9)
    with pytest.raises(ConfigError, match="unknown parameter; allowed: direction"):
        VariancePruning(bogus=1)
    assert ConjunctivePruning().params == {
        "threshold": 0.1,
        "cases": 100,
        "stop": "all_cases",
        "min_units": 1,
        "include_output": False,
    }


def test_engine_context_and_application_on_a_population_subset() -> None:
    arch = Architecture(30, (12, 4), (12,))
    pop = Population.create(arch, 4, torch.Generator().manual_seed(0))
    rows = (torch.rand(40, 30, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    ctx = build_context(
        pop, [1, 3], VariancePruning(), 0.1, rows, None, torch.Generator().manual_seed(2)
    )
    assert ctx.n == 2 and len(ctx.layers) == 4
    assert ctx.layers[0].weight.shape == (2, 12, 30)
    assert ctx.layers[0].activations.shape == (2, 40, 12)
    assert ctx.layers[-1].is_output and ctx.layers[-1].activation == "sigmoid"
    before = pop.masks.clone()
    out = apply_operator(
        pop, [1, 3], RandomPruning(), 0.5, rows, None, torch.Generator().manual_seed(3)
    )
    assert out.removed > 0
    assert torch.equal(pop.masks[0], before[0]) and torch.equal(pop.masks[2], before[2])
    # round(0.5 x alive) of every tensor; all 8 tensors have an even size
    assert arch.n_params == 874 and int((pop.masks[1] == 0).sum()) == 437
    assert (out.alive_before, out.alive_after) == (2 * 874, 2 * 874 - 2 * 437)


def test_gradients_are_offered_when_declared() -> None:
    class NeedsGrads(RandomPruning):
        name = "needs-grads"
        needs = frozenset({"gradients"})

    arch = Architecture(30, (12, 4), (12,))
    pop = Population.create(arch, 2, torch.Generator().manual_seed(0))
    rows = torch.rand(20, 30)
    ctx = build_context(pop, [0, 1], NeedsGrads(), 0.1, rows, None, torch.Generator(), batches=4)
    g = ctx.layers[0].weight_grads
    assert g is not None and g.shape == (2, 4, 12, 30)
    assert ctx.layers[0].activations is None
    # the gradient of batch 0 equals autograd on a plain module
    net = pop.take([0]).compact(0)
    x = rows.tensor_split(4)[0]
    y = net(x)
    loss = torch.nn.functional.binary_cross_entropy(y, x)
    loss.backward()
    torch.testing.assert_close(g[0, 0], net.encoder[0].weight.grad, rtol=1e-4, atol=1e-6)


class _NeedsGrads(RandomPruning):
    name = "needs-grads"
    needs = frozenset({"gradients"})


class _NeedsLabels(RandomPruning):
    name = "needs-labels"
    needs = frozenset({"labels"})


def test_context_layers_carry_their_names_and_every_layers_gradients() -> None:
    """Each of the four layers: name, part, index, activation, output flag, and its weight and
    bias gradients (every batch, both members, in ``members`` order) equal autograd's."""
    arch = Architecture(30, (12, 4), (12,))
    pop = Population.create(arch, 2, torch.Generator().manual_seed(0))
    rows = (torch.rand(20, 30, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    gen = torch.Generator()
    ctx = build_context(pop, [1, 0], _NeedsGrads(), 0.1, rows, None, gen, batches=4)
    assert [(lv.name, lv.part, lv.index, lv.activation, lv.is_output) for lv in ctx.layers] == [
        ("encoder.0", "encoder", 0, "relu", False),
        ("encoder.1", "encoder", 1, "relu", False),
        ("decoder.0", "decoder", 0, "relu", False),
        ("decoder.1", "decoder", 1, "sigmoid", True),
    ]
    shapes = [(12, 30), (4, 12), (12, 4), (30, 12)]
    for lv, (out, inp) in zip(ctx.layers, shapes):
        assert lv.weight_grads.shape == (2, 4, out, inp) and lv.bias_grads.shape == (2, 4, out)
    for slot, member in enumerate([1, 0]):
        net = pop.take([member]).compact(0)
        linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
        for k, x in enumerate(rows.tensor_split(4)):
            net.zero_grad()
            logits = net.decoder[:-1](net.encoder(x))  # BCE on the logits, as in training
            torch.nn.functional.binary_cross_entropy_with_logits(logits, x).backward()
            for lv, lin in zip(ctx.layers, linears):
                torch.testing.assert_close(
                    lv.weight_grads[slot, k], lin.weight.grad, rtol=1e-4, atol=1e-6
                )
                torch.testing.assert_close(
                    lv.bias_grads[slot, k], lin.bias.grad, rtol=1e-4, atol=1e-6
                )
    plain = build_context(pop, [0], RandomPruning(), 0.1, rows, None, gen)
    assert all(lv.weight_grads is None and lv.bias_grads is None for lv in plain.layers)
    assert all(lv.activations is None for lv in plain.layers)


def test_gradient_batches_default_to_ten_and_at_most_one_per_row() -> None:
    pop = Population.create(Architecture(30, (12, 4), (12,)), 1, torch.Generator().manual_seed(0))
    gen = torch.Generator()
    rows = torch.rand(25, 30, generator=torch.Generator().manual_seed(1))
    ctx = build_context(pop, [0], _NeedsGrads(), 0.1, rows, None, gen)
    assert ctx.layers[0].weight_grads.shape == (1, 10, 12, 30)
    ctx = build_context(pop, [0], _NeedsGrads(), 0.1, rows[:6], None, gen, batches=50)
    assert ctx.layers[3].bias_grads.shape == (1, 6, 30)  # 6 rows: 6 batches, not 30 (columns)


def test_labels_reach_only_operators_that_need_them_and_k_means_fills_in() -> None:
    pop = Population.create(Architecture(30, (12, 4), (12,)), 1, torch.Generator().manual_seed(0))
    rows = torch.rand(40, 30, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(40) % 3
    ctx = build_context(pop, [0], _NeedsLabels(), 0.1, rows, labels, torch.Generator())
    assert torch.equal(ctx.labels, labels) and ctx.labels.data_ptr() != labels.data_ptr()
    assert (
        build_context(pop, [0], RandomPruning(), 0.1, rows, labels, torch.Generator()).labels
        is None
    )
    # no labels given: k-means with 10 clusters, seeded by one draw from the context's generator
    ctx = build_context(pop, [0], _NeedsLabels(), 0.1, rows, None, torch.Generator().manual_seed(3))
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=torch.Generator().manual_seed(3)))
    assert ctx.labels.shape == (40,) and ctx.labels.unique().tolist() == list(range(10))
    assert torch.equal(ctx.labels, pseudo_labels(rows, 10, seed))
    assert (
        build_context(pop, [0], RandomPruning(), 0.1, rows, None, torch.Generator()).labels is None
    )


class _Recorder(RandomPruning):
    """Keeps every mask but one weight (layer 0, member 0, unit 0, input 1) and records ctx."""

    name = "recorder"
    needs = frozenset({"gradients", "labels"})

    def __init__(self) -> None:
        self.seen: list[PruneContext] = []

    def prune(self, ctx: PruneContext) -> list[LayerMask]:
        self.seen.append(ctx)
        masks = [LayerMask(lv.weight_mask.clone(), lv.bias_mask.clone()) for lv in ctx.layers]
        masks[0].weight[0, 0, 1] = False
        return masks


def test_apply_operator_passes_its_arguments_and_places_the_mask() -> None:
    arch = Architecture(30, (12, 4), (12,))
    pop = Population.create(arch, 3, torch.Generator().manual_seed(0))
    rows = (torch.rand(40, 30, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    labels = torch.arange(40) % 3
    rng = torch.Generator().manual_seed(2)
    op = _Recorder()
    ref = build_context(pop.clone(), [2], _Recorder(), 0.1, rows, labels, rng, "bce", 10)
    out = apply_operator(pop, [2], op, 0.1, rows, labels, rng)
    (ctx,) = op.seen
    assert ctx.rng is rng and torch.equal(ctx.labels, labels)
    # the defaults: BCE gradients over 10 batches
    assert ctx.layers[0].weight_grads.shape == (1, 10, 12, 30)
    assert torch.equal(ctx.layers[0].weight_grads, ref.layers[0].weight_grads)
    # the one dropped weight lands at (input 1, unit 0) of member 2's first layer, nowhere else
    assert (out.alive_before, out.alive_after, out.zeroed) == (874, 873, 1)
    w = pop.encoders.weight(0, pop.encoders.masks)
    assert w[2, 1, 0] == 0 and int((pop.masks[2] == 0).sum()) == 1
    assert int((pop.masks[:2] == 0).sum()) == 0


def test_apply_operator_under_regrow_zeroes_and_counts_non_zero_entries() -> None:
    arch = Architecture(30, (12, 4), (12,))
    pop = Population.create(arch, 2, torch.Generator().manual_seed(0))
    rows = torch.rand(20, 30, generator=torch.Generator().manual_seed(1))

    def prune(members: list[int], seed: int, **kw: str) -> PruneOutcome:
        gen = torch.Generator().manual_seed(seed)
        return apply_operator(pop, members, RandomPruning(), 0.25, rows, None, gen, **kw)

    # a quarter of each tensor, rounded: 219 of 874 per member
    assert prune([0, 1], 3, masks="regrow") == PruneOutcome(1748, 1748 - 438, 438)
    assert bool((pop.masks == 1).all())  # masks stay; the entries are zeroed once
    second = prune([0, 1], 4, masks="regrow")  # some of its 438 are zero already
    assert second.alive_before == 1310 and second.zeroed == 438
    assert second.alive_after == int((pop.params != 0).sum()) and second.removed < 438
    # persistent masks: zeroed is what the event removed, not the entries pruned before it
    assert prune([0], 5) == PruneOutcome(874, 655, 219)
    assert prune([0], 6) == PruneOutcome(655, 490, 165)


def test_gradient_batches_are_passed_through() -> None:
    pop = Population.create(Architecture(30, (12, 4), (12,)), 1, torch.Generator())
    op = _Recorder()
    apply_operator(pop, [0], op, 0.1, torch.rand(8, 30), torch.zeros(8, dtype=torch.long),
                   torch.Generator(), batches=4)  # fmt: skip
    assert op.seen[0].layers[0].weight_grads.shape == (1, 4, 12, 30)


def _wrong_operator(change: Callable[[list[LayerMask]], list[Any]]) -> RandomPruning:
    class Wrong(RandomPruning):
        name = "wrong"

        def prune(self, ctx: PruneContext) -> list[LayerMask]:
            return change(
                [LayerMask(lv.weight_mask.clone(), lv.bias_mask.clone()) for lv in ctx.layers]
            )

    return Wrong()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda out: out[:3], "returned 3 layer masks, expected 4"),
        (
            lambda out: [LayerMask(out[0].weight[:, :, :-1], out[0].bias), *out[1:]],
            "returned a weight mask of shape (1, 12, 29) for encoder.0, expected (1, 12, 30)",
        ),
        (
            lambda out: [*out[:3], LayerMask(out[3].weight, [True] * 30)],
            "returned a list as the bias mask for decoder.1, not a tensor",
        ),
        (
            lambda out: [out[0], LayerMask(out[1].weight.float(), out[1].bias), *out[2:]],
            "returned a torch.float32 weight mask for encoder.1; allowed: torch.bool",
        ),
    ],
    ids=["count", "shape", "not-a-tensor", "float"],
)
def test_masks_of_the_wrong_count_shape_or_dtype_are_refused_naming_the_operator(
    change: Callable[[list[LayerMask]], list[Any]], message: str
) -> None:
    """A float mask would scale the weights instead of pruning them: the engine refuses it, as
    it refuses masks of the wrong count or shape (the conformance kit checks the same)."""
    pop = Population.create(Architecture(30, (12, 4), (12,)), 1, torch.Generator())
    with pytest.raises(
        PluginError, match=f"^{re.escape('operator ' + repr('wrong') + ' ' + message)}$"
    ):
        apply_operator(
            pop, [0], _wrong_operator(change), 0.1, torch.rand(4, 30), None, torch.Generator()
        )
    assert bool((pop.masks == 1).all())  # nothing was pruned
