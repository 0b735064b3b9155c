"""The Taylor operator: exact importances and masks, the conformance kit, and real runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from evoprune_core import LayerView, PruneContext, Registry
from evoprune_core.testing import parametrize_with_checks

from evoprune_taylor import TaylorPruning, taylor_importance

T = torch.tensor


# -- exact values ----------------------------------------------------------------------------
W = T([[[1.0, -2.0], [3.0, 0.5]]])  # (n=1, out=2, in=2)
WG = T([[[[1.0, 1.0], [0.1, 2.0]], [[-1.0, 1.0], [0.1, -1.0]]]])  # (n=1, K=2, 2, 2)
B = T([[1.0, 1.0]])
BG = T([[[1.0, 0.0], [1.0, 0.0]]])  # (n=1, K=2, out=2)


def layer(
    weight: torch.Tensor, wg: torch.Tensor, bias: torch.Tensor, bg: torch.Tensor, **kw: Any
) -> LayerView:
    return LayerView(
        name=kw.pop("name", "encoder.0"),
        part="encoder",
        index=0,
        weight=weight,
        bias=bias,
        weight_mask=torch.ones_like(weight, dtype=torch.bool),
        bias_mask=torch.ones_like(bias, dtype=torch.bool),
        activation="relu",
        is_output=kw.pop("is_output", False),
        weight_grads=wg,
        bias_grads=bg,
    )


def context(*layers: LayerView, amount: float) -> PruneContext:
    return PruneContext(tuple(layers), amount, torch.Generator().manual_seed(0), (0,))


def test_importance_formulas() -> None:
    assert torch.allclose(taylor_importance(W, WG, "mean_abs"), T([[[1.0, 2.0], [0.3, 0.75]]]))
    assert torch.allclose(taylor_importance(W, WG, "abs_mean"), T([[[0.0, 2.0], [0.3, 0.25]]]))
    assert torch.equal(taylor_importance(B, BG), T([[1.0, 0.0]]))


@pytest.mark.parametrize(
    ("aggregate", "weight_kept"),
    [
        ("mean_abs", [[True, True], [False, False]]),
        ("abs_mean", [[False, True], [True, False]]),
    ],
)
def test_unstructured_prunes_least_important(aggregate: str, weight_kept: list[list[bool]]) -> None:
    (mask,) = TaylorPruning(aggregate=aggregate).prune(context(layer(W, WG, B, BG), amount=0.5))
    assert mask.weight.tolist() == [weight_kept]
    assert mask.bias.tolist() == [[True, False]]


def test_structured_removes_whole_units_and_spares_output() -> None:
    # unit importances (mean_abs): unit 0 = 1 + 2 + 1 = 4, unit 1 = 0.3 + 0.75 + 0 = 1.05
    hidden = layer(W, WG, B, BG)
    out_w = T([[[1.0, 1.0], [1.0, 1.0]]])
    output = layer(out_w, torch.zeros(1, 2, 2, 2), B, torch.zeros(1, 2, 2), is_output=True)
    masks = TaylorPruning(structured=True).prune(context(hidden, output, amount=0.5))
    assert masks[0].weight.tolist() == [[[True, True], [False, False]]]
    assert masks[0].bias.tolist() == [[True, False]]
    assert masks[1].weight.all() and masks[1].bias.all()


def test_structured_keeps_one_unit_per_layer() -> None:
    masks = TaylorPruning(structured=True).prune(context(layer(W, WG, B, BG), amount=1.0))
    assert masks[0].bias.tolist() == [[True, False]]


def test_refuses_a_context_without_gradients() -> None:
    lv = layer(W, WG, B, BG)
    bare = LayerView(**{**lv.__dict__, "weight_grads": None, "bias_grads": None})
    with pytest.raises(ValueError, match="taylor needs gradients"):
        TaylorPruning().prune(context(bare, amount=0.5))


# -- the conformance kit ---------------------------------------------------------------------
@parametrize_with_checks(
    [
        TaylorPruning,
        TaylorPruning(structured=True),
        TaylorPruning(scope="global", structured=True, aggregate="abs_mean"),
    ]
)
def test_conformance(operator: object, check: Any) -> None:
    check(operator)


# -- installed for real: discovered through the entry point, run by both engines ------------
def test_discovered_through_entry_point() -> None:
    got = Registry.load(env={}).operator("taylor")
    assert got.obj is TaylorPruning
    assert (got.distribution, got.plugin) == ("evoprune-taylor", "taylor")


RUN = """
seed = 1
[data]
name = "binary-clustering"
[data.params]
clusters = 3
dims = 20
rows_per_cluster = 20
val_rows_per_cluster = 5
test_rows_per_cluster = 5
[training]
batch_size = 10
[pruning]
calibration_rows = 20
calibration_batches = 2
[coevolution]
cells = 3
"""


#: (pruning events, remaining fraction) of the reported network (424 entries), seed 1, three
#: generations: round(0.1 x alive) entries of each tensor per event, or round(0.1 x alive
#: units) of each hidden layer (structured); counts that do not depend on the weights
TAYLOR_RUNS = {
    ("canonical", False): (3, 308 / 424),
    ("canonical", True): (3, 346 / 424),
    ("coevolution", False): (9, 308 / 424),  # 3 cells x 3 generations
    ("coevolution", True): (9, 346 / 424),
}


@pytest.mark.parametrize("engine", ["canonical", "coevolution"])
@pytest.mark.parametrize("structured", [False, True])
def test_evoprune_run(tmp_path: Path, engine: str, structured: bool) -> None:
    (tmp_path / "run.toml").write_text(RUN, encoding="utf-8")
    cmd = [sys.executable, "-m", "evoprune_core.cli", "run", "run.toml", "--quiet"]
    for item in (
        f"engine={engine}",
        "generations=3",
        "network.encoder=[8,4]",
        "pruning.operator=taylor",
        "pruning.probability=1",
        f"pruning.operator_params={{structured={str(structured).lower()}}}",
    ):
        cmd += ["--set", item]
    cmd += ["--output", "out.json"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"engine {engine}  operator taylor" in proc.stdout
    summary = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert summary["config"]["pruning"]["operator_params"] == {
        "scope": "layer",
        "structured": structured,
        "aggregate": "mean_abs",
        "include_output": False,
    }
    events, remaining = TAYLOR_RUNS[engine, structured]
    assert summary["pruning_events"] == events
    assert summary["remaining_fraction"] == remaining


# -- study search spaces ---------------------------------------------------------------------
STUDY = """
name = "taylor-space"
n_trials = 1
sampler = "random"
[base]
generations = 2
[space]
"pruning.operator" = {choices = ["taylor"]}
"""


def test_study_space_samples_taylor_parameters(tmp_path: Path) -> None:
    import optuna
    from evoprune_core.study import load_study_config, sample_updates

    registry = Registry.load(env={})
    (tmp_path / "study.toml").write_text(STUDY, encoding="utf-8")
    study = load_study_config(tmp_path / "study.toml", registry)
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()

    def choose(name: str, dist: Any) -> Any:
        if dist.kind == "categorical":
            return trial.suggest_categorical(name, list(dist.choices))
        if dist.kind == "int":
            return trial.suggest_int(name, int(dist.low), int(dist.high), log=dist.log)
        return trial.suggest_float(name, dist.low, dist.high, log=dist.log)

    updates = sample_updates(choose, study, registry)
    assert sorted(trial.params) == [
        "operator.taylor.aggregate",
        "operator.taylor.scope",
        "operator.taylor.structured",
        "pruning.operator",
    ]
    cfg = study.base.with_updates(updates, registry)
    assert cfg.pruning.operator == "taylor"
    assert cfg.pruning.operator_params == {
        "scope": trial.params["operator.taylor.scope"],
        "structured": trial.params["operator.taylor.structured"],
        "aggregate": trial.params["operator.taylor.aggregate"],
        "include_output": False,
    }


TINY_STUDY = """
name = "taylor-study"
n_trials = 2
sampler = "random"
[base]
generations = 2
network.encoder = [8, 4]
pruning.probability = 1.0
pruning.calibration_rows = 20
pruning.calibration_batches = 2
training.batch_size = 10
data.name = "binary-clustering"
data.params = {clusters = 3, dims = 20, rows_per_cluster = 20, val_rows_per_cluster = 5, test_rows_per_cluster = 5}
[space]
"pruning.operator" = {choices = ["taylor"]}
"""


def test_evoprune_study_samples_taylor(tmp_path: Path) -> None:
    import optuna

    (tmp_path / "study.toml").write_text(TINY_STUDY, encoding="utf-8")
    cmd = [sys.executable, "-m", "evoprune_core.cli", "study", "study.toml", "--store", "st"]
    proc = subprocess.run(
        [*cmd, "--quiet"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    journal = tmp_path / "st" / "optuna" / "taylor-study.journal"
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))
    )
    trials = optuna.load_study(study_name="taylor-study", storage=storage).trials
    sampled = [t.params for t in trials if t.params.get("pruning.operator") == "taylor"]
    assert sampled, [t.params for t in trials]
    assert {"operator.taylor.scope", "operator.taylor.structured"} <= set(sampled[0])
