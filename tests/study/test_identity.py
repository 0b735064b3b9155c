"""A study's identity is its content: resuming an edited study file is refused with the keys
that changed, ``--fork NAME`` runs it as a new study, a hash-less older study is adopted once."""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from evoprune_core._identity import changes, content_hash
from evoprune_core.cli import main
from evoprune_core.errors import ConfigError
from evoprune_core.plugins import Registry
from evoprune_core.study import Attr, load_study_config
from evoprune_core.study._identity import check_identity, study_content
from tests.conftest import TINY_BASE, Project

SPACE = '[space]\n"pruning.operator" = { choices = ["random", "magnitude"] }\n'


def _runs(project: Project) -> int:
    client = MlflowClient(project.tracking_uri)
    exps = client.search_experiments()
    return sum(len(client.search_runs([e.experiment_id])) for e in exps)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_changes_names_keys_with_old_and_new_values() -> None:
    assert changes({"a": 1, "b": "x"}, {"a": 1, "b": "y"}) == 'b: "x" -> "y"'
    assert changes({"a": 1}, {"a": 1}) == ""
    assert (
        changes({"gone": [1, 2]}, {"new": True})
        == "gone: [1, 2] -> (absent); new: (absent) -> true"
    )
    many = changes({f"k{i}": i for i in range(8)}, {f"k{i}": -i for i in range(1, 9)})
    assert many.endswith("; and 3 more") and many.startswith("k0: 0 -> (absent); k1: 1 -> -1")
    assert content_hash({"a": 1, "b": 2}) == content_hash({"b": 2, "a": 1})
    assert content_hash({"a": 1}) != content_hash({"a": 2}) and len(content_hash({})) == 16


def test_content_leaves_out_n_trials_name_and_sampler_seed(project: Project) -> None:
    registry = Registry.load()
    one = load_study_config(project.study_file(n_trials=3, space=SPACE), registry)
    other = project.study_file(name="renamed", n_trials=9, header="description = 'x'", space=SPACE)
    two = load_study_config(other, registry)
    assert study_content(one) == study_content(two)
    content = study_content(one)
    assert content["base.generations"] == 2 and content["base.network.encoder"] == [8, 4]
    assert content["space.pruning.operator"] == {"choices": ["random", "magnitude"]}
    assert content["seeds"] == [1] and content["sampler"] == "tpe" and content["baseline"] is True
    assert "base.seed" not in content and "n_trials" not in content


def test_resuming_an_edited_study_is_refused_naming_the_changes(
    stored_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project = stored_project
    path = project.study_file(n_trials=2, space=SPACE)
    assert main(project.args(path)) == 0
    capsys.readouterr()
    before, runs = _files(project.store), _runs(project)
    edited = TINY_BASE.replace("generations = 2", "generations = 3")
    project.study_file(n_trials=4, base=edited, space=SPACE.replace('"magnitude"', '"variance"'))
    assert main(project.args(path)) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: {path}: study 'tiny' was run with other content (base.generations: 2 -> 3; "
        'space.pruning.operator: {"choices": ["random", "magnitude"]} -> {"choices": '
        '["random", "variance"]}); restore the file, or run the edited file as a new study '
        "with --fork NAME\n"
    )
    assert _files(project.store) == before and _runs(project) == runs  # nothing written

    assert main([*project.args(path), "--fork", "tiny-30"]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith(
        f"study 'tiny-30': forked from 'tiny' with the content of {path} "
        "(report it with: evoprune report tiny-30)\n"
    )
    assert "4/4 trials complete" in captured.out
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(project.journal / "tiny-30.journal"))
    )
    fork = optuna.load_study(study_name="tiny-30", storage=storage)
    assert fork.user_attrs[Attr.CONTENT]["base.generations"] == 3
    assert main([*project.args(path), "--fork", "tiny-30"]) == 0  # the fork resumes
    assert "4/4 trials complete" in capsys.readouterr().out
    assert main([*project.args(path), "--fork", "bad name"]) == 2


def test_n_trials_may_grow(stored_project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    project = stored_project
    path = project.study_file(n_trials=2, space=SPACE)
    assert main(project.args(path)) == 0
    project.study_file(n_trials=3, space=SPACE)
    assert main(project.args(path)) == 0
    assert "3/3 trials complete" in capsys.readouterr().out


def test_an_rdb_storage_keeps_the_identity_too(
    stored_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project = stored_project
    url = f"sqlite:///{project.root / 'optuna.db'}"
    path = project.study_file(n_trials=1, space=SPACE)
    assert main([*project.args(path), "--storage", url]) == 0
    project.study_file(n_trials=1, space=SPACE, header="seeds = [1, 2]")
    assert main([*project.args(path), "--storage", url]) == 2
    assert "(seeds: [1] -> [1, 2]); restore the file" in capsys.readouterr().err


def test_a_study_without_a_hash_is_adopted_once(project: Project) -> None:
    registry = Registry.load()
    cfg = load_study_config(project.study_file(space=SPACE), registry)
    study = optuna.create_study(study_name="tiny")  # as an earlier evoprune left it
    study.set_user_attr(Attr.PARENT_RUN_ID, "r0")
    with pytest.warns(UserWarning) as notes:
        check_identity(study, cfg, adopt=True)
    assert [str(n.message) for n in notes] == [
        f"{cfg.path}: study 'tiny' was stored by an earlier evoprune without a content hash; "
        f"adopted with this file's content (hash {content_hash(study_content(cfg))})"
    ]
    assert study.user_attrs[Attr.CONTENT] == study_content(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once: no second notice
        check_identity(study, cfg, adopt=True)
    fresh = optuna.create_study(study_name="new")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a new study is not 'adopted'
        check_identity(fresh, cfg, adopt=True)
    worker_view = optuna.create_study(study_name="w")
    with pytest.raises(ConfigError, match="has no content hash yet"):
        check_identity(worker_view, cfg, adopt=False)
