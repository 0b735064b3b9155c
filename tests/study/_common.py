"""Helpers shared by the study tests: the stored study, its MLflow runs."""

from __future__ import annotations

from typing import Any

import torch

from evoprune_core import Dataset, DatasetSpec, LayerMask, Operator, Param, hookimpl


class _Toy(Operator):
    name = "toy"
    uses_amount = False
    parameters = (
        Param("strength", "float", 0.5, low=0.1, high=0.9),
        Param("mode", "categorical", "a", choices=("a", "b")),
        Param("hidden", "int", 3, low=1, high=5, tunable=False),
    )

    def prune(self, ctx: Any) -> list[LayerMask]:
        return ctx.unchanged()


class _Boom(Operator):
    name = "boom"

    def prune(self, ctx: Any) -> list[LayerMask]:
        raise RuntimeError("boom operator exploded")


def _nan_rows(params: dict[str, Any], seed: int) -> Dataset:
    rows = torch.full((20, 16), float("nan"))
    return Dataset("nan-rows", rows, rows.clone(), rows.clone())


class _TestPlugin:
    @hookimpl
    def evoprune_register_operators(self) -> list[Any]:
        return [_Toy, _Boom]

    @hookimpl
    def evoprune_register_datasets(self) -> list[Any]:
        return [DatasetSpec("nan-rows", (), _nan_rows)]
