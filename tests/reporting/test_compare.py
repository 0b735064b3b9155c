"""Groups, references and tests of ``report --stats`` (``reporting/_compare.py``)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState
from scipy.stats import PermutationMethod, mannwhitneyu

from evoprune_core.errors import ConfigError
from evoprune_core.reporting import (
    GROUP_FIELDS,
    StatsReport,
    build_stats,
    format_stats,
    groups_from_trials,
    mann_whitney,
    pareto_groups,
    verdict,
)
from tests.reporting._common import TRIALS, trial


def test_each_trial_against_its_engines_baseline_with_holm() -> None:
    r = build_stats(TRIALS, ["val_loss"], "demo")
    by = {c.group: c for c in r.comparisons}
    assert set(by) == {"trial:1", "trial:2", "trial:3", "trial:5"}
    assert {c.reference for k, c in by.items()} == {"trial:0", "trial:4"}
    assert by["trial:5"].reference == "trial:4" and by["trial:5"].result.p is None
    # trial 1 lies wholly below the baseline: U = 0, exact p = 2 / C(8, 4) = 1 / 35
    assert by["trial:1"].result.u == 0 and by["trial:1"].result.p == pytest.approx(1 / 35)
    ps = [by[f"trial:{i}"].result.p for i in (1, 2, 3)]
    for i, p in zip((1, 2, 3), ps):
        vals = [x["val_loss"] for x in TRIALS[i].user_attrs["evoprune.results"]]
        how = PermutationMethod(n_resamples=35) if i == 3 else "exact"  # 3 ties the baseline
        assert by[f"trial:{i}"].result.method == ("permutation" if i == 3 else "exact")
        assert p == float(mannwhitneyu(vals, [0.30, 0.31, 0.32, 0.33], method=how).pvalue)
    # the family is the three tests that ran (trial 5 has one seed); Holm by hand
    p1, p2, p3 = ps
    order = sorted([(p1, "trial:1"), (p2, "trial:2"), (p3, "trial:3")])
    running, expected = 0.0, {}
    for rank, (p, key) in enumerate(order):
        running = max(running, min(1.0, (3 - rank) * p))
        expected[key] = running
    for key, value in expected.items():
        assert by[key].p_holm == pytest.approx(value)
    assert by["trial:1"].p_holm == pytest.approx(3 / 35)
    assert verdict(by["trial:1"]) == "n.s." and verdict(by["trial:5"]) == "not tested"
    assert by["trial:1"].result.a12 == 0.0 and by["trial:1"].result.direction == "lower"
    strict = verdict(by["trial:1"], alpha=0.1)
    assert strict == "lower"


def test_against_a_combination_and_bad_names() -> None:
    r = build_stats(TRIALS, ["val_loss"], "demo", against="canonical/variance/fixed")
    assert {c.reference for c in r.comparisons} == {"trial:3"}
    assert len(r.comparisons) == 5  # every other group, baselines and coevolution included
    assert build_stats(TRIALS, ["val_loss"], against="trial:2").comparisons[0].reference == (
        "trial:2"
    )
    with pytest.raises(ConfigError, match=r"^--against: unknown combination 'canonical/x'; "
                       r"allowed: canonical/none, canonical/random/fixed, "):  # fmt: skip
        build_stats(TRIALS, ["val_loss"], against="canonical/x")
    with pytest.raises(ConfigError, match="ambiguous .2 trials.*trial:1, trial:2"):
        build_stats(TRIALS, ["val_loss"], against="canonical/random/fixed")
    with pytest.raises(ConfigError, match="no group 'trial:9'"):
        build_stats(TRIALS, ["val_loss"], against="trial:9")
    with pytest.raises(ConfigError, match="--metric: unknown metric 'loss'"):
        build_stats(TRIALS, ["loss"])


def test_grouping_by_combination_pools_trials() -> None:
    r = build_stats(TRIALS, ["val_loss"], grouping="combination")
    g = r.group("canonical/random/fixed")
    assert g.trials == (1, 2) and g.seeds == (1, 2, 3, 4, 1, 2, 3, 4)
    assert g.values["val_loss"][4:] == (0.29, 0.34, 0.35, 0.36) and g.probability is None
    c = next(c for c in r.comparisons if c.group == "canonical/random/fixed")
    assert c.reference == "canonical/none" and c.result.n_x == 8
    assert any("pools every trial" in n for n in r.notes)
    with pytest.raises(ConfigError, match="no group 'trial:1'"):
        build_stats(TRIALS, ["val_loss"], grouping="combination", against="trial:1")


def test_no_baseline_is_said() -> None:
    r = build_stats(TRIALS[1:4], ["val_loss"])
    assert r.comparisons == () and "no no-pruning baseline for engine(s) canonical" in r.notes[0]


def test_pareto_of_medians() -> None:
    r = build_stats(TRIALS, ["val_loss", "remaining_fraction"])
    # trial 4 (0.105, 1.0), 5 (0.12, 0.9), 1 (0.215, 0.5), 2 (0.345, 0.4); 0 and 3 dominated
    assert [g.key for g in pareto_groups(r.groups)] == ["trial:4", "trial:5", "trial:1", "trial:2"]


def test_json_round_trips_and_carries_every_value() -> None:
    r = build_stats(TRIALS, ["val_loss", "remaining_fraction"], "demo")
    data = json.loads(format_stats(r, "json"))
    assert StatsReport.from_dict(data) == r
    assert data["pareto_front"] == ["trial:4", "trial:5", "trial:1", "trial:2"]
    assert data["groups"][1]["values"]["val_loss"] == [0.20, 0.21, 0.22, 0.23]
    assert list(data["groups"][1]) == [*GROUP_FIELDS, "summary"]  # no MLflow run id
    tracked = replace(r.groups[1], mlflow_run_id="abc")
    assert tracked == r.groups[1] and StatsReport.from_dict(data).groups[1].mlflow_run_id == ""
    summary = data["groups"][1]["summary"]["val_loss"]
    assert (summary["n"], summary["median"], summary["q1"]) == (4, 0.215, 0.2075)
    assert summary["iqr"] == pytest.approx(0.015) and set(data["groups"][1]["summary"]) == {
        "val_loss", "test_loss", "remaining_fraction"
    }  # fmt: skip
    # anyone can recompute every test from the JSON alone
    values = {g["key"]: g["values"] for g in data["groups"]}
    for c in data["comparisons"]:
        again = mann_whitney(values[c["group"]][c["metric"]], values[c["reference"]][c["metric"]])
        assert (again.u, again.p, again.a12) == (
            c["result"]["u"],
            c["result"]["p"],
            c["result"]["a12"],
        )
        assert c["result"]["direction"] == again.direction


COMBOS = (
    "canonical/none, canonical/random/fixed, canonical/variance/fixed, coevolution/none, "
    "coevolution/random/fixed"
)


def test_bad_against_lists_trial_numbers_only_when_grouped_by_trial() -> None:
    with pytest.raises(ConfigError) as by_trial:
        build_stats(TRIALS, ["val_loss"], against="canonical/x")
    assert str(by_trial.value) == (
        f"--against: unknown combination 'canonical/x'; allowed: {COMBOS}, "
        "or trial:<number> of a completed trial"
    )
    with pytest.raises(ConfigError) as pooled:
        build_stats(TRIALS, ["val_loss"], grouping="combination", against="canonical/x")
    assert str(pooled.value) == f"--against: unknown combination 'canonical/x'; allowed: {COMBOS}"


def test_json_round_trip_keeps_against_and_notes() -> None:
    r = build_stats(TRIALS, ["val_loss"], "demo", grouping="combination", against="canonical/none")
    assert r.against == "canonical/none" and len(r.notes) == 1
    again = StatsReport.from_dict(json.loads(format_stats(r, "json")))
    assert again == r and again.against == "canonical/none" and again.notes == r.notes


def _bare(number: int, engine: str, op: str, vals: list[float], **combo: Any) -> Any:
    """A trial as an older study stored it: no baseline flag, maybe no population."""
    results = [
        {"seed": i + 1, "val_loss": v, "test_loss": v, "remaining_fraction": 1.0}
        for i, v in enumerate(vals)
    ]
    t = optuna.trial.create_trial(
        state=TrialState.COMPLETE,
        value=vals[0],
        user_attrs={
            "evoprune.results": results,
            "evoprune.combination": {"engine": engine, "operator": op, "schedule": "fixed",
                                     **combo},
        },
    )  # fmt: skip
    t.number = number
    return t


def test_groups_take_defaults_and_pool_populations() -> None:
    no_combo = optuna.trial.create_trial(
        state=TrialState.COMPLETE, value=0.1, user_attrs={"evoprune.results": [{"seed": 1}]}
    )
    failed = optuna.trial.create_trial(state=TrialState.FAIL)
    a = _bare(3, "canonical", "random", [0.1, 0.2], probability=0.5, amount=0.2)
    b = _bare(4, "canonical", "random", [0.3], probability=0.5, amount=0.2, population="4")
    (g,) = groups_from_trials([failed, no_combo, a])  # the default grouping is by trial
    assert (g.key, g.population, g.baseline, g.probability, g.amount) == (
        "trial:3", "1", False, 0.5, 0.2
    )  # fmt: skip
    (pooled,) = groups_from_trials([a, b], "combination")
    assert (pooled.population, pooled.probability, pooled.amount) == ("mixed", 0.5, 0.2)
    assert groups_from_trials([b, b], "combination")[0].population == "4"
    with pytest.raises(ConfigError) as info:
        groups_from_trials([a], "seed")
    assert str(info.value) == "--group: unknown grouping 'seed'; allowed: trial, combination"


def test_build_stats_empty_and_bad_metrics_exact() -> None:
    assert build_stats([], ["val_loss"]) == StatsReport(
        "", "trial", ("val_loss",), None, (), (), ("no completed trials with evoprune results",)
    )
    allowed = "allowed: val_loss, test_loss, train_loss, remaining_fraction"
    with pytest.raises(ConfigError) as none:
        build_stats(TRIALS, [])
    assert str(none.value) == f"--metric: unknown metric ''; {allowed}"
    with pytest.raises(ConfigError) as bad:
        build_stats(TRIALS, ["val_loss", "loss"])
    assert str(bad.value) == f"--metric: unknown metric 'loss'; {allowed}"
    r = build_stats(TRIALS, ["val_loss"], "demo", against="trial:0")
    assert (r.study, r.grouping, r.metrics, r.against) == (
        "demo",
        "trial",
        ("val_loss",),
        "trial:0",
    )


def test_build_stats_notes_exact() -> None:
    # an engine without a baseline listed first does not stop the others being tested
    trials = [
        _bare(0, "coevolution", "random", [0.1, 0.2]),
        _bare(1, "other", "random", [0.1, 0.2]),
        trial(2, "none", "-", [0.3, 0.4]),
        trial(3, "random", "fixed", [0.1, 0.2]),
        trial(4, "none", "-", [0.5, 0.6]),
    ]
    r = build_stats(trials, ["val_loss"])
    assert [(c.group, c.reference) for c in r.comparisons] == [
        ("trial:3", "trial:2"),
        ("trial:4", "trial:2"),  # the second baseline is compared with the first
    ]
    assert r.notes == (
        "several baselines per engine; compared with the first: ['trial:4'] unused",
        "no no-pruning baseline for engine(s) coevolution, other: not tested (use --against)",
    )
    # two seeds per group is enough to test; the pooling note only when a group pools trials
    assert build_stats(TRIALS[:2], ["val_loss"], grouping="combination").notes == ()
    one_seed = build_stats([trial(0, "none", "-", [0.3]), trial(1, "random", "fixed", [0.1])],
                           ["val_loss"])  # fmt: skip
    assert one_seed.notes == (
        "one seed per group: no test is possible; medians only, no effect sizes (add seeds to "
        "compare groups)",
    )
    assert one_seed.comparisons == ()  # no rows of 'not tested', no A12 of one value
