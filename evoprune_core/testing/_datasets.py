"""Conformance checks for datasets (``DatasetSpec``): what every engine assumes of its rows."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from typing import Any

import torch

from ..data import Dataset, DatasetSpec, build_dataset
from ..errors import ConfigError
from ._common import check_name, check_param_declarations, out_of_range_values, run_named

__all__ = ["DATASET_CHECKS", "check_dataset", "dataset_checks"]

Params = dict[str, Any]


def _build(spec: DatasetSpec, params: Params, seed: int) -> Dataset:
    ds = spec.build({**_defaults(spec), **params}, seed)
    assert isinstance(ds, Dataset), f"build returned {type(ds).__name__}, not a Dataset"
    return ds


def _defaults(spec: DatasetSpec) -> Params:
    return {p.name: p.default for p in spec.parameters}


def check_declaration(spec: DatasetSpec, params: Params) -> None:
    """A ``DatasetSpec`` with a valid name, a callable ``build`` and well-formed parameters."""
    assert isinstance(spec, DatasetSpec), f"{spec!r} is not a DatasetSpec"
    check_name(spec.name, "dataset")
    assert callable(spec.build), "build must be callable as build(params, seed)"
    check_param_declarations(spec.parameters)
    assert not re.search(r"\s", spec.name), "a dataset name has no spaces"


def check_values(spec: DatasetSpec, params: Params) -> None:
    """Every split is 2-D float32, non-empty, finite and within [0, 1] (sigmoid outputs and
    the BCE loss assume it); labels, if any, are int64, one per row."""
    ds = _build(spec, params, 0)
    for split in ("train", "val", "test"):
        rows = getattr(ds, split)
        assert rows.dtype == torch.float32 and rows.dim() == 2, f"{split}: not 2-D float32"
        assert rows.shape[0] >= 1, f"{split} is empty"
        finite = bool(torch.isfinite(rows).all())
        assert finite, f"{split} has non-finite values"
        lo, hi = float(rows.min()), float(rows.max())
        assert 0.0 <= lo and hi <= 1.0 and math.isfinite(lo + hi), (
            f"{split} values lie in [{lo}, {hi}], not within [0, 1]"
        )


def check_deterministic(spec: DatasetSpec, params: Params) -> None:
    """The same seed builds the same rows and labels (randomness only from the seed)."""
    a, b = _build(spec, params, 3), _build(spec, params, 3)
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(a, split), getattr(b, split)), f"{split} differs for seed 3"
        la, lb = getattr(a, f"{split}_labels"), getattr(b, f"{split}_labels")
        assert (la is None) == (lb is None) and (la is None or torch.equal(la, lb)), (
            f"{split} labels differ for seed 3"
        )


def check_validated(spec: DatasetSpec, params: Params) -> None:
    """``build_dataset`` refuses values just outside each declared range (one ConfigError)."""
    for p in spec.parameters:
        for bad in out_of_range_values(p):
            try:
                build_dataset(spec, {**params, p.name: bad}, 0)
            except ConfigError:
                continue
            raise AssertionError(f"parameter {p.name}={bad!r} outside its range is accepted")


DATASET_CHECKS: dict[str, Callable[[DatasetSpec, Params], None]] = {
    "declaration": check_declaration,
    "values": check_values,
    "deterministic": check_deterministic,
    "validated": check_validated,
}


def dataset_checks(
    spec: DatasetSpec, params: Params | None = None
) -> Iterator[tuple[str, Callable[[DatasetSpec], None]]]:
    """Yield ``(check_name, check)``; call ``check(spec)``. ``params`` override the defaults
    (e.g. a ``path`` for a file dataset)."""
    given = dict(params or {})
    for name, check in DATASET_CHECKS.items():
        yield name, _named(name, check, given)


def _named(
    name: str, check: Callable[[DatasetSpec, Params], None], params: Params
) -> Callable[[DatasetSpec], None]:
    def run(spec: DatasetSpec) -> None:
        run_named(spec.name, name, lambda: check(spec, params))

    return run


def check_dataset(spec: DatasetSpec, params: Params | None = None) -> None:
    """Run every dataset check; raise ``AssertionError`` naming the first that fails."""
    for _name, check in dataset_checks(spec, params):
        check(spec)
