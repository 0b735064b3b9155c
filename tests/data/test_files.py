"""User files (``data/_files.py``): ``.npy`` and ``.csv`` readers and their one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from evoprune_core.data import (
    build_dataset,
    from_file,
)
from evoprune_core.errors import ConfigError, DataError
from tests.data._common import _rows, spec


def test_file_npy(tmp_path: Path) -> None:
    data = _rows()
    path = tmp_path / "rows.npy"
    np.save(path, data)
    ds = build_dataset(spec("file"), {"path": str(path)}, seed=0)
    assert ds.dim == 4 and not ds.has_labels and ds.train_labels is None
    assert ds.train.dtype == torch.float32
    assert ds.train.shape[0] + ds.val.shape[0] + ds.test.shape[0] == 20
    assert (ds.val.shape[0], ds.test.shape[0]) == (4, 4)
    got = sorted(torch.cat([ds.train, ds.val, ds.test]).tolist())
    assert got == sorted(data.astype(np.float32).tolist())
    assert torch.equal(from_file(path, seed=0).test, ds.test)
    assert not torch.equal(from_file(path, seed=1).test, ds.test)
    assert list(tmp_path.iterdir()) == [path]  # building wrote nothing


def test_file_csv_with_header_and_label_column(tmp_path: Path) -> None:
    data = _rows(30, 3)
    labels = np.arange(30) % 3
    table = np.column_stack([data[:, :1], labels, data[:, 1:]])
    path = tmp_path / "rows.csv"
    np.savetxt(path, table, delimiter=",", header="a,label,b,c", comments="")
    ds = build_dataset(spec("file"), {"path": str(path), "label_column": 1}, seed=0)
    assert ds.dim == 3 and ds.has_labels
    rows = torch.cat([ds.train, ds.val, ds.test])
    got_labels = torch.cat([ds.train_labels, ds.val_labels, ds.test_labels])
    assert got_labels.dtype == torch.int64
    expected = sorted(zip(data.astype(np.float32).tolist(), labels.tolist(), strict=True))
    assert sorted(zip(rows.tolist(), got_labels.tolist(), strict=True)) == expected
    # without label_column the csv has 4 columns, the labels (up to 2) break the [0, 1] range
    with pytest.raises(DataError, match=r"found max 2\.0"):
        from_file(path)


def test_file_csv_without_header(tmp_path: Path) -> None:
    path = tmp_path / "plain.csv"
    path.write_text("0,1\n0.5,0.25\n\n1,0\n0.1,0.9\n")
    ds = from_file(path, val_fraction=0.25, test_fraction=0.25)
    assert ds.dim == 2
    assert ds.train.shape[0] + ds.val.shape[0] + ds.test.shape[0] == 4


def test_error_empty_path() -> None:
    with pytest.raises(DataError, match=r"^data\.path: required for dataset 'file'$"):
        build_dataset(spec("file"), {}, seed=0)


def test_error_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.npy"
    with pytest.raises(DataError) as info:
        build_dataset(spec("file"), {"path": str(path)}, seed=0)
    assert str(info.value) == f"data.path: {path}: no such file"


def test_error_one_dimensional_array(tmp_path: Path) -> None:
    path = tmp_path / "flat.npy"
    np.save(path, np.zeros(10))
    with pytest.raises(DataError) as info:
        from_file(path)
    assert str(path) in str(info.value) and "2-D" in str(info.value)


def test_error_non_numeric_csv(tmp_path: Path) -> None:
    path = tmp_path / "words.csv"
    path.write_text("0,1\n0.5,abc\n1,0\n")
    with pytest.raises(DataError) as info:
        from_file(path)
    msg = str(info.value)
    assert msg == f"data.path: {path}: line 2, column 2: not a number ('abc')"
    assert "\n" not in msg


def test_error_ragged_csv(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("0,1\n0.5\n1,0\n")
    with pytest.raises(DataError, match="line 2 has 1 values, expected 2"):
        from_file(path)


def test_error_nan(tmp_path: Path) -> None:
    data = _rows()
    data[3, 2] = np.nan
    path = tmp_path / "nan.npy"
    np.save(path, data)
    with pytest.raises(DataError) as info:
        from_file(path)
    assert str(info.value).startswith(f"data.path: {path}: values must be finite")
    assert "row 4, column 3" in str(info.value)


def test_error_value_above_one(tmp_path: Path) -> None:
    data = _rows()
    data[0, 0] = 3.0
    path = tmp_path / "big.csv"
    np.savetxt(path, data, delimiter=",")
    with pytest.raises(DataError) as info:
        from_file(path)
    assert str(info.value) == f"data.path: {path}: values must lie in [0, 1] (found max 3.0)"


def test_error_too_few_rows(tmp_path: Path) -> None:
    path = tmp_path / "two.npy"
    np.save(path, _rows(2))
    with pytest.raises(DataError, match=r"needs at least 3 rows \(found 2\)") as info:
        from_file(path)
    assert str(path) in str(info.value)


def test_error_unsupported_suffix_and_bad_label_column(tmp_path: Path) -> None:
    path = tmp_path / "rows.txt"
    path.write_text("0,1\n")
    with pytest.raises(DataError, match=r"unsupported file type '\.txt'"):
        from_file(path)
    npy = tmp_path / "rows.npy"
    np.save(npy, _rows())
    with pytest.raises(DataError, match="label column 0 must hold integers"):
        from_file(npy, label_column=0)
    with pytest.raises(DataError, match="label_column 9 is out of range"):
        from_file(npy, label_column=9)


def test_file_label_column_zero_through_the_spec(tmp_path: Path) -> None:
    table = np.column_stack([np.arange(12) % 2, _rows(12, 2)])
    path = tmp_path / "first.npy"
    np.save(path, table)
    ds = build_dataset(spec("file"), {"path": str(path), "label_column": 0}, seed=0)
    assert ds.has_labels and ds.dim == 2  # column 0 is the label (-1 means none)
    assert torch.equal(from_file(path, label_column=0).test, ds.test)
    assert torch.equal(
        from_file(path, 0, label_column=0).test, from_file(path, label_column=0).test
    )


def test_npy_dtypes(tmp_path: Path) -> None:
    cases = {
        "bool": np.array([[True, False], [False, True], [True, True]]),
        "int": np.array([[0, 1], [1, 0], [1, 1]], dtype=np.int16),
        "float32": np.array([[0.5, 0.25], [1, 0], [0, 0.75]], dtype=np.float32),
    }
    for name, arr in cases.items():
        np.save(tmp_path / f"{name}.npy", arr)
        ds = from_file(tmp_path / f"{name}.npy", val_fraction=1 / 3, test_fraction=1 / 3)
        rows = sorted(torch.cat([ds.train, ds.val, ds.test]).tolist())
        assert rows == sorted(arr.astype(np.float32).tolist()), name
    np.save(tmp_path / "complex.npy", np.ones((3, 2), dtype=np.complex64))
    with pytest.raises(DataError, match=r"values must be numeric \(found dtype complex64\)$"):
        from_file(tmp_path / "complex.npy")
    np.save(tmp_path / "objects.npy", np.array([[0, 1], [1, 0], [0, 0]], dtype=object))
    with pytest.raises(DataError, match=r": cannot read \.npy file \(Object arrays"):
        from_file(tmp_path / "objects.npy")  # never unpickled


def test_csv_with_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf0,1\n0.5,0.25\n1,0\n0.1,0.9\n")
    ds = from_file(path, val_fraction=0.25, test_fraction=0.25)
    rows = sorted(torch.cat([ds.train, ds.val, ds.test]).tolist())
    assert rows == [[0.0, 1.0], [0.10000000149011612, 0.8999999761581421], [0.5, 0.25], [1.0, 0.0]]


def test_one_column_and_range_messages(tmp_path: Path) -> None:
    path = tmp_path / "one.csv"
    path.write_text("0.1\n0.2\n0.3\n")
    assert from_file(path).dim == 1  # a single feature column is enough
    for values, found in (([-1.0, 2.0, 0.5], "min -1.0, max 2.0"), ([-0.5, 1.0, 0.5], "min -0.5")):
        bad = tmp_path / "bad.npy"
        np.save(bad, np.array(values).reshape(3, 1))
        with pytest.raises(DataError) as info:
            from_file(bad)
        assert str(info.value) == f"data.path: {bad}: values must lie in [0, 1] (found {found})"


def test_label_column_bounds(tmp_path: Path) -> None:
    path = tmp_path / "rows.npy"
    np.save(path, np.column_stack([_rows(6, 2), [0, 1, 200, 0, 1, 2**53]]))
    ds = from_file(path, label_column=2, val_fraction=1 / 6, test_fraction=1 / 6)
    got = torch.cat([ds.train_labels, ds.val_labels, ds.test_labels]).tolist()
    assert sorted(got) == [0, 0, 1, 1, 200, 2**53]  # exact integers up to 2**53 are labels
    for column, message in (
        (-1, "data.label_column: expected an integer >= 0, got -1"),
        (3, f"data.path: {path}: label_column 3 is out of range (3 columns)"),
    ):
        with pytest.raises((ConfigError, DataError)) as info:
            from_file(path, label_column=column)
        assert str(info.value) == message
    big = tmp_path / "big.npy"
    np.save(big, np.column_stack([_rows(3, 1), [0, 1, 2**53 + 2]]))
    with pytest.raises(DataError, match="label column 1 must hold integers"):
        from_file(big, label_column=1)
