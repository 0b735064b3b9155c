"""Fixtures shared by this folder."""

from __future__ import annotations

import pytest
import torch

from evoprune_core.data import (
    Dataset,
    binary_clustering_centroids,
    build_dataset,
)
from tests.data._common import spec


@pytest.fixture(scope="module")
def centroids() -> torch.Tensor:
    """The true centroids of the ``bc`` fixture."""
    return binary_clustering_centroids(10, 1000, seed=0)


@pytest.fixture(scope="module")
def digit_data() -> Dataset:
    """Digits with the default fractions, seed 0."""
    return build_dataset(spec("digits"), {}, seed=0)
