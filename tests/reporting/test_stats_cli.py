"""``evoprune report --stats`` on a real tiny study (end to end)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from scipy.stats import mannwhitneyu

from evoprune_core.cli import main
from tests.conftest import Project

GRID = """
sampler = "grid"
seeds = [1, 2, 3]
tune_plugin_params = false
objectives = ["val_loss", "remaining_fraction"]
"""


GRID_BASE = """
[base]
generations = 3
[base.data]
name = "bc-10-100-1000"
[base.network]
encoder = [8, 4]
[base.training]
batch_size = 50
[base.pruning]
probability = 1.0
amount = 0.3
"""


GRID_SPACE = """
[space]
"pruning.operator" = { choices = ["random", "magnitude"] }
"pruning.schedule" = { choices = ["fixed"] }
"""


def test_report_stats_on_a_real_study(
    stored_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project = stored_project
    path = project.study_file("grid", n_trials=10, header=GRID, base=GRID_BASE, space=GRID_SPACE)
    assert main(project.args(path)) == 0
    out = capsys.readouterr().out
    plot_line = next(x for x in out.splitlines() if x.startswith("Pareto front plot: "))
    assert Path(plot_line.split(": ", 1)[1]).read_bytes()[:4] == b"\x89PNG"

    report = ["report", str(path), "--store", str(project.store), "--stats"]
    assert main([*report, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["metrics"] == ["val_loss", "remaining_fraction"] and data["grouping"] == "trial"
    groups = {g["key"]: g for g in data["groups"]}
    assert list(groups) == ["trial:0", "trial:1", "trial:2"]
    assert [groups[k]["operator"] for k in groups] == ["none", "random", "magnitude"]
    assert all(g["seeds"] == [1, 2, 3] for g in groups.values())
    assert groups["trial:0"]["values"]["remaining_fraction"] == [1.0, 1.0, 1.0]
    # p = 1: 30% of the live weights go in each of the 3 generations, on every seed (a count)
    for key in ("trial:1", "trial:2"):
        assert groups[key]["values"]["remaining_fraction"] == [0.3430110044486069] * 3
    tests = {(c["group"], c["metric"]): c for c in data["comparisons"]}
    # every pruned seed keeps fewer weights than every baseline seed: U = 0, exact
    # p = 2 / C(6, 3) = 0.1, Holm over the two tests of the metric: 0.2 each
    for key in ("trial:1", "trial:2"):
        c = tests[(key, "remaining_fraction")]
        assert c["reference"] == "trial:0"
        assert (c["result"]["u"], c["result"]["a12"], c["result"]["method"]) == (
            0, 0, "permutation"
        )  # fmt: skip
        assert c["result"]["p"] == pytest.approx(0.1) and c["p_holm"] == pytest.approx(0.2)
        assert c["result"]["magnitude"] == "large" and c["result"]["direction"] == "lower"
        val = tests[(key, "val_loss")]
        ref = mannwhitneyu(
            groups[key]["values"]["val_loss"], groups["trial:0"]["values"]["val_loss"]
        )
        assert val["result"]["p"] == pytest.approx(float(ref.pvalue), abs=1e-15)
    # the study logged the same statistics and plots to its MLflow run
    study = optuna.load_study(
        study_name="grid",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(project.journal / "grid.journal"))
        ),
    )
    client = MlflowClient(project.tracking_uri)
    parent = study.user_attrs["evoprune.parent_run_id"]
    files = {f.path for f in client.list_artifacts(parent, "stats")}
    assert files == {
        "stats/stats.json", "stats/stats.md", "stats/box_val_loss.png",
        "stats/box_remaining_fraction.png", "stats/pareto_front.png",
    }  # fmt: skip
    logged = Path(client.download_artifacts(parent, "stats/stats.json", str(project.root)))
    assert json.loads(logged.read_text()) == data

    # --against, --metric, --plots
    plots = project.root / "plots"
    args = [*report, "--against", "canonical/magnitude/fixed", "--metric", "test_loss"]
    assert main([*args, "--plots", str(plots), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    tested = [r for r in rows if r["p"]]
    assert {(r["group"], r["metric"], r["reference"]) for r in tested} == {
        ("trial:0", "test_loss", "trial:2"), ("trial:1", "test_loss", "trial:2")
    }  # fmt: skip
    assert sorted(p.name for p in plots.iterdir()) == ["box_test_loss.png", "pareto_front.png"]

    # a bad reference: one line, exit 2, nothing written
    bad = project.root / "bad-plots"
    assert main([*report, "--against", "canonical/taylor", "--plots", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: --against: unknown combination")
    assert err.endswith(
        "allowed: canonical/magnitude/fixed, canonical/none, canonical/random/fixed, "
        "or trial:<number> of a completed trial"
    )
    assert not bad.exists()
    assert main(["report", str(path), "--store", str(project.store), "--against", "x"]) == 2
    assert "--against: only with --stats" in capsys.readouterr().err
    assert main([*report, "--plots", str(path)]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_quickstart_is_two_objective() -> None:
    from evoprune_core.plugins import Registry
    from evoprune_core.study import load_study_config

    root = Path(__file__).resolve().parents[2]
    registry = Registry.load(env={"EVOPRUNE_PLUGINS": "none"})
    cfg = load_study_config(root / "studies" / "quickstart.toml", registry)
    assert cfg.objectives == ("val_loss", "remaining_fraction") and cfg.baseline
