"""The statistical tests (``reporting/_statistics.py``): by hand, against scipy, at the edges."""

from __future__ import annotations

import math

import pytest
from scipy.stats import kruskal, mannwhitneyu

from evoprune_core.reporting import (
    Summary,
    TestResult,
    a12,
    a12_magnitude,
    holm,
    kruskal_wallis,
    mann_whitney,
    summarize,
)

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
