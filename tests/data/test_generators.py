"""Generated data (``data/_generators.py``): binary clustering and sklearn digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evoprune_core.data import (
    Dataset,
    binary_clustering,
    binary_clustering_centroids,
    build_dataset,
    digits,
)
from evoprune_core.errors import ConfigError
from tests.data._common import spec


@pytest.fixture(scope="module")
def bc() -> Dataset:
    """bc-10-100-1000 with defaults and seed 0."""
    return build_dataset(spec("bc-10-100-1000"), {}, seed=0)


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
