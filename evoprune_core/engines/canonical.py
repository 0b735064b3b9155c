"""The canonical engine: one autoencoder, pruned while it trains.

Per epoch t: one pass over the shuffled training rows in minibatches with a persistent Adam
(``training.optimizer_state = "reset_each_step"``: a fresh one per minibatch), then, with
probability p_t from the schedule, one pruning event on encoder and decoder together
(calibration rows drawn from the training set). Validation loss every epoch; the test set is
touched once, at the end. Reported losses are always L1.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import torch

from ..data import Dataset
from .base import Engine
from .result import Observer, RunResult
from .runtime import (
    Streams,
    build_population,
    check_finite,
    cpu_numerics,
    resolve_compute,
)
from .steps import counted, prune_event

if TYPE_CHECKING:
    from ..resolved import ResolvedRun

__all__ = ["CanonicalEngine", "run_canonical"]


class CanonicalEngine(Engine):
    """The canonical engine: one autoencoder pruned while it trains (see the module)."""

    name = "canonical"
    description = "one autoencoder, pruned while it trains"

    def run(
        self, run: ResolvedRun, observer: Observer | None = None, dataset: Dataset | None = None
    ) -> RunResult:
        return run_canonical(run, observer, dataset)


def run_canonical(
    run: ResolvedRun, observer: Observer | None = None, dataset: Dataset | None = None
) -> RunResult:
    """Train and prune one autoencoder as ``run`` says; see the module docstring."""
    cfg = run.config
    data = run.build_dataset() if dataset is None else dataset
    streams = Streams(cfg.seed)
    tr = cfg.training
    compute = resolve_compute(cfg.compute)
    pop = build_population(cfg, data, 1, streams.init, compute)
    reset = tr.optimizer_state == "reset_each_step"
    regrow = cfg.pruning.masks == "regrow"
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    with cpu_numerics(), torch.no_grad():
        for t in range(cfg.generations):
            lr = tr.lr_at(t)
            loss = tr.loss_at(t, cfg.generations)
            trainer = compute.trainer(loss, tr.betas, tr.eps, reset)
            trainer.epoch(pop, data.train, tr.batch_size, [lr], streams.data)
            p_t = run.schedule(t, cfg.generations, 1)
            events = removed = zeroed = 0
            if p_t > 0 and streams.uniform("prune") < p_t:
                out = prune_event(pop, [0], run.operator, cfg.pruning, data, streams, loss)
                events, removed, zeroed = out.events, out.removed, out.zeroed
            fr = counted(pop, cfg.pruning.masks).remaining_fractions()
            record = {
                "generation": t,
                "train_loss": float(compute.l1(pop, data.train)[0]),
                "val_loss": float(compute.l1(pop, data.val)[0]),
                "remaining_fraction": float(fr["whole"][0]),
                "encoder_remaining_fraction": float(fr["encoder"][0]),
                "decoder_remaining_fraction": float(fr["decoder"][0]),
                "pruning_probability": p_t,
                "pruning_events": events,
                "pruned_entries": removed,
                "lr": lr,
                "seconds": time.perf_counter() - start,
            }
            if regrow:  # the published tally: every event's zeroed entries, regrowth ignored
                record["pruned_entries_published"] = zeroed
            check_finite(record["val_loss"], "validation loss", t)
            history.append(record)
            if observer is not None:
                observer.generation(t, record)
        test_loss = float(compute.l1(pop, data.test)[0])
    return RunResult(
        config=cfg,
        history=history,
        train_loss=history[-1]["train_loss"],
        val_loss=history[-1]["val_loss"],
        test_loss=test_loss,
        sparsity=counted(pop, cfg.pruning.masks).sparsity(0),
        seconds=time.perf_counter() - start,
        population=pop,
        best=0,
        extra={"backend": compute.backend_for(pop), "device": compute.device_for(pop)},
        components=run.components(),
    )
