"""What a study keeps of each trial: ``artifacts = "all" | "best" | "none"``.

``all``: every trial's run gets its plots and its compact model (MLflow's PyTorch format) when
it ends. ``best`` (the default): every trial saves the cheap state those are made from (the
configuration, the history, the best network's weights and masks, four input rows: a few
milliseconds), and the plots and the model are written for the best and Pareto-front trials
when the study ends, and on every resume for any that are missing. A trial interrupted after
it finished keeps its state, so nothing is lost. ``none``: the configuration and the history
only (params and metrics are always logged).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from ..config import RunConfig
    from ..population import ConvPopulation, Population
    from ._mlflow import Tracker, TrialRun

__all__ = ["ARTIFACTS", "TAG", "complete_artifacts", "save_state"]

ARTIFACTS = ("all", "best", "none")
TAG = "artifacts"  # on a trial's run: "complete", "deferred" (state saved) or "none"


def _basics(d: Path, cfg: RunConfig, seeds: Iterable[int], summaries: list[dict[str, Any]]) -> None:
    from ._mlflow import history_csv

    config = cfg.model_dump(mode="json")
    config.pop("seed", None)
    config["seeds"] = list(seeds)
    (d / "config.json").write_text(json.dumps(config, indent=2) + "\n", "utf-8")
    (d / "history.csv").write_text(history_csv(summaries), "utf-8")


def save_state(
    run: TrialRun,
    mode: str,
    cfg: RunConfig,
    seeds: Iterable[int],
    summaries: list[dict[str, Any]],
    population: Population | ConvPopulation,
    input_example: np.ndarray,
) -> None:
    """A finished trial's files for ``mode`` "best" or "none" (``all``: ``run.artifacts``)."""
    import numpy as np

    from ._mlflow import _retry

    client = run.client
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        _basics(d, cfg, seeds, summaries)
        for name in ("config.json", "history.csv"):
            _retry(client.log_artifact, run.run_id, str(d / name))
        if mode == "best":
            state = d / "state"
            state.mkdir()
            (state / "summaries.json").write_text(json.dumps(summaries) + "\n", "utf-8")
            population.save(state / "population.pt")
            np.save(state / "input_example.npy", np.asarray(input_example), allow_pickle=False)
            _retry(client.log_artifacts, run.run_id, str(state), "state")
    run.set_tags({TAG: "deferred" if mode == "best" else "none"})


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


def complete_artifacts(tracker: Tracker, run_id: str) -> bool:
    """Write the plots and the model of a trial whose state was saved (``deferred``); True
    when it did. A run already complete (or with nothing saved) is left alone."""
    import numpy as np

    from ..population import Population
    from ._figures import layer_sparsity_figure, training_figure
    from ._mlflow import _retry, _save_model

    client = tracker.client
    if client.get_run(run_id).data.tags.get(TAG) != "deferred":
        return False
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        with _no_progress_bar():
            state = Path(client.download_artifacts(run_id, "state", str(d)))
        summaries = json.loads((state / "summaries.json").read_text("utf-8"))
        population = Population.load(state / "population.pt")
        example = np.load(state / "input_example.npy", allow_pickle=False)
        plots = d / "plots"
        plots.mkdir()
        training_figure(summaries).savefig(plots / "training.png", dpi=72)
        layer_sparsity_figure(summaries).savefig(plots / "layer_sparsity.png", dpi=72)
        _retry(client.log_artifacts, run_id, str(plots), "plots")
        masks = d / "masks"
        masks.mkdir()
        population.save(masks / "population.pt")
        _retry(client.log_artifacts, run_id, str(masks), "masks")
        _save_model(population.compact(0), d / "model", example)
        _retry(client.log_artifacts, run_id, str(d / "model"), "model")
    _retry(client.set_tag, run_id, TAG, "complete")
    return True
