"""The dataset type, its spec, the shared input checks and the seeded train/val/test split."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..params import Param, validate_params

__all__ = ["MIN_ROWS", "Dataset", "DatasetSpec", "build_dataset"]

#: Fewest rows a dataset may have (one per split).
MIN_ROWS = 3


@dataclass(frozen=True, eq=False)
class Dataset:
    """A dataset split into train/validation/test rows (float32 in ``[0, 1]``), labels optional.

    Either all three label tensors are given (int64, one per row) or none is. ``shape`` is the
    shape of one sample (``(1, 28, 28)`` for an image); rows are always stored flat, so its
    product must equal the row width. ``None`` means flat rows: ``(dim,)``.
    """

    name: str
    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    train_labels: torch.Tensor | None = None
    val_labels: torch.Tensor | None = None
    test_labels: torch.Tensor | None = None
    shape: tuple[int, ...] | None = None

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
        if self.shape is not None and (
            not self.shape or min(self.shape) < 1 or math.prod(self.shape) != self.train.shape[1]
        ):
            raise DataError(
                f"dataset {self.name!r}: sample shape {self.shape} does not hold "
                f"{self.train.shape[1]} values per row"
            )
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
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample: ``(dim,)`` for flat rows, ``(c, h, w)`` for images."""
        return self.shape if self.shape is not None else (self.dim,)

    @property
    def is_image(self) -> bool:
        """Whether a sample is a ``(c, h, w)`` image (what conv networks take)."""
        return len(self.sample_shape) == 3

    @property
    def has_labels(self) -> bool:
        """Whether the rows carry labels."""
        return self.train_labels is not None

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary: name, dim, rows per split and whether labels exist."""
        return {
            "name": self.name,
            "dim": self.dim,
            "shape": list(self.sample_shape),
            "train_rows": int(self.train.shape[0]),
            "val_rows": int(self.val.shape[0]),
            "test_rows": int(self.test.shape[0]),
            "has_labels": self.has_labels,
        }


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset: its declared parameters and ``build(validated_params, seed)``.

    ``layout`` declares what its samples are before it is built: "flat" rows, "image"
    (``(c, h, w)``; conv networks take these) or "any" (known once built, e.g. a user file).
    """

    name: str
    parameters: tuple[Param, ...]
    build: Callable[[dict[str, Any], int], Dataset]
    help: str = ""
    layout: str = "any"

    def describe(self) -> dict[str, Any]:
        """A JSON-able description (name, help, parameters)."""
        return {
            "name": self.name,
            "help": self.help,
            "layout": self.layout,
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


def _split(
    x: np.ndarray,
    y: np.ndarray | None,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    name: str,
    shape: tuple[int, ...] | None = None,
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
        shape=shape,
    )


def build_dataset(
    spec: DatasetSpec, params: dict[str, Any], seed: int, where: str = "data"
) -> Dataset:
    """Validate ``params`` against ``spec.parameters`` (``ConfigError`` if bad), then build."""
    values = validate_params(spec.parameters, params, where)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"{where}.seed: expected a non-negative integer, got {seed!r}")
    ds = spec.build(values, seed)
    if not isinstance(ds, Dataset):
        raise DataError(f"dataset {spec.name!r}: build returned {type(ds).__name__}, not a Dataset")
    for split in ("train", "val", "test"):
        rows = getattr(ds, split)
        if not bool(torch.isfinite(rows).all()):
            raise DataError(f"dataset {spec.name!r}: {split} has non-finite values")
        lo, hi = float(rows.min()), float(rows.max())
        if lo < 0.0 or hi > 1.0:
            raise DataError(
                f"dataset {spec.name!r}: {split} values lie in [{lo:g}, {hi:g}]; "
                "every value must lie in [0, 1] (the decoder ends in a sigmoid)"
            )
    return ds
