"""Study files and the search space (``study/_config.py``): conditional sampling, grids, declared
parameters, every shipped study file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest

from evoprune_core.errors import ConfigError
from evoprune_core.plugins import Registry
from evoprune_core.study import (
    grid_designs,
    load_study_config,
    sample_updates,
)
from tests.conftest import Project

optuna.logging.set_verbosity(optuna.logging.WARNING)


COND_SPACE = """
[space]
engine = { choices = ["canonical", "coevolution"] }
"pruning.operator" = { choices = ["random", "conjunctive", "toy"] }
"pruning.schedule" = { choices = ["fixed", "exponential"] }
"pruning.amount" = { low = 0.05, high = 0.3 }
"coevolution.cells" = { low = 2, high = 4 }
"coevolution.radius" = { low = 1, high = 2 }
"""


def test_conditional_space_samples_only_what_applies(project: Project, registry: Registry) -> None:
    cfg = load_study_config(project.study_file(space=COND_SPACE), registry)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen: set[tuple[str, str]] = set()
    for _ in range(80):
        trial = study.ask()
        updates = sample_updates(lambda n, d, t=trial: _suggest(t, n, d), cfg, registry)
        names = set(trial.params)
        engine, op = trial.params["engine"], trial.params["pruning.operator"]
        sched = trial.params["pruning.schedule"]
        seen.add((engine, op))
        coev = {"coevolution.cells", "coevolution.radius"}
        assert (coev <= names) if engine == "coevolution" else not (coev & names)
        assert ("pruning.amount" in names) == (op == "random")
        op_names = {n for n in names if n.startswith("operator.")}
        expected = {
            "random": set(),
            "conjunctive": {
                "operator.conjunctive.threshold",
                "operator.conjunctive.cases",
                "operator.conjunctive.stop",
            },
            "toy": {"operator.toy.strength", "operator.toy.mode"},
        }[op]
        assert op_names == expected
        sched_names = {n for n in names if n.startswith("schedule.")}
        assert sched_names == (
            {"schedule.exponential.steepness"} if sched == "exponential" else set()
        )
        rc = cfg.base.with_updates(updates, registry)  # every sample is a valid run config
        assert set(rc.pruning.operator_params) >= {n.split(".")[-1] for n in op_names}
        study.tell(trial, 0.0)
    assert len(seen) == 6

    baseline = optuna.create_study().ask()
    updates = sample_updates(lambda n, d: _suggest(baseline, n, d), cfg, registry, baseline=True)
    assert updates["pruning.operator"] == "none"
    assert not any(n.startswith(("pruning.", "operator.", "schedule.")) for n in baseline.params)


def _suggest(trial: optuna.Trial, name: str, d: Any) -> Any:
    from evoprune_core.study._trial import _suggest as suggest

    return suggest(trial, name, d)


def test_grid_is_a_full_factorial_that_respects_conditions(
    project: Project, registry: Registry
) -> None:
    space = """
[space]
engine = { choices = ["canonical", "coevolution"] }
"pruning.operator" = { choices = ["random", "toy"] }
"coevolution.radius" = { low = 1, high = 2 }
"""
    cfg = load_study_config(project.study_file(header='sampler = "grid"', space=space), registry)
    designs = grid_designs(cfg, registry)
    # canonical: random, toy x mode(a, b) = 3; coevolution: the same x radius(1, 2) = 6
    assert len(designs) == 9
    assert len({json.dumps(d, sort_keys=True) for d in designs}) == 9
    assert all("coevolution.radius" not in d for d in designs if d["engine"] == "canonical")
    assert all("operator.toy.strength" not in d for d in designs)  # floats keep defaults

    bad = project.study_file(
        name="g2",
        header='sampler = "grid"',
        space='[space]\n"pruning.amount" = { low = 0.1, high = 0.2 }',
    )
    with pytest.raises(ConfigError, match=r"g2.toml: space.pruning.amount: the grid sampler"):
        load_study_config(bad, registry)


def test_quickstart_study_file_is_valid() -> None:
    root = Path(__file__).resolve().parents[2]
    registry = Registry.load(env={"EVOPRUNE_PLUGINS": "none"})
    cfg = load_study_config(root / "studies" / "quickstart.toml", registry)
    assert set(cfg.space["engine"].choices) == {"canonical", "coevolution"}
    assert set(cfg.space["pruning.operator"].choices) == {
        n for n in registry.names("operator") if n not in ("none", "formula")
    }  # formula (an evolved expression) has its own files: studies/evolve/
    assert set(cfg.space["pruning.schedule"].choices) >= {
        "fixed", "increase", "decrease", "population", "exponential", "final_n"
    }  # fmt: skip


def test_declared_params_can_stay_at_their_defaults(project: Project, registry: Registry) -> None:
    space = (
        '[space]\n"pruning.operator" = { choices = ["variance", "conjunctive"] }\n'
        '"pruning.schedule" = { choices = ["fixed", "exponential"] }\n'
    )
    header = 'sampler = "grid"\ntune_plugin_params = false'
    cfg = load_study_config(project.study_file(header=header, space=space), registry)
    designs = grid_designs(cfg, registry)
    assert len(designs) == 4  # 2 operators x 2 schedules, no operator/schedule params
    assert all(set(d) == {"pruning.operator", "pruning.schedule"} for d in designs)
    tuned = load_study_config(project.study_file(header='sampler = "grid"', space=space), registry)
    # per schedule: variance direction x spread (4), conjunctive stop (2); numbers stay fixed
    assert len(grid_designs(tuned, registry)) == 2 * 4 + 2 * 2
    for d in designs:
        rc = cfg.base.with_updates(sample_updates(lambda n, _d, d=d: d[n], cfg, registry), registry)
        default = registry.operator(d["pruning.operator"]).obj().params
        assert rc.pruning.operator_params == default


@pytest.mark.parametrize(
    "path",
    sorted((Path(__file__).resolve().parents[2] / "studies").glob("*.toml"))
    + sorted((Path(__file__).resolve().parents[2] / "studies" / "paper").rglob("*.toml")),
    ids=lambda p: p.name,
)
def test_shipped_study_files_are_valid(path: Path, registry: Registry) -> None:
    cfg = load_study_config(path, registry)
    assert cfg.name and cfg.n_trials >= 1
    if cfg.sampler == "grid":
        assert len(grid_designs(cfg, registry)) >= 1
    if path.parent.name in ("paper", "claims"):  # the paper's grid: every design, 30 seeds
        designs = len(grid_designs(cfg, registry)) + (1 if cfg.baseline else 0)
        assert cfg.n_trials == designs and cfg.seeds == tuple(range(1, 31))


def test_baseline_of_a_study_whose_base_operator_has_parameters(registry: Registry) -> None:
    """The baseline trial drops the base operator's parameters with the operator (the paper's
    variance and conjunctive studies set them in [base.pruning])."""
    path = Path(__file__).resolve().parents[2] / "studies/paper/lipi10-variance-published.toml"
    cfg = load_study_config(path, registry)
    assert cfg.base.pruning.operator_params["direction"] == "high"
    updates = sample_updates(lambda n, d: d.grid_values()[0], cfg, registry, baseline=True)
    assert updates["pruning.operator"] == "none" and updates["pruning.operator_params"] == {}
    rc = cfg.base.with_updates(updates, registry)
    assert rc.pruning.operator == "none" and rc.pruning.operator_params == {}
