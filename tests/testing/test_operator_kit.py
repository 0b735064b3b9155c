"""The conformance kit: every built-in passes it, and each check catches its own violation."""

from __future__ import annotations

import time

import pytest
import torch

from evoprune_core import LayerMask, Param, PruneContext
from evoprune_core.operators import (
    RandomPruning,
    VariancePruning,
    builtin_operators,
    prune_fraction,
)
from evoprune_core.testing import (
    CHECKS,
    KitSettings,
    check_operator,
    operator_checks,
    parametrize_with_checks,
)


@parametrize_with_checks(builtin_operators())
def test_builtin_operators_conform(operator: object, check: object) -> None:
    check(operator)  # type: ignore[operator]


def test_parametrize_ids_name_operator_and_check() -> None:
    mark = parametrize_with_checks([RandomPruning, RandomPruning()])
    assert mark.args[0] == "operator, check"
    ids = [p.id for p in mark.args[1]]
    assert ids == [f"random-{name}" for name in CHECKS] * 2


def test_check_operator_accepts_class_and_instance() -> None:
    assert check_operator(RandomPruning) is None
    assert check_operator(RandomPruning(), seed=3, amount=0.5) is None
    assert [name for name, _ in operator_checks(RandomPruning)] == list(CHECKS)


def test_unknown_setting_is_refused() -> None:
    with pytest.raises(TypeError):
        check_operator(RandomPruning, nonsense=1)
    assert KitSettings().time_limit == 10.0


def test_not_an_operator_is_refused() -> None:
    with pytest.raises(AssertionError, match="is not an Operator"):
        check_operator(object)  # type: ignore[arg-type]


# -- deliberately wrong operators, one per check --------------------------------------------
class BadDeclaration(RandomPruning):
    name = "bad-declaration"
    needs = frozenset({"weights"})


class BadDefault(RandomPruning):
    name = "bad-default"
    parameters = (Param("level", "float", 2.0, low=0.0, high=1.0),)


class TransposedMasks(RandomPruning):
    name = "transposed"

    def prune(self, ctx: PruneContext) -> list[LayerMask]:
        return [LayerMask(m.weight.transpose(1, 2), m.bias) for m in super().prune(ctx)]


class FloatMasks(RandomPruning):
    name = "float-masks"

    def prune(self, ctx: PruneContext) -> list[LayerMask]:
        return [LayerMask(m.weight.float(), m.bias.float()) for m in super().prune(ctx)]


class Unprunes(RandomPruning):
    name = "unprunes"

    def prune(self, ctx: PruneContext) -> list[LayerMask]:
        return [
            LayerMask(torch.ones_like(lv.weight_mask), torch.ones_like(lv.bias_mask))
            for lv in ctx.layers
        ]


class IgnoresAmount(RandomPruning):
    name = "ignores-amount"

    def prune(self, ctx: PruneContext) -> list[LayerMask]:
        fixed = PruneContext(ctx.layers, 0.3, ctx.rng, ctx.members, ctx.inputs, ctx.labels)
        return super().prune(fixed)


class SecretlyUsesAmount(RandomPruning):
    name = "secretly-uses-amount"
    uses_amount = False


class CountsAllEntries(RandomPruning):
    """Prunes ``amount`` of *all* entries (dead ones included) instead of the alive ones."""

    name = "counts-all-entries"

    def prune(self, ctx: PruneContext) -> list[LayerMask]:
        out = []
        for lv in ctx.layers:
            masks = []
            for m in (lv.weight_mask, lv.bias_mask):
                flat = m.reshape(ctx.n, -1)
                k = round(flat.shape[1] * ctx.amount)
                scores = torch.rand(flat.shape, generator=ctx.rng).masked_fill(~flat, 2.0)
                ranks = scores.argsort(1).argsort(1)
                masks.append((flat & (ranks >= k)).view_as(m))
            out.append(LayerMask(*masks))
        return out


class CountsAllEntriesInexact(CountsAllEntries):
    name = "counts-all-entries-inexact"
    amount_exact = False


class ClaimsExact(VariancePruning):
    """Declares exact counts but draws entries at random."""

    name = "claims-exact"
    amount_exact = True


class GlobalRandomness(RandomPruning):
    name = "global-randomness"
    amount_exact = False  # prunes weights only

    def prune(self, ctx: PruneContext) -> list[LayerMask]:
        out = []
        for lv in ctx.layers:
            flat = lv.weight_mask.reshape(ctx.n, -1)
            keep = prune_fraction(flat, torch.rand(flat.shape), ctx.amount)
            out.append(LayerMask(keep.view_as(lv.weight_mask), lv.bias_mask.clone()))
        return out


class WritesWeights(RandomPruning):
    name = "writes-weights"

    def prune(self, ctx: PruneContext) -> list[LayerMask]:
        for lv in ctx.layers:
            lv.weight.mul_(lv.weight_mask)
            lv.weight.mul_(0.5)
        return super().prune(ctx)


class IndexesByMember(RandomPruning):
    """Mistakes population indices for rows of the context's tensors."""

    name = "indexes-by-member"

    def prune(self, ctx: PruneContext) -> list[LayerMask]:
        rows = list(ctx.members)
        return [LayerMask(m.weight[rows], m.bias[rows]) for m in super().prune(ctx)]


class Squeezes(RandomPruning):
    name = "squeezes"

    def prune(self, ctx: PruneContext) -> list[LayerMask]:
        return [LayerMask(m.weight.squeeze(), m.bias.squeeze()) for m in super().prune(ctx)]


class BadChoice(RandomPruning):
    """Declares a choice its ``prune`` does not handle."""

    name = "bad-choice"
    parameters = (Param("mode", "categorical", "plain", choices=("plain", "fancy")),)

    def prune(self, ctx: PruneContext) -> list[LayerMask]:
        if self.params["mode"] != "plain":
            raise ValueError(f"unknown mode {self.params['mode']!r}")
        return super().prune(ctx)


class Slow(RandomPruning):
    """Slow only on the standard network, so the other checks stay fast."""

    name = "slow"

    def prune(self, ctx: PruneContext) -> list[LayerMask]:
        if ctx.layers[0].weight.shape[2] == 1000:
            time.sleep(0.3)
        return super().prune(ctx)


class FlattensFilters(RandomPruning):
    """Returns conv filters flattened into dense rows (right on dense layers only)."""

    name = "flattens-filters"

    def prune(self, ctx: PruneContext) -> list[LayerMask]:
        return [LayerMask(m.weight.flatten(2), m.bias) for m in super().prune(ctx)]


WRONG = [
    ("declaration", BadDeclaration, "needs {'weights'} not in"),
    ("declaration", BadDefault, "parameter 'level': default 2.0"),
    ("mask_shapes", TransposedMasks, "weight mask has shape (2, 16, 8), expected (2, 8, 16)"),
    ("mask_shapes", FloatMasks, "weight mask is torch.float32, not bool"),
    ("never_unprune", Unprunes, "pruned weight entries come back"),
    ("amount", IgnoresAmount, "amount=0 pruned entries"),
    ("amount", SecretlyUsesAmount, "uses_amount is False but the masks depend on amount"),
    ("amount", CountsAllEntries, "member 0 lost 72 of 254 alive entries, more than"),
    ("amount", CountsAllEntriesInexact, "more than amount x alive allows"),
    ("amount", ClaimsExact, "(declared amount_exact)"),
    ("deterministic", GlobalRandomness, "same RNG state gave different masks"),
    ("inputs_unmodified", WritesWeights, "prune modified 4 tensors of its context in place"),
    ("member_subset", IndexesByMember, "IndexError"),
    ("population_of_one", Squeezes, "weight mask has shape (8, 16), expected (1, 8, 16)"),
    ("parameters", BadChoice, "with mode='fancy': prune raised ValueError: unknown mode"),
    ("time_bound", Slow, "on 10 standard networks (limit 0.1 s)"),
    ("conv_network", FlattensFilters, "weight mask has shape (2, 8, 9), expected (2, 8, 1, 3, 3)"),
]


@pytest.mark.parametrize(
    ("check_name", "operator", "message"),
    WRONG,
    ids=[f"{c}-{op.name}" for c, op, _ in WRONG],
)
def test_each_check_catches_its_violation(check_name: str, operator: type, message: str) -> None:
    # the first check to fail is the one the operator violates; the message says why
    with pytest.raises(AssertionError) as err:
        check_operator(operator, time_limit=0.1)
    text = str(err.value)
    assert text.startswith(f"{operator.name}: check {check_name!r} failed: "), text
    assert message in text, text


def test_every_check_has_a_wrong_operator() -> None:
    assert {c for c, _, _ in WRONG} == set(CHECKS)
