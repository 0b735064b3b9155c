"""The ``Dataset``, its split and ``build_dataset`` (``data/_dataset.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from evoprune_core.data import (
    Dataset,
    DatasetSpec,
    build_dataset,
    from_file,
)
from evoprune_core.errors import ConfigError, DataError
from tests.data._common import _rows


def test_dataset_checks_its_tensors() -> None:
    x = torch.zeros(4, 3)
    with pytest.raises(DataError, match="float32"):
        Dataset("bad", x.double(), x, x, None, None, None)
    with pytest.raises(DataError, match="width"):
        Dataset("bad", x, torch.zeros(4, 2), x, None, None, None)
    labels = torch.zeros(4, dtype=torch.int64)
    with pytest.raises(DataError, match="all three splits or none"):
        Dataset("bad", x, x, x, labels, None, None)


def test_fraction_errors_exact(tmp_path: Path) -> None:
    path = tmp_path / "rows.npy"
    np.save(path, _rows())
    for kw, message in (
        ({"val_fraction": 1.5}, "data.val_fraction: expected a number in [0, 1.0], got 1.5"),
        ({"test_fraction": 0}, "data.test_fraction: must be > 0, got 0"),
        ({"val_fraction": 0.5, "test_fraction": 0.5},
         "data: val_fraction + test_fraction must be < 1, got 1.0"),
        ({"val_fraction": 0.9, "test_fraction": 0.2},
         "data: val_fraction + test_fraction must be < 1, got 1.1"),
    ):  # fmt: skip
        with pytest.raises(ConfigError) as info:
            from_file(path, **kw)
        assert str(info.value) == message


def test_split_sizes_at_the_edges(tmp_path: Path) -> None:
    def sizes(n: int, val: float, test: float) -> tuple[int, int, int]:
        path = tmp_path / f"{n}.npy"
        np.save(path, _rows(n, 2))
        ds = from_file(path, val_fraction=val, test_fraction=test)
        return ds.train.shape[0], ds.val.shape[0], ds.test.shape[0]

    assert sizes(3, 0.2, 0.2) == (1, 1, 1)  # one row each is enough
    assert sizes(4, 0.1, 0.1) == (2, 1, 1)  # round(0.4) = 0 -> at least one
    path = tmp_path / "4.npy"
    with pytest.raises(DataError) as info:
        from_file(path, val_fraction=0.45, test_fraction=0.45)  # 2 + 2 leave no train row
    assert str(info.value) == "dataset 'file:4.npy': 4 rows are too few to split by these fractions"


def test_stratified_split_pinned(tmp_path: Path) -> None:
    # row i has feature i / 100 and label i % 3; which rows land in test and val is fixed by
    # the seed (a stable sort by class, then by the jittered within-class rank)
    path = tmp_path / "labelled.npy"
    np.save(path, np.column_stack([np.arange(60) / 100, np.arange(60) % 3]))
    ds = from_file(path, seed=0, label_column=1)
    assert ds.name == "file:labelled.npy"

    def ids(rows: torch.Tensor) -> list[int]:
        return [round(v * 100) for v in rows[:, 0].tolist()]

    assert ids(ds.test) == [4, 20, 16, 8, 27, 51, 2, 34, 44, 42, 52, 57]
    assert ds.test_labels.tolist() == [1, 2, 1, 2, 0, 0, 2, 1, 2, 0, 1, 0]
    assert ids(ds.val) == [11, 24, 23, 1, 17, 55, 43, 10, 30, 18, 54, 35]


def test_build_dataset_checks_the_range_of_what_a_spec_builds() -> None:
    x = torch.full((2, 2), 0.5)
    wide = DatasetSpec("wide", (), lambda params, seed: Dataset("wide", x, x, x + 1.0))
    with pytest.raises(DataError) as info:
        build_dataset(wide, {}, seed=0)
    assert str(info.value) == (
        "dataset 'wide': test values lie in [1.5, 1.5]; every value must lie in [0, 1] "
        "(the decoder ends in a sigmoid)"
    )


def test_dataset_shape_and_label_messages() -> None:
    x = torch.zeros(4, 3)
    for rows, message in (
        (torch.zeros(3), "dataset 'bad': train must be a 2-D tensor"),
        ([[0.0, 0.0, 0.0]], "dataset 'bad': train must be a 2-D tensor"),
        (torch.zeros(0, 3), "dataset 'bad': train is empty ((0, 3))"),
    ):
        with pytest.raises(DataError) as info:
            Dataset("bad", rows, x, x)  # type: ignore[arg-type]
        assert str(info.value) == message
    labels = torch.zeros(4, dtype=torch.int64)
    with pytest.raises(DataError) as info:
        Dataset("bad", x, x, x, labels.int(), labels, labels)
    assert str(info.value) == (
        "dataset 'bad': train_labels must be int64 of shape (4,), not torch.int32 (4,)"
    )
