"""The conv study file: valid, and it runs (shortened) with reconstruction grids in MLflow for
the trials ``artifacts`` keeps them for."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import mlflow.pytorch
import torch
from mlflow import MlflowClient

from evoprune_core.plugins import Registry
from evoprune_core.reporting._recon_plot import save_reconstructions
from evoprune_core.study import load_study_config
from evoprune_core.tracking import Tracker, complete_artifacts

ROOT = Path(__file__).resolve().parents[2]
STUDY = ROOT / "studies" / "mnist-conv.toml"

STATE = {"config.json", "history.csv", "state/summaries.json", "state/population.pt",
         "state/input_example.npy", "state/images.npy", "state/meta.json"}  # fmt: skip
RICH = {"plots/training.png", "plots/layer_sparsity.png", "plots/reconstructions.png",
        "masks/population.pt", "model/MLmodel"}  # fmt: skip


def _files(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    out: set[str] = set()
    for f in client.list_artifacts(run_id, path):
        out |= _files(client, run_id, f.path) if f.is_dir else {f.path}
    return out


def test_the_conv_study_file_is_valid() -> None:
    cfg = load_study_config(STUDY, Registry.load())
    assert cfg.base.network.preset == "conv-small" and cfg.base.data.name == "mnist-5k"
    assert tuple(cfg.objectives) == ("val_loss", "remaining_fraction")


def test_the_conv_study_keeps_grids_and_models_for_its_best_trial(tmp_path: Path) -> None:
    """``artifacts = "best"`` (the default) in a conv study: every trial keeps its state (the
    conv network, the grid's images), the best trial gets its plots, reconstruction grid and
    model at the end; a best trial whose files were lost gets them again (as on a resume)."""
    text = STUDY.read_text().replace("n_trials = 16", "n_trials = 2")
    text = text.replace("generations = 6", "generations = 1")
    text = text.replace('objectives = ["val_loss", "remaining_fraction"]', "")  # one best
    short = tmp_path / "mnist-conv.toml"
    short.write_text(text)
    store = tmp_path / "store"
    proc = subprocess.run(
        [sys.executable, "-m", "evoprune_core.cli", "study", str(short), "--store", str(store),
         "--quiet"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "2/2 trials complete" in proc.stdout
    assert "plots and model not written" not in proc.stderr
    uri = f"sqlite:///{store / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("mnist-conv")
    runs = client.search_runs([exp.experiment_id], "tags.`evoprune.role` = 'trial'")
    assert len(runs) == 2
    best = min(runs, key=lambda r: r.data.metrics["val_loss"])
    for run in runs:
        files = _files(client, run.info.run_id)
        if run.info.run_id == best.info.run_id:
            assert run.data.tags["artifacts"] == "complete"
            assert STATE | RICH <= files
        else:
            assert run.data.tags["artifacts"] == "deferred"
            assert files == STATE  # no plot, no grid, no model
    grids = sorted(store.glob("artifacts/mnist-conv/*/artifacts/plots/reconstructions.png"))
    assert len(grids) == 1 and grids[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    mlflow.set_tracking_uri(uri)
    model = mlflow.pytorch.load_model(f"runs:/{best.info.run_id}/model")
    assert model(torch.zeros(2, 784)).shape == (2, 784)  # flat rows, as the study feeds it

    run_id = best.info.run_id  # as if the study had been killed before writing them
    client.set_tag(run_id, "artifacts", "deferred")
    root = Path(client.get_run(run_id).info.artifact_uri.removeprefix("file://"))
    for sub in ("plots", "model", "masks"):
        shutil.rmtree(root / sub)
    tracker = Tracker(uri, store / "artifacts")
    assert complete_artifacts(tracker, run_id, save_reconstructions) is True
    assert STATE | RICH <= _files(client, run_id)
