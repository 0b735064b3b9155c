"""The coevolutionary engine Lipi-AE-S: a ring of cells, each an encoder, a decoder and an lr.

Per generation every cell gathers its sub-population (its own centre and the centres of the
``radius`` cells on either side of the ring; with ``2r+1 > N`` the ring wraps and cells
repeat, which is allowed), evaluates every encoder x decoder pairing on one evaluation batch
of training rows, scores each encoder (decoder) by its best loss over the sub-population's
decoders (encoders), picks an encoder and a decoder by tournament, trains that pair for one
epoch, prunes it with the schedule's probability (``n_solutions = 2r+1``), makes it the new
centre and mutates the cell's learning rate.

``update = "synchronous"`` (default): every cell reads the previous generation's centres, so
the whole population is one batched program - one evaluation of the sub-populations' distinct
pairings (``sub_losses``; never the full N x N matrix on a ring), one ``take``
per generation, all selected pairs trained together with a learning rate per cell.
``update = "sequential"``: cells are processed one by one in a shuffled order and read
neighbours already updated this generation (the published code's order; N times slower).

Variants: ``standard``; ``prune_then_eval`` (the replacement loss is measured after pruning,
not before - it matters with ``replacement = "elitist"`` and in the history); ``all_vs_all``
(the sub-population of every cell is the whole population); ``selected_and_random`` (each
minibatch trains the selected encoder against a random neighbour decoder and the selected
decoder against a random neighbour encoder, the partners frozen).

The reported pair is the cell with the lowest validation L1; the test set is touched once, at
the end, for that cell only. Reported losses are always L1.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from pydantic import Field, model_validator
from torch import Tensor

from .._strict import StrictModel
from ..data import Dataset
from ..errors import ConfigError
from ..population import ConvPopulation, Population
from .base import Engine
from .result import Observer, RunResult
from .runtime import (
    Compute,
    Streams,
    build_population,
    check_finite,
    cpu_numerics,
    resolve_compute,
)
from .steps import counted, prune_event

if TYPE_CHECKING:
    from ..config import RunConfig
    from ..resolved import ResolvedRun

__all__ = [
    "CoevolutionConfig",
    "CoevolutionEngine",
    "Pairings",
    "centre_positions",
    "draw_candidates",
    "neighbourhoods",
    "pairings",
    "run_coevolution",
    "select",
    "sub_losses",
    "sub_populations",
    "tournament",
]


class CoevolutionConfig(StrictModel):
    """Lipi-AE-S: a ring of cells, each with an encoder, a decoder and a learning rate."""

    cells: int = Field(
        default=10, ge=1, le=10_000, description="cells of the ring (N): the population size"
    )
    radius: int = Field(
        default=1, ge=0, le=1_000,
        description="neighbours on either side of a cell in its sub-population (2r+1 networks)",
    )  # fmt: skip
    eval_batch: int = Field(
        default=5, ge=1, le=1_000_000,
        description="training rows of the batch every encoder x decoder pairing is scored on",
    )  # fmt: skip
    tournament_size: int = Field(
        default=2, ge=1, le=1_000, description="networks drawn per selection tournament"
    )
    pairing: Literal["independent", "same_index"] = Field(
        default="independent",
        description="independent: encoder and decoder each selected by its own fitness; "
        "same_index: one tournament index for both (the published code)",
    )
    replacement: Literal["unconditional", "elitist"] = Field(
        default="unconditional",
        description="unconditional: the trained pair becomes the cell's centre; elitist: only "
        "when its loss beats the old centre's",
    )
    lr_sigma: float = Field(
        default=1e-4, ge=0.0, le=10.0,
        description="standard deviation of a cell's learning-rate mutation per generation",
    )  # fmt: skip
    lr_min: float = Field(
        default=1e-9, gt=0.0, description="lowest learning rate a mutation may reach"
    )
    lr_max: float = Field(
        default=10.0, gt=0.0, description="highest learning rate a mutation may reach"
    )
    update: Literal["synchronous", "sequential"] = Field(
        default="synchronous",
        description="synchronous: every cell reads the previous generation (one batched "
        "program); sequential: cells one by one in a shuffled order (the published code)",
    )
    variant: Literal["standard", "prune_then_eval", "all_vs_all", "selected_and_random"] = Field(
        default="standard",
        description="prune_then_eval: replacement loss measured after pruning; all_vs_all: every "
        "cell's sub-population is the whole ring; selected_and_random: each network trains "
        "against a random neighbour",
    )

    @model_validator(mode="after")
    def _lr_range(self) -> CoevolutionConfig:
        if self.lr_min > self.lr_max:
            raise ValueError("lr_min: must not exceed lr_max")
        return self


def neighbourhoods(cells: int, radius: int) -> Tensor:
    """Ring neighbourhoods ``(N, 2r+1)``: row i = ``[i, i-1, i+1, i-2, i+2, ...] mod N``.

    The centre comes first. With ``2r+1 > N`` the ring wraps and indices repeat.
    """
    if cells < 1 or radius < 0:
        raise ConfigError(f"coevolution: need cells >= 1 and radius >= 0 (got {cells}, {radius})")
    offsets = [0]
    for d in range(1, radius + 1):
        offsets += [-d, d]
    base = torch.arange(cells).unsqueeze(1)
    return (base + torch.tensor(offsets)).remainder(cells)


def sub_populations(cfg: RunConfig) -> Tensor:
    """Every cell's sub-population ``(N, k)``: its ring neighbourhood, or all cells (all_vs_all)."""
    co = cfg.coevolution
    if co.variant == "all_vs_all":
        return torch.arange(co.cells).expand(co.cells, -1).contiguous()
    return neighbourhoods(co.cells, co.radius)


@dataclass(frozen=True)
class Pairings:
    """The distinct pairings a set of sub-populations needs, grouped by decoder.

    ``table[j, s]`` is the s-th encoder paired with decoder ``decoders[j]`` (rows padded with
    their first encoder); ``row[i, a, b]`` and ``col[i, a, b]`` locate the pairing (encoder
    ``nbr[i, a]``, decoder ``nbr[i, b]``) in that table.
    """

    decoders: Tensor
    table: Tensor
    row: Tensor
    col: Tensor


def pairings(nbr: Tensor, members: int) -> Pairings:
    """Group the pairings of the sub-populations ``nbr`` (``(N, k)`` of ``members``)."""
    n, k = nbr.shape
    decs, dpos = torch.unique(nbr, return_inverse=True)  # used decoders; nbr -> their position
    enc = nbr.unsqueeze(2).expand(n, k, k)  # [i, a, b] -> encoder nbr[i, a]
    key = dpos.unsqueeze(1).expand(n, k, k) * members + enc  # (decoder position, encoder)
    keys = torch.unique(key.flatten())  # sorted: grouped by decoder, encoders ascending
    group = keys // members
    counts = torch.bincount(group, minlength=len(decs))
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(len(keys)) - starts[group]
    table = (keys % members)[starts].unsqueeze(1).repeat(1, int(counts.max()))
    table[group, slot] = keys % members
    row = key // members
    return Pairings(decs, table, row, torch.searchsorted(keys, key) - starts[row])


def sub_losses(pop: Population | ConvPopulation, x: Tensor, nbr: Tensor) -> Tensor:
    """L1 of every (encoder, decoder) pairing of every cell's sub-population: ``(N, k, k)``.

    Entry ``[i, a, b]`` = encoder ``nbr[i, a]`` with decoder ``nbr[i, b]`` on rows ``x``.
    Only the distinct pairings of the sub-populations are evaluated - on a ring of radius r,
    ``min(4r+1, N)`` encoders per decoder, never more than ``N (2r+1)^2`` in all and never the
    ``N x N`` matrix unless the sub-populations cover it (``all_vs_all``); the values equal
    those of the full matrix ``pop.pair_l1(x)`` bit for bit.
    """
    p = pairings(nbr, pop.n)
    return pop.pairings_l1(x, p.decoders, p.table)[p.row, p.col]


def centre_positions(nbr: Tensor, cells: Tensor) -> Tensor:
    """Column of each cell in its own sub-population row (0 on a ring, i in all_vs_all)."""
    return (nbr == cells.unsqueeze(1)).int().argmax(1)


def draw_candidates(cells: int, k: int, size: int, gen: torch.Generator) -> Tensor:
    """Tournament entrants ``(N, s)``: ``s = min(size, k)`` distinct indices of ``k`` per cell."""
    return torch.rand(cells, k, generator=gen).argsort(1)[:, : min(size, k)]


def tournament(fitness: Tensor, candidates: Tensor) -> Tensor:
    """Winner per row: the candidate with the lowest fitness (ties: the first drawn)."""
    scores = fitness.gather(1, candidates)
    return candidates.gather(1, scores.argmin(1, keepdim=True)).squeeze(1)


@dataclass(frozen=True)
class Selection:
    """What selection chose for a set of cells (global member indices) and at what loss."""

    encoders: Tensor
    decoders: Tensor
    loss: Tensor


def select(losses: Tensor, nbr: Tensor, size: int, pairing: str, gen: torch.Generator) -> Selection:
    """Tournament selection of one encoder and one decoder per cell from ``losses`` (N, k, k)."""
    n, k, _ = losses.shape
    losses = losses.nan_to_num(nan=float("inf"))  # a diverged pairing never wins
    enc_fit = losses.amin(2)  # encoder a: best over the decoders
    dec_fit = losses.amin(1)  # decoder b: best over the encoders
    if pairing == "same_index":
        # one index for both networks, scored by that index's own pairing (the published code)
        own = losses.diagonal(dim1=1, dim2=2)
        ia = ib = tournament(own, draw_candidates(n, k, size, gen))
    else:
        ia = tournament(enc_fit, draw_candidates(n, k, size, gen))
        ib = tournament(dec_fit, draw_candidates(n, k, size, gen))
    rows = torch.arange(n)
    return Selection(nbr[rows, ia], nbr[rows, ib], losses[rows, ia, ib])


def _validate(cfg: RunConfig) -> None:
    co = cfg.coevolution
    neighbourhoods(co.cells, co.radius)
    if co.update == "sequential" and co.variant == "all_vs_all":
        raise ConfigError(
            "coevolution.update: 'sequential' cannot be combined with variant 'all_vs_all' "
            "(every cell reads the whole population: use 'synchronous')"
        )


class _Generation:
    """One generation's work for a set of cells, reading the centres of ``pop``."""

    def __init__(
        self, run: ResolvedRun, data: Dataset, streams: Streams, nbr: Tensor, compute: Compute
    ) -> None:
        self.cfg = run.config
        self.run = run
        self.data = data
        self.compute = compute
        self.streams = streams
        self.nbr = nbr
        self.k = nbr.shape[1]
        # the selected pairs of the last call: their buffers are reused by the next call (a
        # synchronous generation swaps them with the population's, see below)
        self.spare: Population | ConvPopulation | None = None
        self.rows = torch.empty(data.train.shape, dtype=data.train.dtype)  # shuffled, per epoch

    def __call__(
        self, pop: Population | ConvPopulation, cells: Tensor, lrs: Tensor, xe: Tensor, t: int
    ) -> dict[str, Any]:
        cfg, co, tr, s = self.cfg, self.cfg.coevolution, self.cfg.training, self.streams
        data = self.data
        nbr = self.nbr[cells]
        losses = sub_losses(pop, xe, nbr)
        chosen = select(losses, nbr, co.tournament_size, co.pairing, s.select)
        spare = self.spare
        if spare is not None and (type(spare) is not type(pop) or spare.n != len(cells)):
            spare = None
        sel = pop.take(chosen.encoders, chosen.decoders, out=spare)  # type: ignore[arg-type]
        loss = tr.loss_at(t, cfg.generations)
        reset = tr.optimizer_state == "reset_each_step"
        trainer = self.compute.trainer(loss, tr.betas, tr.eps, reset)
        cell_lrs = (lrs[cells] * (tr.lr_at(t) / tr.lr)).tolist()
        if co.variant == "selected_and_random":
            trainer.epoch_with_partners(
                sel, pop, nbr, data.train, tr.batch_size, cell_lrs, s.data, s.select
            )
        else:
            trainer.epoch(sel, data.train, tr.batch_size, cell_lrs, s.data, self.rows)
        replacement = None if co.variant == "prune_then_eval" else self.compute.l1(sel, xe)
        p_t = self.run.schedule(t, cfg.generations, self.k)
        pruning: list[int] = []
        if p_t > 0:
            pruning = (torch.rand(sel.n, generator=s.prune) < p_t).nonzero().flatten().tolist()
        removed = zeroed = events = 0
        if pruning:
            out = prune_event(sel, pruning, self.run.operator, cfg.pruning, data, s, loss)
            removed, zeroed, events = out.removed, out.zeroed, out.events
        if replacement is None:
            replacement = self.compute.l1(sel, xe)
        if co.replacement == "elitist":
            pos = centre_positions(nbr, cells)  # where each cell sits in its sub-population
            old = losses[torch.arange(len(cells)), pos, pos]  # its own pairing, same batch
            keep_old = old < replacement
            if bool(keep_old.any()):
                rows = keep_old.nonzero().squeeze(1)
                for key in pop.BUFFERS:
                    sel.buffers[key][rows] = pop.buffers[key][cells[rows]]
                sel.steps[rows] = pop.steps[cells[rows]]
                replacement = torch.where(keep_old, old, replacement)
        if len(cells) == pop.n and bool((cells == torch.arange(pop.n)).all()):
            pop.swap(sel)  # type: ignore[arg-type]  # every member replaced: no copy
        else:
            at = cells.to(pop.params.device)
            for key in pop.BUFFERS:
                pop.buffers[key].index_copy_(0, at, sel.buffers[key])
            pop.steps.index_copy_(0, at, sel.steps)
        self.spare = sel  # the old centres after a swap: overwritten by the next take
        noise = torch.randn(len(cells), generator=s.mutate, dtype=lrs.dtype) * co.lr_sigma
        lrs[cells] = (lrs[cells] + noise).clamp_(co.lr_min, co.lr_max)
        return {
            "selection": chosen.loss,
            "replacement": replacement,
            # drawn either way (same streams), but the baseline prunes nothing
            "events": events,
            "removed": removed,
            "zeroed": zeroed,
            "p_t": p_t,
        }


def _stats(prefix: str, v: Tensor) -> dict[str, float]:
    return {
        f"{prefix}_min": float(v.min()),
        f"{prefix}_median": float(v.median()),
        f"{prefix}_max": float(v.max()),
    }


class CoevolutionEngine(Engine):
    """Lipi-AE-S: a ring of encoder/decoder cells (see the module); owns ``[coevolution]``."""

    name = "coevolution"
    description = "Lipi-AE-S: a ring of encoder/decoder cells with per-cell learning rates"
    section = "coevolution"

    def population(self, cfg: RunConfig) -> str:
        return f"{cfg.coevolution.cells} cells r{cfg.coevolution.radius}"

    def run(
        self, run: ResolvedRun, observer: Observer | None = None, dataset: Dataset | None = None
    ) -> RunResult:
        return run_coevolution(run, observer, dataset)


def run_coevolution(
    run: ResolvedRun,
    observer: Observer | None = None,
    dataset: Dataset | None = None,
    prepare: Callable[[Population | ConvPopulation], None] | None = None,
) -> RunResult:
    """Coevolve a ring of autoencoders as ``run`` says; see the module docstring.

    ``prepare`` (benchmarks) may change the freshly drawn population in place before the first
    generation, e.g. prune units.
    """
    cfg = run.config
    _validate(cfg)
    co = cfg.coevolution
    data = run.build_dataset() if dataset is None else dataset
    streams = Streams(cfg.seed)
    compute = resolve_compute(cfg.compute)
    pop = build_population(cfg, data, co.cells, streams.init, compute)
    if prepare is not None:
        prepare(pop)
    nbr = sub_populations(cfg)
    lrs = torch.full((co.cells,), cfg.training.lr, dtype=torch.float64)
    step = _Generation(run, data, streams, nbr, compute)
    all_cells = torch.arange(co.cells)
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    with cpu_numerics(), torch.no_grad():
        for t in range(cfg.generations):
            pick = torch.randperm(data.train.shape[0], generator=streams.eval)
            xe = data.train[pick[: co.eval_batch]]
            if co.update == "synchronous":
                outs = [step(pop, all_cells, lrs, xe, t)]
            else:
                order = torch.randperm(co.cells, generator=streams.select)
                outs = [step(pop, order[j : j + 1], lrs, xe, t) for j in range(co.cells)]
            val = compute.l1(pop, data.val)
            best = int(val.nan_to_num(nan=float("inf")).argmin())
            fr = counted(pop, cfg.pruning.masks).remaining_fractions()
            record = {
                "generation": t,
                "val_loss": float(val[best]),
                "val_loss_best": float(val[best]),
                "val_loss_median": float(val.median()),
                "val_loss_worst": float(val.max()),
                "best_cell": best,
                "selection_loss": float(torch.cat([o["selection"] for o in outs]).median()),
                "replacement_loss": float(torch.cat([o["replacement"] for o in outs]).median()),
                "remaining_fraction": float(fr["whole"][best]),
                **_stats("remaining_fraction", fr["whole"]),
                **_stats("encoder_remaining_fraction", fr["encoder"]),
                **_stats("decoder_remaining_fraction", fr["decoder"]),
                "pruning_probability": outs[0]["p_t"],
                "pruning_events": sum(o["events"] for o in outs),
                "pruned_entries": sum(o["removed"] for o in outs),
                "lr_median": float(lrs.median()),
                "lr": float(lrs.median()),
                "seconds": time.perf_counter() - start,
            }
            if cfg.pruning.masks == "regrow":  # the published tally, regrowth ignored
                record["pruned_entries_published"] = sum(o["zeroed"] for o in outs)
            check_finite(record["val_loss"], "validation loss of every cell", t)
            history.append(record)
            if observer is not None:
                observer.generation(t, record)
        final = pop.take([best])  # best and val: the last generation's
        train_loss = float(compute.l1(final, data.train)[0])
        test_loss = float(compute.l1(final, data.test)[0])
    return RunResult(
        config=cfg,
        history=history,
        train_loss=train_loss,
        val_loss=float(val[best]),
        test_loss=test_loss,
        sparsity=counted(pop, cfg.pruning.masks).sparsity(best),
        seconds=time.perf_counter() - start,
        population=pop,
        best=best,
        components=run.components(),
        extra={
            "backend": compute.backend_for(pop),
            "device": compute.device_for(pop),
            "update": co.update,
            "variant": co.variant,
            "cell_val_losses": [float(v) for v in val],
            "cell_lrs": [float(v) for v in lrs],
        },
    )
