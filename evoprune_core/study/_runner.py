"""Optuna studies of evoprune runs: set-up, the objective, local workers, resume.

``run_study`` is what ``evoprune study`` does: set up (or find again) the Optuna study, its
MLflow experiment and parent run, enqueue the no-pruning baseline (and a grid's design), run K
workers until ``n_trials`` trials are COMPLETE, then report. Running it again resumes: complete
trials are kept, a trial whose worker died is failed, and only the missing trials run. Each
worker counts and asks under a study lock, so the total is exact with any number of workers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._compat import enqueued_params, storage_of, trial_id
from .._parent import PARENT_ENV, parent_gone
from ..config import flatten
from ..errors import EvopruneError
from ..tracking import StudyRun
from ._config import Dist, StudyConfig, grid_designs
from ._identity import check_identity
from ._keys import Attr
from ._reconcile import close_orphan_runs, fail_reaped_run
from ._storage import (
    Store,
    heartbeat,
    open_storage,
    process_identity,
    reap_dead_trials,
    study_lock,
)
from ._trial import run_trial

if TYPE_CHECKING:
    from ..plugins import Registry
    from ..tracking import Tracking

__all__ = ["StudyOutcome", "plan_text", "run_study", "target_trials", "work"]


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


def _designs(cfg: StudyConfig, registry: Registry) -> list[tuple[dict[str, Any], bool]]:
    """Trials the study must contain: baselines (one per engine) and a grid's combinations."""
    out: list[tuple[dict[str, Any], bool]] = []
    if cfg.baseline:
        for engine in cfg.engines():
            out.append(({"engine": engine} if "engine" in cfg.space else {}, True))
    if cfg.sampler == "grid":
        out.extend((d, False) for d in grid_designs(cfg, registry))
    return out


def target_trials(cfg: StudyConfig, registry: Registry, n_trials: int | None = None) -> int:
    """How many COMPLETE trials the study aims at: ``n_trials`` (baselines included), or for
    a grid all of its combinations and baselines whatever ``n_trials`` says."""
    if cfg.sampler == "grid":
        return len(_designs(cfg, registry))
    return n_trials or cfg.n_trials


def plan_text(cfg: StudyConfig, registry: Registry, n_trials: int | None = None) -> str:
    """What the study will run, said at its start: ``48 trials: 2 baselines + 46 sampled``."""
    target = target_trials(cfg, registry, n_trials)
    baselines = min(target, sum(1 for _, baseline in _designs(cfg, registry) if baseline))
    rest = target - baselines
    what = "grid combinations" if cfg.sampler == "grid" else "sampled"
    parts = [f"{baselines} baseline{'s' * (baselines != 1)}"] if baselines else []
    if rest or not parts:
        parts.append(
            f"{rest} {what}" if cfg.sampler != "grid" or rest != 1 else "1 grid combination"
        )
    text = f"study {cfg.name!r}: {target} trial{'s' * (target != 1)}: " + " + ".join(parts)
    n = n_trials or cfg.n_trials
    if cfg.sampler == "grid" and n != target:
        text += f" (a grid runs all of them; n_trials = {n} does not apply)"
    return text


def make_sampler(cfg: StudyConfig, n_trials: int, worker: int) -> Any:
    import optuna

    seed = None if cfg.sampler_seed is None else cfg.sampler_seed + worker
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if cfg.sampler == "tpe":
            startup = min(10, max(3, n_trials // 3))
            return optuna.samplers.TPESampler(
                seed=seed, n_startup_trials=startup, constant_liar=True
            )
        if cfg.sampler == "nsga2":
            return optuna.samplers.NSGAIISampler(
                seed=seed, population_size=max(4, min(50, n_trials // 3))
            )
        return optuna.samplers.RandomSampler(seed=seed)


def _tracker(store: Store) -> Tracking:
    """The study's tracking backend: MLflow at the store's tracking URI."""
    from ..tracking import Tracker

    return Tracker(store.tracking_uri, store.artifact_root)


def _stale_callback(store: Store) -> Callable[[Any, Any], None]:
    def close(study: Any, trial: Any) -> None:
        run_id = trial.user_attrs.get(Attr.MLFLOW_RUN_ID)
        if run_id:
            _tracker(store).close_run(run_id, "FAILED", "no heartbeat: the worker died")

    return close


def _open(cfg: StudyConfig, store: Store, sampler: Any = None) -> Any:
    import optuna

    storage = open_storage(store, _stale_callback(store))
    return storage, optuna.load_study(study_name=cfg.name, storage=storage, sampler=sampler)


def setup_study(cfg: StudyConfig, store: Store, registry: Registry, tracker: Tracking) -> StudyRun:
    """Create or find the study, its experiment and parent run; enqueue missing designs.

    The caller prepares ``store`` first (``store.prepare()``), before any tracker touches it.
    """
    import optuna
    from optuna.trial import TrialState

    storage = open_storage(store, _stale_callback(store))
    with study_lock(store, storage, cfg.name):
        try:  # found first: create_study(load_if_exists=True) appends to a journal
            study = optuna.load_study(study_name=cfg.name, storage=storage)
        except KeyError:
            study = optuna.create_study(
                study_name=cfg.name,
                storage=storage,
                directions=cfg.directions,
                load_if_exists=True,
            )
        if [d.name.lower() for d in study.directions] != cfg.directions:
            raise EvopruneError(
                f"{cfg.path}: objectives: the stored study {cfg.name!r} has "
                f"{len(study.directions)} objective(s); use a new name to change them"
            )
        check_identity(study, cfg, adopt=True)  # before anything is written
        params = {
            "n_trials": cfg.n_trials,
            "seeds": list(cfg.seeds),
            "objectives": list(cfg.objectives),
            "sampler": cfg.sampler,
            "sampler_seed": cfg.sampler_seed,
            "baseline": cfg.baseline,
            **{f"base.{k}": v for k, v in flatten(cfg.base).items() if k != "seed"},
            **{f"space.{k}": _describe(d) for k, d in cfg.space.items()},
        }
        ids = tracker.start_study(cfg.name, params)
        try:
            study.set_user_attr(Attr.PARENT_RUN_ID, ids.run_id)
            study.set_user_attr(Attr.EXPERIMENT_ID, ids.experiment_id)
            study.set_user_attr(Attr.OBJECTIVES, list(cfg.objectives))
            reap_dead_trials(study, lambda run, why: fail_reaped_run(tracker, run, why))
            close_orphan_runs(study, tracker, ids)
            live = [
                t
                for t in study.get_trials(deepcopy=False)
                if t.state in (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
            ]
            for params_, baseline in _designs(cfg, registry):
                if not any(_matches(t, params_, baseline) for t in live):
                    study.enqueue_trial(
                        params_, user_attrs={Attr.BASELINE: baseline, Attr.DESIGN: params_}
                    )
            tracker.log_text(ids.run_id, cfg.text, "study.toml")
        except BaseException:  # interrupted during set-up: the parent run does not stay RUNNING
            tracker.finish_study(ids, "KILLED")
            raise
    return ids


def _describe(d: Dist) -> str:
    if d.kind == "categorical":
        return "choices " + ", ".join(map(str, d.choices))
    return f"{d.kind} [{d.low}, {d.high}]" + (" log" if d.log else "")


def _matches(trial: Any, params: dict[str, Any], baseline: bool) -> bool:
    given = trial.params or enqueued_params(trial, Attr.DESIGN)
    same = bool(trial.user_attrs.get(Attr.BASELINE, False)) == baseline
    return same and all(k in given and given[k] == v for k, v in params.items())


def work(
    cfg: StudyConfig,
    store: Store,
    registry: Registry,
    n_trials: int | None = None,
    worker: int = 0,
    on_progress: Callable[[int], None] | None = None,
    poll: float = 1.0,
) -> int:
    """One worker: ask and run trials until the study has its COMPLETE trials. Returns the
    number of trials this worker ran."""
    from optuna.trial import TrialState

    target = target_trials(cfg, registry, n_trials)
    tracker = _tracker(store)
    storage, study = _open(cfg, store, make_sampler(cfg, target, worker))
    check_identity(study, cfg, adopt=False)  # the file was edited after the study started
    ids = StudyRun(study.user_attrs[Attr.EXPERIMENT_ID], study.user_attrs[Attr.PARENT_RUN_ID])
    finite = cfg.sampler == "grid"
    ran = failures = 0
    datasets: dict[tuple[str, str, int], Any] = {}  # built once per worker, name and seed
    while True:
        trial = None
        if parent_gone():
            print(
                f"evoprune: worker {worker}: the study process is gone; stopping", file=sys.stderr
            )
            break
        with study_lock(store, storage, cfg.name):
            reap_dead_trials(study, lambda run, why: fail_reaped_run(tracker, run, why))
            states = [t.state for t in study.get_trials(deepcopy=False)]
            complete, running = states.count(TrialState.COMPLETE), states.count(TrialState.RUNNING)
            if on_progress is not None:
                on_progress(complete)
            if complete >= target:
                break
            waiting = states.count(TrialState.WAITING)
            if complete + running < target and (waiting or not finite):
                try:
                    trial = study.ask()
                    for key, value in process_identity().items():
                        trial.set_user_attr(key, value)
                except BaseException:
                    if trial is not None:  # interrupted between ask and run: no RUNNING left
                        study.tell(trial, state=TrialState.FAIL)
                    raise
            elif running == 0:
                break  # a finite design is used up (some of it failed)
        if trial is None:
            time.sleep(poll)
            continue
        with heartbeat(storage, trial_id(trial)):
            ok = run_trial(cfg, registry, study, trial, tracker, ids, datasets)
        ran += 1
        failures += not ok
        if failures >= max(3, target):
            print(f"evoprune: worker {worker}: {failures} trials failed; stopping", file=sys.stderr)
            break
    return ran


def _spawn(cfg: StudyConfig, store: Store, n_trials: int, workers: int) -> list[Any]:
    threads = max(1, (os.cpu_count() or 1) // workers)
    procs = []
    for i in range(workers):
        cmd = [
            sys.executable, "-m", "evoprune_core.cli", "study", str(cfg.path),
            "--store", str(store.root), "--storage", store.storage,
            "--tracking-uri", store.tracking_uri, "--n-trials", str(n_trials),
            "--quiet", "--worker-index", str(i), "--worker-threads", str(threads),
            "--fork", cfg.name,
        ]  # fmt: skip
        # Their own process group: a terminal's Ctrl-C reaches the parent, which passes exactly
        # one SIGTERM on to each worker (see _stop_workers).
        env = {**os.environ, PARENT_ENV: str(os.getpid())}
        procs.append(
            subprocess.Popen(
                cmd, env=env, preexec_fn=_die_with_parent(os.getpid()), start_new_session=True
            )
        )
    return procs


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """Linux: a worker gets SIGTERM when the process that started it dies, even by SIGKILL.

    Armed in the forked child before it executes Python (the request survives ``exec``), so
    it holds while the worker imports; ``prctl`` is looked up here, in the parent, so that the
    child imports nothing between fork and exec.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    term = int(signal.SIGTERM)

    def arm() -> None:
        prctl(1, term)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the request was armed
            os.kill(os.getpid(), term)

    return arm


def _stop_workers(procs: list[Any], grace: float = 60.0) -> None:
    """Pass an interruption on to the workers (their trials fail, runs end KILLED); wait."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


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
    store.prepare()
    tracker = _tracker(store)
    ids = setup_study(cfg, store, registry, tracker)

    def complete() -> int:
        return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))

    try:
        _, study = _open(cfg, store)
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
            _, study = _open(cfg, store)
        if workers > 1:  # a worker stopped between steps leaves nothing RUNNING behind
            _reconcile(cfg, store, study, tracker, ids)
        done = complete()
        if status == "FINISHED" and done < target:
            status = "FAILED"
        text, plot = _finish(cfg, study, tracker, ids, status, time.monotonic() - started)
    fails = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    errors = tuple(
        str(t.user_attrs.get(Attr.ERROR, "the worker died during the trial")) for t in fails
    )
    return StudyOutcome(
        cfg.name, done, target, len(fails), ids.experiment_id, ids.run_id, text, plot, errors
    )


def _reconcile(
    cfg: StudyConfig, store: Store, study: Any, tracker: Tracking, ids: StudyRun
) -> None:
    """Fail the trials of workers that are gone and end trial runs no live trial owns."""
    storage = storage_of(study)
    with contextlib.suppress(Exception), study_lock(store, storage, cfg.name):
        reap_dead_trials(study, lambda run, why: fail_reaped_run(tracker, run, why))
        close_orphan_runs(study, tracker, ids)


def _sessions(study: Any, seconds: float) -> tuple[float, int]:
    """This session's seconds added to the study's: (active seconds in all, sessions)."""
    active = float(study.user_attrs.get(Attr.ACTIVE_SECONDS, 0.0)) + seconds
    sessions = int(study.user_attrs.get(Attr.SESSIONS, 0)) + 1
    with contextlib.suppress(Exception):  # a storage that fails here must not hide the result
        study.set_user_attr(Attr.ACTIVE_SECONDS, active)
        study.set_user_attr(Attr.SESSIONS, sessions)
    return active, sessions


def _finish(
    cfg: StudyConfig, study: Any, tracker: Tracking, ids: StudyRun, status: str, seconds: float
) -> tuple[str, str]:
    """Study artifacts on the parent run (tables, Optuna plots, statistics); end it with the
    time the study was running (over all its sessions) as its duration; return the table and
    where the Pareto front plot went."""
    from ..plots import study_figures
    from ..report import study_report

    trials = study.get_trials(deepcopy=False)
    text = study_report(trials, cfg.objectives, "text")
    plot = ""
    try:
        tracker.log_text(ids.run_id, study_report(trials, cfg.objectives, "markdown"), "best.md")
        tracker.log_text(ids.run_id, study_report(trials, cfg.objectives, "csv"), "best.csv")
        with tempfile.TemporaryDirectory() as tmp:
            for path in study_figures(study, cfg.objectives, Path(tmp)):
                tracker.log_artifact(ids.run_id, path, "optuna")
        plot = _log_stats(cfg, trials, tracker, ids.run_id)
        if cfg.artifacts == "best":
            _best_artifacts(study, tracker)
    finally:
        active, sessions = _sessions(study, seconds)
        tracker.finish_study(ids, status, active, sessions)
    return text, plot


def _best_artifacts(study: Any, tracker: Tracking) -> None:
    """Plots and models of the best (Pareto-front) trials whose runs have only their state."""
    from ..trial_artifacts import complete

    if not hasattr(tracker, "client"):
        return
    try:
        best = study.best_trials
    except (ValueError, RuntimeError):  # no complete trial yet
        return
    for t in best:
        run_id = t.user_attrs.get(Attr.MLFLOW_RUN_ID)
        if not run_id:
            continue
        try:
            complete(tracker, run_id)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - artifacts must not fail a finished study
            warnings.warn(
                f"evoprune: trial {t.number}: plots and model not written: {exc}", stacklevel=2
            )


def _log_stats(cfg: StudyConfig, trials: list[Any], tracker: Tracking, run_id: str) -> str:
    """``evoprune report --stats`` (JSON, Markdown) and its plots under the study run's
    ``stats/``; returns where ``pareto_front.png`` went ("" if nowhere)."""
    from ..stats_format import format_stats
    from ..stats_plots import write_figures
    from ..stats_report import build_stats

    report = build_stats(trials, cfg.objectives, cfg.name)
    if not report.groups:
        return ""
    tracker.log_text(run_id, format_stats(report, "json"), "stats/stats.json")
    tracker.log_text(run_id, format_stats(report, "markdown"), "stats/stats.md")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for path in write_figures(report, Path(tmp)):
                tracker.log_artifact(run_id, path, "stats")
    except Exception as exc:  # noqa: BLE001 - a plot must not fail a finished study
        warnings.warn(f"evoprune: statistics plots skipped: {exc}", stacklevel=2)
        return ""
    return tracker.artifact_location(run_id, "stats/pareto_front.png")
