"""Run configuration: defaults, overrides, and one clear error per kind of mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from evoprune_core.config import flatten, load_run_config
from evoprune_core.errors import ConfigError
from evoprune_core.plugins import Registry

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load(entry_points=False)


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "run.toml"
    p.write_text(text)
    return p


def test_example_configs_load(registry) -> None:
    for path in sorted((ROOT / "studies" / "runs").glob("*.toml")):
        cfg = load_run_config(path, [], registry)
        assert cfg.generations >= 1


def test_defaults_are_resolved_with_plugin_parameters(registry) -> None:
    cfg = load_run_config(None, ["pruning.operator=conjunctive"], registry)
    assert cfg.pruning.operator_params == {
        "threshold": 0.1,
        "cases": 100,
        "stop": "all_cases",
        "min_units": 1,
        "include_output": False,
    }
    flat = flatten(cfg)
    assert flat["pruning.operator_params.threshold"] == 0.1
    assert flat["training.betas"] == [0.5, 0.999]
    assert flat["data.params.noise"] == 0.05


def test_overrides_parse_toml_values(registry, tmp_path) -> None:
    p = _write(tmp_path, "generations = 3\n[training]\nlr = 0.01\n")
    cfg = load_run_config(
        p, ["training.lr=0.5", "network.encoder=[8, 4]", "pruning.schedule=final_n"], registry
    )
    assert cfg.training.lr == 0.5 and cfg.network.encoder == (8, 4)
    assert cfg.network.architecture(100).decoder == (8,)
    assert cfg.pruning.schedule == "final_n"


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        ("generation = 3\n", [], "run.toml: generation: unknown key; allowed: engine, seed"),
        ("[training]\nloss = 'huber'\n", [], "training.loss: Input should be 'l1', 'mse' or 'bce'"),
        ("[training]\nlr = -1\n", [], "training.lr: Input should be greater than 0"),
        ("generations = 'many'\n", [], "generations: Input should be a valid integer"),
        (
            "[pruning]\noperator = 'nope'\n",
            [],
            "pruning.operator: unknown operator 'nope'; allowed: conjunctive, formula, magnitude, none",
        ),
        ("[pruning]\nschedule = 'weekly'\n", [], "pruning.schedule: unknown schedule 'weekly'"),
        (
            "[pruning]\noperator = 'conjunctive'\n[pruning.operator_params]\nthreshold = 2.0\n",
            [],
            "pruning.operator_params.threshold: expected float in [0.01, 0.5]",
        ),
        ("[data]\nname = 'mnist'\n", [], "data.name: unknown dataset 'mnist'; allowed: "),
        ("[network]\nencoder = [0]\n", [], "network: encoder: widths must be integers"),
        ("engine = 'magic'\n", [], "engine: Input should be 'canonical' or 'coevolution'"),
        ("", ["training"], "expected key=value"),
        ("", ["pruning.amount=1.5"], "pruning.amount: Input should be less than or equal to 1"),
        ("x = [\n", [], "invalid TOML"),
    ],
)
def test_errors_name_file_key_and_allowed_values(
    registry, tmp_path, text, overrides, message
) -> None:
    p = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_run_config(p, overrides, registry)
    msg = str(info.value)
    assert message in msg
    assert "\n" not in msg
    assert str(p) in msg


def test_missing_file(registry, tmp_path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_run_config(tmp_path / "absent.toml", [], registry)
