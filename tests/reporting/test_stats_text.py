"""The formats of ``report --stats`` (``reporting/_stats_text.py``): text, Markdown, CSV, JSON,
exact."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from pathlib import Path

import pytest

from evoprune_core.reporting import (
    StatsReport,
    build_stats,
    format_stats,
    pareto_groups,
    verdict,
)
from tests.reporting._common import TRIALS, trial


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
