"""Strict types in run and study files: what TOML means is kept, nothing is coerced."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from evoprune_core.cli import main
from evoprune_core.errors import ConfigError
from evoprune_core.loading import load_run_config
from evoprune_core.plugins import Registry
from evoprune_core.study import load_study_config
from tests._processes import SMALL_SPACE, assert_intact
from tests.conftest import TINY_BASE, Project

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        ('generations = "5"', [], "generations: Input should be a valid integer (got '5')"),
        ("", ["generations=true"], "generations: Input should be a valid integer (got True)"),
        ('[training]\nlr = "0.01"', [], "training.lr: Input should be a valid number (got '0.01')"),
        ("[network]\nencoder = [8, true]", [], "network.encoder.1: Input should be a valid int"),
    ],
)
def test_strict_run_types(tmp_path: Path, text: str, overrides: list[str], message: str) -> None:
    path = tmp_path / "r.toml"
    path.write_text(text + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_run_config(path, overrides)
    assert message in str(info.value)


def test_strict_types_keep_what_toml_means(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text("[training]\nlr = 1\nbetas = [0, 0.5]\n", encoding="utf-8")
    cfg = load_run_config(path, ["generations=5", "data.name=digits", "network.encoder=[9, 3]"])
    assert (cfg.generations, cfg.training.lr, cfg.training.betas) == (5, 1.0, (0.0, 0.5))
    assert isinstance(cfg.training.lr, float) and cfg.network.encoder == (9, 3)
    assert cfg.data.name == "digits"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ('n_trials = "3"', "n_trials: Input should be a valid integer (got '3')"),
        ('baseline = "no"', "baseline: Input should be a valid boolean (got 'no')"),
        ("seeds = [1.0]", "seeds.0: Input should be a valid integer (got 1.0)"),
    ],
)
def test_strict_study_types(tmp_path: Path, header: str, message: str) -> None:
    path = tmp_path / "st.toml"
    path.write_text(f'name = "st"\n{header}\n' + TINY_BASE + SMALL_SPACE, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_study_config(path, Registry.load(env={"EVOPRUNE_PLUGINS": "none"}))
    assert message in str(info.value)


def test_empty_space_and_oversized_batch_warn(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    base = TINY_BASE.replace("batch_size = 50", "batch_size = 5000")
    path = project.study_file(name="flat", n_trials=1, base=base, space="")
    assert main(project.args(path)) == 0
    err = capsys.readouterr().err
    assert f"warning: {path}: space: empty; every trial runs the [base] configuration" in err, err
    assert "warning: training.batch_size 5000 exceeds the 1000 training rows" in err
    assert_intact(project, "flat", 1)
