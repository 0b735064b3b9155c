"""Comparisons across seeds: median, IQR, Mann-Whitney U, Kruskal-Wallis, Holm, Vargha-Delaney A12.

Pure functions of lists of numbers (scipy for the test's p-value, nothing else): they know
nothing of studies, Optuna or MLflow. ``reporting._compare`` applies them to a study.

Conventions (see ``docs/statistics.md``):

- quartiles are numpy's default (linear interpolation, "type 7");
- the test is two-sided. Without ties: scipy's exact distribution when a sample has at most 8
  values. With ties (a no-pruning baseline keeps every weight on every seed, so its remaining
  fraction is always tied): the exact permutation distribution of U (every split of the pooled
  values) while there are at most ``PERMUTATION_LIMIT`` splits. Otherwise the normal
  approximation with tie and continuity corrections. The report says which one ran;
- ``A12(x, y) = P(X > Y) + P(X = Y) / 2``: for a minimised objective (every evoprune
  objective) a value below 0.5 means ``x`` tends to be lower, i.e. better.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "A12_THRESHOLDS",
    "PERMUTATION_LIMIT",
    "Summary",
    "TestResult",
    "a12",
    "a12_magnitude",
    "holm",
    "kruskal_wallis",
    "mann_whitney",
    "summarize",
]

PERMUTATION_LIMIT = 20_000
"""With ties, the exact permutation p-value is used while the samples split at most this many
ways (e.g. 8 seeds against 8); beyond it the tie-corrected normal approximation."""

A12_THRESHOLDS = ((0.71, "large"), (0.64, "medium"), (0.56, "small"))
"""Vargha and Delaney's (2000) bounds on ``max(A12, 1 - A12)``; below 0.56 is negligible."""


@dataclass(frozen=True)
class Summary:
    """Spread of one metric over seeds: median and quartiles, mean and sample std."""

    n: int
    median: float | None
    q1: float | None
    q3: float | None
    mean: float | None
    std: float | None
    min: float | None
    max: float | None

    @property
    def iqr(self) -> float | None:
        return None if self.q1 is None or self.q3 is None else self.q3 - self.q1


def summarize(values: Sequence[float]) -> Summary:
    """Median, quartiles, mean and sample standard deviation (0 for one value; None for none)."""
    n = len(values)
    if n == 0:
        return Summary(0, None, None, None, None, None, None, None)
    a = np.asarray(values, dtype=np.float64)
    q1, med, q3 = (float(q) for q in np.percentile(a, [25.0, 50.0, 75.0]))
    mean = float(a.mean())
    std = float(a.std(ddof=1)) if n > 1 else 0.0
    return Summary(n, med, q1, q3, mean, std, float(a.min()), float(a.max()))


def a12(x: Sequence[float], y: Sequence[float]) -> float:
    """Vargha-Delaney A12: the probability that a value of ``x`` exceeds one of ``y`` (ties
    count half). 0.5 is no effect; below 0.5 ``x`` tends to be lower."""
    if not x or not y:
        raise ValueError("A12 needs at least one value on each side")
    greater = sum(1 for a in x for b in y if a > b)
    equal = sum(1 for a in x for b in y if a == b)
    return (greater + 0.5 * equal) / (len(x) * len(y))


def a12_magnitude(value: float) -> str:
    """``negligible``, ``small``, ``medium`` or ``large`` (direction-free)."""
    strength = max(value, 1.0 - value)
    for bound, label in A12_THRESHOLDS:
        if strength >= bound:
            return label
    return "negligible"


@dataclass(frozen=True)
class TestResult:
    """A two-sided Mann-Whitney U test of ``x`` against ``y`` (``p`` None: not tested)."""

    __test__ = False  # not a pytest class

    n_x: int
    n_y: int
    u: float | None
    p: float | None
    a12: float | None
    magnitude: str | None
    method: str
    note: str = ""

    @property
    def direction(self) -> str:
        """``lower``, ``higher`` or ``equal``: where ``x`` tends to lie relative to ``y``."""
        if self.a12 is None or self.a12 == 0.5:
            return "equal"
        return "lower" if self.a12 < 0.5 else "higher"


def mann_whitney(x: Sequence[float], y: Sequence[float]) -> TestResult:
    """Two-sided Mann-Whitney U of ``x`` against ``y`` with A12 (``u`` is the U of ``x``).

    Fewer than 2 values on a side: no test and no effect size (``p`` and ``a12`` None, a note
    says why): one value against one is 0 or 1, which says nothing about the groups. Every
    value tied: ``p`` = 1 exactly (every permutation of the pooled values gives the same U).
    """
    nx, ny = len(x), len(y)
    if nx < 2 or ny < 2:
        return TestResult(nx, ny, None, None, None, None, "none", "fewer than 2 seeds: no test")
    effect = a12(x, y)
    label = a12_magnitude(effect)
    pooled = [*x, *y]
    if all(v == pooled[0] for v in pooled):
        return TestResult(nx, ny, nx * ny / 2.0, 1.0, effect, label, "exact", "all values tied")
    from scipy.stats import PermutationMethod, mannwhitneyu

    ties = len(set(pooled)) < len(pooled)
    splits = math.comb(nx + ny, nx)
    how: str | PermutationMethod
    if not ties and min(nx, ny) <= 8:
        method = how = "exact"
    elif ties and splits <= PERMUTATION_LIMIT:
        method, how = "permutation", PermutationMethod(n_resamples=splits)  # every split: exact
    else:
        method = how = "asymptotic"
    res = mannwhitneyu(x, y, alternative="two-sided", method=how)
    return TestResult(nx, ny, float(res.statistic), float(res.pvalue), effect, label, method)


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment over the family of the given p-values (None: not tested,
    not counted). Adjusted p_(i) = max over j <= i of min(1, (m - j + 1) p_(j)), sorted
    ascending, returned in the input order."""
    tested = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    m = len(tested)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def kruskal_wallis(groups: Sequence[Sequence[float]]) -> float | None:
    """Kruskal-Wallis p over the groups with at least one value (do the groups differ at all?).

    The chi-squared approximation with the tie correction (scipy). None when fewer than two
    groups have values; 1.0 when every value is tied (no ranking can tell the groups apart).
    """
    filled = [list(g) for g in groups if len(g)]
    if len(filled) < 2:
        return None
    pooled = [v for g in filled for v in g]
    if all(v == pooled[0] for v in pooled):
        return 1.0
    from scipy.stats import kruskal

    return float(kruskal(*filled).pvalue)
