"""Statistics across seeds: Mann-Whitney U, Holm, A12, grouping, formats, ``report --stats``."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
import pytest
from conftest import Project, study_trial
from mlflow import MlflowClient
from optuna.trial import TrialState
from scipy.stats import PermutationMethod, kruskal, mannwhitneyu

from evoprune_core.cli import main
from evoprune_core.errors import ConfigError
from evoprune_core.reporting import (
    StatsReport,
    Summary,
    TestResult,
    a12,
    a12_magnitude,
    build_stats,
    format_stats,
    groups_from_trials,
    holm,
    kruskal_wallis,
    mann_whitney,
    pareto_groups,
    summarize,
    verdict,
    write_figures,
)

# -- the numbers, by hand --------------------------------------------------------------------
X, Y = [0.1, 0.3, 0.5], [0.2, 0.4, 0.6, 0.8]


def test_mann_whitney_and_a12_by_hand_and_scipy_without_ties() -> None:
    # U of x = pairs with x > y: 0.3 > 0.2; 0.5 > 0.2, 0.4 -> 3 of 12 pairs
    r = mann_whitney(X, Y)
    assert r.u == 3.0 and r.a12 == 0.25 and a12(X, Y) == 0.25
    # exact: U <= 3 in 1 + 1 + 2 + 3 = 7 of C(7, 3) = 35 arrangements; two-sided 14 / 35
    assert r.p == pytest.approx(0.4, abs=1e-15) and r.method == "exact"
    ref = mannwhitneyu(X, Y, alternative="two-sided")
    assert (r.u, r.p) == (float(ref.statistic), float(ref.pvalue))
    assert r.magnitude == "large" and r.direction == "lower"  # max(0.25, 0.75) >= 0.71
    assert r.n_x == 3 and r.n_y == 4 and r.note == ""


def test_mann_whitney_with_ties_is_an_exact_permutation_test() -> None:
    x, y = [1.0, 2.0, 2.0], [2.0, 3.0, 3.0]
    r = mann_whitney(x, y)
    # mid-ranks 1 | 3 3 3 | 5.5 5.5; U of x = 7 - 6 = 1. Of the C(6, 3) = 20 splits only
    # {1, 2, 2} (3 ways) has U <= 1: two-sided p = 2 * 3 / 20
    assert r.u == 1.0 and r.method == "permutation"
    assert r.p == pytest.approx(0.3, abs=1e-12)
    assert r.a12 == pytest.approx(1 / 9) and r.magnitude == "large"
    # the normal approximation scipy's default would give here is far smaller: erfc(1)
    asym = float(mannwhitneyu(x, y).pvalue)
    assert asym == pytest.approx(math.erfc(1.0), rel=1e-12)


def test_mann_whitney_large_tied_samples_use_the_corrected_normal_approximation() -> None:
    x = [0.1 * (i % 5) for i in range(12)]
    y = [0.1 * (i % 4) + 0.05 * (i % 2) for i in range(12)]
    r = mann_whitney(x, y)  # C(24, 12) = 2,704,156 splits: too many
    ref = mannwhitneyu(x, y, alternative="two-sided", method="asymptotic")
    assert r.method == "asymptotic" and (r.u, r.p) == (float(ref.statistic), float(ref.pvalue))
    assert r.a12 == pytest.approx(float(ref.statistic) / 144)


def test_edge_cases_say_why() -> None:
    one = mann_whitney([0.1], [0.2, 0.3])
    assert one.p is None and one.u is None and one.method == "none"
    assert one.note == "fewer than 2 seeds: no test" and one.a12 is None  # 1 vs 2: no effect
    assert one.magnitude is None and one.direction == "equal"
    tied = mann_whitney([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])
    assert (tied.p, tied.u, tied.a12, tied.note) == (1.0, 4.5, 0.5, "all values tied")
    assert tied.direction == "equal" and tied.magnitude == "negligible"
    with pytest.raises(ValueError):
        a12([], [1.0])


@pytest.mark.parametrize(
    ("value", "label"),
    [(0.5, "negligible"), (0.559, "negligible"), (0.56, "small"), (0.64, "medium"),
     (0.70, "medium"), (0.71, "large"), (0.28, "large"), (0.40, "small"), (1.0, "large")],
)  # fmt: skip
def test_a12_magnitude_thresholds(value: float, label: str) -> None:
    assert a12_magnitude(value) == label


def test_holm_on_a_hand_worked_family() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 (m = 4): 4 * 0.005 = 0.02, 3 * 0.01 = 0.03,
    # 2 * 0.03 = 0.06, 1 * 0.04 = 0.04 -> 0.06 (monotone); None is outside the family
    adjusted = holm([0.01, 0.04, 0.03, 0.005, None])
    assert adjusted[4] is None
    assert adjusted[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02], abs=1e-15)
    assert holm([0.5, 0.6]) == [1.0, 1.0]  # capped at 1
    assert holm([]) == [] and holm([0.2]) == [0.2]


def test_kruskal_wallis_by_hand_and_scipy() -> None:
    # ranks 1..9 in three groups: rank sums 6, 15, 24; H = 12 / (9 * 10) * (6^2 + 15^2 + 24^2) / 3
    # - 3 * 10 = 7.2; with 2 degrees of freedom the chi-squared tail is exp(-H / 2)
    groups = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]
    assert kruskal_wallis(groups) == pytest.approx(math.exp(-3.6), rel=1e-12)
    tied = [[0.1, 0.2, 0.2], [0.2, 0.3, 0.4], [0.4, 0.4, 0.5, 0.6]]
    assert kruskal_wallis(tied) == pytest.approx(kruskal(*tied).pvalue, rel=1e-12)
    assert kruskal_wallis(tied) != pytest.approx(kruskal_wallis([[0.1, 0.2, 0.25], *tied[1:]]))
    # an empty group is left out of the test, one group is no test, all tied is p = 1
    assert kruskal_wallis([*groups, []]) == kruskal_wallis(groups)
    assert kruskal_wallis([[1.0, 2.0], []]) is None
    assert kruskal_wallis([[0.5, 0.5], [0.5]]) == 1.0


def test_summarize() -> None:
    s = summarize([4.0, 1.0, 3.0, 2.0])
    assert (s.n, s.median, s.q1, s.q3, s.mean, s.min, s.max) == (4, 2.5, 1.75, 3.25, 2.5, 1, 4)
    assert s.iqr == 1.5 and s.std == pytest.approx(math.sqrt(5 / 3))
    assert summarize([0.3]).std == 0.0 and summarize([]).median is None


# -- a study's trials -> groups, references, tests --------------------------------------------
def trial(number: int, op: str, sched: str, vals: list[float], **kw: Any) -> Any:
    rem = kw.get("rem", 1.0)
    results = [
        {"seed": i + 1, "val_loss": v, "test_loss": v + 0.01, "remaining_fraction": rem}
        for i, v in enumerate(vals)
    ]
    for r in results:
        r.pop(kw.get("drop", ""), None)  # a metric the trial did not record
    return study_trial(
        number, op, sched, results, sum(vals) / len(vals), engine=kw.get("engine", "canonical"),
        probability=kw.get("p"), amount=kw.get("amount"),
    )  # fmt: skip


TRIALS = [
    trial(0, "none", "-", [0.30, 0.31, 0.32, 0.33]),
    trial(1, "random", "fixed", [0.20, 0.21, 0.22, 0.23], p=0.5, rem=0.5),
    trial(2, "random", "fixed", [0.29, 0.34, 0.35, 0.36], p=0.9, rem=0.4),
    trial(3, "variance", "fixed", [0.31, 0.32, 0.33], p=0.5, rem=0.7),
    trial(4, "none", "-", [0.10, 0.11], engine="coevolution"),
    trial(5, "random", "fixed", [0.12], engine="coevolution", p=0.5, rem=0.9),
]


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


def test_text_markdown_csv() -> None:
    r = build_stats(TRIALS, ["val_loss"], "demo")
    text = format_stats(r, "text")
    assert "Reference: each engine's no-pruning baseline (canonical: trial:0, coevolution: " \
        "trial:4)" in text  # fmt: skip
    line = next(x for x in text.splitlines() if x.startswith("trial:1 ") and "1/35" not in x)
    assert "0.2150 [0.2075, 0.2225]" in line and "0.2150 ± 0.0129" in line
    test_line = [x for x in text.splitlines() if x.startswith("trial:1 ")][1]
    assert test_line.split()[3:10] == ["4", "4", "0.0", "0.0286", "0.0857", "0.000", "large"]
    assert "val L1: 3 tests in the family" in text
    assert text.splitlines()[-1] == "trial:4, trial:5, trial:1, trial:2"  # the Pareto front
    md = format_stats(r, "markdown")
    assert md.startswith("## Statistics over seeds") and "| group | engine |" in md
    rows = list(csv.DictReader(io.StringIO(format_stats(r, "csv"))))
    assert len(rows) == sum(3 for _ in r.groups)  # val, test, remaining per group
    row = next(x for x in rows if x["group"] == "trial:1" and x["metric"] == "val_loss")
    assert float(row["p_holm"]) == pytest.approx(3 / 35) and row["verdict"] == "n.s."
    assert row["values"] == "0.2 0.21 0.22 0.23" and row["reference"] == "trial:0"
    with pytest.raises(ValueError, match="allowed: text, markdown, csv, json"):
        format_stats(r, "html")


def test_figures_are_pngs(tmp_path: Path) -> None:
    r = build_stats(TRIALS, ["val_loss", "remaining_fraction"], "demo")
    paths = write_figures(r, tmp_path / "plots")
    names = [p.name for p in paths]
    assert names == ["box_val_loss.png", "box_remaining_fraction.png", "pareto_front.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)
    assert write_figures(build_stats([], ["val_loss"]), tmp_path / "none") == []
    assert not (tmp_path / "none").exists()


# -- a real tiny study through the CLI -------------------------------------------------------
GRID = """
sampler = "grid"
seeds = [1, 2, 3]
tune_plugin_params = false
objectives = ["val_loss", "remaining_fraction"]
"""
GRID_BASE = """
[base]
generations = 3
[base.data]
name = "bc-10-100-1000"
[base.network]
encoder = [8, 4]
[base.training]
batch_size = 50
[base.pruning]
probability = 1.0
amount = 0.3
"""
GRID_SPACE = """
[space]
"pruning.operator" = { choices = ["random", "magnitude"] }
"pruning.schedule" = { choices = ["fixed"] }
"""


def test_report_stats_on_a_real_study(
    stored_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project = stored_project
    path = project.study_file("grid", n_trials=10, header=GRID, base=GRID_BASE, space=GRID_SPACE)
    assert main(project.args(path)) == 0
    out = capsys.readouterr().out
    plot_line = next(x for x in out.splitlines() if x.startswith("Pareto front plot: "))
    assert Path(plot_line.split(": ", 1)[1]).read_bytes()[:4] == b"\x89PNG"

    report = ["report", str(path), "--store", str(project.store), "--stats"]
    assert main([*report, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["metrics"] == ["val_loss", "remaining_fraction"] and data["grouping"] == "trial"
    groups = {g["key"]: g for g in data["groups"]}
    assert list(groups) == ["trial:0", "trial:1", "trial:2"]
    assert [groups[k]["operator"] for k in groups] == ["none", "random", "magnitude"]
    assert all(g["seeds"] == [1, 2, 3] for g in groups.values())
    assert groups["trial:0"]["values"]["remaining_fraction"] == [1.0, 1.0, 1.0]
    # p = 1: 30% of the live weights go in each of the 3 generations, on every seed (a count)
    for key in ("trial:1", "trial:2"):
        assert groups[key]["values"]["remaining_fraction"] == [0.3430110044486069] * 3
    tests = {(c["group"], c["metric"]): c for c in data["comparisons"]}
    # every pruned seed keeps fewer weights than every baseline seed: U = 0, exact
    # p = 2 / C(6, 3) = 0.1, Holm over the two tests of the metric: 0.2 each
    for key in ("trial:1", "trial:2"):
        c = tests[(key, "remaining_fraction")]
        assert c["reference"] == "trial:0"
        assert (c["result"]["u"], c["result"]["a12"], c["result"]["method"]) == (
            0, 0, "permutation"
        )  # fmt: skip
        assert c["result"]["p"] == pytest.approx(0.1) and c["p_holm"] == pytest.approx(0.2)
        assert c["result"]["magnitude"] == "large" and c["result"]["direction"] == "lower"
        val = tests[(key, "val_loss")]
        ref = mannwhitneyu(
            groups[key]["values"]["val_loss"], groups["trial:0"]["values"]["val_loss"]
        )
        assert val["result"]["p"] == pytest.approx(float(ref.pvalue), abs=1e-15)
    # the study logged the same statistics and plots to its MLflow run
    study = optuna.load_study(
        study_name="grid",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(project.journal / "grid.journal"))
        ),
    )
    client = MlflowClient(project.tracking_uri)
    parent = study.user_attrs["evoprune.parent_run_id"]
    files = {f.path for f in client.list_artifacts(parent, "stats")}
    assert files == {
        "stats/stats.json", "stats/stats.md", "stats/box_val_loss.png",
        "stats/box_remaining_fraction.png", "stats/pareto_front.png",
    }  # fmt: skip
    logged = Path(client.download_artifacts(parent, "stats/stats.json", str(project.root)))
    assert json.loads(logged.read_text()) == data

    # --against, --metric, --plots
    plots = project.root / "plots"
    args = [*report, "--against", "canonical/magnitude/fixed", "--metric", "test_loss"]
    assert main([*args, "--plots", str(plots), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    tested = [r for r in rows if r["p"]]
    assert {(r["group"], r["metric"], r["reference"]) for r in tested} == {
        ("trial:0", "test_loss", "trial:2"), ("trial:1", "test_loss", "trial:2")
    }  # fmt: skip
    assert sorted(p.name for p in plots.iterdir()) == ["box_test_loss.png", "pareto_front.png"]

    # a bad reference: one line, exit 2, nothing written
    bad = project.root / "bad-plots"
    assert main([*report, "--against", "canonical/taylor", "--plots", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: --against: unknown combination")
    assert err.endswith(
        "allowed: canonical/magnitude/fixed, canonical/none, canonical/random/fixed, "
        "or trial:<number> of a completed trial"
    )
    assert not bad.exists()
    assert main(["report", str(path), "--store", str(project.store), "--against", "x"]) == 2
    assert "--against: only with --stats" in capsys.readouterr().err
    assert main([*report, "--plots", str(path)]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_quickstart_is_two_objective() -> None:
    from evoprune_core.plugins import Registry
    from evoprune_core.study import load_study_config

    root = Path(__file__).resolve().parents[1]
    registry = Registry.load(env={"EVOPRUNE_PLUGINS": "none"})
    cfg = load_study_config(root / "studies" / "quickstart.toml", registry)
    assert cfg.objectives == ("val_loss", "remaining_fraction") and cfg.baseline


# -- exact edges the mutation run found untested ----------------------------------------------
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


def test_verdict_at_alpha_is_not_significant() -> None:
    c = build_stats(TRIALS, ["val_loss"]).comparisons[0]
    assert c.group == "trial:1" and c.result.direction == "lower"
    assert verdict(replace(c, p_holm=0.05)) == "n.s."  # Holm p < alpha, strictly
    assert verdict(replace(c, p_holm=0.0499)) == "lower"
    assert verdict(replace(c, p_holm=0.05), alpha=0.0501) == "lower"


def test_reference_line_without_any_baseline() -> None:
    text = format_stats(build_stats(TRIALS[1:4], ["val_loss"])).splitlines()
    assert text[2] == "Reference: each engine's no-pruning baseline (none found)"
    assert text[-1] == (
        "- no no-pruning baseline for engine(s) canonical: not tested (use --against)"
    )


def test_json_round_trip_keeps_against_and_notes() -> None:
    r = build_stats(TRIALS, ["val_loss"], "demo", grouping="combination", against="canonical/none")
    assert r.against == "canonical/none" and len(r.notes) == 1
    again = StatsReport.from_dict(json.loads(format_stats(r, "json")))
    assert again == r and again.against == "canonical/none" and again.notes == r.notes


def _golden_report() -> StatsReport:
    """Two engines, a 13-seed group (p < 1e-3), a 1-seed group, a group without one metric."""
    trials = [
        TRIALS[0],
        TRIALS[1],
        trial(6, "magnitude", "fixed", [0.01 * i for i in range(13)], p=0.1234, amount=0.12345,
              rem=0.3),
        trial(7, "variance", "fixed", [0.4, 0.5, 0.6], p=0.5, drop="remaining_fraction"),
        TRIALS[4],
        TRIALS[5],
    ]  # fmt: skip
    return build_stats(trials, ["remaining_fraction", "val_loss"], "demo")


GOLDEN = Path(__file__).parent / "data"


@pytest.mark.parametrize("fmt", ["text", "markdown"])
def test_text_and_markdown_exact(fmt: str) -> None:
    # checked by hand: order by the first metric's median (trial 7 has none: last; trials 0
    # and 4 tie at 1.0: by trial), p 2 / C(17, 4) = 8.40e-04 for 13 seeds against 4, Holm
    # over 2 (remaining) and 3 (val) tests, the probability and amount to 3 decimals
    expected = (GOLDEN / f"stats_format.{'md' if fmt == 'markdown' else 'txt'}").read_text()
    assert format_stats(_golden_report(), fmt) + "\n" == expected


def test_csv_exact() -> None:
    got = list(csv.reader(io.StringIO(format_stats(_golden_report(), "csv"))))
    want = list(csv.reader(io.StringIO((GOLDEN / "stats_format.csv").read_text())))
    assert format_stats(_golden_report(), "csv").count("\r") == 0
    assert len(got) == len(want) == 18 and got[0] == want[0]
    for row, ref in zip(got[1:], want[1:]):
        assert len(row) == len(ref) == 32
        for cell, exp in zip(row, ref):
            try:
                float(exp)
            except ValueError:
                assert cell == exp  # text, empty, or the space-separated lists
            else:
                assert float(cell) == pytest.approx(float(exp), rel=1e-12, abs=1e-15)
    pooled = build_stats(TRIALS, ["val_loss"], grouping="combination")
    rows = list(csv.DictReader(io.StringIO(format_stats(pooled, "csv"))))
    row = next(r for r in rows if r["group"] == "canonical/random/fixed")
    assert (row["trials"], row["seeds"]) == ("1 2", "1 2 3 4 1 2 3 4")


def test_pooled_text_and_a_report_without_tests_exact() -> None:
    # pooled: no "combination" column in the tests, the probability differs within the pool
    pooled = build_stats(TRIALS, ["val_loss"], grouping="combination")
    assert format_stats(pooled) + "\n" == (GOLDEN / "stats_format_pooled.txt").read_text()
    assert format_stats(pooled) == format_stats(pooled, "text")  # text is the default
    alone = format_stats(build_stats(TRIALS[1:4], ["val_loss"]), "markdown")
    assert alone + "\n" == (GOLDEN / "stats_format_no_reference.md").read_text()


def _front_lines(text: str) -> list[str]:
    lines = text.split("\n")
    start = next(i for i, x in enumerate(lines) if "Pareto front of the medians" in x) + 2
    end = lines.index("", start) if "" in lines[start:] else len(lines)
    return lines[start:end]


def test_a_long_pareto_front_wraps_at_100_columns_in_text_only() -> None:
    # eleven groups trade loss for sparsity; in front order the first ten keys with their
    # commas and spaces take exactly 101 columns (two of them have 3-digit numbers)
    order = [10, 11, 100, 12, 101, 13, 14, 15, 16, 17, 18]
    trials = [
        trial(n, "random", "fixed", [0.1 + 0.01 * i] * 2, p=0.5, rem=0.9 - 0.05 * i)
        for i, n in enumerate(order)
    ]
    # ties: as good as trial 10 on loss but keeps more, as sparse as trial 18 but worse: both
    # dominated
    trials.append(trial(200, "random", "fixed", [0.1 + 0.01 * 0] * 2, p=0.5, rem=0.95))
    trials.append(trial(201, "random", "fixed", [0.3] * 2, p=0.5, rem=0.9 - 0.05 * 10))
    r = build_stats(trials, ["val_loss"])
    keys = [f"trial:{n}" for n in order]
    assert [g.key for g in pareto_groups(r.groups)] == keys
    assert _front_lines(format_stats(r)) == [", ".join(keys[:9]) + ",", ", ".join(keys[9:])]
    assert _front_lines(format_stats(r, "markdown")) == [", ".join(keys)]


def test_mann_whitney_edges_exact() -> None:
    assert mann_whitney([0.1], [0.2, 0.3]) == TestResult(
        1, 2, None, None, None, None, "none", "fewer than 2 seeds: no test"
    )  # no effect size either: one value says nothing about its group
    assert mann_whitney([], [0.2, 0.3]) == TestResult(
        0, 2, None, None, None, None, "none", "fewer than 2 seeds: no test"
    )
    assert mann_whitney([0.5, 0.5], [0.5, 0.5, 0.5]) == TestResult(
        2, 3, 3.0, 1.0, 0.5, "negligible", "exact", "all values tied"
    )
    # two seeds a side is enough: U = 0, exact p = 2 / C(4, 2)
    two = mann_whitney([0.1, 0.2], [0.3, 0.4])
    assert (two.u, two.method) == (0.0, "exact") and two.p == pytest.approx(1 / 3, abs=1e-15)
    # no ties: exact up to 8 values on the smaller side, then the normal approximation
    eight = mann_whitney([i / 100 for i in range(8)], [0.5 + i / 100 for i in range(9)])
    nine = mann_whitney([i / 100 for i in range(9)], [0.5 + i / 100 for i in range(9)])
    assert (eight.method, nine.method) == ("exact", "asymptotic")
    with pytest.raises(ValueError, match="^A12 needs at least one value on each side$"):
        a12([1.0], [])


def test_holm_caps_at_one_and_summaries_of_none_and_two() -> None:
    assert holm([0.7, 0.8]) == [1.0, 1.0]  # 2 * 0.7 = 1.4 is capped
    assert summarize([]) == Summary(0, None, None, None, None, None, None, None)
    assert summarize([1.0, 3.0]).std == math.sqrt(2.0)


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


def test_json_indent_p_at_the_boundary_and_an_empty_front() -> None:
    r = _golden_report()
    assert format_stats(r, "json").startswith('{\n  "study": "demo",\n  "grouping": "trial",')
    c = next(c for c in r.comparisons if c.group == "trial:6")
    at = replace(r, comparisons=(replace(c, result=replace(c.result, p=1e-3), p_holm=1e-3),))
    line = next(x for x in format_stats(at).split("\n") if x.startswith("trial:6 ") and "/" in x)
    assert line.split()[6:8] == ["0.0010", "0.0010"]  # below 1e-3 only is in e-notation
    # no group has a remaining fraction: no Pareto front
    flat = [trial(0, "none", "-", [0.3, 0.4], drop="remaining_fraction"),
            trial(1, "random", "fixed", [0.1, 0.2], drop="remaining_fraction")]  # fmt: skip
    text = format_stats(build_stats(flat, ["val_loss"])).split("\n")
    assert _front_lines("\n".join(text)) == ["-"]
    assert build_stats([], ["val_loss"], against="canonical/none").against == "canonical/none"


def test_a_one_seed_study_says_once_that_no_test_is_possible() -> None:
    trials = [
        trial(0, "none", "-", [0.3], rem=1.0),
        trial(1, "random", "fixed", [0.1], p=0.5, amount=0.2, rem=0.4),
        trial(2, "magnitude", "fixed", [0.2], p=0.25, amount=0.1, rem=0.5),
    ]
    text = format_stats(build_stats(trials, ["val_loss", "remaining_fraction"], "one"))
    assert text.split("\n") == [
        "Statistics over seeds: 3 groups; one group = one trial (one sampled configuration on "
        "every seed)",
        "",
        "One seed per group: no test is possible; medians only, no effect sizes (add seeds to "
        "compare groups).",
        "",
        "Medians",
        "",
        "group    engine     operator         schedule  p      amount  population  n  "
        "val L1 median  remaining median",
        "-------  ---------  ---------------  --------  -----  ------  ----------  -  "
        "-------------  ----------------",
        "trial:1  canonical  random           fixed     0.500  0.200   1           1  0.1000"
        "         0.4000",
        "trial:2  canonical  magnitude        fixed     0.250  0.100   1           1  0.2000"
        "         0.5000",
        "trial:0  canonical  none (baseline)  -         -      -       1           1  0.3000"
        "         1.0000",
        "",
        "Pareto front of the medians (remaining fraction and val L1, both minimised)",
        "",
        "trial:1",
    ]
    assert "A12" not in text and "not tested" not in text and text.count("no test") == 1
