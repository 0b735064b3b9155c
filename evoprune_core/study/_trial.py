"""One trial of a study: sample its configuration, run every seed, track it, tell Optuna."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import TrialFailed
from ..reporting import Attr
from ..tracking import TAG, TrialRun, save_local_state, save_state
from ._config import Dist, StudyConfig, sample_updates

if TYPE_CHECKING:
    import optuna

    from ..config import RunConfig
    from ..data import Dataset
    from ..engines import RunResult
    from ..plugins import Registry
    from ..resolved import ResolvedRun
    from ..tracking import StudyRun, Tracking, TrialTracking

__all__ = ["run_trial"]

_FINAL = (
    "val_loss",
    "test_loss",
    "train_loss",
    "remaining_fraction",
    "encoder_remaining_fraction",
    "decoder_remaining_fraction",
    "seconds",
)


def _suggest(trial: optuna.trial.Trial, name: str, d: Dist) -> Any:
    if d.kind == "categorical":
        return trial.suggest_categorical(name, list(d.choices))
    if d.kind == "int":
        return trial.suggest_int(name, int(d.low), int(d.high), step=int(d.step or 1), log=d.log)
    return trial.suggest_float(name, d.low, d.high, step=d.step, log=d.log)


class _Observer:
    def __init__(self, run: TrialTracking, prefix: str) -> None:
        self.run, self.prefix = run, prefix

    def generation(self, t: int, record: dict[str, float]) -> None:
        self.run.generation(t, record, self.prefix)


def _combination(run: ResolvedRun, baseline: bool) -> dict[str, Any]:
    cfg = run.config
    return {
        "engine": cfg.engine,
        "operator": cfg.pruning.operator,
        "schedule": "-" if baseline else cfg.pruning.schedule,
        "probability": None if baseline else cfg.pruning.probability,
        "amount": cfg.pruning.amount if run.operator.uses_amount and not baseline else None,
        "population": run.engine.population(cfg),
    }


def run_name(number: int, combo: dict[str, Any] | None, baseline: bool) -> str:
    """What the MLflow UI lists for a trial: ``t0007 coevolution magnitude/population``,
    ``t0000 canonical baseline``; ``t0007`` when it failed before its configuration was known."""
    if combo is None:
        return f"t{number:04d}"
    what = "baseline" if baseline else f"{combo['operator']}/{combo['schedule']}"
    return f"t{number:04d} {combo['engine']} {what}"


def _short_params(combo: dict[str, Any]) -> dict[str, Any]:
    """The combination under short names, for the columns of the runs table."""
    return {k: v for k, v in combo.items() if v is not None}


def run_trial(
    cfg: StudyConfig,
    registry: Registry,
    study: optuna.Study,
    trial: optuna.trial.Trial,
    tracking: Tracking,
    ids: StudyRun,
    datasets: dict[tuple[str, str, int], Dataset] | None = None,
    state_dir: Path | None = None,
) -> bool:
    """Sample, run every seed, track in MLflow, tell Optuna. A raising trial fails alone.

    ``datasets`` (a worker's own) keeps each dataset built, by name, parameters and seed: a
    worker builds it once, not once per trial. ``state_dir``: where a plugin tracker's trials
    keep their deferred state (``artifacts = "best"``; ``Store.artifact_state``).
    """
    from optuna.trial import TrialState

    from ..resolved import resolve

    baseline = bool(trial.user_attrs.get(Attr.BASELINE, False))
    run = None
    tags = {"baseline": str(baseline).lower()}
    try:
        updates = sample_updates(lambda n, d: _suggest(trial, n, d), cfg, registry, baseline)
        source = f"trial {trial.number}"
        resolved = resolve(
            cfg.base.updated({**updates, "seed": cfg.seeds[0]}, source), registry, source
        )
        rc = resolved.config
        combo = _combination(resolved, baseline)
        tags.update(resolved.tags())
        tags["mlflow.runName"] = run_name(trial.number, combo, baseline)
        run = tracking.start_trial(ids, cfg.name, trial.number, tags)
        trial.set_user_attr(Attr.MLFLOW_RUN_ID, run.run_id)
        trial.set_user_attr(Attr.COMBINATION, combo)
        if isinstance(run, TrialRun):  # the MLflow runs table shows them under short names
            run.log_config(rc, cfg.seeds, trial.number, _short_params(combo))
        else:
            run.log_config(rc, cfg.seeds, trial.number)
        summaries, results, best = [], [], None
        for seed in cfg.seeds:
            seeded = resolved.with_seed(seed)
            data = _dataset(seeded, datasets)
            prefix = "" if len(cfg.seeds) == 1 else f"seed{seed}."
            result = seeded.run(_Observer(run, prefix), data)
            summary = result.summary()
            bad = [k for k in _FINAL if not math.isfinite(float(summary[k]))]
            if bad:
                raise TrialFailed(f"{bad[0]} is {summary[bad[0]]} (seed {seed})")
            summaries.append(summary)
            results.append({"seed": seed, **{k: float(summary[k]) for k in _FINAL}})
            if best is None or result.val_loss < best[0].val_loss:
                best = (result, data)
        if len(cfg.seeds) > 1:
            _log_mean_curves(run, summaries)
        means = {k: sum(r[k] for r in results) / len(results) for k in _FINAL}
        final = dict(means)
        if len(cfg.seeds) > 1:
            from ..reporting import mean_std

            final.update({f"{k}_std": mean_std([r[k] for r in results])[1] for k in _FINAL})
            final.update({f"seed{r['seed']}.{k}": r[k] for r in results for k in _FINAL})
        run.final(final, step=rc.generations)
        assert best is not None
        res, data = best
        run.set_tags({"backend": str(res.extra.get("backend", ""))})
        _keep(cfg, tracking, run, trial.number, state_dir, rc, summaries, res, data)
        trial.set_user_attr(Attr.RESULTS, results)
        run.succeed()
        values = [means[k] for k in cfg.objectives]
        study.tell(trial, values)
        return True
    except KeyboardInterrupt as exc:
        try:
            if run is not None:
                run.fail(exc, "KILLED")
        except Exception:  # noqa: BLE001 - e.g. a store the interruption left locked: the
            pass  # trial is still failed below; the next start ends its orphaned run
        study.tell(trial, state=TrialState.FAIL)
        raise
    except Exception as exc:  # noqa: BLE001 - a trial that raises fails alone
        if run is None:
            tags["mlflow.runName"] = run_name(trial.number, None, baseline)
            run = tracking.start_trial(ids, cfg.name, trial.number, tags)
            trial.set_user_attr(Attr.MLFLOW_RUN_ID, run.run_id)
        trial.set_user_attr(Attr.ERROR, f"{type(exc).__name__}: {exc}"[:2000])
        run.fail(exc)
        study.tell(trial, state=TrialState.FAIL)
        return False


def _keep(
    cfg: StudyConfig,
    tracking: Tracking,
    run: TrialTracking,
    number: int,
    state_dir: Path | None,
    rc: RunConfig,
    summaries: list[dict[str, Any]],
    res: RunResult,
    data: Dataset,
) -> None:
    """The trial's files by ``cfg.artifacts``, for dense and conv networks and any tracker.

    "all": the plots (the reconstruction grid of image data too) and the model now. "best":
    the state they are made from now, the files for the best and Pareto-front trials when the
    study ends (``_report``). "none": configuration and history. A plugin tracker without a
    ``state_dir`` gets the files at once (nowhere to keep the state).
    """
    keep = res.population.take([res.best])
    example = data.val[:4].numpy()
    images = (data.val[:8], tuple(data.sample_shape)) if data.is_image else None
    mode = cfg.artifacts
    if mode != "all" and isinstance(run, TrialRun):
        save_state(run, mode, rc, cfg.seeds, summaries, keep, example, images)
        return
    if mode == "none" or (mode == "best" and state_dir is not None):
        if run.run_id:  # "": a tracker that keeps nothing (tracking = "none")
            where = None if state_dir is None else state_dir / f"t{number:04d}"
            save_local_state(
                tracking, run.run_id, mode, where, rc, cfg.seeds, summaries, keep, example, images
            )
            run.set_tags({TAG: "deferred" if mode == "best" else "none"})
        return
    run.artifacts(rc, cfg.seeds, summaries, res.population.compact(res.best), keep, example)
    run.set_tags({TAG: "complete"})
    if images is not None:  # originals above, reconstructions below
        _log_reconstructions(tracking, run.run_id, res, data)


def _dataset(run: ResolvedRun, cache: dict[tuple[str, str, int], Dataset] | None) -> Dataset:
    """The run's dataset, from ``cache`` when this worker built it before."""
    if cache is None:
        return run.build_dataset()
    cfg = run.config
    key = (cfg.data.name, json.dumps(cfg.data.params, sort_keys=True, default=str), cfg.data_seed)
    if key not in cache:
        cache[key] = run.build_dataset()
    return cache[key]


def _log_reconstructions(tracking: Tracking, run_id: str, res: RunResult, data: Dataset) -> None:
    """``plots/reconstructions.png``: eight validation images and their reconstructions."""
    import tempfile

    from ..reporting import save_reconstructions

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "reconstructions.png"
        save_reconstructions(res.population, res.best, data.val[:8], data.sample_shape, path)
        tracking.log_artifact(run_id, path, "plots")


def _log_mean_curves(run: TrialTracking, summaries: list[dict[str, Any]]) -> None:
    """With replicates, the mean over seeds of every per-generation value, under plain keys."""
    hists = [s["history"] for s in summaries]
    for t in range(min(len(h) for h in hists)):
        keys = [k for k, v in hists[0][t].items() if isinstance(v, (int, float))]
        keys = [k for k in keys if all(k in h[t] for h in hists)]
        run.generation(t, {k: sum(h[t][k] for h in hists) / len(hists) for k in keys})
    run.flush()
