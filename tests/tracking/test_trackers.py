"""Trackers are plugins: the built-ins pass the conformance kit, a study picks one by name,
``tracking = "none"`` writes no MLflow store, and a plugin tracker receives the study."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import optuna
import pytest

from evoprune_core import hookimpl
from evoprune_core.cli import main
from evoprune_core.plugins import Registry
from evoprune_core.study import load_study_config, resolve_store, run_study
from evoprune_core.testing import check_tracker
from evoprune_core.tracking import NoTracker, NoTrial, StudyRun, Tracker, TrackerBackend
from tests.conftest import Project


def test_the_none_tracker_passes_the_kit() -> None:
    check_tracker(NoTracker)


def test_the_mlflow_tracker_passes_the_kit(tmp_path: Path, empty_mlflow_db: Path) -> None:
    shutil.copy(empty_mlflow_db, tmp_path / "mlflow.db")
    check_tracker(Tracker, f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts")


def test_a_study_with_tracking_none_never_imports_mlflow(project: Project) -> None:
    """MLflow takes ~1.5 s to import (in every worker process too): a study that tracks nothing
    must not pay it. A fresh interpreter, as the command runs."""
    path = project.study_file("quiet", n_trials=1, header='tracking = "none"')
    code = (
        "import sys\n"
        "from evoprune_core.cli import main\n"
        f"rc = main({project.args(path)!r})\n"
        "print(rc, sorted(m for m in sys.modules if m.split('.')[0] in ('mlflow', 'alembic')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.stdout.splitlines()[-1:] == ["0 []"], done.stderr[-2000:]


class _Forgetful(NoTracker):
    """Starts a new study run every time: a resumed study would lose its parent run."""

    name: ClassVar[str] = "forgetful"

    def __init__(self, tracking_uri: str, artifact_root: Path | None = None) -> None:
        super().__init__(tracking_uri, artifact_root)
        self.count = 0

    def start_study(self, name: str, params: dict[str, Any]) -> StudyRun:
        self.count += 1
        return StudyRun("e", f"run-{id(self)}-{self.count}")


def test_the_kit_names_what_a_broken_tracker_gets_wrong() -> None:
    with pytest.raises(AssertionError, match=r"^check_study_is_found_again: forgetful: a resumed"):
        check_tracker(_Forgetful)

    class Nameless(NoTracker):
        name: ClassVar[str] = "no name"

    with pytest.raises(AssertionError, match=r"^check_declaration: Nameless: no valid name"):
        check_tracker(Nameless)


def test_a_study_with_tracking_none_runs_and_writes_no_mlflow_store(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    path = project.study_file("quiet", n_trials=2, header='tracking = "none"')
    assert main(project.args(path)) == 0
    out = capsys.readouterr().out
    assert "2/2 trials complete" in out and "tracking: none" in out and "MLflow" not in out
    assert not (project.store / "mlflow.db").exists()
    assert not (project.store / "artifacts").exists()
    assert sorted(p.name for p in project.store.iterdir()) == ["optuna"]
    study = optuna.load_study(
        study_name="quiet", storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(project.store / "optuna" / "quiet.journal"))
        )
    )  # fmt: skip
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(done) == 2 and all(t.user_attrs["evoprune.results"] for t in done)
    assert {t.user_attrs["evoprune.mlflow_run_id"] for t in done} == {""}


def test_an_unknown_tracker_is_one_line_naming_the_allowed(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    path = project.study_file("typo", header='tracking = "mlfow"')
    assert main(project.args(path)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {path}: tracking: unknown tracker 'mlfow'; allowed: mlflow, none"]
    assert not project.store.exists()


class _Recording(NoTracker):
    """A plugin tracker that remembers what the study told it."""

    name: ClassVar[str] = "recording"
    seen: ClassVar[list[tuple[str, Any]]] = []

    def start_study(self, name: str, params: dict[str, Any]) -> StudyRun:
        self.seen.append(("study", name))
        return StudyRun("exp", "parent")

    def start_trial(self, study: StudyRun, name: str, number: int, tags: dict[str, str]) -> Any:
        self.seen.append(("trial", (study.run_id, number)))
        return super().start_trial(study, name, number, tags)

    def finish_study(self, study: StudyRun, status: str = "FINISHED") -> None:
        self.seen.append(("finish", status))


class _Plugin:
    @hookimpl
    def evoprune_register_trackers(self) -> list[type[TrackerBackend]]:
        return [_Recording]


def test_a_plugin_tracker_is_selected_by_name(project: Project) -> None:
    registry = Registry.load(env={"EVOPRUNE_PLUGINS": "none"}, extra=[(_Plugin(), "rec-plugin")])
    assert registry.names("tracker") == ["mlflow", "none", "recording"]
    path = project.study_file("rec", n_trials=2, header='tracking = "recording"')
    cfg = load_study_config(path, registry)
    store = resolve_store(cfg.name, project.store, None, None, tracked=_Recording.uses_store)
    _Recording.seen.clear()
    outcome = run_study(cfg, store, registry, quiet=True)
    assert (outcome.complete, outcome.parent_run_id) == (2, "parent")
    assert _Recording.seen == [
        ("study", "rec"),
        ("trial", ("parent", 0)),
        ("trial", ("parent", 1)),
        ("finish", "FINISHED"),
    ]
    assert not (project.store / "mlflow.db").exists()


class _Files(NoTracker):
    """A plugin tracker that keeps the artifact paths it is given, per run."""

    name: ClassVar[str] = "files"
    logged: ClassVar[dict[str, list[str]]] = {}

    def start_study(self, name: str, params: dict[str, Any]) -> StudyRun:
        return StudyRun("exp", "parent")

    def start_trial(self, study: StudyRun, name: str, number: int, tags: dict[str, str]) -> Any:
        return NoTrial(f"run-{number}")

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        assert path.is_file() and path.stat().st_size > 0, path
        where = f"{artifact_path}/{path.name}" if artifact_path else path.name
        self.logged.setdefault(run_id, []).append(where)


class _FilesPlugin:
    @hookimpl
    def evoprune_register_trackers(self) -> list[type[TrackerBackend]]:
        return [_Files]


def test_a_plugin_tracker_gets_plots_and_model_for_the_best_trial_only(project: Project) -> None:
    """``artifacts = "best"`` with a plugin tracker: every trial sends its configuration and
    history, keeps its state in the store, and the best trial's plots, masks and model go to
    the tracker at the end, once (a resume sends nothing again); "none": config and history."""
    registry = Registry.load(env={"EVOPRUNE_PLUGINS": "none"}, extra=[(_FilesPlugin(), "files")])
    space = '[space]\n"pruning.operator" = { choices = ["random", "magnitude"] }\n'
    path = project.study_file("pf", n_trials=3, header='tracking = "files"', space=space)
    cfg = load_study_config(path, registry)
    store = resolve_store(cfg.name, project.store, None, None, tracked=_Files.uses_store)
    _Files.logged.clear()
    assert run_study(cfg, store, registry, quiet=True).complete == 3
    best = optuna.load_study(
        study_name="pf",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(store.journal))
        ),
    ).best_trial.number
    rich = {"plots/training.png", "plots/layer_sparsity.png", "masks/population.pt",
            "model/MLmodel"}  # fmt: skip
    trials = {k: v for k, v in _Files.logged.items() if k != "parent"}  # parent: the study's
    assert set(trials) == {"run-0", "run-1", "run-2"}
    for run_id, files in trials.items():
        if run_id == f"run-{best}":
            assert {"config.json", "history.csv"} | rich <= set(files)
            assert len(files) == len(set(files))  # each file once
        else:
            assert sorted(files) == ["config.json", "history.csv"]
    states = sorted(p.name for p in store.artifact_state("pf").iterdir())
    assert states == ["t0000", "t0001", "t0002"]  # every trial's state, kept
    assert (store.artifact_state("pf") / f"t{best:04d}" / "complete").exists()
    before = {k: list(v) for k, v in trials.items()}
    assert run_study(cfg, store, registry, quiet=True).complete == 3  # resumed: nothing to do
    assert {k: v for k, v in _Files.logged.items() if k != "parent"} == before

    path = project.study_file("pn", n_trials=2, header='tracking = "files"\nartifacts = "none"')
    cfg = load_study_config(path, registry)
    store = resolve_store(cfg.name, project.store, None, None, tracked=_Files.uses_store)
    _Files.logged.clear()
    assert run_study(cfg, store, registry, quiet=True).complete == 2
    assert {k: sorted(v) for k, v in _Files.logged.items() if k != "parent"} == {
        f"run-{n}": ["config.json", "history.csv"] for n in (0, 1)
    }
    assert not store.artifact_state("pn").exists()
