"""Best-combination tables, Pareto fronts and mean ± std from stored Optuna trials."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from evoprune_core.report import (
    best_combinations,
    format_rows,
    mean_std,
    pareto_front,
    rows_from_trials,
    study_report,
)


def trial(
    number: int, op: str, sched: str, vals: list[float], rems: list[float], **combo: Any
) -> optuna.trial.FrozenTrial:
    results = [
        {"seed": i + 1, "val_loss": v, "test_loss": v + 0.01, "remaining_fraction": r}
        for i, (v, r) in enumerate(zip(vals, rems))
    ]
    t = optuna.trial.create_trial(
        state=TrialState.COMPLETE,
        value=sum(vals) / len(vals),
        user_attrs={
            "evoprune.results": results,
            "evoprune.combination": {
                "engine": combo.get("engine", "canonical"),
                "operator": op,
                "schedule": sched,
                "probability": 0.5,
                "amount": combo.get("amount"),
                "population": "1",
            },
            "evoprune.baseline": op == "none",
        },
    )
    t.number = number
    return t


TRIALS = [
    trial(0, "none", "-", [0.30, 0.32], [1.0, 1.0]),
    trial(1, "random", "fixed", [0.20, 0.24], [0.5, 0.7], amount=0.1),
    trial(2, "random", "fixed", [0.25, 0.25], [0.4, 0.4], amount=0.2),
    trial(3, "conjunctive", "exponential", [0.21, 0.21], [0.8, 0.8]),
    trial(4, "variance", "fixed", [0.40, 0.40], [0.2, 0.2], amount=0.3),
]


def test_mean_std_exact() -> None:
    assert mean_std([1.0, 3.0]) == (2.0, math.sqrt(2.0))
    assert mean_std([0.5]) == (0.5, 0.0)
    assert all(math.isnan(x) for x in mean_std([]))


def test_rows_carry_mean_and_std_across_seeds() -> None:
    rows = rows_from_trials(TRIALS)
    assert [r.trial for r in rows] == [0, 1, 2, 3, 4]
    r1 = rows[1]
    assert r1.seeds == 2 and r1.val_loss == pytest.approx(0.22)
    assert r1.val_loss_std == pytest.approx(math.sqrt(2 * 0.02**2))
    assert r1.test_loss == pytest.approx(0.23) and r1.remaining_fraction == pytest.approx(0.6)
    assert rows[0].baseline and not r1.baseline
    failed = optuna.trial.create_trial(state=TrialState.FAIL)
    assert rows_from_trials([failed]) == []


def test_best_combination_per_engine_operator_schedule() -> None:
    best = best_combinations(rows_from_trials(TRIALS))
    assert [(r.operator, r.trial) for r in best] == [
        ("conjunctive", 3),
        ("random", 1),
        ("none", 0),
        ("variance", 4),
    ]
    assert [r.trial for r in best_combinations(rows_from_trials(TRIALS), top=2)] == [3, 1]


def test_pareto_front_on_val_and_remaining() -> None:
    front = pareto_front(rows_from_trials(TRIALS))
    # 0 (1.0 remaining) is dominated by 3; 1, 2, 3 and 4 trade loss for sparsity
    assert [r.trial for r in front] == [3, 1, 2, 4]


def test_formats() -> None:
    rows = best_combinations(rows_from_trials(TRIALS))
    text = format_rows(rows, "text").splitlines()
    assert text[0].split()[:4] == ["trial", "engine", "operator", "schedule"]
    assert "0.2100 ± 0.0000" in text[2] and "none (baseline)" in "\n".join(text)
    md = format_rows(rows, "markdown").splitlines()
    assert md[0].startswith("| trial | engine |") and md[1].startswith("|---|")
    assert len(md) == 2 + len(rows)
    parsed = list(csv.DictReader(io.StringIO(format_rows(rows, "csv"))))
    assert [int(p["trial"]) for p in parsed] == [3, 1, 0, 4]
    assert json.loads(format_rows(rows, "json"))[0]["operator"] == "conjunctive"
    with pytest.raises(ValueError, match="allowed: text, markdown, csv, json"):
        format_rows(rows, "html")


def test_study_report_with_two_objectives_adds_the_front() -> None:
    text = study_report(TRIALS, ("val_loss", "remaining_fraction"))
    assert "Best combinations" in text and "Pareto front" in text
    data = json.loads(study_report(TRIALS, ("val_loss", "remaining_fraction"), "json"))
    assert [r["trial"] for r in data["pareto_front"]] == [3, 1, 2, 4]
    one = json.loads(study_report(TRIALS, ("val_loss",), "json"))
    assert list(one) == ["best_combinations"]
    assert study_report([], ("val_loss",)) == "no completed trials yet"
