"""Wiring of the engines: which split every step reads, formulas passed in, bookkeeping.

A spy dataset fills each split with its own constant row, so any rows a step reads say which
split they came from; a spy operator records its calibration rows and kills the output biases
(a decoder-only prune of known size); a spy schedule records the ``(t, F, n)`` it is asked for.
Every run uses the torch backend so that losses recomputed here match the engine's bit for bit.
"""

from __future__ import annotations

import math
import time
from typing import Any

import pytest
import torch

from evoprune_core.config import TrainingConfig
from evoprune_core.data import Dataset
from evoprune_core.engines import coevolution
from evoprune_core.engines.coevolution import neighbourhoods, pairings, select, sub_losses
from evoprune_core.engines.result import RunResult
from evoprune_core.engines.runtime import Streams
from evoprune_core.errors import TrialFailed
from evoprune_core.loading import load_run_config, run
from evoprune_core.operators import LayerMask, Operator, PruneContext
from evoprune_core.params import Param
from evoprune_core.plugins import Registry, hookimpl
from evoprune_core.population import Architecture, Population
from evoprune_core.schedules import Schedule

D = 12
ARCH = Architecture(D, (6, 3), (6,))
PATTERNS = {
    "train": [float(j % 2) for j in range(D)],
    "val": [float(j // 2 % 2) for j in range(D)],
    "test": [0.25 if j < D // 2 else 0.75 for j in range(D)],
}
ROWS = {"train": 30, "val": 10, "test": 10}
DEC_TOTAL = 3 * 6 + 6 + 6 * D + D  # decoder entries (weights + biases)
ENC_TOTAL = D * 6 + 6 + 6 * 3 + 3


def spy_dataset() -> Dataset:
    """Three disjoint splits, each one constant, recognisable row."""
    rows = {s: torch.tensor([p] * ROWS[s], dtype=torch.float32) for s, p in PATTERNS.items()}
    return Dataset("spy", rows["train"], rows["val"], rows["test"])


def split_of(rows: torch.Tensor) -> set[str]:
    """The splits whose pattern the given rows carry."""
    return {s for s, p in PATTERNS.items() for r in rows if torch.equal(r, torch.tensor(p))}


class Spy:
    """A registry with the built-ins plus a spy operator and schedule that record their calls."""

    def __init__(self) -> None:
        self.inputs: list[torch.Tensor] = []
        self.schedule: list[tuple[int, int, int]] = []
        spy = self

        class SpyOperator(Operator):
            name = "spy"

            def prune(self, ctx: PruneContext) -> list[LayerMask]:
                assert ctx.inputs is not None
                spy.inputs.append(ctx.inputs.clone())
                out = ctx.unchanged()
                for i, lv in enumerate(ctx.layers):
                    if lv.is_output:  # kill the D output biases: a decoder-only prune
                        out[i] = LayerMask(lv.weight_mask.clone(), torch.zeros_like(lv.bias_mask))
                return out

        class SpySchedule(Schedule):
            name = "spy"

            def rate(self, t: int, last: int, n: int) -> float:
                spy.schedule.append((t, last, n))
                return self.probability

        class Plugin:
            @hookimpl
            def evoprune_register_operators(self) -> list[Any]:
                return [SpyOperator]

            @hookimpl
            def evoprune_register_schedules(self) -> list[Any]:
                return [SpySchedule]

        self.registry = Registry.load(entry_points=False, extra=[(Plugin(), "spy")])


BASE = [
    'compute.backend="torch"',
    'data.name="binary-clustering"',
    "network.encoder=[6, 3]",
    "training.batch_size=10",
    "pruning.calibration_rows=7",
]
COEVO = ['engine="coevolution"', "coevolution.cells=4", "coevolution.eval_batch=5"]


def go(registry: Registry, *overrides: str) -> RunResult:
    cfg = load_run_config(None, [*BASE, *overrides], registry)
    return run(cfg, registry, dataset=spy_dataset())


def f32(x: float) -> float:
    """``x`` rounded to float32, as the population's fractions are."""
    return float(torch.tensor(x, dtype=torch.float32))


def strip(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load(entry_points=False)


# -- which split each step reads -----------------------------------------------------------------
def test_canonical_reads_train_for_calibration_and_reports_each_split_on_its_own() -> None:
    spy = Spy()
    r = go(spy.registry, "generations=4", 'pruning.operator="spy"', 'pruning.schedule="spy"',
           "pruning.probability=1.0")  # fmt: skip
    assert len(spy.inputs) == 4  # one event per epoch
    assert all(x.shape == (7, D) and split_of(x) == {"train"} for x in spy.inputs)
    data = spy_dataset()
    pop = r.population
    losses = {s: float(pop.l1(getattr(data, s))[0]) for s in ("train", "val", "test")}
    assert len(set(losses.values())) == 3  # the splits are told apart
    assert (r.train_loss, r.val_loss, r.test_loss) == (
        losses["train"],
        losses["val"],
        losses["test"],
    )
    assert (r.history[-1]["train_loss"], r.history[-1]["val_loss"]) == (
        losses["train"],
        losses["val"],
    )


def with_operator(op: type[Operator]) -> Registry:
    """The built-ins plus ``op``, registered through a plugin the way a package would."""

    class Plugin:
        @hookimpl
        def evoprune_register_operators(self) -> list[Any]:
            return [op]

    return Registry.load(entry_points=False, extra=[(Plugin(), op.name)])


def label_spy(seen: list[torch.Tensor]) -> Registry:
    """A registry with an operator that needs labels and records the ones it gets."""

    class LabelSpy(Operator):
        name = "label-spy"
        needs = frozenset({"labels"})

        def prune(self, ctx: PruneContext) -> list[LayerMask]:
            assert ctx.labels is not None
            seen.append(ctx.labels.clone())
            return ctx.unchanged()

    return with_operator(LabelSpy)


def labelled_spy_dataset() -> Dataset:
    """The spy dataset with labels 100+i (train), 200+i (val), 300+i (test) for row i."""
    base = spy_dataset()
    offset = {"train": 100, "val": 200, "test": 300}
    return Dataset(
        "spy", base.train, base.val, base.test,
        *(torch.arange(ROWS[s], dtype=torch.int64) + offset[s] for s in ("train", "val", "test")),
    )  # fmt: skip


@pytest.mark.parametrize("engine", [[], COEVO], ids=["canonical", "coevolution"])
def test_the_calibration_rows_labels_reach_an_operator_that_needs_them(engine: list[str]) -> None:
    seen: list[torch.Tensor] = []
    registry = label_spy(seen)
    cfg = load_run_config(
        None,
        [*BASE, *engine, "generations=3", 'pruning.operator="label-spy"',
         'pruning.schedule="fixed"', "pruning.probability=1.0"],
        registry,
    )  # fmt: skip
    run(cfg, registry, dataset=labelled_spy_dataset())
    assert len(seen) == 3  # one event a generation (coevolution: one for all 4 cells)
    for labels in seen:  # the dataset's training labels of 7 distinct rows, not pseudo-labels
        assert labels.shape == (7,) and len(set(labels.tolist())) == 7
        assert all(100 <= v < 100 + ROWS["train"] for v in labels.tolist())


def grad_spy(grads: dict[str, torch.Tensor]) -> Registry:
    """A registry with an operator that needs gradients and records its first layer's."""

    class GradSpy(Operator):
        name = "grad-spy"
        needs = frozenset({"gradients"})
        parameters = (Param("tag", "categorical", "l1", choices=("l1", "bce", "l1-again")),)

        def prune(self, ctx: PruneContext) -> list[LayerMask]:
            assert ctx.layers[0].weight_grads is not None
            grads.setdefault(self.params["tag"], ctx.layers[0].weight_grads.clone())
            return ctx.unchanged()

    return with_operator(GradSpy)


@pytest.mark.parametrize("engine", [[], COEVO], ids=["canonical", "coevolution"])
def test_a_gradient_operator_gets_the_gradients_of_the_configured_loss(engine: list[str]) -> None:
    grads: dict[str, torch.Tensor] = {}
    registry = grad_spy(grads)
    for loss in ("l1", "bce", "l1-again"):
        # lr 1e-30: training leaves the float32 weights as they were, so the three runs reach
        # the first event with the same networks and differ only in the loss of the gradients
        go(registry, *engine, "generations=1", 'pruning.operator="grad-spy"',
           'pruning.schedule="fixed"', "pruning.probability=1.0", "training.lr=1e-30",
           'training.final_loss="none"', "pruning.calibration_batches=3",
           f'training.loss="{loss.removesuffix("-again")}"',
           f'pruning.operator_params={{tag="{loss}"}}')  # fmt: skip
    assert torch.equal(grads["l1"], grads["l1-again"])  # deterministic
    assert not torch.allclose(grads["l1"], grads["bce"])  # the configured loss reaches them
    # (members, calibration batches, out, in): the 7 rows in the 3 configured batches
    assert grads["l1"].shape == ((4 if engine else 1), 3, 6, D)


@pytest.mark.parametrize("engine", [[], COEVO], ids=["canonical", "coevolution"])
def test_the_observer_gets_every_generation_record(registry: Registry, engine: list[str]) -> None:
    class Recorder:
        def __init__(self) -> None:
            self.seen: list[tuple[int, dict[str, float]]] = []

        def generation(self, t: int, record: dict[str, float]) -> None:
            self.seen.append((t, record))

    obs = Recorder()
    cfg = load_run_config(None, [*BASE, *engine, "generations=3"], registry)
    r = run(cfg, registry, observer=obs, dataset=spy_dataset())
    assert obs.seen == [(t, r.history[t]) for t in range(3)]


def test_coevolution_reads_train_to_select_and_calibrate_val_for_best_test_to_report() -> None:
    spy = Spy()
    r = go(spy.registry, *COEVO, "generations=2", "coevolution.tournament_size=3",
           'pruning.operator="spy"', 'pruning.schedule="spy"', "pruning.probability=1.0")  # fmt: skip
    assert len(spy.inputs) == 2  # one batched event per generation for all 4 cells
    assert all(x.shape == (7, D) and split_of(x) == {"train"} for x in spy.inputs)
    data = spy_dataset()
    # generation 0 selects from the initial population by L1 on training rows (full tournament)
    pop0 = Population.create(ARCH, 4, Streams(1).init)
    nbr = neighbourhoods(4, 1)
    want = {}
    for s in ("train", "val", "test"):
        losses = pop0.pair_l1(getattr(data, s)[:5])[nbr.unsqueeze(2), nbr.unsqueeze(1)]
        chosen = select(losses, nbr, 3, "independent", torch.Generator().manual_seed(0))
        want[s] = float(chosen.loss.median())
    assert len(set(want.values())) == 3
    assert r.history[0]["selection_loss"] == want["train"]
    # the best cell by validation L1; the test loss is that cell's, on the test rows
    pop = r.population
    val = pop.l1(data.val)
    assert r.extra["cell_val_losses"] == [float(v) for v in val]
    assert r.best == int(val.argmin())
    best = pop.take([r.best])
    assert (r.train_loss, r.val_loss, r.test_loss) == (
        float(best.l1(data.train)[0]),
        float(best.l1(data.val)[0]),
        float(best.l1(data.test)[0]),
    )
    assert r.test_loss != r.val_loss


# -- formulas wired into the engines ---------------------------------------------------------
def test_canonical_asks_the_schedule_with_n_1_and_records_p_t() -> None:
    spy = Spy()
    r = go(spy.registry, "generations=4", 'pruning.schedule="spy"', "pruning.probability=0.3")
    assert spy.schedule == [(t, 3, 1) for t in range(4)]
    assert [h["pruning_probability"] for h in r.history] == [0.3] * 4


@pytest.mark.parametrize(("radius", "n"), [(1, 3), (2, 5)])
def test_coevolution_asks_the_schedule_with_n_2r_plus_1(radius: int, n: int) -> None:
    spy = Spy()
    go(spy.registry, *COEVO, "generations=3", f"coevolution.radius={radius}",
       'pruning.schedule="spy"', "pruning.probability=0.0")  # fmt: skip
    assert spy.schedule == [(t, 2, n) for t in range(3)]


def test_pruning_probability_tables_of_both_engines(registry: Registry) -> None:
    sched = ('pruning.schedule="population"', "pruning.probability=0.6", "generations=4")
    canonical = go(registry, *sched)
    assert [h["pruning_probability"] for h in canonical.history] == pytest.approx(
        [0.0, 0.2, 0.4, 0.6], abs=1e-15
    )
    coevo = go(registry, *COEVO, *sched, "coevolution.radius=1")
    assert [h["pruning_probability"] for h in coevo.history] == pytest.approx(
        [0.0, 0.2 / 3, 0.4 / 3, 0.6 / 3], abs=1e-15
    )


def test_loss_and_lr_tables() -> None:
    tr = TrainingConfig(loss="bce", final_loss="l1", final_loss_from=0.5)
    assert [tr.loss_at(t, 4) for t in range(4)] == ["bce", "bce", "l1", "l1"]
    assert [tr.loss_at(t, 5) for t in range(5)] == ["bce", "bce", "bce", "l1", "l1"]
    assert TrainingConfig(final_loss="none").loss_at(9, 10) == "bce"
    decay = TrainingConfig(lr=1e-3, lr_decay=0.5, lr_decay_every=2)
    assert [decay.lr_at(t) for t in range(5)] == [1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4]
    assert TrainingConfig(lr=1e-3, lr_decay=0.5).lr_at(7) == 1e-3  # every = 0: never
    every = TrainingConfig(lr=1e-3, lr_decay=0.5, lr_decay_every=1)
    assert [every.lr_at(t) for t in range(3)] == [1e-3, 5e-4, 2.5e-4]


@pytest.mark.parametrize("engine", [[], COEVO], ids=["canonical", "coevolution"])
def test_loss_switch_and_lr_decay_start_at_the_right_generation(
    registry: Registry, engine: list[str]
) -> None:
    plain = go(registry, *engine, "generations=4", 'training.final_loss="none"')
    switch = go(registry, *engine, "generations=4", "training.final_loss_from=0.5")
    # generations 0 and 1 train with bce in both runs; generation 2 trains with l1 in one
    assert strip(switch.history[:2]) == strip(plain.history[:2])
    assert switch.history[2]["val_loss"] != plain.history[2]["val_loss"]
    decay = go(registry, *engine, "generations=4", 'training.final_loss="none"',
               "training.lr_decay=0.5", "training.lr_decay_every=2")  # fmt: skip
    if not engine:
        assert [h["lr"] for h in decay.history] == [1e-3, 1e-3, 5e-4, 5e-4]
    assert [h["val_loss"] for h in decay.history[:2]] == [h["val_loss"] for h in plain.history[:2]]
    assert decay.history[2]["val_loss"] != plain.history[2]["val_loss"]


# -- elitist replacement -------------------------------------------------------------------------
def test_elitist_replacement_keeps_the_better_network_of_every_cell(registry: Registry) -> None:
    extra = (*COEVO, "generations=1", 'pruning.operator="random"', "pruning.probability=1.0",
             "pruning.amount=0.5", 'coevolution.variant="prune_then_eval"')  # fmt: skip
    plain = go(registry, *extra)
    elite = go(registry, *extra, 'coevolution.replacement="elitist"')
    pop0 = Population.create(ARCH, 4, Streams(1).init)
    xe = spy_dataset().train[:5]
    old = pop0.l1(xe)  # each centre's own pairing on the evaluation rows
    new = plain.population.l1(xe)  # what unconditional replacement put there
    keep_old = (old < new).tolist()
    assert keep_old == [False, False, True, False]  # both cases occur in this run
    for c, keep in enumerate(keep_old):
        want = pop0 if keep else plain.population
        for key in Population.BUFFERS:
            assert torch.equal(elite.population.buffers[key][c], want.buffers[key][c]), (c, key)
        assert elite.population.steps[c] == want.steps[c]
    assert elite.history[0]["replacement_loss"] == float(torch.minimum(old, new).median())


def test_elitist_replacement_on_a_tie_takes_the_new_network(registry: Registry) -> None:
    # one cell, lr 1e-30, no pruning: the trained network's loss equals the old one's exactly,
    # and the new network (its Adam steps counted) replaces the old
    r = go(registry, 'engine="coevolution"', "coevolution.cells=1", "coevolution.eval_batch=5",
           "generations=1", 'coevolution.replacement="elitist"', "pruning.probability=0.0",
           "training.lr=1e-30", "coevolution.lr_sigma=0.0")  # fmt: skip
    assert r.history[0]["replacement_loss"] == r.history[0]["selection_loss"]
    assert r.population.steps.tolist() == [3.0]  # 30 training rows in minibatches of 10


# -- bookkeeping ---------------------------------------------------------------------------------
def test_canonical_history_counts_encoder_and_decoder_apart() -> None:
    spy = Spy()
    r = go(spy.registry, "generations=3", 'pruning.operator="spy"', 'pruning.schedule="spy"',
           "pruning.probability=1.0")  # fmt: skip
    assert [h["pruned_entries"] for h in r.history] == [D, 0, 0]
    assert [h["pruning_events"] for h in r.history] == [1, 1, 1]
    for h in r.history:
        assert h["encoder_remaining_fraction"] == 1.0
        assert h["decoder_remaining_fraction"] == f32((DEC_TOTAL - D) / DEC_TOTAL)
        assert h["remaining_fraction"] == f32((ENC_TOTAL + DEC_TOTAL - D) / (ENC_TOTAL + DEC_TOTAL))
    s = r.summary()
    assert (s["encoder_remaining_fraction"], s["decoder_remaining_fraction"]) == (
        1.0,
        pytest.approx((DEC_TOTAL - D) / DEC_TOTAL),
    )
    assert s["pruning_events"] == 3
    assert r.sparsity.layers["decoder.1"] == (6 * D, 6 * D + D)


def test_coevolution_history_counts_encoder_and_decoder_apart() -> None:
    spy = Spy()
    r = go(spy.registry, *COEVO, "generations=2", 'pruning.operator="spy"',
           'pruning.schedule="spy"', "pruning.probability=1.0")  # fmt: skip
    assert [h["pruning_events"] for h in r.history] == [4, 4]
    assert [h["pruned_entries"] for h in r.history] == [4 * D, 0]
    dec = f32((DEC_TOTAL - D) / DEC_TOTAL)
    for h in r.history:
        for stat in ("min", "median", "max"):
            assert h[f"encoder_remaining_fraction_{stat}"] == 1.0
            assert h[f"decoder_remaining_fraction_{stat}"] == dec


def test_coevolution_result_bookkeeping_regrow_tally_and_timings(registry: Registry) -> None:
    start = time.perf_counter()
    r = go(registry, *COEVO, "generations=2", 'pruning.operator="random"',
           "pruning.probability=1.0", "pruning.amount=0.5", 'pruning.masks="regrow"')  # fmt: skip
    elapsed = time.perf_counter() - start
    assert 0 < r.history[0]["seconds"] <= r.history[-1]["seconds"] <= r.seconds <= elapsed
    assert {k: v["name"] for k, v in r.components.items()} == {
        "engine": "coevolution",
        "operator": "random",
        "schedule": "fixed",
        "dataset": "binary-clustering",
    }
    # the published tally: every event zeroes half of each of the 8 tensors of all 4 cells,
    # 36 + 3 + 9 + 2 + 9 + 3 + 36 + 6 = 104 of 207 entries a cell, already-zero ones included
    assert [h["pruned_entries_published"] for h in r.history] == [4 * 104, 4 * 104]
    # regrow leaves the masks all ones: the history and the sparsity count non-zero entries
    assert bool((r.population.masks == 1).all())
    nonzero = (r.population.params != 0).sum(1).tolist()
    assert nonzero == [64, 71, 72, 63] and r.best == 2
    last = r.history[-1]
    assert last["remaining_fraction"] == f32(72 / 207)
    assert (last["remaining_fraction_min"], last["remaining_fraction_max"]) == (
        f32(63 / 207),
        f32(72 / 207),
    )
    assert r.sparsity.whole == (72, 207) and r.remaining_fraction == 72 / 207


def test_coevolution_divergence_of_every_cell_fails_with_the_generation() -> None:
    with pytest.raises(
        TrialFailed,
        match="^validation loss of every cell is nan at generation 0: the run diverged$",
    ):
        go(Registry.load(entry_points=False), *COEVO, "generations=2", 'training.loss="mse"',
           'training.final_loss="none"', "training.eps=1e-300", "training.betas=[0.0, 0.0]")  # fmt: skip


def test_a_diverged_cell_is_never_the_best_and_the_run_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Cell 0's weights become NaN right after its pruning event (fault injection: a cell that
    diverged); the others go on, and the best cell is the best finite one."""
    prune = coevolution.prune_event

    def prune_then_poison(pop: Population, members: list[int], *args: Any) -> Any:
        out = prune(pop, members, *args)
        pop.params[members.index(0)] = float("nan")
        return out

    monkeypatch.setattr(coevolution, "prune_event", prune_then_poison)
    r = go(Registry.load(entry_points=False), *COEVO, "generations=1", 'pruning.operator="random"',
           "pruning.probability=1.0")  # fmt: skip
    vals = r.extra["cell_val_losses"]
    assert math.isnan(vals[0]) and all(math.isfinite(v) for v in vals[1:])
    assert r.best == 1 + min(range(3), key=vals[1:].__getitem__)
    assert r.val_loss == vals[r.best] == r.history[0]["val_loss"]
    assert math.isnan(r.history[0]["val_loss_worst"])


def test_take_follows_the_encoder_for_the_adam_step_count() -> None:
    pop = Population.create(ARCH, 3, torch.Generator().manual_seed(0))
    pop.steps.copy_(torch.tensor([5.0, 6.0, 7.0]))
    for key in ("exp_avg", "exp_avg_sq"):
        pop.buffers[key].copy_(torch.arange(3.0).unsqueeze(1).expand_as(pop.buffers[key]))
    pair = pop.take([2, 0], [1, 2])
    assert pair.steps.tolist() == [7.0, 5.0]
    split = pop.encoders.size
    for key in ("exp_avg", "exp_avg_sq"):
        assert pair.buffers[key][:, :split].unique(dim=1).tolist() == [[2.0], [0.0]]
        assert pair.buffers[key][:, split:].unique(dim=1).tolist() == [[1.0], [2.0]]


# -- neighbourhood-only evaluation ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("n", "radius", "per_decoder"), [(130, 2, 9), (40, 1, 5), (4, 1, 4), (3, 2, 3)]
)
def test_neighbourhood_evaluation_equals_the_full_matrix_bit_for_bit(
    n: int, radius: int, per_decoder: int
) -> None:
    gen = torch.Generator().manual_seed(5)
    pop = Population.create(Architecture(6, (4, 2), (4,)), n, gen)
    x = (torch.rand(4, 6, generator=gen) < 0.5).float()
    nbr = neighbourhoods(n, radius)
    # each decoder meets the encoders within 2r on the ring: min(4r+1, N), not N
    assert tuple(pairings(nbr, n).table.shape) == (n, per_decoder)
    got = sub_losses(pop, x, nbr)
    full = pop.pair_l1(x)  # (n, n): every encoder with every decoder
    k = 2 * radius + 1
    assert got.shape == (n, k, k)
    assert torch.equal(got, full[nbr.unsqueeze(2), nbr.unsqueeze(1)])
    assert got[1, 1, 2].item() == full[0, 2].item()  # cell 1: encoder 0 (a = 1), decoder 2
    one = sub_losses(pop, x, nbr[n - 1 :])  # one cell (sequential update): its k x k alone
    assert torch.equal(one[0], got[n - 1])


def test_bad_ring_is_a_config_error_naming_both_numbers() -> None:
    from evoprune_core.errors import ConfigError

    with pytest.raises(
        ConfigError, match=r"^coevolution: need cells >= 1 and radius >= 0 \(got 0, 1\)$"
    ):
        neighbourhoods(0, 1)
