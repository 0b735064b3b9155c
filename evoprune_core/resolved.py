"""The configuration boundary: a validated ``RunConfig`` and its components, looked up once.

``resolve(cfg, registry)`` looks every component name of a run up in the plugin registry
exactly once - engine, operator, schedule, dataset - validates their parameters (filling the
defaults, so the configuration a run logs says everything that determined it), builds the
operator, schedule and engine instances and records where each came from. Everything below
this layer (engines, studies' trials) receives the frozen :class:`ResolvedRun` and never
sees the registry.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from .config import RunConfig
from .data import Dataset, DatasetSpec, build_dataset
from .engines.base import Engine
from .errors import ConfigError, PluginError
from .operators import DENSE_LAYERS, Operator
from .params import validate_params
from .schedules import Schedule

if TYPE_CHECKING:
    from .engines.result import Observer, RunResult
    from .plugins import Provided, Registry

__all__ = ["Provenance", "ResolvedRun", "check_network", "resolve"]

COMPONENTS = ("engine", "operator", "schedule", "dataset")


@dataclass(frozen=True)
class Provenance:
    """Where one component of a run came from."""

    kind: str
    name: str
    distribution: str
    version: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "distribution": self.distribution, "version": self.version}


@dataclass(frozen=True)
class ResolvedRun:
    """A run ready to go: the filled configuration and its built components."""

    config: RunConfig
    engine: Engine
    operator: Operator
    schedule: Schedule
    dataset: DatasetSpec
    provenance: tuple[Provenance, ...]

    def build_dataset(self) -> Dataset:
        """The dataset the configuration names, built with its parameters and data seed."""
        cfg = self.config
        data = build_dataset(self.dataset, dict(cfg.data.params), cfg.data_seed)
        rows = int(data.train.shape[0])
        if cfg.training.batch_size > rows:
            warnings.warn(
                f"training.batch_size {cfg.training.batch_size} exceeds the {rows} training rows "
                f"of {data.name!r}: every epoch is one batch of {rows}",
                stacklevel=2,
            )
        return data

    def with_seed(self, seed: int) -> ResolvedRun:
        """The same run with another seed (components are stateless: nothing is looked up)."""
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"seed: expected a non-negative integer, got {seed!r}")
        return dataclasses.replace(self, config=self.config.model_copy(update={"seed": seed}))

    def run(self, observer: Observer | None = None, dataset: Dataset | None = None) -> RunResult:
        """Run the engine on this resolved run."""
        return self.engine.run(self, observer, dataset)

    def components(self) -> dict[str, dict[str, str]]:
        """``{kind: {name, distribution, version}}`` of engine, operator, schedule, dataset."""
        return {p.kind: p.as_dict() for p in self.provenance}

    def tags(self) -> dict[str, str]:
        """Flat provenance tags, e.g. ``operator``, ``operator_distribution``, ``..._version``."""
        out: dict[str, str] = {}
        for p in self.provenance:
            out[p.kind] = p.name
            out[f"{p.kind}_distribution"] = p.distribution
            out[f"{p.kind}_version"] = p.version
        return out


def _params(
    kind: str, declared: Any, tables: dict[str, dict[str, Any]], flat: dict[str, Any], name: str
) -> dict[str, Any]:
    """The chosen component's parameters: its own table merged with the flat (effective) form.

    Errors name the form the user wrote (``pruning.operators.<name>.<key>`` or
    ``pruning.operator_params.<key>``).
    """
    short = name.rpartition(":")[2]
    table = dict(tables.get(name, tables.get(short, {})))
    validate_params(declared, dict(flat), f"pruning.{kind}_params")
    for key, value in flat.items():
        if key in table and table[key] != value:
            raise ConfigError(
                f"pruning.{kind}_params.{key}: {value!r} contradicts "
                f"pruning.{kind}s.{short}.{key} = {table[key]!r}; give it once"
            )
        table[key] = value
    return validate_params(declared, table, f"pruning.{kind}s.{short}")


def _check_tables(registry: Registry, kind: str, tables: dict[str, dict[str, Any]]) -> None:
    """Every per-component table names an installed component and only its parameters."""
    for name, table in tables.items():
        where = f"pruning.{kind}s.{name}"
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: expected a table of parameters")
        found = registry.get(kind, name, where)
        validate_params(found.obj.parameters, dict(table), where)


def check_network(cfg: RunConfig, dataset: DatasetSpec, operator: Any, operator_name: str) -> None:
    """A conv preset needs an image dataset and an operator that handles conv layers; CUDA
    must exist where ``compute.device = "cuda"`` asks for it."""
    net = cfg.network
    if net.is_conv and dataset.layout == "flat":
        raise ConfigError(
            f"network.preset: {net.preset!r} takes (c, h, w) images; dataset "
            f"{dataset.name!r} has flat rows (allowed: a dense preset - standard, small, large - "
            "or an image dataset - digits, mnist-5k, a (n, c, h, w) .npy file)"
        )
    kinds = getattr(operator, "layer_kinds", DENSE_LAYERS)
    if net.is_conv and not {"conv2d", "conv_transpose2d"} <= set(kinds):
        raise ConfigError(
            f"pruning.operator: {operator_name!r} handles {', '.join(sorted(kinds))} layers "
            f"only; the {net.preset!r} network has conv layers (allowed: an operator whose "
            "layer_kinds include conv2d and conv_transpose2d)"
        )
    if cfg.compute.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            'compute.device: "cuda" needs a CUDA build of torch and a GPU, and neither is '
            'here; allowed: "cpu", "auto" (got "cuda")'
        )


def resolve(cfg: RunConfig, registry: Registry, source: str = "<config>") -> ResolvedRun:
    """Look up and build every component of ``cfg`` once; errors are one ``ConfigError`` line."""
    try:
        found: dict[str, Provided] = {
            "engine": registry.engine(cfg.engine),
            "operator": registry.operator(cfg.pruning.operator),
            "schedule": registry.schedule(cfg.pruning.schedule),
            "dataset": registry.dataset(cfg.data.name),
        }
        pr = cfg.pruning
        _check_tables(registry, "operator", pr.operators)
        _check_tables(registry, "schedule", pr.schedules)
        op_params = _params(
            "operator",
            found["operator"].obj.parameters,
            pr.operators,
            pr.operator_params,
            cfg.pruning.operator,
        )
        sched_params = _params(
            "schedule",
            found["schedule"].obj.parameters,
            pr.schedules,
            pr.schedule_params,
            cfg.pruning.schedule,
        )
        data_params = validate_params(
            found["dataset"].obj.parameters, dict(cfg.data.params), "data.params"
        )
        check_network(cfg, found["dataset"].obj, found["operator"].obj, cfg.pruning.operator)
        engine_cls: type[Engine] = found["engine"].obj
        short = cfg.engine.rpartition(":")[2]
        unknown = set(cfg.engines) - {short, cfg.engine}
        if unknown:
            raise ConfigError(
                f"engines.{sorted(unknown)[0]}: parameters of an engine this run does not use "
                f"(engine = {cfg.engine!r})"
            )
        given = dict(cfg.engines.get(short, cfg.engines.get(cfg.engine, {})))
        engine_params = validate_params(engine_cls.parameters, given, f"engines.{short}")
    except (PluginError, ConfigError) as exc:
        raise ConfigError(f"{source}: {exc}") from None
    filled = cfg.model_copy(
        update={
            "pruning": pr.model_copy(
                update={
                    "operator_params": op_params,
                    "schedule_params": sched_params,
                    "operators": {},
                    "schedules": {},
                }
            ),
            "data": cfg.data.model_copy(update={"params": data_params}),
            "engines": {short: engine_params} if engine_params else {},
        }
    )
    try:
        engine = engine_cls(**engine_params)
        operator = found["operator"].obj(**op_params)
        schedule = found["schedule"].obj(pr.probability, **sched_params)
    except (ConfigError, ValueError) as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return ResolvedRun(
        config=filled,
        engine=engine,
        operator=operator,
        schedule=schedule,
        dataset=found["dataset"].obj,
        provenance=tuple(
            Provenance(kind, found[kind].name, found[kind].distribution, found[kind].version)
            for kind in COMPONENTS
        ),
    )
