"""User datasets read from ``.npy`` or ``.csv`` files (parsed, never unpickled)."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import DataError
from ._dataset import MIN_ROWS, Dataset, _check_fractions, _check_int, _check_seed, _split

__all__ = ["from_file"]


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


def _check_npy_header(path: Path, fail: Callable[[str], DataError]) -> None:
    """Refuse a ``.npy`` whose header promises other than the bytes the file holds, before
    numpy allocates what the header asks for (a lying shape of 10^9 x 10^9 would)."""
    fmt = np.lib.format
    try:
        with path.open("rb") as fh:
            version = fmt.read_magic(fh)
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, dtype = read(fh, max_header_size=10_000)
            offset = fh.tell()
        size = path.stat().st_size
    except (OSError, ValueError, EOFError, SyntaxError, TypeError) as exc:
        raise fail(f"cannot read .npy file ({_first_line(exc)})") from None
    if dtype.hasobject:
        return  # refused by np.load below (never unpickled)
    promised = math.prod(int(n) for n in shape) * dtype.itemsize
    if promised != size - offset:
        raise fail(
            f"the .npy header promises shape {tuple(int(n) for n in shape)} of {dtype} "
            f"({promised} bytes) but the file holds {size - offset} bytes of data"
        )


def _read_npy(path: Path, fail: Callable[[str], DataError]) -> np.ndarray:
    try:
        with path.open("rb") as fh:
            magic = fh.read(6)
    except OSError as exc:
        raise fail(f"cannot read file ({_first_line(exc)})") from None
    if magic == b"\x93NUMPY":  # a zip archive (.npz renamed) is refused by np.load below
        _check_npy_header(path, fail)
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, MemoryError) as exc:
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

    A ``.npy`` may also hold images, shape ``(n, c, h, w)``: they are stored as flat rows with
    that sample shape (no label column then). The array must be 2-D (or 4-D), numeric, finite, in ``[0, 1]`` and have at least 3 rows.
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

    shape: tuple[int, ...] | None = None
    if arr.ndim == 4 and suffix == ".npy":
        if min(arr.shape) < 1:
            raise fail(f"an image array needs every axis >= 1, found shape {tuple(arr.shape)}")
        if label_column is not None:
            raise fail("label_column applies to 2-D rows, not to (n, c, h, w) images")
        shape = tuple(int(v) for v in arr.shape[1:])
        arr = arr.reshape(arr.shape[0], -1)
    elif arr.ndim != 2:
        allowed = "a 2-D array of rows or a 4-D (n, c, h, w) image array"
        if suffix == ".csv":
            allowed = "a 2-D array"
        raise fail(f"expected {allowed}, found shape {tuple(arr.shape)}")
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
    return _split(arr, labels, seed, val_fraction, test_fraction, f"file:{path.name}", shape)
