"""Engines are plugins: an in-test engine registered through the hook runs a study trial."""

from __future__ import annotations

import json
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from evoprune_core import Engine, Param, ResolvedRun, hookimpl
from evoprune_core.cli import main
from evoprune_core.data import Dataset
from evoprune_core.engines.result import Observer, RunResult
from evoprune_core.engines.runtime import Streams
from evoprune_core.errors import ConfigError
from evoprune_core.loading import load_run
from evoprune_core.plugins import Registry
from evoprune_core.population import Population
from evoprune_core.study import load_study_config, resolve_store, run_study
from tests.conftest import Project


class TinyEngine(Engine):
    """No training: one fresh network, its validation L1 times ``scale`` per generation."""

    name = "tiny"
    description = "an untrained network, scored each generation"
    parameters = (Param("scale", "float", 1.0, low=0.5, high=2.0),)

    def run(
        self, run: ResolvedRun, observer: Observer | None = None, dataset: Dataset | None = None
    ) -> RunResult:
        cfg = run.config
        data = run.build_dataset() if dataset is None else dataset
        pop = Population.create(cfg.network.architecture(data.dim), 1, Streams(cfg.seed).init)
        val = float(pop.l1(data.val)[0]) * self.params["scale"]
        history = []
        for t in range(cfg.generations):
            record = {"generation": t, "val_loss": val, "remaining_fraction": 1.0}
            history.append(record)
            if observer is not None:
                observer.generation(t, record)
        return RunResult(
            config=cfg,
            history=history,
            train_loss=float(pop.l1(data.train)[0]),
            val_loss=val,
            test_loss=float(pop.l1(data.test)[0]),
            sparsity=pop.sparsity(0),
            seconds=0.0,
            population=pop,
            components=run.components(),
        )


class _EnginePlugin:
    @hookimpl
    def evoprune_register_engines(self) -> list[Any]:
        return [TinyEngine]


@pytest.fixture
def registry() -> Registry:
    return Registry.load(env={"EVOPRUNE_PLUGINS": "none"}, extra=[(_EnginePlugin(), "tiny-dist")])


BASE = {
    "generations": 2,
    "data": {"name": "binary-clustering", "params": {"clusters": 2, "dims": 16}},
    "network": {"encoder": [4, 2]},
}


def test_a_plugin_engine_runs_with_its_parameters_and_provenance(registry: Registry) -> None:
    run = load_run(None, ["engine='tiny'", "engines.tiny.scale=2.0"], registry, base=dict(BASE))
    assert isinstance(run.engine, TinyEngine) and run.engine.params == {"scale": 2.0}
    assert run.config.engines == {"tiny": {"scale": 2.0}}
    one = load_run(None, ["engine='tiny'"], registry, base=dict(BASE)).run()
    two = run.run()
    assert two.val_loss == pytest.approx(2.0 * one.val_loss, rel=1e-6)
    summary = two.summary()
    assert summary["components"]["engine"] == {
        "name": "tiny",
        "distribution": "tiny-dist",
        "version": "in-process",
    }
    assert summary["engine_distribution"] == "tiny-dist"
    assert summary["dataset_distribution"] == "evoprune"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["engine='nope'"], "engine: unknown engine 'nope'; allowed: canonical, coevolution, tiny"),
        (["engine='tiny'", "engines.tiny.scale=9.0"], "engines.tiny.scale: expected float in"),
        (["engines.tiny.scale=1.0"], "engines.tiny: parameters of an engine this run does not use"),
    ],
)
def test_engine_names_and_parameters_are_validated(
    registry: Registry, overrides: list[str], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_run(None, overrides, registry, base=dict(BASE))
    assert message in str(info.value)


def test_a_study_trial_runs_on_the_plugin_engine_with_only_its_keys(
    stored_project: Project, registry: Registry
) -> None:
    project = stored_project
    base = """
[base]
generations = 2
[base.data]
name = "binary-clustering"
params = { clusters = 2, dims = 16 }
[base.network]
encoder = [4, 2]
"""
    space = """
[space]
engine = { choices = ["canonical", "tiny"] }
"engines.tiny.scale" = { choices = [0.5, 2.0] }
"coevolution.cells" = { choices = [2, 3] }
"""
    header = 'sampler = "grid"\nbaseline = false'
    path = project.study_file(name="eng", n_trials=10, header=header, base=base, space=space)
    cfg = load_study_config(path, registry)
    store = resolve_store(cfg.name, project.store, None, None)
    outcome = run_study(cfg, store, registry, quiet=True)
    # tiny x 2 scales + canonical (reads neither engines.tiny.* nor coevolution.*)
    assert (outcome.complete, outcome.failed, outcome.target) == (3, 0, 3)
    study = optuna.load_study(
        study_name="eng",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(store.journal))
        ),
    )
    params = sorted(json.dumps(t.params, sort_keys=True) for t in study.trials)
    assert params == [
        '{"engine": "canonical"}',
        '{"engine": "tiny", "engines.tiny.scale": 0.5}',
        '{"engine": "tiny", "engines.tiny.scale": 2.0}',
    ]
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    by_scale = {
        t.params.get("engines.tiny.scale"): t.values[0]
        for t in study.trials
        if t.params["engine"] == "tiny"
    }
    assert by_scale[2.0] == pytest.approx(4.0 * by_scale[0.5], rel=1e-6)


def test_plugins_command_lists_engines(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--json"]) == 0
    desc = json.loads(capsys.readouterr().out)
    core = next(p for p in desc if p["builtin"])
    engines = {e["name"]: e for e in core["provides"]["engines"]}
    assert sorted(engines) == ["canonical", "coevolution"]
    assert engines["coevolution"]["keys"] == ["coevolution"]
    assert engines["canonical"]["keys"] == []


def test_engines_read_only_their_keys() -> None:
    from evoprune_core.engines import CanonicalEngine, CoevolutionEngine

    assert CoevolutionEngine.reads("coevolution.cells")
    assert not CanonicalEngine.reads("coevolution.cells")
    assert CanonicalEngine.reads("pruning.amount") and CanonicalEngine.reads("generations")
    assert TinyEngine.reads("engines.tiny.scale") and not TinyEngine.reads("engines.other.x")
    assert not TinyEngine.reads("coevolution.radius")


@pytest.mark.parametrize(
    ("old", "names"),
    [
        ("common", ("Compute", "Observer", "RunResult", "Streams", "calibration")),
        ("pruning", ("prune_event", "build_context", "masks_to_flat")),
        ("training", ("Trainer", "loss_value", "LOSSES")),
    ],
)
def test_the_old_engine_module_paths_still_import_and_say_they_are_deprecated(
    old: str, names: tuple[str, ...]
) -> None:
    import importlib
    import sys

    from evoprune_core.engines import result, runtime, steps

    name = f"evoprune_core.engines.{old}"
    sys.modules.pop(name, None)
    with pytest.warns(DeprecationWarning, match=f"^{name} is deprecated: import from "):
        mod = importlib.import_module(name)
    for attr in names:  # the very objects of their new homes
        new = next(m for m in (runtime, result, steps) if hasattr(m, attr))
        assert getattr(mod, attr) is getattr(new, attr)
