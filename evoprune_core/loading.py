"""Loading a run: read a file, apply ``--set`` overrides, validate, resolve once; run it.

The convenience layer above the plugin registry: without a ``registry`` argument these use
the installed plugins (``Registry.load()``). Studies and the CLI pass their own registry.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import RunConfig, apply_overrides, read_toml, validate
from .plugins import Registry
from .resolved import ResolvedRun, resolve

if TYPE_CHECKING:
    from .data import Dataset
    from .engines.result import Observer, RunResult

__all__ = ["load_run", "load_run_config", "run"]


def load_run(
    path: str | Path | None,
    overrides: list[str] | None = None,
    registry: Registry | None = None,
    base: dict[str, Any] | None = None,
) -> ResolvedRun:
    """Read, override and validate a run configuration; resolve its components once.

    ``path=None`` starts from the embedded defaults (or ``base``).
    """
    source = str(path) if path is not None else "<defaults>"
    data = read_toml(path) if path is not None else dict(base or {})
    apply_overrides(data, overrides or [], source=f"{source}: --set")
    cfg = validate(RunConfig, data, source)
    return resolve(cfg, Registry.load() if registry is None else registry, source)


def load_run_config(
    path: str | Path | None,
    overrides: list[str] | None = None,
    registry: Registry | None = None,
    base: dict[str, Any] | None = None,
) -> RunConfig:
    """Read, override, validate and resolve a run configuration (see ``load_run``)."""
    return load_run(path, overrides, registry, base).config


def run(
    cfg: RunConfig | ResolvedRun,
    registry: Registry | None = None,
    observer: Observer | None = None,
    dataset: Dataset | None = None,
) -> RunResult:
    """Resolve ``cfg`` (unless it already is) against ``registry`` (default: the installed
    plugins) and run its engine."""
    if isinstance(cfg, RunConfig):
        cfg = resolve(cfg, Registry.load() if registry is None else registry)
    return cfg.run(observer, dataset)
