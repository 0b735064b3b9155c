"""The conformance kits for schedules and datasets, and the operator kit's parameter checks.

Each kit must pass the built-ins and fail a component with a plausible mistake, naming the
check that caught it.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from evoprune_core import Dataset, DatasetSpec, Operator, Param, Schedule, hookimpl
from evoprune_core.data import build_dataset, builtin_datasets
from evoprune_core.errors import DataError
from evoprune_core.loading import load_run
from evoprune_core.operators import LayerMask, PruneContext, prune_fraction
from evoprune_core.plugins import Registry
from evoprune_core.schedules import builtin_schedules
from evoprune_core.testing import check_dataset, check_operator, check_schedule


# -- schedules -------------------------------------------------------------------------------
@pytest.mark.parametrize("schedule", builtin_schedules(), ids=lambda s: s.name)
def test_builtin_schedules_pass_the_kit(schedule: type[Schedule]) -> None:
    check_schedule(schedule)


class _DividesByLast(Schedule):
    name = "ramp-bug"

    def rate(self, t: int, last: int, n: int) -> float:
        return self.probability * t / last  # one generation: last == 0


class _Counter(Schedule):
    name = "counter"

    def __init__(self, probability: float, **params: Any) -> None:
        super().__init__(probability, **params)
        self.calls = itertools.count()

    def rate(self, t: int, last: int, n: int) -> float:
        return self.probability * (next(self.calls) % 2)


class _AlwaysOne(Schedule):
    name = "always"

    def rate(self, t: int, last: int, n: int) -> float:
        return 1.0


class _DeclaresProbability(Schedule):
    name = "declares-p"
    parameters = (Param("probability", "float", 0.5, low=0.0, high=1.0),)

    def rate(self, t: int, last: int, n: int) -> float:
        return self.probability


class _Unvalidated(Schedule):
    name = "unvalidated"
    parameters = (Param("start", "float", 0.5, low=0.0, high=1.0),)

    def __init__(self, probability: float, **params: Any) -> None:
        self.probability = probability
        self.params = {"start": 0.5, **params}  # skips validation

    def rate(self, t: int, last: int, n: int) -> float:
        return self.probability


@pytest.mark.parametrize(
    ("schedule", "check", "detail"),
    [
        (_DividesByLast, "range", "ZeroDivisionError"),
        (_Counter, "deterministic", "depend on the order of calls"),
        (_AlwaysOne, "probability_scales", "probability 0 still gives"),
        (_DeclaresProbability, "declaration", "'probability' is reserved"),
        (_Unvalidated, "parameters", "start=-1.0 outside its range is accepted"),
    ],
)
def test_schedule_kit_names_the_mistake(schedule: type[Schedule], check: str, detail: str) -> None:
    with pytest.raises(AssertionError) as info:
        check_schedule(schedule)
    assert str(info.value).startswith(f"{schedule.name}: check {check!r} failed: ")
    assert detail in str(info.value)


# -- datasets --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "spec",
    [s for s in builtin_datasets() if s.name in ("bc-10-100-1000", "binary-clustering", "digits")],
    ids=lambda s: s.name,
)
def test_builtin_datasets_pass_the_kit(spec: DatasetSpec) -> None:
    check_dataset(spec)


def test_file_dataset_passes_the_kit_with_a_path(tmp_path: Path) -> None:
    path = tmp_path / "rows.npy"
    np.save(path, np.random.default_rng(0).random((30, 5)))
    (spec,) = [s for s in builtin_datasets() if s.name == "file"]
    check_dataset(spec, {"path": str(path)})


def _wide(params: dict[str, Any], seed: int) -> Dataset:
    gen = torch.Generator().manual_seed(seed)
    rows = torch.rand(30, 8, generator=gen) * 5.0 - 1.0  # values in [-1, 4]
    return Dataset("wide", rows[:20], rows[20:25], rows[25:])


def _unseeded(params: dict[str, Any], seed: int) -> Dataset:
    rows = torch.from_numpy(np.random.default_rng().random((30, 8)).astype(np.float32))
    return Dataset("unseeded", rows[:20], rows[20:25], rows[25:])


@pytest.mark.parametrize(
    ("spec", "check", "detail"),
    [
        (DatasetSpec("wide", (), _wide), "values", "not within [0, 1]"),
        (DatasetSpec("unseeded", (), _unseeded), "deterministic", "train differs for seed 3"),
        (DatasetSpec("has space", (), _wide), "declaration", "not a non-empty identifier"),
    ],
)
def test_dataset_kit_names_the_mistake(spec: DatasetSpec, check: str, detail: str) -> None:
    with pytest.raises(AssertionError) as info:
        check_dataset(spec)
    assert str(info.value).startswith(f"{spec.name}: check {check!r} failed: ")
    assert detail in str(info.value)


def test_a_dataset_outside_0_1_is_refused_before_training() -> None:
    with pytest.raises(DataError) as info:
        build_dataset(DatasetSpec("wide", (), _wide), {}, 0)
    assert re.fullmatch(
        r"dataset 'wide': train values lie in \[-0\.9\d+, 3\.9\d+\]; every value must lie in "
        r"\[0, 1\] \(the decoder ends in a sigmoid\)",
        str(info.value),
    )

    class Plugin:
        @hookimpl
        def evoprune_register_datasets(self) -> list[Any]:
            return [DatasetSpec("wide", (), _wide)]

    registry = Registry.load(env={"EVOPRUNE_PLUGINS": "none"}, extra=[(Plugin(), "wide-dist")])
    run = load_run(None, ["data.name='wide'", "generations=1"], registry)
    with pytest.raises(DataError, match="every value must lie in"):
        run.run()


# -- the operator kit's parameter checks -----------------------------------------------------
class _DeclaresAmount(Operator):
    name = "declares-amount"
    parameters = (Param("amount", "float", 0.1, low=0.0, high=1.0),)

    def prune(self, ctx: PruneContext) -> list[LayerMask]:
        return ctx.unchanged()


class _LowBoundUnchecked(Operator):
    """Validates its parameter only against the upper bound."""

    name = "low-unchecked"
    parameters = (Param("power", "float", 1.0, low=0.5, high=2.0),)

    def __init__(self, **params: Any) -> None:
        power = params.get("power", 1.0)
        if power > 2.0:
            from evoprune_core.errors import ConfigError

            raise ConfigError("power too large")
        self.params = {"power": power}

    def prune(self, ctx: PruneContext) -> list[LayerMask]:
        return ctx.unchanged() if self.params["power"] < 0 else _magnitude(ctx)


class _BoundPrunesNothing(Operator):
    name = "bound-prunes-nothing"
    parameters = (Param("power", "float", 1.0, low=0.5, high=2.0),)

    def prune(self, ctx: PruneContext) -> list[LayerMask]:
        return ctx.unchanged() if self.params["power"] >= 2.0 else _magnitude(ctx)


def _magnitude(ctx: PruneContext) -> list[LayerMask]:
    out = []
    for lv in ctx.layers:
        flat = lv.weight_mask.reshape(ctx.n, -1)
        keep = prune_fraction(flat, lv.weight.abs().reshape(ctx.n, -1), ctx.amount)
        out.append(LayerMask(keep.view_as(lv.weight_mask), lv.bias_mask.clone()))
    return out


@pytest.mark.parametrize(
    ("operator", "check", "detail"),
    [
        (_DeclaresAmount, "declaration", "'amount' is reserved"),
        (_LowBoundUnchecked, "parameters", "power=-0.5 outside its range is accepted"),
        (_BoundPrunesNothing, "parameters", "with power=2.0: prunes nothing"),
    ],
)
def test_operator_kit_checks_every_bound(operator: type[Operator], check: str, detail: str) -> None:
    with pytest.raises(AssertionError) as info:
        check_operator(operator)
    assert str(info.value).startswith(f"{operator.name}: check {check!r} failed: ")
    assert detail in str(info.value)
