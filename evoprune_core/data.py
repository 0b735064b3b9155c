"""Datasets: seeded binary-clustering problems, scikit-learn's digits and user files.

Every dataset is a :class:`Dataset` of float32 rows in ``[0, 1]`` split into train, validation
and test, with optional int64 labels. Builders are fully determined by their ``seed`` (they use
their own ``numpy`` generators, never a global RNG) and never write files. :class:`DatasetSpec`
pairs a dataset name with its declared :class:`~evoprune_core.params.Param` list so configs and
studies can validate parameters before building.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from .errors import ConfigError, DataError
from .params import Param, validate_params

__all__ = [
    "Dataset",
    "DatasetSpec",
    "binary_clustering",
    "binary_clustering_centroids",
    "build_dataset",
    "builtin_datasets",
    "digits",
    "from_file",
]

#: Fewest rows a dataset may have (one per split).
MIN_ROWS = 3


@dataclass(frozen=True, eq=False)
class Dataset:
    """A dataset split into train/validation/test rows (float32 in ``[0, 1]``), labels optional.

    Either all three label tensors are given (int64, one per row) or none is.
    """

    name: str
    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    train_labels: torch.Tensor | None = None
    val_labels: torch.Tensor | None = None
    test_labels: torch.Tensor | None = None

    def __post_init__(self) -> None:
        splits = {"train": self.train, "val": self.val, "test": self.test}
        dims = set()
        for split, rows in splits.items():
            if not isinstance(rows, torch.Tensor) or rows.dim() != 2:
                raise DataError(f"dataset {self.name!r}: {split} must be a 2-D tensor")
            if rows.dtype != torch.float32:
                raise DataError(f"dataset {self.name!r}: {split} must be float32, not {rows.dtype}")
            if rows.shape[0] < 1 or rows.shape[1] < 1:
                raise DataError(f"dataset {self.name!r}: {split} is empty ({tuple(rows.shape)})")
            dims.add(rows.shape[1])
        if len(dims) != 1:
            raise DataError(f"dataset {self.name!r}: splits differ in width {sorted(dims)}")
        labels = {"train": self.train_labels, "val": self.val_labels, "test": self.test_labels}
        given = [v is not None for v in labels.values()]
        if any(given) and not all(given):
            raise DataError(f"dataset {self.name!r}: give labels for all three splits or none")
        for split, lab in labels.items():
            if lab is None:
                continue
            if lab.dtype != torch.int64 or lab.shape != (splits[split].shape[0],):
                raise DataError(
                    f"dataset {self.name!r}: {split}_labels must be int64 of shape "
                    f"({splits[split].shape[0]},), not {lab.dtype} {tuple(lab.shape)}"
                )

    @property
    def dim(self) -> int:
        """Number of features (columns) per row."""
        return int(self.train.shape[1])

    @property
    def has_labels(self) -> bool:
        """Whether the rows carry labels."""
        return self.train_labels is not None

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary: name, dim, rows per split and whether labels exist."""
        return {
            "name": self.name,
            "dim": self.dim,
            "train_rows": int(self.train.shape[0]),
            "val_rows": int(self.val.shape[0]),
            "test_rows": int(self.test.shape[0]),
            "has_labels": self.has_labels,
        }


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset: its declared parameters and ``build(validated_params, seed)``."""

    name: str
    parameters: tuple[Param, ...]
    build: Callable[[dict[str, Any], int], Dataset]
    help: str = ""

    def describe(self) -> dict[str, Any]:
        """A JSON-able description (name, help, parameters)."""
        return {
            "name": self.name,
            "help": self.help,
            "parameters": [p.describe() for p in self.parameters],
        }


# --------------------------------------------------------------------------- helpers


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"data.seed: expected a non-negative integer, got {seed!r}")
    return seed


def _check_int(name: str, value: int, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"data.{name}: expected an integer >= {low}, got {value!r}")
    return value


def _check_prob(name: str, value: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"data.{name}: expected a number in [0, {high}], got {value!r}")
    if not (math.isfinite(value) and 0.0 <= value <= high):
        raise ConfigError(f"data.{name}: expected a number in [0, {high}], got {value!r}")
    return float(value)


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        _check_prob(name, value, 1.0)
        if value <= 0.0:
            raise ConfigError(f"data.{name}: must be > 0, got {value!r}")
    if val_fraction + test_fraction >= 1.0:
        raise ConfigError(
            f"data: val_fraction + test_fraction must be < 1, got {val_fraction + test_fraction}"
        )


def _streams(seed: int, n: int) -> list[np.random.Generator]:
    """``n`` independent generators derived from ``seed``."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]


def _draw_centroids(rng: np.random.Generator, clusters: int, dims: int, p_one: float) -> np.ndarray:
    return rng.random((clusters, dims), dtype=np.float32) < p_one


def _draw_rows(
    rng: np.random.Generator, centroids: np.ndarray, per_cluster: int, noise: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shuffled noisy copies of every centroid, ``per_cluster`` each, with their labels."""
    clusters, dims = centroids.shape
    labels = rng.permutation(np.repeat(np.arange(clusters, dtype=np.int64), per_cluster))
    flips = rng.random((labels.shape[0], dims), dtype=np.float32) < noise
    rows = np.logical_xor(centroids[labels], flips)
    return torch.from_numpy(rows.astype(np.float32)), torch.from_numpy(labels)


def _split(
    x: np.ndarray,
    y: np.ndarray | None,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    name: str,
) -> Dataset:
    """Seeded shuffle split of ``x`` (float, ``[0, 1]``) into train/val/test.

    With labels the split is stratified: each class is spread over the three splits in
    proportion to the fractions (to within one row per class).
    """
    n = x.shape[0]
    n_test = max(1, round(n * test_fraction))
    n_val = max(1, round(n * val_fraction))
    if n - n_test - n_val < 1:
        raise DataError(f"dataset {name!r}: {n} rows are too few to split by these fractions")
    rng = np.random.default_rng(seed)
    if y is None:
        order = rng.permutation(n)
    else:
        # Rank rows within their class (in a random order), jitter the rank and sort by the
        # rank's fraction of the class size: every prefix of ``order`` is then stratified.
        shuffled = rng.permutation(n)
        by_class = shuffled[np.argsort(y[shuffled], kind="stable")]
        _, starts, counts = np.unique(y[by_class], return_index=True, return_counts=True)
        rank = np.arange(n) - np.repeat(starts, counts)
        key = (rank + rng.random(n)) / np.repeat(counts, counts)
        order = by_class[np.argsort(key, kind="stable")]
    parts = [order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]]
    test_idx, val_idx, train_idx = (rng.permutation(p) for p in parts)

    def rows(idx: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x[idx], dtype=np.float32))

    def labels(idx: np.ndarray) -> torch.Tensor | None:
        return None if y is None else torch.from_numpy(y[idx].astype(np.int64))

    return Dataset(
        name=name,
        train=rows(train_idx),
        val=rows(val_idx),
        test=rows(test_idx),
        train_labels=labels(train_idx),
        val_labels=labels(val_idx),
        test_labels=labels(test_idx),
    )


# --------------------------------------------------------------------------- builders


def binary_clustering_centroids(
    clusters: int, dims: int, *, p_one: float = 0.75, seed: int = 0
) -> torch.Tensor:
    """The ``(clusters, dims)`` float32 0/1 centroids that :func:`binary_clustering` uses."""
    _check_int("clusters", clusters, 1)
    _check_int("dims", dims, 1)
    p_one = _check_prob("p_one", p_one, 1.0)
    rng = _streams(_check_seed(seed), 4)[0]
    return torch.from_numpy(_draw_centroids(rng, clusters, dims, p_one).astype(np.float32))


def binary_clustering(
    clusters: int,
    dims: int,
    rows_per_cluster: int = 100,
    *,
    noise: float = 0.05,
    p_one: float = 0.75,
    seed: int = 0,
    val_rows_per_cluster: int | None = None,
    test_rows_per_cluster: int | None = None,
    name: str | None = None,
) -> Dataset:
    """A binary clustering problem: noisy copies of ``clusters`` random ``dims``-bit centroids.

    Each centroid bit is 1 with probability ``p_one``; each row is its centroid with every bit
    flipped independently with probability ``noise``. Train, validation and test are
    independent draws (fresh noise per row), shuffled, labelled with their cluster.
    """
    _check_int("clusters", clusters, 1)
    _check_int("dims", dims, 1)
    _check_int("rows_per_cluster", rows_per_cluster, 1)
    noise = _check_prob("noise", noise, 0.5)
    p_one = _check_prob("p_one", p_one, 1.0)
    val_rows = rows_per_cluster if val_rows_per_cluster is None else val_rows_per_cluster
    test_rows = rows_per_cluster if test_rows_per_cluster is None else test_rows_per_cluster
    _check_int("val_rows_per_cluster", val_rows, 1)
    _check_int("test_rows_per_cluster", test_rows, 1)
    # Separate streams so that changing one split's size leaves the others unchanged.
    rng_c, rng_train, rng_val, rng_test = _streams(_check_seed(seed), 4)
    centroids = _draw_centroids(rng_c, clusters, dims, p_one)
    train, train_labels = _draw_rows(rng_train, centroids, rows_per_cluster, noise)
    val, val_labels = _draw_rows(rng_val, centroids, val_rows, noise)
    test, test_labels = _draw_rows(rng_test, centroids, test_rows, noise)
    return Dataset(
        name=name or f"bc-{clusters}-{rows_per_cluster}-{dims}",
        train=train,
        val=val,
        test=test,
        train_labels=train_labels,
        val_labels=val_labels,
        test_labels=test_labels,
    )


def digits(seed: int = 0, val_fraction: float = 0.2, test_fraction: float = 0.2) -> Dataset:
    """scikit-learn's 8x8 digits (1797 rows, 64 pixels scaled to ``[0, 1]``), stratified split."""
    from sklearn.datasets import load_digits  # imported lazily: sklearn is slow to import

    _check_fractions(val_fraction, test_fraction)
    x, y = load_digits(return_X_y=True)
    x = (np.asarray(x, dtype=np.float64) / 16.0).astype(np.float32)
    return _split(
        x, np.asarray(y, dtype=np.int64), _check_seed(seed), val_fraction, test_fraction, "digits"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read_csv(path: Path, fail: Callable[[str], DataError]) -> np.ndarray:
    """Parse a comma-separated numeric file; a non-numeric first row is taken as a header."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            lines = [
                (i, row)
                for i, row in enumerate(csv.reader(fh), start=1)
                if any(c.strip() for c in row)
            ]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise fail(f"cannot read file ({_first_line(exc)})") from None
    if lines:
        try:
            [float(c) for c in lines[0][1]]
        except ValueError:
            lines = lines[1:]  # header row
    if not lines:
        raise fail("no data rows")
    width = len(lines[0][1])
    out = np.empty((len(lines), width), dtype=np.float64)
    for r, (lineno, row) in enumerate(lines):
        if len(row) != width:
            raise fail(f"line {lineno} has {len(row)} values, expected {width}")
        for c, cell in enumerate(row):
            try:
                out[r, c] = float(cell)
            except ValueError:
                raise fail(
                    f"line {lineno}, column {c + 1}: not a number ({cell.strip()!r})"
                ) from None
    return out


def _read_npy(path: Path, fail: Callable[[str], DataError]) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise fail(f"cannot read .npy file ({_first_line(exc)})") from None
    if not isinstance(arr, np.ndarray):
        getattr(arr, "close", lambda: None)()
        raise fail("expected a single array, not an archive")
    if arr.dtype == np.bool_:
        return arr.astype(np.float64)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise fail(f"values must be numeric (found dtype {arr.dtype})")
    return arr.astype(np.float64)


def from_file(
    path: str | Path,
    seed: int = 0,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    label_column: int | None = None,
) -> Dataset:
    """User rows from a ``.npy`` or ``.csv`` file, split into train/val/test by a seeded shuffle.

    The array must be 2-D, numeric, finite, in ``[0, 1]`` and have at least 3 rows.
    ``label_column`` takes that column out of the features as integer labels (and stratifies
    the split). Every problem raises a one-line :class:`DataError` naming the file.
    """
    if not str(path).strip():
        raise DataError("data.path: required for dataset 'file'")
    path = Path(path).expanduser()

    def fail(what: str) -> DataError:
        return DataError(f"data.path: {path}: {what}")

    _check_fractions(val_fraction, test_fraction)
    seed = _check_seed(seed)
    if label_column is not None:
        _check_int("label_column", label_column, 0)
    if not path.exists():
        raise fail("no such file")
    if not path.is_file():
        raise fail("not a file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        arr = _read_npy(path, fail)
    elif suffix == ".csv":
        arr = _read_csv(path, fail)
    else:
        raise fail(f"unsupported file type {path.suffix!r} (expected .npy or .csv)")

    if arr.ndim != 2:
        raise fail(f"expected a 2-D array, found shape {tuple(arr.shape)}")
    if arr.shape[0] < MIN_ROWS:
        raise fail(f"needs at least {MIN_ROWS} rows (found {arr.shape[0]})")
    bad = ~np.isfinite(arr)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise fail(f"values must be finite (found {arr[r, c]} at row {r + 1}, column {c + 1})")

    labels: np.ndarray | None = None
    if label_column is not None:
        if label_column >= arr.shape[1]:
            raise fail(f"label_column {label_column} is out of range ({arr.shape[1]} columns)")
        if arr.shape[1] < 2:
            raise fail("label_column leaves no feature columns")
        col = arr[:, label_column]
        if not np.all(col == np.round(col)) or np.abs(col).max() > 2**53:
            raise fail(f"label column {label_column} must hold integers")
        labels = col.astype(np.int64)
        arr = np.delete(arr, label_column, axis=1)
    if arr.shape[1] < 1:
        raise fail("no feature columns")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0.0 or hi > 1.0:
        found = ", ".join(
            part for part, out in ((f"min {lo}", lo < 0.0), (f"max {hi}", hi > 1.0)) if out
        )
        raise fail(f"values must lie in [0, 1] (found {found})")
    return _split(arr, labels, seed, val_fraction, test_fraction, f"file:{path.name}")


# --------------------------------------------------------------------------- specs


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
    """The shipped datasets: four binary-clustering presets, the generic one, digits, file."""
    specs = [
        DatasetSpec(
            name=f"bc-{c}-{r}-{d}",
            parameters=_bc_params(with_shape=False),
            build=_preset_builder(c, r, d),
            help=f"binary clustering: {c} clusters x {r} train rows, {d} bits",
        )
        for c, r, d in ((10, 100, 1000), (50, 100, 1000), (10, 100, 4000), (50, 100, 4000))
    ]
    specs.append(
        DatasetSpec(
            name="binary-clustering",
            parameters=_bc_params(with_shape=True),
            build=_build_bc,
            help="binary clustering with any number of clusters, rows and bits",
        )
    )
    specs.append(
        DatasetSpec(
            name="digits",
            parameters=_fraction_params(),
            build=_build_digits,
            help="scikit-learn's 8x8 digits, 1797 rows of 64 pixels in [0, 1]",
        )
    )
    specs.append(
        DatasetSpec(
            name="file",
            parameters=(
                Param("path", "str", "", help=".npy or .csv file of rows in [0, 1]", tunable=False),
                *_fraction_params(),
                _fixed("label_column", "int", -1, -1, 100000, "integer label column (-1: none)"),
            ),
            build=_build_file,
            help="user rows from a .npy or .csv file (values in [0, 1])",
        )
    )
    return specs


def build_dataset(
    spec: DatasetSpec, params: dict[str, Any], seed: int, where: str = "data"
) -> Dataset:
    """Validate ``params`` against ``spec.parameters`` (``ConfigError`` if bad), then build."""
    values = validate_params(spec.parameters, params, where)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"{where}.seed: expected a non-negative integer, got {seed!r}")
    return spec.build(values, seed)
