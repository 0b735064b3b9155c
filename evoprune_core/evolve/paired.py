"""Paired comparisons: one-sided Wilcoxon signed-rank tests in both directions, Holm-corrected."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["holm", "paired_tests"]


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1)."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    out = [1.0] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        out[i] = running
    return out


def _one(ours: np.ndarray, theirs: np.ndarray, lower_is_better: bool) -> dict[str, Any]:
    from scipy.stats import wilcoxon

    diff = ours - theirs
    finite = np.isfinite(diff)
    d = diff[finite]
    better = d < 0 if lower_is_better else d > 0
    worse = d > 0 if lower_is_better else d < 0
    if d.size == 0 or np.all(d == 0):
        p = p_worse = 1.0
    else:
        a, b = ours[finite], theirs[finite]
        less, greater = ("less", "greater") if lower_is_better else ("greater", "less")
        p = float(wilcoxon(a, b, alternative=less, zero_method="zsplit").pvalue)
        p_worse = float(wilcoxon(a, b, alternative=greater, zero_method="zsplit").pvalue)
    return {
        "wins": int(better.sum()),
        "losses": int(worse.sum()),
        "cells": int(d.size),
        "median_difference": float(np.median(d)) if d.size else float("nan"),
        "p": p,
        "p_worse": p_worse,
    }


def paired_tests(
    pairs: Sequence[tuple[str, str, Sequence[float], Sequence[float]]],
    lower_is_better: bool,
    alpha: float = 0.05,
) -> list[dict[str, Any]]:
    """``pairs``: (ours, theirs, our cells, their cells), cells paired by position.

    Each row gets ``p`` (ours better) and ``p_worse`` (ours worse), both Holm-corrected over
    the family (``p_holm``, ``p_worse_holm``), and a ``verdict``: "better", "worse" or
    "no significant difference". Cells where either side diverged are left out.
    """
    rows = []
    for ours, theirs, a, b in pairs:
        row: dict[str, Any] = {"method": ours, "against": theirs}
        row.update(_one(np.asarray(a, float), np.asarray(b, float), lower_is_better))
        rows.append(row)
    for row, adj, adj_worse in zip(
        rows, holm([r["p"] for r in rows]), holm([r["p_worse"] for r in rows])
    ):
        row["p_holm"] = adj
        row["p_worse_holm"] = adj_worse
        row["verdict"] = (
            "better"
            if adj < alpha
            else "worse"
            if adj_worse < alpha
            else "no significant difference"
        )
    return rows
