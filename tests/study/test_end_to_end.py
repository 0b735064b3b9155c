"""End-to-end studies on a real MLflow sqlite store and a real Optuna journal storage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import mlflow
import optuna
import pytest
import torch
from conftest import TINY_BASE, Project
from mlflow import MlflowClient
from optuna.trial import TrialState

import evoprune_core
from evoprune_core import Dataset, DatasetSpec, LayerMask, Operator, Param, hookimpl
from evoprune_core.cli import main
from evoprune_core.errors import ConfigError
from evoprune_core.plugins import Registry
from evoprune_core.study import (
    grid_designs,
    load_study_config,
    resolve_store,
    run_study,
    sample_updates,
)
from evoprune_core.tracking import param_value

optuna.logging.set_verbosity(optuna.logging.WARNING)


def load_study(project: Project, name: str) -> optuna.Study:
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(project.journal / f"{name}.journal"))
    )
    return optuna.load_study(study_name=name, storage=storage)


def runs(project: Project, name: str) -> list[Any]:
    mlflow.set_tracking_uri(project.tracking_uri)
    return mlflow.search_runs(experiment_names=[name], output_format="list")


def artifact_paths(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    out: set[str] = set()
    for f in client.list_artifacts(run_id, path):
        out |= artifact_paths(client, run_id, f.path) if f.is_dir else {f.path}
    return out


def mlflow_key(optuna_name: str) -> str:
    parts = optuna_name.split(".")
    if parts[0] in ("operator", "schedule") and len(parts) == 3:
        return f"pruning.{parts[0]}_params.{parts[2]}"
    return optuna_name


# -- end to end --------------------------------------------------------------------------
def test_study_end_to_end_hierarchy_metrics_artifacts_params(
    stored_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project = stored_project
    path = project.study_file(n_trials=3, header='seeds = [1, 2]\nartifacts = "all"')
    assert main(project.args(path)) == 0
    out = capsys.readouterr().out
    assert "Best combinations" in out and "evoprune ui" in out and "3/3 trials complete" in out

    study = load_study(project, "tiny")
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 3 and len(study.trials) == 3
    assert complete[0].user_attrs["evoprune.baseline"] is True  # the enqueued baseline first

    all_runs = runs(project, "tiny")
    parents = [r for r in all_runs if r.data.tags.get("evoprune.role") == "study"]
    children = [r for r in all_runs if r.data.tags.get("evoprune.role") == "trial"]
    assert len(parents) == 1 and len(children) == 3
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert all(c.info.status == "FINISHED" for c in children)

    client = MlflowClient(project.tracking_uri)
    by_number = {int(c.data.tags["trial_number"]): c for c in children}
    assert sorted(by_number) == [t.number for t in complete]
    for t in complete:
        run = by_number[t.number]
        params = run.data.params
        assert run.info.run_id == t.user_attrs["evoprune.mlflow_run_id"]
        assert params["trial_number"] == str(t.number) and params["seeds"] == "1,2"
        for name, value in t.params.items():  # every sampled value is the run's parameter
            assert params[mlflow_key(name)] == param_value(value), name
        assert params["network.encoder"] == "[8, 4]" and params["generations"] == "2"
        tags = run.data.tags
        assert tags["study"] == "tiny" and tags["engine"] == "canonical"
        assert tags["operator"] == params["pruning.operator"]
        assert tags["schedule"] == params["pruning.schedule"]
        assert tags["operator_distribution"] == "evoprune" and tags["evoprune_version"]
        for kind in ("engine", "operator", "schedule", "dataset"):  # every component's origin
            assert tags[f"{kind}_distribution"] == "evoprune"
            assert tags[f"{kind}_version"] == evoprune_core.__version__
        assert tags["dataset"] == "bc-10-100-1000"
        # per-generation metrics with steps (per seed, then the mean), final value at step G
        hist = client.get_metric_history(run.info.run_id, "val_loss")
        assert sorted(m.step for m in hist) == [0, 1, 2]
        seed2 = client.get_metric_history(run.info.run_id, "seed2.val_loss")
        assert sorted(m.step for m in seed2) == [0, 1, 2]
        res = t.user_attrs["evoprune.results"]
        assert [r["seed"] for r in res] == [1, 2]
        mean_val = (res[0]["val_loss"] + res[1]["val_loss"]) / 2
        assert t.value == pytest.approx(mean_val)
        assert run.data.metrics["val_loss"] == pytest.approx(mean_val)
        for key in ("test_loss", "remaining_fraction", "encoder_remaining_fraction", "seconds"):
            assert key in run.data.metrics
        files = artifact_paths(client, run.info.run_id)
        for f in ("config.json", "history.csv", "plots/training.png", "plots/layer_sparsity.png"):
            assert f in files
        assert {"model/MLmodel", "masks/population.pt"} <= files
    baseline = by_number[0]
    assert baseline.data.params["pruning.operator"] == "none"
    assert baseline.data.metrics["remaining_fraction"] == 1.0
    parent_files = artifact_paths(client, parent.info.run_id)
    assert {"best.md", "best.csv", "study.toml", "optuna/optimization_history.html"} <= parent_files

    # the compact model loads back and runs
    model = mlflow.pytorch.load_model(f"runs:/{children[0].info.run_id}/model")
    assert model(torch.zeros(3, 1000)).shape == (3, 1000)

    # the same command again: nothing re-runs, the parent run is found again
    assert main(project.args(path)) == 0
    assert len(load_study(project, "tiny").trials) == 3
    again = runs(project, "tiny")
    assert len(again) == 4
    assert [r.info.run_id for r in again if r.data.tags.get("evoprune.role") == "study"] == [
        parent.info.run_id
    ]

    # the table again from storage
    capsys.readouterr()
    assert main(["report", str(path), "--store", str(project.store), "--format", "json"]) == 0
    table = json.loads(capsys.readouterr().out)["best_combinations"]
    assert len(table) == len({(t.params.get("pruning.operator", "none"),) for t in complete})
    assert table[0]["val_loss"] == min(t.value for t in complete)
    assert main(["report", "tiny", "--store", str(project.store), "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("table,trial,engine,operator")


def test_sigkill_mid_trial_then_resume(stored_project: Project) -> None:
    project = stored_project
    base = TINY_BASE.replace("generations = 2", "generations = 60")
    path = project.study_file(name="killed", n_trials=2, base=base)
    cmd = [sys.executable, "-m", "evoprune_core.cli", *project.args(path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    victim = None
    try:
        deadline = time.monotonic() + 120
        while victim is None and time.monotonic() < deadline:
            time.sleep(0.5)
            if not (project.journal / "killed.journal").exists():
                continue
            try:
                trials = load_study(project, "killed").trials
            except KeyError:  # the journal exists, the study is not in it yet
                continue
            done = [t for t in trials if t.state == TrialState.COMPLETE]
            running = [
                t
                for t in trials
                if t.state == TrialState.RUNNING and "evoprune.mlflow_run_id" in t.user_attrs
            ]
            if done and running:
                victim = running[0]
        assert victim is not None, "no trial was running"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    before = {t.number: t.value for t in load_study(project, "killed").trials if t.value}
    assert (
        MlflowClient(project.tracking_uri)
        .get_run(victim.user_attrs["evoprune.mlflow_run_id"])
        .info.status
        == "RUNNING"
    )

    assert main(project.args(path)) == 0

    study = load_study(project, "killed")
    assert study.trials[victim.number].state == TrialState.FAIL
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 2
    for number, value in before.items():  # no completed trial lost or re-run
        assert study.trials[number].state == TrialState.COMPLETE
        assert study.trials[number].value == value
    run = MlflowClient(project.tracking_uri).get_run(victim.user_attrs["evoprune.mlflow_run_id"])
    assert run.info.status == "FAILED" and "died" in run.data.tags["error"]
    assert not [r for r in runs(project, "killed") if r.info.status == "RUNNING"]


def test_two_local_workers_lose_and_duplicate_nothing(stored_project: Project) -> None:
    project = stored_project
    path = project.study_file(name="pair", n_trials=4)
    assert main(project.args(path, "--workers", "2")) == 0
    study = load_study(project, "pair")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4
    children = [r for r in runs(project, "pair") if r.data.tags.get("evoprune.role") == "trial"]
    assert sorted(int(r.data.tags["trial_number"]) for r in children) == [0, 1, 2, 3]
    assert len({r.data.tags["mlflow.parentRunId"] for r in children}) == 1
    assert {t.user_attrs["evoprune.mlflow_run_id"] for t in study.trials} == {
        r.info.run_id for r in children
    }
    pids = {t.user_attrs["evoprune.pid"] for t in study.trials}
    assert len(pids) in (1, 2)  # the two worker processes (which one wins each ask is a race)
    assert os.getpid() not in {t.user_attrs["evoprune.pid"] for t in study.trials}


# -- the search space ---------------------------------------------------------------------
class _Toy(Operator):
    name = "toy"
    uses_amount = False
    parameters = (
        Param("strength", "float", 0.5, low=0.1, high=0.9),
        Param("mode", "categorical", "a", choices=("a", "b")),
        Param("hidden", "int", 3, low=1, high=5, tunable=False),
    )

    def prune(self, ctx: Any) -> list[LayerMask]:
        return ctx.unchanged()


class _Boom(Operator):
    name = "boom"

    def prune(self, ctx: Any) -> list[LayerMask]:
        raise RuntimeError("boom operator exploded")


def _nan_rows(params: dict[str, Any], seed: int) -> Dataset:
    rows = torch.full((20, 16), float("nan"))
    return Dataset("nan-rows", rows, rows.clone(), rows.clone())


class _TestPlugin:
    @hookimpl
    def evoprune_register_operators(self) -> list[Any]:
        return [_Toy, _Boom]

    @hookimpl
    def evoprune_register_datasets(self) -> list[Any]:
        return [DatasetSpec("nan-rows", (), _nan_rows)]


@pytest.fixture
def registry() -> Registry:
    return Registry.load(env={"EVOPRUNE_PLUGINS": "none"}, extra=[(_TestPlugin(), "test-ops")])


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


def test_failing_trials_become_failed_runs_and_the_study_goes_on(
    stored_project: Project, registry: Registry
) -> None:
    project = stored_project
    space = """
[space]
"pruning.operator" = { choices = ["random", "boom"] }
"data.name" = { choices = ["bc-10-100-1000", "nan-rows"] }
"""
    header = 'sampler = "grid"\nbaseline = false'
    base = TINY_BASE + "[base.pruning]\nprobability = 1.0\n"
    path = project.study_file(name="faults", n_trials=4, header=header, base=base, space=space)
    cfg = load_study_config(path, registry)
    store = resolve_store(cfg.name, project.store, None, None)
    outcome = run_study(cfg, store, registry, quiet=True)
    assert (outcome.complete, outcome.failed, outcome.target) == (1, 3, 4)

    study = load_study(project, "faults")
    states = {(t.params["pruning.operator"], t.params["data.name"]): t.state for t in study.trials}
    assert states == {
        ("random", "bc-10-100-1000"): TrialState.COMPLETE,
        ("random", "nan-rows"): TrialState.FAIL,
        ("boom", "bc-10-100-1000"): TrialState.FAIL,
        ("boom", "nan-rows"): TrialState.FAIL,
    }
    children = {
        (r.data.params["pruning.operator"], r.data.params["data.name"]): r
        for r in runs(project, "faults")
        if r.data.tags.get("evoprune.role") == "trial"
    }
    assert children[("random", "bc-10-100-1000")].info.status == "FINISHED"
    nan_run = children[("random", "nan-rows")]
    assert nan_run.info.status == "FAILED"
    # the dataset is refused before any training: its rows are not finite
    assert (
        nan_run.data.tags["error"] == "DataError: dataset 'nan-rows': train has non-finite values"
    )
    boom = children[("boom", "bc-10-100-1000")]
    assert boom.info.status == "FAILED"
    assert boom.data.tags["error"] == "RuntimeError: boom operator exploded"
    assert boom.data.tags["operator_distribution"] == "test-ops"


# -- bad input: one line, exit status 2, nothing created -----------------------------------
@pytest.mark.parametrize(
    ("header", "space", "message"),
    [
        ("colour = 1", "", "bad.toml: colour: unknown key; allowed: name, description, n_trials"),
        ('objectives = ["test_loss"]', "", "bad.toml: objectives.0: Input should be"),
        ("", '[space]\n"pruning.operator" = { choices = ["nope"] }', "unknown operator 'nope'"),
        (
            "",
            '[space]\n"pruning.amontt" = { low = 0.1, high = 0.2 }',
            "pruning.amontt: unknown key",
        ),
        ("", '[space]\n"pruning.amount" = { low = 0.1, high = 2.0 }', "pruning.amount: Input"),
        ('sampler = "grid"', '[space]\n"pruning.probability" = { low = 0.1, high = 0.9 }', "grid"),
        ("", '[space]\n"seed" = { choices = [1, 2] }', "space.seed: not allowed"),
    ],
)
def test_bad_study_file_is_one_line_exit_2_nothing_created(
    project: Project, capsys: pytest.CaptureFixture[str], header: str, space: str, message: str
) -> None:
    path = project.study_file(name="bad", header=header, space=space, file="bad.toml")
    assert main(project.args(path)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err
    assert not project.store.exists()


def test_bad_options_exit_2(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    path = project.study_file()
    assert main(project.args(path, "--storage", "redis://x")) == 2
    assert "--storage" in capsys.readouterr().err
    assert main(project.args(path, "--workers", "0")) == 2
    assert main(["report", "missing", "--store", str(project.store)]) == 2
    assert main(["ui", "--store", str(project.store)]) == 2
    assert not project.store.exists()


def test_quickstart_study_file_is_valid() -> None:
    root = Path(__file__).resolve().parents[1]
    registry = Registry.load(env={"EVOPRUNE_PLUGINS": "none"})
    cfg = load_study_config(root / "studies" / "quickstart.toml", registry)
    assert set(cfg.space["engine"].choices) == {"canonical", "coevolution"}
    assert set(cfg.space["pruning.operator"].choices) == {
        n for n in registry.names("operator") if n not in ("none", "formula")
    }  # formula (an evolved expression) has its own files: studies/evolve/
    assert set(cfg.space["pruning.schedule"].choices) >= {
        "fixed", "increase", "decrease", "population", "exponential", "final_n"
    }  # fmt: skip


def test_ui_serves_the_project_store_and_prints_its_address(
    stored_project: Project, free_port: Any
) -> None:
    import urllib.request

    from mlflow import MlflowClient

    db = stored_project.store / "mlflow.db"
    exp = MlflowClient(f"sqlite:///{db}").create_experiment("demo-study")
    port = free_port()
    cmd = [sys.executable, "-m", "evoprune_core.cli", "ui", "--store", str(stored_project.store)]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert line.startswith(f"MLflow UI at http://127.0.0.1:{port}")
        study_line = proc.stdout.readline().decode()
        assert study_line.strip() == (
            f"demo-study: http://127.0.0.1:{port}/#/experiments/{exp}"
            "/runs?workflowType=machine_learning"
        )
        deadline, status = time.monotonic() + 60, 0
        while time.monotonic() < deadline and status != 200:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    status = r.status
            except OSError:
                time.sleep(0.5)
        assert status == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the UI and the workers it started
        proc.wait(timeout=30)


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
    sorted((Path(__file__).resolve().parents[1] / "studies").glob("*.toml"))
    + sorted((Path(__file__).resolve().parents[1] / "studies" / "paper").rglob("*.toml")),
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
    path = Path(__file__).resolve().parents[1] / "studies/paper/lipi10-variance-published.toml"
    cfg = load_study_config(path, registry)
    assert cfg.base.pruning.operator_params["direction"] == "high"
    updates = sample_updates(lambda n, d: d.grid_values()[0], cfg, registry, baseline=True)
    assert updates["pruning.operator"] == "none" and updates["pruning.operator_params"] == {}
    rc = cfg.base.with_updates(updates, registry)
    assert rc.pruning.operator == "none" and rc.pruning.operator_params == {}
