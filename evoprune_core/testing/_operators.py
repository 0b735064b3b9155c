"""Conformance checks for pruning operators (built-ins and third-party plugins alike).

``check_operator(op)`` runs every check and raises ``AssertionError`` naming the first one
that fails. ``parametrize_with_checks([...])`` turns the same checks into one pytest case per
operator and check, like scikit-learn's helper of the same name::

    from evoprune_core.testing import parametrize_with_checks
    from my_plugin import MyOperator

    @parametrize_with_checks([MyOperator])
    def test_conformance(operator, check):
        check(operator)

Contexts are built by the engine's own ``build_context`` on small real populations, so an
operator sees exactly what it would see in a run (including the gradients, activations or
labels it declared in ``needs``).
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError
from ..operators import NEEDS, LayerMask, Operator, PruneContext
from ..population import Architecture, Population
from ._common import check_param_declarations, in_range_values, out_of_range_values, run_named
from ._conv_checks import conv_network_check

__all__ = [
    "CHECKS",
    "KitSettings",
    "check_operator",
    "operator_checks",
    "parametrize_with_checks",
]

OperatorLike = Operator | type[Operator]
Check = Callable[[OperatorLike], None]


@dataclass(frozen=True)
class KitSettings:
    """Sizes and bounds the checks use (override through ``check_operator``'s keywords).

    ``time_limit`` bounds one ``prune`` call on ``standard_members`` members of the standard
    network (``input_dim`` inputs); ``amount`` is the pruning rate of most checks.
    """

    seed: int = 0
    amount: float = 0.3
    rows: int = 40
    batches: int = 4
    time_limit: float = 10.0
    input_dim: int = 1000
    standard_rows: int = 100
    standard_members: int = 10


# -- building contexts ---------------------------------------------------------------------
_SMALL = Architecture(16, (8, 4), (8,))


def _population(arch: Architecture, n: int, seed: int, preprune: bool = True) -> Population:
    """``n`` members, 25% of their entries pruned at random and one hidden unit dead."""
    gen = torch.Generator().manual_seed(seed)
    pop = Population.create(arch, n, gen)
    if preprune:
        keep = (torch.rand(pop.masks.shape, generator=gen) >= 0.25).float()
        pop.prune(keep)
        # kill every incoming weight and the bias of encoder unit 0 of layer 0
        enc = pop.encoders
        enc.weight(0, enc.masks)[:, :, 0] = 0.0  # (n, in, out) view into the masks
        enc.bias(0, enc.masks)[:, 0] = 0.0
        pop.prune(pop.masks.clone())
    return pop


def _rows(n_rows: int, dim: int, seed: int) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed + 1)
    rows = (torch.rand(n_rows, dim, generator=gen) < 0.5).float()
    labels = torch.randint(0, 3, (n_rows,), generator=gen)
    return rows, labels


def _context(
    op: Operator,
    s: KitSettings,
    n: int = 2,
    members: tuple[int, ...] = (0, 1),
    amount: float | None = None,
    seed: int | None = None,
    arch: Architecture = _SMALL,
    rows: int | None = None,
) -> PruneContext:
    from ..engines.steps import build_context

    seed = s.seed if seed is None else seed
    pop = _population(arch, n, s.seed)
    x, y = _rows(rows or s.rows, arch.input_dim, s.seed)
    rng = torch.Generator().manual_seed(seed)
    amt = s.amount if amount is None else amount
    return build_context(pop, list(members), op, amt, x, y, rng, "bce", s.batches)


def _prune(op: Operator, ctx: PruneContext) -> list[LayerMask]:
    out = op.prune(ctx)
    _check_structure(ctx, out)
    return out


def _check_structure(ctx: PruneContext, out: object) -> None:
    assert isinstance(out, (list, tuple)), f"prune returned {type(out).__name__}, not a list"
    assert len(out) == len(ctx.layers), (
        f"prune returned {len(out)} layer masks for {len(ctx.layers)} layers"
    )
    for lv, m in zip(ctx.layers, out):
        assert isinstance(m, LayerMask), f"{lv.name}: {type(m).__name__} is not a LayerMask"
        for what, got, want in (
            ("weight", m.weight, lv.weight_mask),
            ("bias", m.bias, lv.bias_mask),
        ):
            assert isinstance(got, Tensor), f"{lv.name}: {what} mask is not a tensor"
            assert tuple(got.shape) == tuple(want.shape), (
                f"{lv.name}: {what} mask has shape {tuple(got.shape)}, expected {tuple(want.shape)}"
            )
            assert got.dtype == torch.bool, f"{lv.name}: {what} mask is {got.dtype}, not bool"


def _alive(masks: Iterable[LayerMask]) -> int:
    return sum(int(m.weight.sum()) + int(m.bias.sum()) for m in masks)


def _current(ctx: PruneContext) -> list[LayerMask]:
    return [LayerMask(lv.weight_mask, lv.bias_mask) for lv in ctx.layers]


def _same(a: list[LayerMask], b: list[LayerMask]) -> bool:
    return all(
        torch.equal(x.weight, y.weight) and torch.equal(x.bias, y.bias) for x, y in zip(a, b)
    )


def _instance(op: OperatorLike) -> Operator:
    if isinstance(op, type):
        assert issubclass(op, Operator), f"{op!r} is not an Operator subclass"
        return op()
    assert isinstance(op, Operator), f"{op!r} is not an Operator"
    return op


# -- the checks ----------------------------------------------------------------------------
def check_declaration(op: Operator, s: KitSettings) -> None:
    """Name, description, needs, uses_amount and parameters are declared correctly."""
    cls = type(op)
    assert isinstance(cls.name, str) and re.fullmatch(r"[A-Za-z0-9_.\-]+", cls.name), (
        f"name {cls.name!r} is not a non-empty identifier (letters, digits, _ . -)"
    )
    assert isinstance(cls.description, str), "description must be a string"
    assert set(cls.needs) <= NEEDS, f"needs {set(cls.needs) - NEEDS} not in {sorted(NEEDS)}"
    assert isinstance(cls.uses_amount, bool), "uses_amount must be a bool"
    check_param_declarations(cls.parameters, reserved=("amount",))


def check_parameters(op: Operator, s: KitSettings) -> None:
    """Every bound, midpoint and choice is accepted and runs (and prunes, for an operator that
    uses ``amount``); values just outside a range (``low - 1``, ``high + 1``) are refused."""
    cls = type(op)
    for p in cls.parameters:
        for value in in_range_values(p):
            try:
                variant = cls(**{**op.params, p.name: value})
            except Exception as exc:
                raise AssertionError(
                    f"parameter {p.name}={value!r} (declared {p.allowed()}) is refused: {exc}"
                ) from None
            try:
                ctx = _context(variant, s)
                pruned = _alive(_current(ctx)) - _alive(_prune(variant, ctx))
                assert pruned > 0 or not cls.uses_amount, "prunes nothing"
            except AssertionError as exc:
                raise AssertionError(f"with {p.name}={value!r}: {exc}") from None
            except Exception as exc:
                raise AssertionError(
                    f"with {p.name}={value!r}: prune raised {type(exc).__name__}: {exc}"
                ) from None
        for bad in out_of_range_values(p):
            try:
                cls(**{**op.params, p.name: bad})
            except ConfigError:
                continue
            raise AssertionError(f"parameter {p.name}={bad!r} outside its range is accepted")


def check_mask_shapes(op: Operator, s: KitSettings) -> None:
    """One bool ``LayerMask`` per layer, of the layer's shapes."""
    _prune(op, _context(op, s))


def check_never_unprune(op: Operator, s: KitSettings) -> None:
    """The new masks are a subset of the current ones, at every amount."""
    for amount in (0.0, s.amount, 1.0):
        ctx = _context(op, s, amount=amount)
        for lv, m in zip(ctx.layers, _prune(op, ctx)):
            for what, new, old in (
                ("weight", m.weight, lv.weight_mask),
                ("bias", m.bias, lv.bias_mask),
            ):
                grown = int((new & ~old).sum())
                assert grown == 0, (
                    f"amount={amount}: {lv.name}: {grown} pruned {what} entries come back"
                )


def _alive_per_member(masks: Iterable[LayerMask]) -> Tensor:
    """Alive entries of every member: ``(n,)``."""
    per_layer = [m.weight.flatten(1).sum(1) + m.bias.flatten(1).sum(1) for m in masks]
    total = per_layer[0]
    for alive in per_layer[1:]:
        total = total + alive
    return total


def _amount_slack(alive: int, amount: float, tensors: int, exact: bool) -> float:
    """Most entries that may be pruned beyond ``amount * alive`` (and, if ``exact``, short of it).

    Exact operators round once per tensor (at most half an entry each). Others may draw their
    entries at random: a binomial margin of four standard deviations is allowed above.
    """
    rounding = tensors / 2
    if exact:
        return rounding
    return rounding + 4.0 * (alive * amount * (1.0 - amount)) ** 0.5


def check_amount(op: Operator, s: KitSettings) -> None:
    """``uses_amount``: 0 prunes nothing; amount prunes that fraction of the *alive* entries.

    Declared ``amount_exact``: every member loses ``amount * alive`` entries up to rounding.
    Otherwise no member loses more than ``amount * alive`` plus a binomial margin, and more
    amount prunes more. Without ``uses_amount`` the masks must not depend on amount.
    """
    if not type(op).uses_amount:
        a = _prune(op, _context(op, s, amount=0.1))
        b = _prune(op, _context(op, s, amount=0.9))
        assert _same(a, b), "uses_amount is False but the masks depend on amount"
        return
    exact = op.amount_exact
    assert isinstance(exact, bool), "amount_exact must be a bool"
    ctx = _context(op, s, amount=0.0)
    alive = _alive_per_member(_current(ctx))
    assert bool((_alive_per_member(_prune(op, ctx)) == alive).all()), "amount=0 pruned entries"
    tensors = 2 * len(ctx.layers)
    removed = {}
    for amount in (0.2, 0.6, 1.0) if exact else (0.2, 0.6):
        ctx = _context(op, s, amount=amount)
        gone = (alive - _alive_per_member(_prune(op, ctx))).tolist()
        removed[amount] = sum(gone)
        assert removed[amount] > 0, f"amount={amount} pruned nothing"
        for k, (lost, had) in enumerate(zip(gone, alive.tolist())):
            slack = _amount_slack(had, amount, tensors, exact)
            what = f"amount={amount}: member {k} lost {lost} of {had} alive entries"
            assert lost <= amount * had + slack, f"{what}, more than amount x alive allows"
            if exact:
                assert lost >= amount * had - slack, f"{what} (declared amount_exact)"
    assert removed[0.6] > removed[0.2], (
        f"amount=0.6 pruned {removed[0.6]} entries, amount=0.2 pruned {removed[0.2]}"
    )


def check_deterministic(op: Operator, s: KitSettings) -> None:
    """The same RNG state gives the same masks (randomness only from ``ctx.rng``)."""
    a = _prune(op, _context(op, s, seed=s.seed + 11))
    b = _prune(op, _context(op, s, seed=s.seed + 11))
    assert _same(a, b), "two contexts with the same RNG state gave different masks"


def _snapshot(ctx: PruneContext) -> list[Tensor]:
    out: list[Tensor] = []
    for lv in ctx.layers:
        for t in (lv.weight, lv.bias, lv.weight_mask, lv.bias_mask) + (
            lv.activations,
            lv.weight_grads,
            lv.bias_grads,
        ):
            if t is not None:
                out.append(t.clone())
    out.extend(t.clone() for t in (ctx.inputs, ctx.labels) if t is not None)
    return out


def check_inputs_unmodified(op: Operator, s: KitSettings) -> None:
    """Weights, masks, activations, gradients, inputs and labels are left as they were."""
    ctx = _context(op, s)
    before = _snapshot(ctx)
    op.prune(ctx)
    after = _snapshot(ctx)
    changed = sum(not torch.equal(a, b) for a, b in zip(before, after))
    assert changed == 0, f"prune modified {changed} tensors of its context in place"


def check_member_subset(op: Operator, s: KitSettings) -> None:
    """Works on a subset of a population (members 1 and 3 of 4), one mask row per member."""
    _prune(op, _context(op, s, n=4, members=(1, 3)))


def check_population_of_one(op: Operator, s: KitSettings) -> None:
    """Works on the canonical engine's population of one."""
    _prune(op, _context(op, s, n=1, members=(0,)))


def check_conv_network(op: Operator, s: KitSettings) -> None:
    """On a conv network: masks of the conv layers' shapes that never grow (a dense-only
    operator: one clear refusal)."""
    conv_network_check(op, s, _prune, _alive)


def check_time_bound(op: Operator, s: KitSettings) -> None:
    """One ``prune`` on the standard network finishes within ``time_limit`` seconds."""
    arch = Architecture.from_preset("standard", s.input_dim)
    n = s.standard_members
    ctx = _context(op, s, n=n, members=tuple(range(n)), arch=arch, rows=s.standard_rows)
    start = time.perf_counter()
    _prune(op, ctx)
    took = time.perf_counter() - start
    assert took <= s.time_limit, (
        f"prune took {took:.1f} s on {n} standard networks (limit {s.time_limit} s)"
    )


#: check name -> check, in the order ``check_operator`` runs them.
CHECKS: dict[str, Callable[[Operator, KitSettings], None]] = {
    "declaration": check_declaration,
    "mask_shapes": check_mask_shapes,
    "never_unprune": check_never_unprune,
    "amount": check_amount,
    "deterministic": check_deterministic,
    "inputs_unmodified": check_inputs_unmodified,
    "member_subset": check_member_subset,
    "population_of_one": check_population_of_one,
    "parameters": check_parameters,
    "conv_network": check_conv_network,
    "time_bound": check_time_bound,
}


def _run(name: str, check: Callable[[Operator, KitSettings], None], s: KitSettings) -> Check:
    def run(operator: OperatorLike) -> None:
        op = _instance(operator)
        run_named(op.name, name, lambda: check(op, s))

    functools.update_wrapper(run, check)
    return run


def operator_checks(operator: OperatorLike, **settings: Any) -> Iterator[tuple[str, Check]]:
    """Yield ``(check_name, check)``; call ``check(operator)``. Keywords set ``KitSettings``."""
    _instance(operator)
    s = KitSettings(**settings)
    for name, check in CHECKS.items():
        yield name, _run(name, check, s)


def check_operator(operator: OperatorLike, **settings: Any) -> None:
    """Run every check; raise ``AssertionError`` naming the first that fails.

    ``operator`` is an ``Operator`` subclass (built with its defaults) or an instance (to
    check particular parameters). Keywords override ``KitSettings`` (e.g. ``time_limit=30``).
    """
    for _name, check in operator_checks(operator, **settings):
        check(operator)


def parametrize_with_checks(operators: Iterable[OperatorLike], **settings: Any) -> Any:
    """A ``pytest.mark.parametrize("operator, check", ...)`` over every operator and check.

    Ids read ``<operator name>-<check name>``; the test body is ``check(operator)``.
    """
    import pytest

    params = []
    for operator in operators:
        label = _label(_instance(operator))
        for name, check in operator_checks(operator, **settings):
            params.append(pytest.param(operator, check, id=f"{label}-{name}"))
    return pytest.mark.parametrize("operator, check", params)


def _label(op: Operator) -> str:
    """``name`` or ``name(key=value, ...)`` with the parameters that differ from defaults."""
    changed = [
        f"{p.name}={op.params[p.name]!r}"
        for p in type(op).parameters
        if p.name in op.params and op.params[p.name] != p.default
    ]
    return f"{op.name}({', '.join(changed)})" if changed else op.name
