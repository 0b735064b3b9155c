"""The canonical engine: learning, pruning, determinism, divergence; `evoprune run`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evoprune_core.errors import TrialFailed
from evoprune_core.loading import load_run_config, run
from evoprune_core.plugins import Registry

ROOT = Path(__file__).resolve().parents[2]
SMALL = [
    "data.name=binary-clustering",
    "data.params.dims=200",
    "data.params.clusters=5",
    "data.params.rows_per_cluster=60",
    "network.preset='small'",
    "generations=20",
    "training.batch_size=5",
]


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load(entry_points=False)


def _run(registry, *overrides: str):
    return run(load_run_config(None, [*SMALL, *overrides], registry), registry)


def test_unpruned_default_training_learns_the_clusters(registry) -> None:
    r = _run(registry)
    # floors: 0.05 = exact centroid bits, ~0.27 = per-pixel median (knows no clusters)
    assert r.test_loss <= 0.08
    assert r.remaining_fraction == 1.0
    assert len(r.history) == 20 and r.history[-1]["generation"] == 19


def test_paper_l1_training_stays_near_the_median_attractor(registry) -> None:
    r = _run(registry, "training.loss=l1", "training.final_loss=none", "training.lr=1e-5")
    # pinned (native and torch backends agree to 2e-7); an untrained network is near 0.5
    assert r.test_loss == pytest.approx(0.464524, abs=1e-5)


def test_same_config_and_seed_give_identical_history(registry) -> None:
    a = _run(registry, "pruning.operator=random", "pruning.probability=0.5", "generations=8")
    b = _run(registry, "pruning.operator=random", "pruning.probability=0.5", "generations=8")
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in a.history]
    assert strip == [{k: v for k, v in h.items() if k != "seconds"} for h in b.history]
    c = _run(
        registry, "pruning.operator=random", "pruning.probability=0.5", "generations=8", "seed=2"
    )
    assert c.history[-1]["val_loss"] != a.history[-1]["val_loss"]


#: entries each of the 4 events removes from the 12,382 of the small network (seed 1)
PRUNED = {
    "random": [1238, 1114, 1002, 901],  # round(0.1 x alive) of every tensor
    "magnitude": [1238, 1114, 1002, 901],
    "variance": [605, 556, 467, 463],  # the output layer is spared by default
    "conjunctive": [2896, 3, 405, 207],  # dead units go, whatever amount says
}


@pytest.mark.parametrize("operator", ["random", "magnitude", "variance", "conjunctive"])
def test_every_operator_prunes_and_the_count_is_true(registry, operator) -> None:
    r = _run(
        registry,
        f"pruning.operator={operator}",
        "pruning.probability=1.0",
        "pruning.schedule=fixed",
        "generations=4",
    )
    events = sum(h["pruning_events"] for h in r.history)
    assert events == 4
    pop = r.population
    alive = int(pop.masks.sum())
    assert r.remaining_fraction == alive / pop.arch.n_params
    assert [h["pruned_entries"] for h in r.history] == PRUNED[operator]
    assert alive == pop.arch.n_params - sum(PRUNED[operator]) and pop.arch.n_params == 12_382
    fractions = [h["remaining_fraction"] for h in r.history]
    assert fractions == sorted(fractions, reverse=True)  # never grows back
    assert int((pop.params[pop.masks == 0] != 0).sum()) == 0


def test_prune_after_prunes_once_at_the_end(registry) -> None:
    r = _run(
        registry,
        "pruning.operator=magnitude",
        "pruning.schedule=prune_after",
        "pruning.probability=1.0",
        "pruning.amount=0.5",
        "generations=5",
    )
    assert [h["pruning_events"] for h in r.history] == [0, 0, 0, 0, 1]
    # every tensor of the small network has an even size: exactly half remains
    assert int(r.population.masks.sum()) == 6191 and r.remaining_fraction == 0.5


def test_divergence_fails_cleanly(registry) -> None:
    with pytest.raises(
        TrialFailed, match="^validation loss is nan at generation 0: the run diverged$"
    ):
        _run(
            registry,
            "training.lr=10",
            "training.loss=mse",
            "training.final_loss=none",
            "training.eps=1e-300",
            "generations=3",
            "training.betas=[0.0, 0.0]",
        )


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "evoprune_core.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_run_writes_json_with_the_documented_keys(tmp_path) -> None:
    out = tmp_path / "result.json"
    p = _cli(
        "run",
        str(ROOT / "studies/runs/canonical.toml"),
        "--quiet",
        "--output",
        str(out),
        *[f"--set={s}" for s in SMALL],
        "--set",
        "generations=3",
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    data = json.loads(out.read_text())
    for key in ("test_loss", "val_loss", "remaining_fraction", "seconds", "history"):
        assert key in data
    assert len(data["history"]) == 3
    assert "test L1" in p.stdout and "remaining fraction" in p.stdout


def test_cli_bad_config_is_one_line_exit_2_and_writes_nothing(tmp_path) -> None:
    out = tmp_path / "result.json"
    p = _cli(
        "run",
        str(ROOT / "studies/runs/canonical.toml"),
        "--output",
        str(out),
        "--set",
        "training.loss=huber",
        cwd=tmp_path,
    )
    assert p.returncode == 2
    assert p.stderr.startswith("error: ") and p.stderr.count("\n") == 1
    assert "training.loss" in p.stderr and "'l1', 'mse' or 'bce'" in p.stderr
    assert list(tmp_path.iterdir()) == []


def test_result_bookkeeping_baseline_events_and_regrow_tally(registry) -> None:
    start = time.perf_counter()
    r = _run(
        registry,
        "pruning.operator=none",
        "pruning.probability=1.0",
        "pruning.schedule=fixed",
        "generations=3",
        "compute.backend=torch",
    )
    elapsed = time.perf_counter() - start
    # the baseline draws like the others but prunes nothing and counts no event
    assert [h["pruning_events"] for h in r.history] == [0, 0, 0]
    assert [h["pruning_probability"] for h in r.history] == [1.0, 1.0, 1.0]
    assert (r.best, r.extra) == (0, {"backend": "torch", "device": "cpu"})
    assert {k: v["name"] for k, v in r.components.items()} == {
        "engine": "canonical",
        "operator": "none",
        "schedule": "fixed",
        "dataset": "binary-clustering",
    }
    assert 0 < r.history[0]["seconds"] <= r.history[-1]["seconds"] <= r.seconds <= elapsed
    assert all("pruned_entries_published" not in h for h in r.history)
    g = _run(registry, "pruning.operator=random", "pruning.masks=regrow", "generations=2")
    assert all("pruned_entries_published" in h for h in g.history)
