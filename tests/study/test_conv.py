"""The conv study file: valid, and it runs (shortened) with reconstruction grids in MLflow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from evoprune_core.plugins import Registry
from evoprune_core.study import load_study_config

ROOT = Path(__file__).resolve().parents[2]
STUDY = ROOT / "studies" / "mnist-conv.toml"


def test_the_conv_study_file_is_valid() -> None:
    cfg = load_study_config(STUDY, Registry.load())
    assert cfg.base.network.preset == "conv-small" and cfg.base.data.name == "mnist-5k"
    assert tuple(cfg.objectives) == ("val_loss", "remaining_fraction")


def test_the_conv_study_runs_and_logs_reconstruction_grids(tmp_path) -> None:
    text = STUDY.read_text().replace("n_trials = 16", "n_trials = 2")
    text = text.replace("generations = 6", "generations = 1")
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
    grids = sorted(store.glob("artifacts/mnist-conv/*/artifacts/plots/reconstructions.png"))
    assert len(grids) == 2  # one per trial, so the best trial's too
    assert grids[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
