"""Run configuration: defaults, overrides, and one clear error per kind of mistake."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from evoprune_core import hookimpl
from evoprune_core.config import (
    NetworkConfig,
    RunConfig,
    apply_overrides,
    flatten,
    parse_override,
)
from evoprune_core.data import Dataset, DatasetSpec
from evoprune_core.errors import ConfigError
from evoprune_core.loading import load_run_config
from evoprune_core.plugins import Registry

ROOT = Path(__file__).resolve().parents[2]


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
        (
            "engine = 'magic'\n",
            [],
            "engine: unknown engine 'magic'; allowed: canonical, coevolution",
        ),
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


PER_COMPONENT = """
[pruning]
operator = "conjunctive"
schedule = "exponential"
[pruning.operators.conjunctive]
threshold = 0.2
[pruning.operators.variance]
direction = "high"
[pruning.schedules.exponential]
steepness = 4.0
"""


def test_parameters_per_component_switch_with_one_override(registry, tmp_path) -> None:
    path = _write(tmp_path, PER_COMPONENT)
    conj = load_run_config(path, [], registry)
    assert conj.pruning.operator_params["threshold"] == 0.2
    assert conj.pruning.schedule_params == {"steepness": 4.0}
    var = load_run_config(path, ["pruning.operator=variance"], registry)
    assert var.pruning.operator_params == {
        "direction": "high",
        "spread": "std",
        "include_output": False,
        "rate": "amount",
    }
    none = load_run_config(path, ["pruning.operator=none", "pruning.schedule=fixed"], registry)
    assert none.pruning.operator_params == {} and none.pruning.schedule_params == {}
    # the resolved form keeps only the chosen components' (filled) parameters
    assert none.pruning.operators == {} and none.pruning.schedules == {}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["pruning.operators.variance.direction='up'"], "pruning.operators.variance.direction"),
        (["pruning.operators.nope.x=1"], "pruning.operators.nope: unknown operator 'nope'"),
        (
            ["pruning.operator_params.threshold=0.3"],
            "pruning.operator_params.threshold: 0.3 contradicts "
            "pruning.operators.conjunctive.threshold = 0.2; give it once",
        ),
    ],
)
def test_per_component_tables_are_validated(registry, tmp_path, overrides, message) -> None:
    with pytest.raises(ConfigError) as info:
        load_run_config(_write(tmp_path, PER_COMPONENT), overrides, registry)
    assert message in str(info.value)


def test_the_shipped_run_file_switches_operator_with_one_set(registry) -> None:
    path = ROOT / "studies" / "runs" / "canonical.toml"
    for op in ("none", "random", "variance", "magnitude"):
        assert load_run_config(path, [f"pruning.operator={op}"], registry).pruning.operator == op


# -- exact messages and pass-throughs (found untested by the mutation run) -----------------------
def test_validation_messages_exact(registry, tmp_path) -> None:
    training = (
        "loss, final_loss, final_loss_from, lr, batch_size, betas, eps, lr_decay, lr_decay_every, "
        "optimizer_state"
    )
    for text, message in (
        ("[training]\nlrr = 1\n", f"training.lrr: unknown key; allowed: {training}"),
        ("[training]\nlr = -1\n", "training.lr: Input should be greater than 0 (got -1)"),
        ("[network]\nencoder = []\n",
         "network: encoder: widths must be integers in [1, 100000] and at least one (the latent)"),
    ):  # fmt: skip
        p = _write(tmp_path, text)
        with pytest.raises(ConfigError) as info:
            load_run_config(p, [], registry)
        assert str(info.value) == f"{p}: {message}"
    with pytest.raises(ConfigError) as info:
        load_run_config(None, ["training.lr=-1"], registry)
    assert str(info.value) == "<defaults>: training.lr: Input should be greater than 0 (got -1)"
    with pytest.raises(ConfigError) as info:
        RunConfig().updated({"training.lr": -1})
    assert str(info.value) == "<updates>: training.lr: Input should be greater than 0 (got -1)"
    with pytest.raises(ConfigError) as info:
        RunConfig().with_updates({"training.lr": -1}, registry)
    assert str(info.value) == "<updates>: training.lr: Input should be greater than 0 (got -1)"


def test_overrides_split_at_the_first_equals_sign_and_name_their_source() -> None:
    assert parse_override("data.params.path = a=b.csv") == ("data.params.path", "a=b.csv")
    with pytest.raises(ConfigError) as info:
        parse_override("novalue")
    assert str(info.value) == "--set: 'novalue': expected key=value, e.g. training.lr=0.001"
    with pytest.raises(ConfigError) as info:
        apply_overrides({"seed": 1}, ["seed.x=2"])
    assert str(info.value) == "--set seed.x: seed.x: 'seed' is not a table"


def test_architecture_uses_given_decoder_or_mirrors_the_encoder() -> None:
    assert NetworkConfig(encoder=(16, 8, 4)).architecture(10).decoder == (8, 16)
    given = NetworkConfig(encoder=(16, 8, 4), decoder=(6,)).architecture(10)
    assert (given.encoder, given.decoder) == ((16, 8, 4), (6,))


class _TinyData:
    @hookimpl
    def evoprune_register_datasets(self) -> list[DatasetSpec]:
        x = torch.full((3, 2), 0.5)
        return [DatasetSpec("tiny-rows", (), lambda params, seed: Dataset("tiny-rows", x, x, x))]


def test_load_run_config_passes_its_registry_and_base() -> None:
    registry = Registry.load(env={"EVOPRUNE_PLUGINS": "none"}, extra=[(_TinyData(), "tiny")])
    cfg = load_run_config(None, ["data.name=tiny-rows"], registry, base={"generations": 7})
    assert (cfg.data.name, cfg.generations) == ("tiny-rows", 7)
    assert load_run_config(None).generations == 400  # without a registry: the installed one
