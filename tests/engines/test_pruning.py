"""One prune event, as both engines run it: the operator flag ``prunes`` instead of a type test."""

from __future__ import annotations

import torch

from evoprune_core.engines.runtime import Streams
from evoprune_core.engines.steps import prune_event
from evoprune_core.loading import load_run
from evoprune_core.operators import NoPruning, Operator, RandomPruning
from evoprune_core.plugins import Registry
from evoprune_core.population import Architecture, Population

SETS = ["generations=1", "network.encoder=[6, 3]", "pruning.amount=0.25"]


def _setup() -> tuple[Population, object, object]:
    run = load_run(None, SETS, Registry.load(entry_points=False))
    data = run.build_dataset()
    arch = Architecture(data.dim, (6, 3), (6,))
    return Population.create(arch, 2, torch.Generator().manual_seed(0)), run.config, data


def test_the_baseline_counts_no_event_but_draws_the_same_calibration_rows() -> None:
    pop, cfg, data = _setup()
    before = pop.masks.clone()
    none, rand = Streams(7), Streams(7)
    out = prune_event(pop, [0, 1], NoPruning(), cfg.pruning, data, none, "bce")
    assert (out.events, out.removed, out.zeroed) == (0, 0, 0)
    assert out.alive_before == out.alive_after == int(before.sum())
    assert torch.equal(pop.masks, before)
    pruned = prune_event(pop, [1], RandomPruning(), cfg.pruning, data, rand, "bce")
    assert torch.equal(none.prune.get_state(), rand.prune.get_state())  # same rows drawn
    # random removes round(0.25 * alive) of every weight and bias tensor of member 1
    sizes = [(data.dim, 6), (6, 3), (3, 6), (6, data.dim)]
    want = sum(round(0.25 * i * o) + round(0.25 * o) for i, o in sizes)
    assert (pruned.events, pruned.removed) == (1, want)
    assert torch.equal(pop.masks[0], before[0])  # member 0 untouched
    assert int(pop.masks[1].sum()) == int(before[1].sum()) - want


class _Declines(RandomPruning):
    """Would prune, but declares ``prunes = False``: the flag, not the type, decides."""

    name = "declines"
    prunes = False


def test_the_flag_decides_not_the_class() -> None:
    pop, cfg, data = _setup()
    before = pop.masks.clone()
    out = prune_event(pop, [0], _Declines(), cfg.pruning, data, Streams(1), "bce")
    assert (out.events, out.removed) == (0, 0) and torch.equal(pop.masks, before)
    assert Operator.prunes is True and NoPruning.prunes is False


def test_the_old_module_paths_name_the_same_objects() -> None:
    from evoprune_core.engines import common, pruning, runtime, steps, training

    assert pruning.__all__ and training.__all__
    for mod in (pruning, training):
        for name in mod.__all__:
            assert getattr(mod, name) is getattr(steps, name), (mod.__name__, name)
    assert pruning.prune_event is prune_event  # the path docs/plugins.md names
    assert runtime.calibration is steps.calibration is common.calibration
