"""Helpers shared by the tests of ``evoprune_core.data``."""

from __future__ import annotations

import numpy as np

from evoprune_core.data import (
    DatasetSpec,
    builtin_datasets,
)


def spec(name: str) -> DatasetSpec:
    """The builtin spec called ``name``."""
    return {s.name: s for s in builtin_datasets()}[name]


def _rows(n: int = 20, d: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, d))
