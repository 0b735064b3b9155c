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

from evoprune_core.reporting import (
    COLUMNS,
    best_combinations,
    format_rows,
    mean_std,
    pareto_front,
    rows_from_trials,
    study_report,
    table_record,
)
from tests.conftest import study_trial


def trial(
    number: int, op: str, sched: str, vals: list[float], rems: list[float], **combo: Any
) -> optuna.trial.FrozenTrial:
    results = [
        {"seed": i + 1, "val_loss": v, "test_loss": v + 0.01, "remaining_fraction": r}
        for i, (v, r) in enumerate(zip(vals, rems))
    ]
    return study_trial(
        number, op, sched, results, sum(vals) / len(vals),
        engine=combo.get("engine", "canonical"), probability=0.5, amount=combo.get("amount"),
    )  # fmt: skip


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
    assert r1.seeds == (1, 2) and r1.values["val_loss"] == (0.20, 0.24)
    rec = table_record(r1)
    assert list(rec) == list(COLUMNS)
    assert rec["seeds"] == 2 and rec["val_loss"] == pytest.approx(0.22)
    assert rec["val_loss_std"] == pytest.approx(math.sqrt(2 * 0.02**2))
    assert rec["test_loss"] == pytest.approx(0.23) and rec["remaining_fraction"] == pytest.approx(
        0.6
    )
    assert rec["remaining_fraction_std"] == pytest.approx(math.sqrt(2 * 0.1**2))
    assert r1.mean_std("val_loss") == (rec["val_loss"], rec["val_loss_std"])
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


# one-seed row (no ± column), ties on val loss (5 vs 3) and on remaining fraction (6 vs 4)
MORE = [
    *TRIALS,
    trial(5, "magnitude", "fixed", [0.21], [0.9], amount=0.25),
    trial(6, "variance", "fixed", [0.5, 0.5], [0.2, 0.2], amount=0.4),
]
HEAD = (
    "trial  engine     operator{hpad}  schedule     p      amount  population  seeds  "
    "val L1           test L1          remaining"
)
RULE = (
    "-----  ---------  --------{dash}  -----------  -----  ------  ----------  -----  "
    "---------------  ---------------  ---------------"
)
ROW = {
    3: "3      canonical  conjunctive{pad}  exponential  0.500  -       1           2      "
    "0.2100 ± 0.0000  0.2200 ± 0.0000  0.8000 ± 0.0000",
    5: "5      canonical  magnitude{pad}    fixed        0.500  0.250   1           1      "
    "0.2100           0.2200           0.9000",
    1: "1      canonical  random{pad}       fixed        0.500  0.100   1           2      "
    "0.2200 ± 0.0283  0.2300 ± 0.0283  0.6000 ± 0.1414",
    0: "0      canonical  none (baseline)  -            0.500  -       1           2      "
    "0.3100 ± 0.0141  0.3200 ± 0.0141  1.0000 ± 0.0000",
    2: "2      canonical  random{pad}       fixed        0.500  0.200   1           2      "
    "0.2500 ± 0.0000  0.2600 ± 0.0000  0.4000 ± 0.0000",
    4: "4      canonical  variance{pad}     fixed        0.500  0.300   1           2      "
    "0.4000 ± 0.0000  0.4100 ± 0.0000  0.2000 ± 0.0000",
}


def test_study_report_text_exact() -> None:
    wide = {"pad": " " * 4, "hpad": " " * 7, "dash": "-" * 7}  # "none (baseline)" is widest
    narrow = {"pad": "", "hpad": " " * 3, "dash": "-" * 3}  # "conjunctive" is widest
    expected = [
        "Best combinations (lowest mean validation L1 per engine/operator/schedule; "
        "7 completed trials)",
        "",
        HEAD.format(**wide),
        RULE.format(**wide),
        *(ROW[t].format(**wide) for t in (3, 5, 1, 0, 4)),
        "",
        "Pareto front (validation L1 vs remaining fraction, both minimised)",
        "",
        HEAD.format(**narrow),
        RULE.format(**narrow),
        *(ROW[t].format(**narrow) for t in (3, 1, 2, 4)),
    ]
    assert study_report(MORE, ("val_loss", "remaining_fraction")).split("\n") == expected


def test_study_report_markdown_csv_json_exact() -> None:
    md = study_report(MORE, ("val_loss", "remaining_fraction"), "markdown").split("\n")
    head = "| trial | engine | operator | schedule | p | amount | population | seeds | "
    assert md[:5] == [
        "## Best combinations (lowest mean validation L1 per engine/operator/schedule; "
        "7 completed trials)",
        "",
        head + "val L1 | test L1 | remaining |",
        "|" + "---|" * 11,
        "| 3 | canonical | conjunctive | exponential | 0.500 | - | 1 | 2 | "
        "0.2100 ± 0.0000 | 0.2200 ± 0.0000 | 0.8000 ± 0.0000 |",
    ]
    assert md[5] == "| 5 | canonical | magnitude | fixed | 0.500 | 0.250 | 1 | 1 | " + (
        "0.2100 | 0.2200 | 0.9000 |"
    )
    assert md[9:12] == [
        "",
        "## Pareto front (validation L1 vs remaining fraction, both minimised)",
        "",
    ]
    assert [line.split(" | ")[0] for line in md[14:]] == ["| 3", "| 1", "| 2", "| 4"]
    fields = (
        "trial,engine,operator,schedule,probability,amount,population,seeds,val_loss,"
        "val_loss_std,test_loss,test_loss_std,remaining_fraction,remaining_fraction_std,"
        "baseline,mlflow_run_id\n"
    )
    assert study_report(MORE, ("val_loss",), "csv") == (
        "table," + fields
        + "best_combinations,3,canonical,conjunctive,exponential,0.5,,1,2,0.21,0.0,0.22,0.0,"
        "0.8,0.0,False,\n"
        "best_combinations,5,canonical,magnitude,fixed,0.5,0.25,1,1,0.21,0.0,0.22,0.0,0.9,0.0,"
        "False,\n"
        "best_combinations,1,canonical,random,fixed,0.5,0.1,1,2,0.22,0.028284271247461888,0.23,"
        "0.028284271247461888,0.6,0.14142135623730948,False,\n"
        "best_combinations,0,canonical,none,-,0.5,,1,2,0.31,0.014142135623730963,0.32,"
        "0.014142135623730963,1.0,0.0,True,\n"
        "best_combinations,4,canonical,variance,fixed,0.5,0.3,1,2,0.4,0.0,0.41000000000000003,"
        "0.0,0.2,0.0,False,\n"
    )  # fmt: skip
    rows = rows_from_trials(MORE)
    assert format_rows(rows[:1], "csv") == fields + (
        "0,canonical,none,-,0.5,,1,2,0.31,0.014142135623730963,0.32,0.014142135623730963,"
        "1.0,0.0,True,\n"
    )
    assert format_rows(rows[:1], "json").startswith('[\n  {\n    "trial": 0,\n    "engine"')
    both = study_report(MORE, ("val_loss", "remaining_fraction"), "json")
    assert both.startswith('{\n  "best_combinations": [\n    {\n      "trial": 3,\n')
    pareto = json.loads(both)["pareto_front"]
    assert [r["trial"] for r in pareto] == [3, 1, 2, 4]  # 5 and 6 each lose on one tie


def test_top_ten_by_default_and_the_text_format_by_default() -> None:
    many = [trial(i, f"op{i}", "fixed", [0.1 + i / 100] * 2, [0.5, 0.5]) for i in range(12)]
    rows = rows_from_trials(many)
    assert [r.trial for r in best_combinations(rows)] == list(range(10))
    assert [r.trial for r in best_combinations(rows, top=None)] == list(range(12))
    for top, n in ((10, 10), (None, 12), (3, 3)):
        kw = {} if top == 10 else {"top": top}
        data = json.loads(study_report(many, ("val_loss",), "json", **kw))
        assert [r["trial"] for r in data["best_combinations"]] == list(range(n))
    assert format_rows(rows) == format_rows(rows, "text")
    assert study_report(many, ("val_loss",)) == study_report(many, ("val_loss",), "text")


def test_rows_skip_what_is_not_a_finished_evoprune_trial_and_keep_the_rest() -> None:
    failed = optuna.trial.create_trial(state=TrialState.FAIL)
    no_combo = optuna.trial.create_trial(
        state=TrialState.COMPLETE, value=0.1, user_attrs={"evoprune.results": [{"val_loss": 1}]}
    )
    bare = optuna.trial.create_trial(
        state=TrialState.COMPLETE,
        value=0.2,
        user_attrs={
            "evoprune.results": [{"seed": 1, "val_loss": 0.2, "test_loss": 0.3,
                                  "remaining_fraction": 0.5}],
            "evoprune.combination": {"engine": "coevolution", "operator": "random",
                                     "schedule": "fixed"},
            "evoprune.mlflow_run_id": "abc123",
        },
    )  # fmt: skip
    bare.number = 7
    rows = rows_from_trials([failed, no_combo, bare, TRIALS[4]])  # a failure does not stop it
    assert [r.trial for r in rows] == [7, 4]
    r7, r4 = rows
    assert (r7.engine, r7.operator, r7.schedule) == ("coevolution", "random", "fixed")
    assert (r7.probability, r7.amount, r7.population, r7.baseline) == (None, None, "1", False)
    assert r7.mlflow_run_id == "abc123" and r4.mlflow_run_id == ""
    assert (r4.probability, r4.amount, r4.population) == (0.5, 0.3, "1")
    rec = table_record(r7)
    assert (rec["val_loss"], rec["test_loss"], rec["remaining_fraction"], rec["seeds"]) == (
        0.2, 0.3, 0.5, 1
    )  # fmt: skip
    assert (rec["val_loss_std"], r7.key, r7.trials, r7.seeds) == (0.0, "trial:7", (7,), (1,))


def test_mean_std_of_three() -> None:
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)  # sum of squares 2, divided by n - 1 = 2


def test_rows_keep_the_population() -> None:
    t = trial(8, "random", "fixed", [0.2, 0.3], [0.5, 0.5])
    t.user_attrs["evoprune.combination"]["population"] = "4x4"
    assert rows_from_trials([t])[0].population == "4x4"
