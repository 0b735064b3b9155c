"""Study files: a name, a base run configuration, a conditional search space, objectives.

``load_study_config(path, registry)`` reads and validates a study TOML file completely (every
space key is a real ``RunConfig`` key and every value it may take is valid) before anything is
created. ``sample_updates(choose, study, registry)`` turns one trial's decisions into dotted
``RunConfig`` updates; ``choose(name, dist)`` is an Optuna trial's ``suggest_*`` in a study and
a replaying enumerator for full-factorial (grid) designs, so both follow the same conditions:

- a key only when the trial's engine reads it (each engine declares its keys: a
  ``coevolution.`` key is not sampled for a canonical trial);
- ``pruning.amount`` only when the chosen operator ``uses_amount``;
- the chosen operator's and schedule's own tunable declared parameters under the names
  ``operator.<name>.<param>`` and ``schedule.<name>.<param>``, with no study configuration;
- a baseline trial prunes nothing and samples no ``pruning.`` key.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..config import RunConfig, flatten, format_validation_error, read_toml
from ..errors import ConfigError
from ..params import Param

if TYPE_CHECKING:
    from ..plugins import Registry

__all__ = [
    "OBJECTIVES",
    "Dist",
    "StudyConfig",
    "StudyFileModel",
    "grid_designs",
    "load_study_config",
    "sample_updates",
    "with_owned_params",
]

OBJECTIVES = ("val_loss", "remaining_fraction")
_LEAD = ("engine", "pruning.operator", "pruning.schedule")
_GRID_MAX = 10_000


@dataclass(frozen=True)
class Dist:
    """One dimension of the space: categorical ``choices`` or an int/float range."""

    kind: Literal["categorical", "int", "float"]
    choices: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None

    def grid_values(self) -> tuple[Any, ...]:
        """Every value of a finite dimension (categorical, or int with its step)."""
        if self.kind == "categorical":
            return self.choices
        if self.kind == "int":
            return tuple(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        raise ValueError("a float range is not finite")

    @classmethod
    def from_param(cls, p: Param) -> Dist:
        if p.kind == "categorical":
            return cls("categorical", tuple(p.choices))
        if p.kind == "bool":
            return cls("categorical", (False, True))
        kind: Literal["int", "float"] = "int" if p.kind == "int" else "float"
        return cls(kind, low=float(p.low or 0), high=float(p.high or 0), log=p.log)


Chooser = Callable[[str, Dist], Any]


Objective = Literal["val_loss", "remaining_fraction"]


def _val_loss() -> list[Objective]:
    return ["val_loss"]


class StudyFileModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$",
        description="the study's name: its Optuna study, MLflow experiment and journal file",
        examples=["quickstart"],
    )
    description: str = Field(default="", description="free text, shown nowhere else")
    n_trials: int = Field(
        default=20,
        ge=1,
        le=1_000_000,
        description="COMPLETE trials to reach, baselines included (a grid runs all of its "
        "combinations and baselines whatever this says); may grow on a resume",
    )
    seeds: list[int] = Field(
        default_factory=lambda: [1],
        min_length=1,
        max_length=1000,
        description="distinct non-negative seeds: each trial runs once per seed, its value is "
        "their mean",
    )
    objectives: list[Objective] = Field(
        default_factory=_val_loss,
        min_length=1,
        max_length=2,
        description='["val_loss"], or ["val_loss", "remaining_fraction"] minimised together '
        "(a Pareto front)",
    )
    sampler: Literal["tpe", "nsga2", "random", "grid"] = Field(
        default="tpe", description="grid: every combination of a finite space"
    )
    sampler_seed: int | None = Field(
        default=0, ge=0, description="seed of the sampler (worker k adds k); absent: random"
    )
    baseline: bool = Field(
        default=True, description="enqueue one no-pruning trial per engine first"
    )
    tune_plugin_params: bool = Field(
        default=True,
        description="also sample the chosen operator's and schedule's declared parameters",
    )
    artifacts: Literal["all", "best", "none"] = Field(
        default="best",
        description="per-trial plots and model: for every trial, for the best and "
        "Pareto-front trials (written when the study ends and on resume), or none",
    )
    base: dict[str, Any] = Field(
        default_factory=dict,
        description="[base]: the run configuration every trial starts from (the run-file keys "
        "below, except seed)",
        examples=[{"generations": 20}],
    )
    space: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="[space]: dotted run-file key -> { choices = [...] } or { low = ..., "
        "high = ..., log = false, step = ... }",
        examples=[{'"pruning.amount"': {"low": 0.02, "high": 0.3, "log": True}}],
    )
    tracking: str = Field(
        default="mlflow",
        pattern=r"^[A-Za-z0-9_.:\-]+$",
        description='the tracker plugin: "mlflow", or "none" (no MLflow store; the Optuna '
        "storage keeps the results)",
    )


@dataclass(frozen=True)
class StudyConfig:
    """A validated study file. ``base`` is resolved; ``space`` keeps the file's key order."""

    name: str
    path: Path
    text: str
    n_trials: int
    seeds: tuple[int, ...]
    objectives: tuple[str, ...]
    sampler: str
    sampler_seed: int | None
    baseline: bool
    base: RunConfig
    space: dict[str, Dist]
    description: str = ""
    tune_plugin_params: bool = True
    artifacts: str = "best"
    tracking: str = "mlflow"

    @property
    def directions(self) -> list[Literal["minimize", "maximize"]]:
        return ["minimize"] * len(self.objectives)

    def engines(self) -> tuple[str, ...]:
        """The engines trials may use (the space's choices, else the base's)."""
        d = self.space.get("engine")
        return tuple(d.choices) if d is not None else (self.base.engine,)


def load_study_config(path: str | Path, registry: Registry) -> StudyConfig:
    """Read and validate a study file; every problem is one ``ConfigError`` line."""
    p = Path(path)
    data = read_toml(p)
    src = str(p)
    try:
        raw = StudyFileModel.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, StudyFileModel, src)) from None
    if list(raw.objectives) not in (["val_loss"], ["val_loss", "remaining_fraction"]):
        raise ConfigError(
            f'{src}: objectives: allowed: ["val_loss"] or ["val_loss", "remaining_fraction"]'
        )
    if len(set(raw.seeds)) != len(raw.seeds) or any(s < 0 for s in raw.seeds):
        raise ConfigError(f"{src}: seeds: expected distinct non-negative integers")
    if "seed" in raw.base:
        raise ConfigError(f"{src}: base.seed: not allowed; the study's seeds = [...] set it")
    registry.tracker(raw.tracking, f"{src}: tracking")
    base = RunConfig().with_updates(flatten(raw.base), registry, source=f"{src} [base]")
    space = {
        key: _parse_dist(src, key, spec, base, registry, raw.sampler)
        for key, spec in raw.space.items()
    }
    cfg = StudyConfig(
        name=raw.name,
        path=p,
        text=p.read_text(encoding="utf-8"),
        n_trials=raw.n_trials,
        seeds=tuple(raw.seeds),
        objectives=tuple(raw.objectives),
        sampler=raw.sampler,
        sampler_seed=raw.sampler_seed,
        baseline=raw.baseline,
        base=base,
        space=space,
        description=raw.description,
        tune_plugin_params=raw.tune_plugin_params,
        artifacts=raw.artifacts,
        tracking=raw.tracking,
    )
    if cfg.sampler == "grid" and len(grid_designs(cfg, registry)) > _GRID_MAX:
        raise ConfigError(f"{src}: space: the grid has more than {_GRID_MAX} combinations")
    return cfg


def _parse_dist(
    src: str, key: str, spec: dict[str, Any], base: RunConfig, registry: Registry, sampler: str
) -> Dist:
    where = f"{src}: space.{key}"
    if key == "seed" or key.startswith(
        (
            "pruning.operator_params",
            "pruning.schedule_params",
            "pruning.operators",
            "pruning.schedules",
        )
    ):
        raise ConfigError(
            f"{where}: not allowed in a space; seeds are replicates, and declared operator "
            "and schedule parameters are sampled automatically"
        )
    declared = _declared_str_param(key, registry)
    if declared is not None:
        return _parse_str_choices(where, key, spec, declared, registry)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", key):
        raise ConfigError(f"{where}: expected a dotted RunConfig key such as pruning.amount")
    unknown = set(spec) - {"choices", "low", "high", "log", "step"}
    if unknown:
        raise ConfigError(
            f"{where}: unknown field {sorted(unknown)[0]!r}; allowed: choices, low, high, log, step"
        )
    if "choices" in spec:
        if set(spec) != {"choices"}:
            raise ConfigError(f"{where}: give either choices or low/high, not both")
        choices = spec["choices"]
        if choices == "all" and key in ("pruning.operator", "pruning.schedule"):
            kind = key.split(".")[1]
            choices = [n for n in registry.names(kind) if n != "none"]
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}.choices: expected a non-empty list")
        if any(not isinstance(c, (str, int, float, bool)) for c in choices):
            raise ConfigError(f"{where}.choices: values must be strings, numbers or booleans")
        if len(set(map(repr, choices))) != len(choices):
            raise ConfigError(f"{where}.choices: values must be distinct")
        for c in choices:
            updates = {**_reader(where, key, base, registry), **with_owned_params(key, c, base)}
            base.with_updates(updates, registry, source=f"{src} [space]")
        return Dist("categorical", tuple(choices))
    if "low" not in spec or "high" not in spec:
        raise ConfigError(f"{where}: expected {{ choices = [...] }} or {{ low = ..., high = ... }}")
    low, high = spec["low"], spec["high"]
    log, step = spec.get("log", False), spec.get("step")
    numeric = (int, float)
    if any(isinstance(v, bool) or not isinstance(v, numeric) for v in (low, high)):
        raise ConfigError(f"{where}: low and high must be numbers")
    if not all(math.isfinite(v) for v in (low, high)):
        raise ConfigError(f"{where}: low and high must be finite numbers (got {low}, {high})")
    if not isinstance(log, bool):
        raise ConfigError(f"{where}.log: expected true or false")
    if step is not None and (
        isinstance(step, bool)
        or not isinstance(step, numeric)
        or not math.isfinite(step)
        or step <= 0
    ):
        raise ConfigError(f"{where}.step: expected a positive number")
    if low > high or (log and low <= 0):
        raise ConfigError(f"{where}: need low <= high (and low > 0 with log = true)")
    if log and step is not None:
        raise ConfigError(f"{where}: step and log cannot be combined")
    is_int = (
        isinstance(low, int) and isinstance(high, int) and (step is None or isinstance(step, int))
    )
    if sampler == "grid" and not is_int:
        raise ConfigError(
            f"{where}: the grid sampler needs a finite space; use choices = [...] "
            "(or integer low/high) instead of a float range"
        )
    for v in (low, high):
        updates = {**_reader(where, key, base, registry), key: v}
        base.with_updates(updates, registry, source=f"{src} [space]")
    return Dist("int" if is_int else "float", low=low, high=high, log=log, step=step)


def _declared_str_param(key: str, registry: Registry) -> Param | None:
    """The declared ``str`` parameter a key ``operator.<name>.<param>`` names, if any."""
    parts = key.split(".")
    if len(parts) != 3 or parts[0] != "operator" or parts[1] not in registry.names("operator"):
        return None
    found = [p for p in registry.operator(parts[1]).obj.parameters if p.name == parts[2]]
    return found[0] if found and found[0].kind == "str" else None


def _parse_str_choices(
    where: str, key: str, spec: dict[str, Any], p: Param, registry: Registry
) -> Dist:
    """``{ choices = [...] }`` for a declared str parameter (e.g. formula expressions)."""
    choices = spec.get("choices")
    if set(spec) != {"choices"} or not isinstance(choices, list) or not choices:
        raise ConfigError(f"{where}: expected {{ choices = [...] }} (a non-empty list of strings)")
    if any(not isinstance(c, str) for c in choices) or len(set(choices)) != len(choices):
        raise ConfigError(f"{where}.choices: values must be distinct strings")
    cls = registry.operator(key.split(".")[1]).obj
    for i, c in enumerate(choices):
        try:
            cls(**{p.name: c})
        except ConfigError as exc:
            raise ConfigError(f"{where}.choices[{i}]: {exc}") from None
    return Dist("categorical", tuple(choices))


def _reader(where: str, key: str, base: RunConfig, registry: Registry) -> dict[str, Any]:
    """``{}`` when the base's engine reads ``key``, else ``{"engine": one that does}`` (a space
    key owned by another engine is validated under that engine)."""
    if key == "engine" or registry.engine(base.engine).obj.reads(key):
        return {}
    for provided in registry.entries("engine"):
        if provided.obj.reads(key):
            return {"engine": provided.qualified}
    raise ConfigError(f"{where}: no installed engine reads this key")


_OWNED = {
    "engine": "engines",
    "data.name": "data.params",
    "pruning.operator": "pruning.operator_params",
    "pruning.schedule": "pruning.schedule_params",
}


def with_owned_params(key: str, value: Any, base: RunConfig) -> dict[str, Any]:
    """``{key: value}``, plus emptied parameters when a named component changes (an engine's,
    dataset's, operator's or schedule's parameters belong to the one the base names)."""
    out = {key: value}
    owned = _OWNED.get(key)
    if owned is not None and value != _get(base, key):
        out[owned] = {}
    return out


def _get(cfg: RunConfig, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


def _ordered(space: dict[str, Dist]) -> list[str]:
    return [k for k in _LEAD if k in space] + [k for k in space if k not in _LEAD]


def sample_updates(
    choose: Chooser, study: StudyConfig, registry: Registry, baseline: bool = False
) -> dict[str, Any]:
    """One trial's dotted ``RunConfig`` updates, following the space's conditions."""
    base, space = study.base, study.space
    finite = study.sampler == "grid"
    updates: dict[str, Any] = {}
    for key in _ordered(space):
        if key.startswith("operator."):
            continue  # a declared str parameter: sampled with its operator below
        if key.startswith("pruning.") and baseline:
            continue
        engine = registry.engine(updates.get("engine", base.engine)).obj
        if key != "engine" and not engine.reads(key):
            continue
        if key == "pruning.amount":
            op_name = updates.get("pruning.operator", base.pruning.operator)
            if not registry.operator(op_name).obj.uses_amount:
                continue
        updates.update(with_owned_params(key, choose(key, space[key]), base))
    if baseline:  # the operator's own parameters go with it
        updates.update(with_owned_params("pruning.operator", "none", base))
        return updates
    for kind in ("operator", "schedule"):
        name = updates.get(f"pruning.{kind}", getattr(base.pruning, kind))
        declared = registry.get(kind, name).obj.parameters
        given = dict(getattr(base.pruning, f"{kind}_params"))
        if name != getattr(base.pruning, kind):
            given = {}
        for p in declared:
            if p.kind == "str" and f"{kind}.{name}.{p.name}" in space:  # e.g. formula texts
                given[p.name] = choose(f"{kind}.{name}.{p.name}", space[f"{kind}.{name}.{p.name}"])
                continue
            if not study.tune_plugin_params:
                break  # declared parameters keep the base's values or their defaults
            if not p.tunable or p.kind == "str" or (finite and p.kind in ("int", "float")):
                continue
            given[p.name] = choose(f"{kind}.{name}.{p.name}", Dist.from_param(p))
        updates[f"pruning.{kind}_params"] = given
    return updates


def grid_designs(study: StudyConfig, registry: Registry) -> list[dict[str, Any]]:
    """Every combination of a finite space, as Optuna parameter dicts (a full factorial)."""
    designs: list[dict[str, Any]] = []
    pending: list[list[int]] = [[]]
    while pending:
        prefix = pending.pop()
        path: list[int] = []
        params: dict[str, Any] = {}

        def choose(
            name: str,
            dist: Dist,
            prefix: list[int] = prefix,
            path: list[int] = path,
            params: dict[str, Any] = params,
        ) -> Any:
            values = dist.grid_values()
            i = len(path)
            pick = prefix[i] if i < len(prefix) else 0
            if i >= len(prefix):
                pending.extend(path + [alt] for alt in range(len(values) - 1, 0, -1))
            path.append(pick)
            params[name] = values[pick]
            return values[pick]

        sample_updates(choose, study, registry)
        designs.append(params)
        if len(designs) > _GRID_MAX:
            break
    return designs
