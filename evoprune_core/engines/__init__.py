"""Engines: ``run(config, registry, observer)`` -> ``RunResult``. They know nothing of Optuna."""

from __future__ import annotations

from typing import Any

from ..config import RunConfig
from ..data import Dataset
from .canonical import run_canonical
from .common import Observer, RunResult

__all__ = ["Observer", "RunResult", "run", "run_canonical"]


def run(
    cfg: RunConfig, registry: Any, observer: Observer | None = None, dataset: Dataset | None = None
) -> RunResult:
    """Run the engine ``cfg.engine`` names."""
    if cfg.engine == "canonical":
        return run_canonical(cfg, registry, observer, dataset)
    from .coevolution import run_coevolution

    return run_coevolution(cfg, registry, observer, dataset)
