"""Optuna studies of evoprune runs: ``run_study``, what ``evoprune study`` does.

Set up (or find again) the Optuna study, its tracking (an MLflow experiment and parent run by
default) and its designs (``_setup``), run K workers until ``n_trials`` trials are COMPLETE
(``_workers``), then report (``_report``). Running it again resumes: complete trials are kept,
a trial whose worker died is failed (``_reconcile``), and only the missing trials run. Each
worker counts and asks under a study lock, so the total is exact with any number of workers.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..reporting import Attr
from ._config import StudyConfig
from ._reconcile import reconcile
from ._report import finish_study
from ._setup import (
    make_sampler,
    open_study,
    plan_text,
    setup_study,
    target_trials,
    tracker_for,
)
from ._storage import Store
from ._workers import _spawn, _stop_workers, work

if TYPE_CHECKING:
    from ..plugins import Registry

__all__ = [
    "StudyOutcome",
    "make_sampler",
    "run_study",
    "setup_study",
    "target_trials",
    "work",
]


@dataclass(frozen=True)
class StudyOutcome:
    """What a ``run_study`` call left behind."""

    name: str
    complete: int
    target: int
    failed: int
    experiment_id: str
    parent_run_id: str
    report: str
    pareto_plot: str = ""
    errors: tuple[str, ...] = ()


def run_study(
    cfg: StudyConfig,
    store: Store,
    registry: Registry,
    n_trials: int | None = None,
    workers: int = 1,
    quiet: bool = False,
) -> StudyOutcome:
    """Set up or resume the study, run ``workers`` workers, report; see the module docstring."""
    from optuna.trial import TrialState
    from tqdm import tqdm

    n = n_trials or cfg.n_trials
    target = target_trials(cfg, registry, n)
    if not quiet:
        print(plan_text(cfg, registry, n), file=sys.stderr, flush=True)
    started = time.monotonic()

    def complete() -> int:
        return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))

    store.prepare()
    tracker = tracker_for(cfg, store, registry)
    ids = setup_study(cfg, store, registry, tracker)
    try:
        _, study = open_study(cfg, store, tracker)
        bar = tqdm(
            total=target, initial=min(complete(), target), desc=f"study {cfg.name}",
            unit="trial", file=sys.stderr, disable=quiet, dynamic_ncols=True,
        )  # fmt: skip
    except BaseException:  # interrupted before the workers start: the parent run is ended too
        tracker.finish_study(ids, "KILLED")
        raise

    def progress(done: int) -> None:
        bar.update(max(0, min(done, target) - bar.n))

    status = "FINISHED"
    try:
        if workers == 1:
            work(cfg, store, registry, n, 0, progress)
        else:
            procs = _spawn(cfg, store, n, workers)
            try:
                while any(p.poll() is None for p in procs):
                    progress(complete())
                    time.sleep(1.0)
            except BaseException:
                _stop_workers(procs)
                raise
            bad = [p.returncode for p in procs if p.returncode != 0]
            if bad:
                print(f"evoprune: {len(bad)} worker(s) exited with {bad}", file=sys.stderr)
        progress(complete())
    except BaseException:
        status = "KILLED"
        raise
    finally:
        bar.close()
        if status == "KILLED":  # an interruption inside Optuna may leave its replay half-done
            _, study = open_study(cfg, store, tracker)
        if workers > 1:  # a worker stopped between steps leaves nothing RUNNING behind
            reconcile(cfg, store, study, tracker, ids)
        done = complete()
        if status == "FINISHED" and done < target:
            status = "FAILED"
        text, plot = finish_study(
            cfg, study, tracker, ids, status, time.monotonic() - started,
            store.artifact_state(cfg.name),
        )  # fmt: skip
    fails = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    errors = tuple(
        str(t.user_attrs.get(Attr.ERROR, "the worker died during the trial")) for t in fails
    )
    return StudyOutcome(
        cfg.name, done, target, len(fails), ids.experiment_id, ids.run_id, text, plot, errors
    )
