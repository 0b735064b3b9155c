"""The `formula` operator: conformance kit, both engines, a study sampling hall-of-fame texts."""

from __future__ import annotations

import pytest
import torch

from evoprune_core.cli import main
from evoprune_core.errors import ConfigError
from evoprune_core.evolve.operator import FormulaOperator
from evoprune_core.evolve.seeds import SEEDS
from evoprune_core.loading import load_run_config, run
from evoprune_core.operators import builtin_operators
from evoprune_core.plugins import Registry
from evoprune_core.testing import parametrize_with_checks
from tests.conftest import Project

SMALL = [
    "data.name=binary-clustering",
    "data.params.dims=60",
    "data.params.clusters=3",
    "data.params.rows_per_cluster=30",
    "network.encoder=[12, 4]",
    "generations=3",
    "training.batch_size=10",
    "pruning.operator=formula",
    "pruning.probability=1.0",
    "pruning.amount=0.25",
]


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load(entry_points=False)


def test_formula_is_a_builtin_operator(registry: Registry) -> None:
    found = registry.operator("formula")
    assert found.obj is FormulaOperator and found.distribution == "evoprune"
    assert FormulaOperator not in builtin_operators()  # registered by the built-in plugin
    assert FormulaOperator.needs == {"activations", "labels"}


@parametrize_with_checks([FormulaOperator(expression=SEEDS["geomedian"])], time_limit=20)
# the default (SymDiv) is checked with every built-in in test_testing.py
def test_formula_conforms(operator: object, check: object) -> None:
    check(operator)  # type: ignore[operator]


def test_bad_expression_is_a_config_error_with_the_position() -> None:
    with pytest.raises(ConfigError, match=r"^pruning.operators.formula.expression: position 5: "):
        FormulaOperator(expression="mean(Z)")


@pytest.mark.parametrize("engine", ["canonical", "coevolution"])
def test_formula_runs_in_both_engines_and_removes_whole_units(registry, engine: str) -> None:
    extra = ["coevolution.cells=2"] if engine == "coevolution" else []
    cfg = load_run_config(None, [*SMALL, f"engine={engine}", *extra], registry)
    r = run(cfg, registry)
    assert sum(h["pruning_events"] for h in r.history) >= 3
    enc = r.population.encoders
    dead = (enc.weight(0, enc.masks).sum(1) == 0) & (enc.bias(0, enc.masks) == 0)  # (n, 12)
    # 3 events of 25% of the alive units of a 12-unit layer: 12 -> 9 -> 7 -> 5 alive
    assert dead[r.best].sum().item() == 7
    fr = [h["remaining_fraction"] for h in r.history]
    assert fr == sorted(fr, reverse=True) and fr[-1] < 0.7


def test_a_study_samples_among_formula_texts(stored_project: Project) -> None:
    project = stored_project
    space = (
        '[space]\n"pruning.operator" = { choices = ["formula"] }\n'
        '"operator.formula.expression" = { choices = ["sum(abs(WI))", "mean(X)"] }\n'
    )
    path = project.study_file(name="formulas", n_trials=3, header="baseline = false", space=space)
    assert main(project.args(path)) == 0
    import optuna

    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(project.journal / "formulas.journal"))
    )
    trials = optuna.load_study(study_name="formulas", storage=storage).trials
    seen = {t.params["operator.formula.expression"] for t in trials}
    assert seen <= {"sum(abs(WI))", "mean(X)"} and len(trials) == 3
    assert all(t.value is not None and t.value < 0.5 for t in trials)


def test_a_study_refuses_a_bad_formula_choice(project: Project, capsys) -> None:
    space = (
        '[space]\n"pruning.operator" = { choices = ["formula"] }\n'
        '"operator.formula.expression" = { choices = ["mean(X)", "__import__(X)"] }\n'
    )
    path = project.study_file(name="bad", space=space)
    assert main(project.args(path)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "space.operator.formula.expression.choices[1]" in err and "position 0" in err
    assert not project.store.exists()


def test_formula_scores_drive_the_choice_of_units() -> None:
    from evoprune_core.engines.steps import build_context
    from evoprune_core.population import Architecture, Population

    pop = Population.create(Architecture(6, (4, 2), (4,)), 1, torch.Generator().manual_seed(0))
    enc = pop.encoders
    enc.weight(0)[0] = torch.tensor([[0.1, 2.0, -3.0, 0.5]] * 6)  # (in, out): column = unit
    rows = torch.rand(10, 6, generator=torch.Generator().manual_seed(1))
    op = FormulaOperator(expression="sum(abs(WI))")
    ctx = build_context(
        pop, [0], op, 0.5, rows, torch.zeros(10, dtype=torch.long), torch.Generator()
    )
    masks = op.prune(ctx)
    # |WI| sums: 0.6, 12, 18, 3 -> the two lowest (units 0 and 3) lose their rows and biases
    assert masks[0].bias[0].tolist() == [False, True, True, False]
    assert masks[0].weight[0].any(1).tolist() == [False, True, True, False]
