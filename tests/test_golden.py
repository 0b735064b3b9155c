"""Bit-identical histories: a refactor must not change what a fixed config and seed produce.

``tests/data/golden_histories.json`` was recorded with the torch backend before the
architecture step (resolved runs, engine plugins); every value - losses, sparsity counts,
pruning events, learning rates per generation - must come out exactly the same. Re-record it
only for a deliberate change of behaviour, and say so in the commit.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evoprune_core import load_run
from evoprune_core.plugins import Registry

GOLDEN = Path(__file__).parent / "data" / "golden_histories.json"

BASE = {
    "generations": 6,
    "data": {
        "name": "binary-clustering",
        "params": {
            "clusters": 4,
            "dims": 48,
            "rows_per_cluster": 20,
            "val_rows_per_cluster": 5,
            "test_rows_per_cluster": 5,
        },
    },
    "network": {"encoder": [8, 4]},
    "training": {
        "batch_size": 10,
        "lr": 0.01,
        "lr_decay": 0.5,
        "lr_decay_every": 2,
        "final_loss_from": 0.5,
    },
    "pruning": {"schedule": "fixed", "probability": 1.0, "amount": 0.2, "calibration_rows": 20},
    "compute": {"backend": "torch"},
}
CASES = {
    "canonical-variance": {"pruning.operator": "variance"},
    "canonical-random": {"pruning.operator": "random", "pruning.schedule": "exponential"},
    "canonical-conjunctive": {"pruning.operator": "conjunctive"},
    "canonical-magnitude": {"pruning.operator": "magnitude", "pruning.schedule": "final_n"},
    "coevolution-random": {
        "engine": "coevolution",
        "coevolution.cells": 3,
        "pruning.operator": "random",
        "coevolution.replacement": "elitist",
    },
    "coevolution-variance-seq": {
        "engine": "coevolution",
        "coevolution.cells": 4,
        "pruning.operator": "variance",
        "coevolution.update": "sequential",
        "pruning.schedule": "population",
    },
}


def _comparable(summary: dict) -> dict:
    drop = ("seconds", "history", "backend", "components", "architecture", "device")
    out = {
        k: v
        for k, v in summary.items()
        if k not in drop and not k.endswith(("_distribution", "_version"))
    }
    out["history"] = [{k: v for k, v in r.items() if k != "seconds"} for r in summary["history"]]
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_history_is_bit_identical_to_the_recording(case: str) -> None:
    registry = Registry.load(env={"EVOPRUNE_PLUGINS": "none"})
    overrides = [f"{k}={json.dumps(v)}" for k, v in CASES[case].items()]
    run = load_run(None, overrides, registry, base=json.loads(json.dumps(BASE)))
    got = json.loads(json.dumps(_comparable(run.run().summary()), sort_keys=True))
    want = json.loads(GOLDEN.read_text())[case]
    assert got["history"] == want["history"]
    assert got == want
