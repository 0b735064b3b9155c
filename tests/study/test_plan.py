"""A study says at its start how many trials it runs and how many are baselines; a grid runs
all of its combinations and baselines whatever ``n_trials`` says."""

from __future__ import annotations

import optuna
import pytest

from evoprune_core.cli import main
from evoprune_core.plugins import Registry
from evoprune_core.study import load_study_config, plan_text, target_trials
from tests.conftest import Project

GRID_SPACE = """
[space]
"pruning.operator" = { choices = ["random", "magnitude"] }
"pruning.schedule" = { choices = ["fixed", "increase"] }
"""
TPE_SPACE = '[space]\nengine = { choices = ["canonical", "coevolution"] }\n'


def test_the_plan_counts_baselines(project: Project) -> None:
    registry = Registry.load()
    tpe = load_study_config(project.study_file(n_trials=48, space=TPE_SPACE), registry)
    assert plan_text(tpe, registry) == "study 'tiny': 48 trials: 2 baselines + 46 sampled"
    assert plan_text(tpe, registry, 1) == "study 'tiny': 1 trial: 1 baseline"
    path = project.study_file(name="nob", n_trials=3, header="baseline = false")
    assert plan_text(load_study_config(path, registry), registry) == (
        "study 'nob': 3 trials: 3 sampled"
    )


def test_a_grid_runs_every_combination_whatever_n_trials_says(
    stored_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project = stored_project
    registry = Registry.load()
    path = project.study_file(
        n_trials=4, header='sampler = "grid"\ntune_plugin_params = false', space=GRID_SPACE
    )
    cfg = load_study_config(path, registry)
    assert target_trials(cfg, registry) == target_trials(cfg, registry, 2) == 5
    assert plan_text(cfg, registry) == (
        "study 'tiny': 5 trials: 1 baseline + 4 grid combinations (a grid runs all of them; "
        "n_trials = 4 does not apply)"
    )
    args = [a for a in project.args(path) if a != "--quiet"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines()[0] == plan_text(cfg, registry)
    assert "5/5 trials complete" in captured.out
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(project.journal / "tiny.journal"))
    )
    trials = optuna.load_study(study_name="tiny", storage=storage).trials
    combos = sorted(
        (t.params.get("pruning.operator", "none"), t.params.get("pruning.schedule", "-"))
        for t in trials
    )
    assert combos == [
        ("magnitude", "fixed"), ("magnitude", "increase"), ("none", "-"),
        ("random", "fixed"), ("random", "increase"),
    ]  # fmt: skip
