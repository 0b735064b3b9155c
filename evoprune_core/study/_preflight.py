"""Checks of a study before anything is created: its datasets build, its space is not empty."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from ..errors import ConfigError, EvopruneError
from ._config import StudyConfig

if TYPE_CHECKING:
    from ..plugins import Registry

__all__ = ["check_study"]


def check_study(cfg: StudyConfig, registry: Registry) -> None:
    """Build every dataset the study can use once (a bad ``data.path`` fails here, not in
    every trial); warn when the search space is empty."""
    from ..data import build_dataset

    d = cfg.space.get("data.name")
    names = tuple(d.choices) if d is not None else (cfg.base.data.name,)
    seed = cfg.base.data.seed if cfg.base.data.seed is not None else cfg.seeds[0]
    for name in names:
        params = dict(cfg.base.data.params) if name == cfg.base.data.name else {}
        try:
            build_dataset(registry.dataset(str(name)).obj, params, seed)
        except EvopruneError as exc:
            raise ConfigError(f"{cfg.path}: {exc}") from None
    if not cfg.space:
        warnings.warn(
            f"{cfg.path}: space: empty; every trial runs the [base] configuration (only the "
            "operator's and schedule's declared parameters are sampled)",
            stacklevel=2,
        )
