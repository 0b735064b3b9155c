"""The coevolutionary engine: neighbourhoods, evaluation, selection, batched training, runs."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from evoprune_core.engines.coevolution import (
    centre_positions,
    draw_candidates,
    neighbourhoods,
    pairings,
    select,
    sub_losses,
    sub_populations,
    tournament,
)
from evoprune_core.engines.result import RunResult
from evoprune_core.engines.steps import Trainer
from evoprune_core.errors import ConfigError
from evoprune_core.loading import load_run_config, run
from evoprune_core.plugins import Registry
from evoprune_core.population import Architecture, Population
from tests.conftest import reference_loss

TINY = [
    'engine="coevolution"',
    'data.name="binary-clustering"',
    "data.params.clusters=4",
    "data.params.dims=64",
    "data.params.rows_per_cluster=20",
    "data.params.val_rows_per_cluster=10",
    "data.params.test_rows_per_cluster=10",
    "network.encoder=[16, 4]",
    "coevolution.cells=4",
    "generations=3",
    "training.batch_size=8",
]


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load()


def tiny(registry: Registry, *extra: str) -> Any:
    return load_run_config(None, TINY + list(extra), registry)


def go(registry: Registry, *extra: str) -> RunResult:
    return run(tiny(registry, *extra), registry)


# -- neighbourhoods --------------------------------------------------------------------------
@pytest.mark.parametrize("cells", [1, 2, 5, 10])
@pytest.mark.parametrize("radius", [1, 2])
def test_ring_neighbourhoods(cells: int, radius: int) -> None:
    nbr = neighbourhoods(cells, radius)
    assert nbr.shape == (cells, 2 * radius + 1)
    for i in range(cells):
        expected = [i]
        for d in range(1, radius + 1):
            expected += [(i - d) % cells, (i + d) % cells]
        assert nbr[i].tolist() == expected


def test_neighbourhood_examples() -> None:
    assert neighbourhoods(1, 1).tolist() == [[0, 0, 0]]
    assert neighbourhoods(2, 1).tolist() == [[0, 1, 1], [1, 0, 0]]
    assert neighbourhoods(5, 2)[0].tolist() == [0, 4, 1, 3, 2]
    assert neighbourhoods(10, 1)[9].tolist() == [9, 8, 0]
    assert neighbourhoods(3, 0).tolist() == [[0], [1], [2]]
    with pytest.raises(ConfigError):
        neighbourhoods(0, 1)
    with pytest.raises(ConfigError):
        neighbourhoods(3, -1)


def test_all_vs_all_sub_population(registry: Registry) -> None:
    cfg = tiny(registry, 'coevolution.variant="all_vs_all"', "coevolution.cells=3")
    assert sub_populations(cfg).tolist() == [[0, 1, 2]] * 3


# -- evaluation and selection ----------------------------------------------------------------
def test_sub_losses_equal_a_loop_over_pairs() -> None:
    gen = torch.Generator().manual_seed(0)
    pop = Population.create(Architecture(12, (6, 3), (6,)), 5, gen)
    x = (torch.rand(5, 12, generator=gen) < 0.5).float()
    nbr = neighbourhoods(5, 1)
    got = sub_losses(pop, x, nbr)
    for i in range(5):
        for a in range(3):
            for b in range(3):
                e, d = int(nbr[i, a]), int(nbr[i, b])
                enc = nn.Sequential(*_layers(pop, "encoder", e, nn.ReLU()))
                dec = nn.Sequential(*_layers(pop, "decoder", d, nn.Sigmoid()))
                want = (dec(enc(x)) - x).abs().mean()
                assert torch.allclose(got[i, a, b], want, atol=1e-6)


def test_all_vs_all_evaluates_each_pairing_once_and_a_ring_only_its_neighbourhoods() -> None:
    gen = torch.Generator().manual_seed(1)
    pop = Population.create(Architecture(12, (6, 3), (6,)), 6, gen)
    x = (torch.rand(5, 12, generator=gen) < 0.5).float()
    everyone = torch.arange(6).expand(6, -1).contiguous()
    plan = pairings(everyone, 6)
    assert plan.decoders.tolist() == list(range(6)) and plan.table.shape == (6, 6)
    full = pop.pair_l1(x)
    assert torch.equal(sub_losses(pop, x, everyone), full.expand(6, 6, 6))
    ring = pairings(neighbourhoods(6, 1), 6)
    # decoder 0 meets encoders 4, 5, 0, 1, 2 (within 2 of it), in ascending order
    assert ring.table[0].tolist() == [0, 1, 2, 4, 5] and ring.table.shape == (6, 5)


def test_tournament_hand_built() -> None:
    fitness = torch.tensor([[0.5, 0.1, 0.3], [0.2, 0.2, 0.9], [0.7, 0.6, 0.8]])
    candidates = torch.tensor([[0, 2], [1, 0], [2, 0]])
    # row 0: 0.5 vs 0.3 -> 2; row 1: a tie goes to the first drawn (1); row 2: 0.8 vs 0.7 -> 0
    assert tournament(fitness, candidates).tolist() == [2, 1, 0]
    gen = torch.Generator().manual_seed(3)
    cand = draw_candidates(4, 3, 2, gen)
    assert cand.shape == (4, 2) and all(len(set(r)) == 2 for r in cand.tolist())
    assert draw_candidates(2, 3, 9, gen).shape == (2, 3)  # capped at k, all distinct


def test_select_fitness_and_pairing() -> None:
    # one cell, sub-population [7, 8, 9]; losses[a, b] = encoder a with decoder b
    losses = torch.tensor([[[0.9, 0.8, 0.7], [0.2, 0.6, 0.6], [0.5, 0.5, 0.1]]])
    nbr = torch.tensor([[7, 8, 9]])
    gen = torch.Generator().manual_seed(0)
    # a full tournament (size 3) picks the best: encoders 0.7/0.2/0.1 -> 2; decoders .2/.5/.1
    sel = select(losses, nbr, 3, "independent", gen)
    assert (sel.encoders.tolist(), sel.decoders.tolist()) == ([9], [9])
    assert sel.loss.tolist() == pytest.approx([0.1])
    losses[0, 2, 2] = 0.95  # index 2's own pairing is now the worst
    sel = select(losses, nbr, 3, "independent", gen)
    assert (sel.encoders.tolist(), sel.decoders.tolist()) == ([8], [7])  # 0.2 and 0.2
    same = select(losses, nbr, 3, "same_index", gen)  # own pairings .9/.6/.95 -> index 1
    assert (same.encoders.tolist(), same.decoders.tolist()) == ([8], [8])


def test_select_never_picks_a_diverged_pairing() -> None:
    losses = torch.tensor([[[float("nan"), 0.8], [0.6, 0.5]]])
    sel = select(losses, torch.tensor([[4, 5]]), 2, "independent", torch.Generator())
    assert (sel.encoders.tolist(), sel.decoders.tolist()) == ([5], [5])


def test_centre_positions_on_a_ring_and_in_all_vs_all() -> None:
    ring = neighbourhoods(5, 1)
    assert centre_positions(ring, torch.arange(5)).tolist() == [0] * 5
    everyone = torch.arange(4).expand(4, -1)
    assert centre_positions(everyone, torch.arange(4)).tolist() == [0, 1, 2, 3]
    assert centre_positions(ring[[3]], torch.tensor([3])).tolist() == [0]


# -- batched training against plain torch ---------------------------------------------------
def _layers(pop: Population, part: str, member: int, final: nn.Module) -> list[nn.Module]:
    stack = pop.encoders if part == "encoder" else pop.decoders
    mods: list[nn.Module] = []
    for layer in range(stack.n_layers):
        lin = nn.Linear(stack.dims[layer], stack.dims[layer + 1])
        with torch.no_grad():
            lin.weight.copy_(stack.weight(layer)[member].t())
            lin.bias.copy_(stack.bias(layer)[member])
        mods += [lin, final if layer == stack.n_layers - 1 else nn.ReLU()]
    return mods


@pytest.mark.parametrize("loss", ["bce", "l1"])
def test_batched_step_equals_independent_adam(loss: str) -> None:
    gen = torch.Generator().manual_seed(1)
    n = 4
    pop = Population.create(Architecture(20, (8, 3), (8,)), n, gen)
    lrs = [1e-3, 3e-3, 1e-2, 5e-4]
    refs = []
    for c in range(n):
        model = nn.Sequential(
            *_layers(pop, "encoder", c, nn.ReLU()), *_layers(pop, "decoder", c, nn.Identity())
        )
        refs.append((model, torch.optim.Adam(model.parameters(), lr=lrs[c], betas=(0.5, 0.999))))
    trainer = Trainer(loss)
    grad = torch.empty_like(pop.params)
    for _ in range(4):
        x = (torch.rand(5, 20, generator=gen) < 0.6).float()
        with torch.no_grad():
            trainer.step(pop, x, lrs, grad)
        for model, opt in refs:
            opt.zero_grad()
            logits = model(x)
            value = reference_loss(logits, x, loss)
            value.backward()
            opt.step()
    for c, (model, _) in enumerate(refs):
        linears = [m for m in model if isinstance(m, nn.Linear)]
        stacks = [(pop.encoders, layer) for layer in range(2)] + [
            (pop.decoders, layer) for layer in range(2)
        ]
        for lin, (stack, layer) in zip(linears, stacks):
            assert torch.allclose(lin.weight.t(), stack.weight(layer)[c], atol=1e-5)
            assert torch.allclose(lin.bias, stack.bias(layer)[c], atol=1e-5)


def test_half_steps_update_one_side_only() -> None:
    gen = torch.Generator().manual_seed(2)
    pop = Population.create(Architecture(10, (6, 2), (6,)), 3, gen)
    pool = pop.clone()
    before = pop.clone()
    data = (torch.rand(20, 10, generator=gen) < 0.5).float()
    trainer = Trainer("bce")
    with torch.no_grad():
        trainer.epoch_with_partners(
            pop, pool, neighbourhoods(3, 1), data, 5, [1e-2] * 3, gen, torch.Generator()
        )
    assert not torch.equal(pop.encoders.params, before.encoders.params)
    assert not torch.equal(pop.decoders.params, before.decoders.params)
    assert pop.steps.tolist() == [4.0] * 3  # one Adam step per minibatch for each network
    assert torch.equal(pool.params, before.params)  # partners are frozen copies


# -- whole runs -------------------------------------------------------------------------------
def test_run_records_history_and_best_cell(registry: Registry) -> None:
    res = go(registry)
    assert len(res.history) == 3
    rec = res.history[-1]
    for key in (
        "val_loss_best",
        "val_loss_median",
        "val_loss_worst",
        "selection_loss",
        "remaining_fraction_min",
        "encoder_remaining_fraction_median",
        "decoder_remaining_fraction_max",
        "pruning_events",
        "lr_median",
        "seconds",
    ):
        assert key in rec
    assert rec["val_loss_best"] <= rec["val_loss_median"] <= rec["val_loss_worst"]
    vals = res.extra["cell_val_losses"]
    assert res.best == min(range(4), key=vals.__getitem__)
    assert res.val_loss == pytest.approx(vals[res.best])
    # pinned (native and torch agree to 3e-8): three generations barely train
    assert res.test_loss == pytest.approx(0.4876695, abs=1e-6)
    assert res.best == 3
    dense = res.population.compact(res.best)
    x = torch.rand(3, 64)
    want = res.population.take([res.best]).reconstruct(x)[0]
    assert torch.allclose(dense(x), want, atol=1e-6)


def test_determinism(registry: Registry) -> None:
    extra = ('pruning.operator="random"', "pruning.probability=0.5")
    a, b = go(registry, *extra), go(registry, *extra)
    assert torch.equal(a.population.params, b.population.params)
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in a.history] == [
        {k: v for k, v in r.items() if k != "seconds"} for r in b.history
    ]
    c = go(registry, *extra, "seed=2")
    assert not torch.equal(a.population.params, c.population.params)


def test_pruning_and_lr_mutation(registry: Registry) -> None:
    res = go(
        registry,
        'pruning.operator="random"',
        "pruning.probability=1.0",
        "coevolution.lr_sigma=0.0005",
    )
    assert sum(r["pruning_events"] for r in res.history) == 3 * 4
    # every network was pruned once per generation: round(0.1 x alive) of each tensor, 3 times
    assert res.population.masks.sum(1).tolist() == [1663.0] * 4
    assert res.population.arch.n_params == 2276
    assert res.history[-1]["remaining_fraction_min"] == res.history[-1]["remaining_fraction_max"]
    assert res.history[-1]["remaining_fraction_max"] == pytest.approx(1663 / 2276, rel=1e-7)
    assert len(set(res.extra["cell_lrs"])) == 4  # every cell mutated its own lr


def test_prune_then_eval_measures_after_pruning(registry: Registry) -> None:
    extra = ('pruning.operator="random"', "pruning.probability=1.0", "pruning.amount=0.9")
    std = go(registry, *extra)
    pte = go(registry, *extra, 'coevolution.variant="prune_then_eval"')
    # unconditional replacement: the same networks, only the measured replacement loss moves
    assert torch.equal(std.population.params, pte.population.params)
    assert pte.history[0]["replacement_loss"] > std.history[0]["replacement_loss"]


def test_elitist_replacement_rejects_damaging_prunes(registry: Registry) -> None:
    extra = (
        'pruning.operator="random"',
        "pruning.probability=1.0",
        "pruning.amount=0.9",
        'coevolution.variant="prune_then_eval"',
    )
    plain = go(registry, *extra)
    elite = go(registry, *extra, 'coevolution.replacement="elitist"')
    medians = [[h["remaining_fraction_median"] for h in r.history] for r in (plain, elite)]
    # generation 2's 90% prune damages every cell: elitism keeps generation 1's networks
    assert medians[0] == pytest.approx([0.099297, 0.0101054, 0.00087873], rel=1e-4)
    assert medians[1] == pytest.approx([0.099297, 0.0101054, 0.0101054], rel=1e-4)


@pytest.mark.parametrize(
    ("extra", "test_loss", "best"),
    [
        (('coevolution.variant="all_vs_all"',), 0.4878285, 3),
        (('coevolution.variant="selected_and_random"',), 0.4891123, 3),
        (('coevolution.update="sequential"',), 0.2527531, 0),
        (('coevolution.pairing="same_index"', "coevolution.radius=2"), 0.4488640, 3),
    ],
    ids=["all_vs_all", "selected_and_random", "sequential", "same_index"],
)
def test_variants_run_and_differ(
    registry: Registry, extra: tuple[str, ...], test_loss: float, best: int
) -> None:
    base = go(registry)
    res = go(registry, *extra)
    again = go(registry, *extra)
    assert torch.equal(res.population.params, again.population.params)
    assert not torch.equal(res.population.params, base.population.params)
    # pinned per variant (native and torch agree to 3e-8; the standard run gives 0.4876695)
    assert (res.test_loss, res.best) == (pytest.approx(test_loss, abs=1e-6), best)


def test_sequential_all_vs_all_is_rejected(registry: Registry) -> None:
    msg = (
        "coevolution.update: 'sequential' cannot be combined with variant 'all_vs_all' "
        "(every cell reads the whole population: use 'synchronous')"
    )
    with pytest.raises(ConfigError) as err:
        go(registry, 'coevolution.update="sequential"', 'coevolution.variant="all_vs_all"')
    assert str(err.value) == msg


def test_reports_describe_the_population_as_cells_and_radius(registry: Registry) -> None:
    from evoprune_core.engines import CanonicalEngine, CoevolutionEngine

    cfg = tiny(registry, "coevolution.radius=2")
    assert CoevolutionEngine().population(cfg) == "4 cells r2"
    assert CanonicalEngine().population(cfg) == "1"


def test_lr_mutation_is_clamped_to_the_configured_bounds(registry: Registry) -> None:
    # sigma 10 around lr 1e-3: every cell's mutated lr falls outside [1e-4, 1e-2] and is clamped
    res = go(registry, "generations=1", "coevolution.lr_sigma=10.0", "coevolution.lr_min=1e-4",
             "coevolution.lr_max=1e-2")  # fmt: skip
    assert res.extra["cell_lrs"] == [1e-4, 1e-2, 1e-2, 1e-2]
    assert [h["lr"] for h in res.history] == [1e-2]  # the lower median of the four


def test_unpruned_population_learns(registry: Registry) -> None:
    cfg = load_run_config(
        None,
        [
            'engine="coevolution"',
            "coevolution.cells=5",
            "generations=12",
            'data.name="binary-clustering"',
            "data.params.dims=300",
            "data.params.rows_per_cluster=60",
            "data.params.val_rows_per_cluster=20",
            "data.params.test_rows_per_cluster=20",
        ],
        registry,
    )
    res = run(cfg, registry)
    # floors: per-pixel median ~0.27, ideal (centroid bits) 0.05; native and torch: 2e-6 apart
    assert res.test_loss == pytest.approx(0.051411, abs=1e-5)
