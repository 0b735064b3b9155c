"""Setting a study up: its designs, sampler, tracker, Optuna study and parent run."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._compat import enqueued_params
from .._pause import pause_point
from ..config import flatten
from ..errors import EvopruneError
from ..reporting import Attr
from ._config import Dist, StudyConfig, grid_designs
from ._identity import check_identity
from ._reconcile import close_orphan_runs, fail_reaped_run
from ._storage import Store, open_storage, reap_dead_trials, study_lock

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial

    from ..plugins import Registry
    from ..tracking import StudyRun, Tracking

__all__ = [
    "make_sampler",
    "open_study",
    "plan_text",
    "setup_study",
    "target_trials",
    "tracker_for",
]


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


def make_sampler(cfg: StudyConfig, n_trials: int, worker: int) -> optuna.samplers.BaseSampler:
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


def tracker_for(cfg: StudyConfig, store: Store, registry: Registry) -> Tracking:
    """The study's tracker (``tracking = "mlflow"`` by default) at the store's tracking URI."""
    cls = registry.tracker(cfg.tracking, f"{cfg.path}: tracking").obj
    return cls(store.tracking_uri, store.artifact_root)


def _stale_callback(tracker: Tracking) -> Callable[[optuna.Study, FrozenTrial], None]:
    def close(study: optuna.Study, trial: FrozenTrial) -> None:
        run_id = trial.user_attrs.get(Attr.MLFLOW_RUN_ID)
        if run_id:
            tracker.close_run(run_id, "FAILED", "no heartbeat: the worker died")

    return close


def open_study(
    cfg: StudyConfig,
    store: Store,
    tracker: Tracking,
    sampler: optuna.samplers.BaseSampler | None = None,
) -> tuple[BaseStorage, optuna.Study]:
    """The study's Optuna storage and the study loaded from it (with ``sampler``)."""
    import optuna

    storage = open_storage(store, _stale_callback(tracker))
    return storage, optuna.load_study(study_name=cfg.name, storage=storage, sampler=sampler)


def setup_study(cfg: StudyConfig, store: Store, registry: Registry, tracker: Tracking) -> StudyRun:
    """Create or find the study, its experiment and parent run; enqueue missing designs.

    The caller prepares ``store`` first (``store.prepare()``), before any tracker touches it.
    """
    import optuna
    from optuna.trial import TrialState

    storage = open_storage(store, _stale_callback(tracker))
    ids: StudyRun | None = None
    try:  # until the caller has the ids, an interruption ends the parent run here
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
            pause_point("study-set-up")
    except BaseException:  # interrupted during set-up (or the lock's release): not RUNNING
        if ids is not None:
            tracker.finish_study(ids, "KILLED")
        raise
    return ids


def _describe(d: Dist) -> str:
    if d.kind == "categorical":
        return "choices " + ", ".join(map(str, d.choices))
    return f"{d.kind} [{d.low}, {d.high}]" + (" log" if d.log else "")


def _matches(trial: FrozenTrial, params: dict[str, Any], baseline: bool) -> bool:
    given = trial.params or enqueued_params(trial, Attr.DESIGN)
    same = bool(trial.user_attrs.get(Attr.BASELINE, False)) == baseline
    return same and all(k in given and given[k] == v for k, v in params.items())
