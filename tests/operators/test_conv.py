"""Operators on conv networks: channel statistics, every built-in, dense-only refusals."""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch

from evoprune_core.engines.steps import apply_operator, build_context
from evoprune_core.errors import PluginError
from evoprune_core.evolve.operator import FormulaOperator
from evoprune_core.operators import (
    ConjunctivePruning,
    MagnitudePruning,
    NoPruning,
    Operator,
    PruneContext,
    RandomPruning,
    VariancePruning,
    outgoing_weights,
)
from evoprune_core.population import ConvArchitecture, ConvPopulation
from evoprune_core.testing import check_operator, operator_checks

ARCH = ConvArchitecture.from_preset("conv-small", (1, 8, 8))


def make(n: int = 2, seed: int = 0) -> ConvPopulation:
    return ConvPopulation.create(ARCH, n, torch.Generator().manual_seed(seed))


def test_channel_statistics_on_a_hand_built_case() -> None:
    pop = make(1)
    enc = pop.encoders
    w, b = enc.weight(0), enc.bias(0)  # conv 1 -> 8, 3x3, stride 2, padding 1
    w.zero_()
    b.zero_()
    b[0, 3] = 0.25  # channel 3: constant 0.25 everywhere
    w[0, 5, 0, 1, 1] = 1.0  # channel 5: the centre tap, i.e. pixel (2i, 2j)
    w[0, 6, 0, 1, 1] = -1.0  # channel 6: relu(-pixel) = 0
    x = torch.zeros(2, 1, 8, 8)
    x[0, 0, ::2, ::2] = 0.5  # every sampled pixel of row 0 is 0.5
    x[1, 0, 0, 0] = 0.8  # row 1: one sampled pixel of the 4x4 grid
    rows = x.reshape(2, 64)
    ctx = build_context(
        pop, [0], VariancePruning(), 0.1, rows, None, torch.Generator().manual_seed(0)
    )
    lv = ctx.layers[0]
    assert lv.kind == "conv2d" and lv.activations is not None
    assert lv.activations.shape == (1, 2, 8)  # (members, rows, channels)
    want = torch.zeros(2, 8)
    want[:, 3] = 0.25
    want[0, 5] = 0.5
    want[1, 5] = 0.8 / 16  # one of 16 positions
    torch.testing.assert_close(lv.activations[0], want, rtol=0, atol=1e-7)
    assert [v.kind for v in ctx.layers] == [
        "conv2d", "conv2d", "dense", "dense", "conv_transpose2d", "conv_transpose2d",
    ]  # fmt: skip
    # transposed conv layers are shown output channel first: (n, out, in, k, k)
    assert ctx.layers[4].weight.shape == (1, 8, 16, 3, 3)
    assert torch.equal(ctx.layers[4].weight[0], pop.decoders.weight(1)[0].transpose(0, 1))
    assert ctx.layers[-1].is_output and ctx.layers[-1].activation == "sigmoid"


def test_outgoing_weights_map_each_unit_to_its_readers() -> None:
    ctx = build_context(make(1), [0], NoPruning(), 0.1, torch.rand(3, 64), None, torch.Generator())
    conv0, conv1, dense0, dense1, convt0 = ctx.layers[:5]
    # conv read by conv: out*k*k readers per channel
    out = outgoing_weights(conv0, conv1)
    assert out.shape == (1, 16 * 9, 8)
    assert torch.equal(out[0, :, 2], conv1.weight[0, :, 2].reshape(-1))
    # conv read by dense through a flatten: the 2x2 columns of each channel
    out = outgoing_weights(conv1, dense0)
    assert out.shape == (1, 10 * 4, 16)
    assert torch.equal(
        out[0, :, 3].sort().values, dense0.weight[0, :, 12:16].reshape(-1).sort().values
    )
    # dense read by conv through an unflatten: unit u feeds channel u // 4
    out = outgoing_weights(dense1, convt0)
    assert out.shape == (1, 8 * 9, 64)
    assert torch.equal(out[0, :, 13], convt0.weight[0, :, 3].reshape(-1))


def _structured_channels(pop: ConvPopulation, before: torch.Tensor) -> None:
    """Every channel of every conv layer is either untouched by the event or lost whole."""
    split = pop.encoders.size
    for stack, cols in ((pop.encoders, slice(0, split)), (pop.decoders, slice(split, None))):
        old = before[:, cols]
        for i, pl in enumerate(stack.layers):
            if pl.kind != "conv2d":
                continue
            new_w = stack.weight(i, stack.masks)
            old_w = stack.weight(i, old)
            lost = (old_w.flatten(2) != new_w.flatten(2)).any(2)
            whole = (new_w.flatten(2) == 0).all(2)
            assert bool((~lost | whole).all()), f"{stack} layer {i}: a channel lost part"


@pytest.mark.parametrize(
    ("operator", "structured"),
    [
        (RandomPruning(), False),
        (MagnitudePruning(), False),
        (MagnitudePruning(scope="global"), False),
        (VariancePruning(), False),
        (ConjunctivePruning(threshold=0.5), True),
        (FormulaOperator(), True),
    ],
    ids=["random", "magnitude", "magnitude-global", "variance", "conjunctive", "formula"],
)
def test_each_builtin_operator_prunes_a_conv_network(operator: Operator, structured: bool) -> None:
    pop = make(3, 4)
    gen = torch.Generator().manual_seed(5)
    rows = torch.rand(64, 64, generator=gen)
    labels = torch.randint(0, 3, (64,), generator=gen)
    before = pop.masks.clone()
    out = apply_operator(pop, [0, 2], operator, 0.3, rows, labels, gen)
    assert out.removed > 0 and out.alive_after == int(pop.masks[[0, 2]].sum())
    assert torch.equal(pop.masks[1], before[1])  # not selected: untouched
    assert bool((pop.masks <= before).all())  # masks only shrink
    assert float(pop.params[pop.masks == 0].abs().sum()) == 0.0
    if structured:
        _structured_channels(pop, before)
    if isinstance(operator, (RandomPruning, MagnitudePruning)):
        # exact: round(0.3 * alive) of every tensor (or of each member's whole network)
        alive = int(before[[0, 2]].sum())
        assert abs(out.removed - 0.3 * alive) <= len(pop.encoders.layers + pop.decoders.layers) * 2


class DenseOnly(Operator):
    name = "dense-only"
    layer_kinds: ClassVar[frozenset[str]] = frozenset({"dense"})

    def prune(self, ctx: PruneContext):  # pragma: no cover - never reached on conv
        return ctx.unchanged()


def test_a_dense_only_operator_is_refused_on_a_conv_network() -> None:
    with pytest.raises(PluginError) as info:
        apply_operator(make(), [0], DenseOnly(), 0.1, torch.rand(4, 64), None, torch.Generator())
    assert str(info.value) == (
        "operator 'dense-only' handles dense layers only; this network has conv layers"
    )
    dict(operator_checks(DenseOnly))["conv_network"](DenseOnly)  # the kit accepts a refusal


class Undeclared(Operator):
    """An operator written before conv networks existed: it declares no layer kinds."""

    name = "undeclared"

    def prune(self, ctx: PruneContext):  # pragma: no cover - never reached on conv
        return ctx.unchanged()


def test_an_operator_that_declares_no_layer_kinds_is_dense_only() -> None:
    assert Undeclared.layer_kinds == frozenset({"dense"})
    with pytest.raises(PluginError) as info:
        apply_operator(make(), [0], Undeclared(), 0.1, torch.rand(4, 64), None, torch.Generator())
    assert str(info.value) == (
        "operator 'undeclared' handles dense layers only; this network has conv layers"
    )
    dict(operator_checks(Undeclared))["conv_network"](Undeclared)  # the kit accepts a refusal
    for op in (RandomPruning, MagnitudePruning, VariancePruning, ConjunctivePruning):
        assert op.layer_kinds == frozenset({"dense", "conv2d", "conv_transpose2d"})


def test_the_conformance_kit_runs_every_builtin_on_a_conv_network() -> None:
    from evoprune_core.testing._conv_checks import conv_context
    from evoprune_core.testing._operators import KitSettings

    ctx = conv_context(VariancePruning(), KitSettings(), 0.3)
    first = ctx.layers[0]
    # the kit's network has channel 0 of the first conv layer dead
    assert not bool(first.weight_mask[:, 0].any()) and not bool(first.bias_mask[:, 0].any())
    for op in (RandomPruning, MagnitudePruning, VariancePruning, ConjunctivePruning):
        check_operator(op)


def test_a_dense_only_operator_is_refused_before_a_conv_run_starts() -> None:
    from evoprune_core.config import RunConfig
    from evoprune_core.data import builtin_datasets
    from evoprune_core.errors import ConfigError
    from evoprune_core.resolved import check_network

    cfg = RunConfig.model_validate(
        {"data": {"name": "digits"}, "network": {"preset": "conv-small"}}
    )
    digits = next(s for s in builtin_datasets() if s.name == "digits")
    with pytest.raises(ConfigError) as info:
        check_network(cfg, digits, DenseOnly, "dense-only")
    assert str(info.value) == (
        "pruning.operator: 'dense-only' handles dense layers only; the 'conv-small' network "
        "has conv layers (allowed: an operator whose layer_kinds include conv2d and "
        "conv_transpose2d)"
    )
    check_network(cfg, digits, VariancePruning, "variance")  # the built-ins pass
    dense = RunConfig.model_validate({"data": {"name": "digits"}})
    check_network(dense, digits, DenseOnly, "dense-only")  # a dense network takes it
