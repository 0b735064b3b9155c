"""The published protocol's switches: a fresh Adam per minibatch, masks that let weights regrow,
and a baseline that reports no pruning events."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from evoprune_core import native
from evoprune_core.engines.runtime import cpu_numerics
from evoprune_core.engines.steps import Trainer, apply_operator, counted
from evoprune_core.loading import load_run_config, run
from evoprune_core.operators import RandomPruning
from evoprune_core.plugins import Registry
from evoprune_core.population import Architecture, Population
from tests.conftest import reference_loss
from tests.engines.test_coevolution import TINY

ARCH = Architecture(24, (9, 3), (9,))


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load()


def _pruned_population(n: int, seed: int) -> Population:
    gen = torch.Generator().manual_seed(seed)
    pop = Population.create(ARCH, n, gen)
    pop.prune((torch.rand(n, ARCH.n_params, generator=gen) >= 0.3).float())
    return pop


def _reference(pop: Population, c: int, rows: torch.Tensor, batch: int, lr: float, loss: str):
    """Member c as nn.Linear layers trained with a NEW torch.optim.Adam for every minibatch;
    the pruned entries are put back to zero after each step (the mask the engine keeps)."""
    dims = [*ARCH.encoder_dims, *ARCH.decoder_dims[1:]]
    views = [(pop.encoders, i) for i in range(2)] + [(pop.decoders, i) for i in range(2)]
    layers = [nn.Linear(i, o) for i, o in zip(dims[:-1], dims[1:])]
    with torch.no_grad():
        for lin, (stack, layer) in zip(layers, views):
            lin.weight.copy_(stack.weight(layer)[c].t())
            lin.bias.copy_(stack.bias(layer)[c])
    masks = [
        (stack.weight(layer, stack.masks)[c].t().clone(), stack.bias(layer, stack.masks)[c].clone())
        for stack, layer in views
    ]
    model = nn.Sequential(
        layers[0], nn.ReLU(), layers[1], nn.ReLU(), layers[2], nn.ReLU(), layers[3]
    )
    for s in range(0, rows.shape[0], batch):
        opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.5, 0.999), eps=1e-8)
        opt.zero_grad()
        x = rows[s : s + batch]
        logits = model(x)
        value = reference_loss(logits, x, loss)
        value.backward()
        opt.step()
        with torch.no_grad():
            for lin, (mw, mb) in zip(layers, masks):
                lin.weight.mul_(mw)
                lin.bias.mul_(mb)
    return layers


@pytest.mark.parametrize("backend", ["torch", "native"])
@pytest.mark.parametrize("loss", ["bce", "l1"])
def test_reset_each_step_equals_a_fresh_torch_adam_per_minibatch(backend: str, loss: str) -> None:
    # lr at the published scale: a sign-like step of a few 1e-5 (at lr 1e-2, entries whose
    # minibatch gradient nearly cancels to ~eps differ by rounding, amplified by lr / eps)
    n, lrs, batch = 3, [1e-5, 2e-5, 5e-5], 5
    pop = _pruned_population(n, seed=3)
    start = pop.clone()
    pop.buffers["exp_avg"].fill_(0.3)  # stale state a persistent Adam would carry on with
    persistent = start.clone()
    rows = (torch.rand(22, 24, generator=torch.Generator().manual_seed(4)) < 0.5).float()
    with cpu_numerics(), torch.no_grad():
        Trainer(loss)._pass(persistent, rows, batch, lrs)  # the plausible bug: no reset
    kernels = native.load() if backend == "native" else None
    trainer = Trainer(loss, native=kernels, threads=2, reset_each_step=True)
    with cpu_numerics(), torch.no_grad():
        if kernels is not None:
            kernels.train_epoch(
                pop, rows, batch, lrs, loss, (0.5, 0.999), 1e-8, 2, None, None, True
            )
        else:
            trainer._pass(pop, rows, batch, lrs)
    assert pop.steps.tolist() == [1.0] * n  # each minibatch's Adam took one step
    dead = pop.masks == 0
    assert bool((pop.params[dead] == 0).all()) and bool(
        torch.isinf(pop.buffers["exp_avg_sq"][dead]).all()
    )
    moved, persistent_gap = 0.0, 0.0
    for c in range(n):
        layers = _reference(start, c, rows, batch, lrs[c], loss)
        views = [(pop.encoders, i) for i in range(2)] + [(pop.decoders, i) for i in range(2)]
        for lin, (stack, layer) in zip(layers, views):
            assert torch.allclose(lin.weight.t(), stack.weight(layer)[c], atol=1e-6, rtol=0)
            assert torch.allclose(lin.bias, stack.bias(layer)[c], atol=1e-6, rtol=0)
        moved = max(moved, float((pop.params[c] - start.params[c]).abs().max()))
        persistent_gap = max(
            persistent_gap, float((persistent.params[c] - pop.params[c]).abs().max())
        )
    # five sign-like steps of size lr: the weights moved by about 5 lr, not by a stale momentum
    assert 4 * lrs[-1] < moved <= 5 * lrs[-1] * 1.01
    assert persistent_gap > 1e-5  # so the 1e-6 agreement above tells the two apart


def test_persistent_optimizer_state_differs_from_reset(registry) -> None:
    base = [*TINY, 'engine="canonical"', "generations=2", "training.lr=0.01"]
    a = run(load_run_config(None, base, registry), registry)
    b = run(
        load_run_config(None, [*base, 'training.optimizer_state="reset_each_step"'], registry),
        registry,
    )
    assert a.population.steps.item() == 2 * 10 and b.population.steps.item() == 1
    assert a.val_loss != b.val_loss


@pytest.mark.parametrize("engine", ["canonical", "coevolution"])
@pytest.mark.parametrize("backend", ["torch", "native"])
def test_reset_each_step_runs_in_both_engines_and_backends_alike(registry, engine, backend) -> None:
    sets = [
        *TINY,
        f'engine="{engine}"',
        'training.optimizer_state="reset_each_step"',
        'training.loss="l1"',
        'pruning.operator="random"',
        "pruning.probability=1.0",
        f"compute.backend={backend}",
    ]
    res = run(load_run_config(None, sets, registry), registry)
    assert res.extra["backend"] == backend
    assert bool((res.population.steps == 1).all())
    dead = res.population.masks == 0
    assert bool(dead.any()) and bool((res.population.params[dead] == 0).all())


def test_regrow_zeroes_once_and_training_regrows_while_persistent_stays_zero() -> None:
    rows = (torch.rand(40, 24, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    out = {}
    for masks in ("persistent", "regrow"):
        pop = Population.create(ARCH, 2, torch.Generator().manual_seed(2))
        got = apply_operator(
            pop,
            [0, 1],
            RandomPruning(),
            0.5,
            rows,
            None,
            torch.Generator().manual_seed(3),
            masks=masks,
        )
        zero = pop.params == 0
        assert got.zeroed == int(zero.sum()) and got.alive_after == 2 * ARCH.n_params - int(
            zero.sum()
        )
        assert int(zero.sum()) == pytest.approx(ARCH.n_params, rel=0.1)  # half of 2 members
        with cpu_numerics(), torch.no_grad():
            Trainer("bce").epoch(pop, rows, 5, [1e-2, 1e-2], torch.Generator().manual_seed(4))
        out[masks] = (pop, zero)
    pop, zero = out["persistent"]
    assert bool((pop.params[zero] == 0).all()) and float(pop.masks.mean()) < 0.6
    pop, zero = out["regrow"]
    assert bool((pop.masks == 1).all())  # nothing persists
    # most grew back; units whose whole input was zeroed stay dead (ReLU'(0) = 0: no gradient)
    assert float((pop.params[zero] != 0).float().mean()) > 0.7
    nonzero = (pop.params != 0).float().mean(1)
    assert counted(pop, "regrow").remaining_fractions()["whole"].tolist() == nonzero.tolist()
    assert 0.8 < float(nonzero.min()) < 1.0


def test_regrow_run_reports_true_remaining_and_the_published_count(registry) -> None:
    base = [
        *TINY,
        'engine="canonical"',
        "generations=4",
        'pruning.operator="random"',
        "pruning.probability=1.0",
        "pruning.amount=0.5",
    ]
    kept = run(load_run_config(None, base, registry), registry).summary()
    grown = run(
        load_run_config(None, [*base, 'pruning.masks="regrow"'], registry), registry
    ).summary()
    assert kept["pruning_events"] == grown["pruning_events"] == 4
    assert kept["remaining_fraction"] == pytest.approx(0.5**4, abs=0.02)
    assert "pruned_entries_published" not in kept
    # every event zeroes round(amount * size) entries of each of the 8 tensors (2276 entries):
    # 512 + 8 + 32 + 2 + 32 + 8 + 512 + 32 = 1138; earlier zeros regrew in the next epoch, the
    # last event's (after the last epoch) are still zero, and so are dead units' entries
    per_event = [r["pruned_entries_published"] for r in grown["history"]]
    assert per_event == [1138] * 4 and grown["pruned_entries_published"] == 4 * 1138
    assert grown["remaining_fraction_published"] == 0.0  # the stale tally: "all pruned"
    assert 0.35 < grown["remaining_fraction"] <= 1138 / 2276
    # the history counts non-zero entries too (not the masks, which regrow leaves all ones)
    last = grown["history"][-1]["remaining_fraction"]
    assert last == pytest.approx(grown["remaining_fraction"], abs=1e-7)  # float32 in the history
    assert all(h["remaining_fraction"] <= 1138 / 2276 for h in grown["history"])


@pytest.mark.parametrize("engine", ["canonical", "coevolution"])
def test_operator_none_reports_no_pruning_events(registry, engine) -> None:
    sets = [*TINY, f'engine="{engine}"', "pruning.probability=1.0", 'pruning.schedule="fixed"']
    res = run(load_run_config(None, sets, registry), registry).summary()
    assert res["pruning_events"] == 0 and res["remaining_fraction"] == 1.0
    assert all(r["pruning_events"] == 0 and r["pruned_entries"] == 0 for r in res["history"])


def test_published_profiles_set_the_published_protocol(registry) -> None:
    from pathlib import Path

    runs = Path(__file__).resolve().parents[2] / "studies" / "runs"
    canon = load_run_config(runs / "paper-canonical.toml", [], registry)
    lipi = load_run_config(runs / "paper-lipi.toml", [], registry)
    for cfg in (canon, lipi):
        assert (cfg.training.loss, cfg.training.final_loss, cfg.training.lr) == ("l1", "none", 1e-5)
        assert cfg.training.batch_size == 5 and cfg.generations == 400
        assert cfg.pruning.masks == "regrow" and cfg.network.preset == "standard"
    assert canon.training.optimizer_state == "persistent"
    assert (canon.training.lr_decay, canon.training.lr_decay_every) == (0.1, 100)
    assert lipi.training.optimizer_state == "reset_each_step"
    co = lipi.coevolution
    assert (co.cells, co.radius, co.eval_batch, co.pairing) == (10, 1, 5, "same_index")
    assert (co.lr_sigma, co.update) == (1e-5, "sequential")
    # the defaults stay ours
    ours = load_run_config(None, [], registry)
    assert ours.training.optimizer_state == "persistent" and ours.pruning.masks == "persistent"


def test_variance_rate_spread_uses_the_normalised_spread_as_probability() -> None:
    """rate="spread" (published): the widest-spread unit of a layer always goes, the narrowest
    never, whatever ``amount`` says; rate="amount" with amount 0 prunes nothing."""
    from evoprune_core.engines.steps import build_context
    from evoprune_core.operators import VariancePruning

    pop = Population.create(ARCH, 1, torch.Generator().manual_seed(5))
    rows = (torch.rand(60, 24, generator=torch.Generator().manual_seed(6)) < 0.5).float()
    op = VariancePruning(direction="high", rate="spread")
    ctx = build_context(pop, [0], op, 0.0, rows, None, torch.Generator().manual_seed(7))
    masks = op.prune(ctx)
    pruned = 0
    for lv, m in zip(ctx.layers, masks):
        if lv.is_output:
            assert bool(m.weight.all())  # the output layer is left alone
            continue
        spread = lv.activations.std(1)[0]
        alive = spread.argsort()
        assert not bool(m.weight[0, alive[-1]].any()) and not bool(m.bias[0, alive[-1]])
        assert bool(m.weight[0, alive[0]].all()) and bool(m.bias[0, alive[0]])
        pruned += int((~m.weight).sum())
    assert pruned > 0
    plain = VariancePruning(direction="high")
    assert all(bool(m.weight.all()) for m in plain.prune(ctx))  # amount 0: nothing


def test_epoch_into_a_row_buffer_trains_exactly_as_without_one() -> None:
    rows = torch.rand(23, 24, generator=torch.Generator().manual_seed(5))
    buffer = torch.full_like(rows, float("nan"))  # every row is overwritten
    trained = []
    for buf in (None, buffer):
        pop = Population.create(ARCH, 2, torch.Generator().manual_seed(6))
        with cpu_numerics(), torch.no_grad():
            Trainer("bce").epoch(pop, rows, 5, [1e-2, 3e-3], torch.Generator().manual_seed(7), buf)
        trained.append(pop)
    for key in Population.BUFFERS:
        assert torch.equal(trained[0].buffers[key], trained[1].buffers[key]), key
    assert sorted(buffer.sum(1).tolist()) == sorted(rows.sum(1).tolist())  # a permutation
    assert not torch.equal(buffer, rows)
