"""What a study keeps of each trial: ``artifacts = "all" | "best" | "none"``.

``all``: every trial's run gets its plots (the reconstruction grid too, for image data) and
its compact model (MLflow's PyTorch format) when it ends. ``best`` (the default): every trial
saves the cheap state those are made from (the configuration, the history, the best network's
weights and masks - dense or conv -, four input rows, the grid's images: a few milliseconds),
and the plots and the model are written for the best and Pareto-front trials when the study
ends, and on every resume for any that are missing. A trial interrupted after it finished
keeps its state, so nothing is lost. ``none``: the configuration and the history only (params
and metrics are always logged).

With MLflow the state is an artifact of the trial's run (``state/``). A plugin tracker need not
give files back, so its trials' state is kept in the study's store (``save_local_state``) and
the finished files go to the tracker through ``log_artifact`` (``complete_local``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy.typing as npt
    from torch import Tensor

    from ..config import RunConfig
    from ..population import ConvPopulation, Population
    from ._mlflow import Tracker, TrialRun
    from ._protocol import Tracking

__all__ = [
    "ARTIFACTS",
    "TAG",
    "Recon",
    "complete_artifacts",
    "complete_local",
    "save_local_state",
    "save_state",
]

ARTIFACTS = ("all", "best", "none")
TAG = "artifacts"  # on a trial's run: "complete", "deferred" (state saved) or "none"


def _basics(d: Path, cfg: RunConfig, seeds: Iterable[int], summaries: list[dict[str, Any]]) -> None:
    from ._mlflow import history_csv

    config = cfg.model_dump(mode="json")
    config.pop("seed", None)
    config["seeds"] = list(seeds)
    (d / "config.json").write_text(json.dumps(config, indent=2) + "\n", "utf-8")
    (d / "history.csv").write_text(history_csv(summaries), "utf-8")


#: draws a reconstruction grid: (population, member, rows, sample shape, PNG path); the study
#: passes ``reporting.save_reconstructions`` (this layer does not draw images itself)
Recon = Callable[["Population | ConvPopulation", int, "Tensor", tuple[int, ...], Path], object]


def _write_state(
    state: Path,
    summaries: list[dict[str, Any]],
    population: Population | ConvPopulation,
    input_example: npt.ArrayLike,
    images: tuple[Tensor, tuple[int, ...]] | None,
) -> None:
    """What the plots and the model are made from later: the summaries, the best network (a
    population of one, dense or conv), four input rows, and for image data the rows of the
    reconstruction grid and the sample shape."""
    import numpy as np

    from ..population import ConvPopulation

    state.mkdir(parents=True, exist_ok=True)
    (state / "summaries.json").write_text(json.dumps(summaries) + "\n", "utf-8")
    population.save(state / "population.pt")
    np.save(state / "input_example.npy", np.asarray(input_example), allow_pickle=False)
    meta: dict[str, Any] = {"kind": "conv" if isinstance(population, ConvPopulation) else "dense"}
    if images is not None:
        rows, shape = images
        np.save(state / "images.npy", np.asarray(rows), allow_pickle=False)
        meta["shape"] = list(shape)
    (state / "meta.json").write_text(json.dumps(meta) + "\n", "utf-8")


def save_state(
    run: TrialRun,
    mode: str,
    cfg: RunConfig,
    seeds: Iterable[int],
    summaries: list[dict[str, Any]],
    population: Population | ConvPopulation,
    input_example: npt.ArrayLike,
    images: tuple[Tensor, tuple[int, ...]] | None = None,
) -> None:
    """A finished trial's files for ``mode`` "best" or "none" (``all``: ``run.artifacts``);
    ``images``: the reconstruction grid's rows and sample shape (image data)."""
    from ._mlflow import _retry

    client = run.client
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        _basics(d, cfg, seeds, summaries)
        for name in ("config.json", "history.csv"):
            _retry(client.log_artifact, run.run_id, str(d / name))
        if mode == "best":
            _write_state(d / "state", summaries, population, input_example, images)
            _retry(client.log_artifacts, run.run_id, str(d / "state"), "state")
    run.set_tags({TAG: "deferred" if mode == "best" else "none"})


def save_local_state(
    tracking: Tracking,
    run_id: str,
    mode: str,
    where: Path | None,
    cfg: RunConfig,
    seeds: Iterable[int],
    summaries: list[dict[str, Any]],
    population: Population | ConvPopulation,
    input_example: npt.ArrayLike,
    images: tuple[Tensor, tuple[int, ...]] | None = None,
) -> None:
    """``save_state`` for a plugin tracker: the configuration and the history go through the
    tracker (``log_artifact``); with "best" the state is kept in ``where`` (a directory of the
    study's store, written whole or not at all, with the run's id), since a tracker need not
    give files back."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        _basics(d, cfg, seeds, summaries)
        for name in ("config.json", "history.csv"):
            tracking.log_artifact(run_id, d / name)
    if mode != "best":
        return
    if where is None:
        raise ValueError("save_local_state: 'best' needs a directory to keep the state in")
    part = where.with_name(where.name + ".part")
    shutil.rmtree(part, ignore_errors=True)
    _write_state(part, summaries, population, input_example, images)
    (part / "run_id").write_text(run_id, "utf-8")
    shutil.rmtree(where, ignore_errors=True)  # a trial run again after an interruption
    part.replace(where)


def _final_files(state: Path, out: Path, recon: Recon | None) -> None:
    """``plots/``, ``masks/`` and ``model/`` of a trial under ``out``, made from its state."""
    import numpy as np
    import torch

    from ..population import ConvPopulation, Population
    from ._figures import layer_sparsity_figure, training_figure
    from ._mlflow import _save_model

    summaries = json.loads((state / "summaries.json").read_text("utf-8"))
    meta_file = state / "meta.json"  # absent in states written before conv studies deferred
    meta: dict[str, Any] = {"kind": "dense"}
    if meta_file.exists():
        meta = json.loads(meta_file.read_text("utf-8"))
    cls = ConvPopulation if meta["kind"] == "conv" else Population
    population: Population | ConvPopulation = cls.load(state / "population.pt")
    example = np.load(state / "input_example.npy", allow_pickle=False)
    plots = out / "plots"
    plots.mkdir(parents=True)
    training_figure(summaries).savefig(plots / "training.png", dpi=72)
    layer_sparsity_figure(summaries).savefig(plots / "layer_sparsity.png", dpi=72)
    if recon is not None and "shape" in meta and (state / "images.npy").exists():
        rows = torch.from_numpy(np.load(state / "images.npy", allow_pickle=False))
        recon(population, 0, rows, tuple(meta["shape"]), plots / "reconstructions.png")
    masks = out / "masks"
    masks.mkdir()
    population.save(masks / "population.pt")
    _save_model(population.compact(0), out / "model", example)


@contextlib.contextmanager
def _no_progress_bar() -> Iterator[None]:
    """MLflow draws a download progress bar on stderr unless told not to (``--quiet``)."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def complete_artifacts(tracker: Tracker, run_id: str, recon: Recon | None = None) -> bool:
    """Write the plots (``recon``: the reconstruction grid of image data too), the masks and
    the model of a trial whose state was saved (``deferred``); True when it did. A run already
    complete (or with nothing saved) is left alone."""
    from ._mlflow import _retry

    client = tracker.client
    if client.get_run(run_id).data.tags.get(TAG) != "deferred":
        return False
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        with _no_progress_bar():
            state = Path(client.download_artifacts(run_id, "state", str(d)))
        _final_files(state, d / "out", recon)
        for sub in ("plots", "masks", "model"):
            _retry(client.log_artifacts, run_id, str(d / "out" / sub), sub)
    _retry(client.set_tag, run_id, TAG, "complete")
    return True


def complete_local(tracking: Tracking, where: Path, recon: Recon | None = None) -> bool:
    """``complete_artifacts`` for a plugin tracker, from the state kept in ``where``
    (``save_local_state``): every file goes through ``log_artifact``; True when it did. Done
    once: a ``complete`` file marks it."""
    if not (where / "summaries.json").is_file() or (where / "complete").exists():
        return False
    run_id = (where / "run_id").read_text("utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        _final_files(where, out, recon)
        for path in sorted(p for p in out.rglob("*") if p.is_file()):
            tracking.log_artifact(run_id, path, path.parent.relative_to(out).as_posix())
    (where / "complete").write_text("", "utf-8")
    return True
