"""The evolution file (TOML): a strict pydantic model; unknown keys and impossible limits refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..config import (
    ComputeConfig,
    NetworkConfig,
    apply_overrides,
    format_validation_error,
    read_toml,
)
from ..errors import ConfigError
from .seeds import SEEDS

__all__ = ["EvolutionConfig", "EvolveFile", "FitnessConfig", "TransferConfig", "load_evolve_config"]


class _Model(BaseModel):
    """Strict like the run configuration: ``generations = "5"`` is refused, not coerced."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


# TOML has arrays, not tuples: a (low, high) pair is read from a list, its items strictly.
_Heights = Annotated[tuple[int, int], Field(strict=False)]


class EvolutionConfig(_Model):
    """The GP: population, truncation selection with elitism, variation, limits."""

    population: int = Field(default=40, ge=2, le=10_000)
    generations: int = Field(default=15, ge=0, le=10_000)
    elite: int = Field(default=6, ge=1, le=10_000, description="the best k survive and breed")
    crossover: float = Field(default=0.75, ge=0.0, le=1.0)
    mutation: float = Field(default=0.75, ge=0.0, le=1.0)
    mutation_height: _Heights = (0, 4)
    init_height: _Heights = (1, 4)
    max_depth: int = Field(default=8, ge=1, le=17)
    seeds: list[str] = Field(default_factory=lambda: list(SEEDS))
    seed_copies: int = Field(default=2, ge=0, le=100)
    extra_seeds: list[str] = Field(default_factory=list, description="formula texts")
    exclude: list[str] = Field(default_factory=list, description="primitives/terminals left out")
    hall_of_fame: int = Field(default=10, ge=1, le=1000)
    retries: int = Field(default=50, ge=1, le=10_000, description="attempts per valid child")
    max_elements: int = Field(
        default=2_000_000, ge=1, description="largest intermediate (entries) of a valid tree"
    )

    @model_validator(mode="after")
    def _limits(self) -> EvolutionConfig:
        for key in ("mutation_height", "init_height"):
            lo, hi = getattr(self, key)
            if not 0 <= lo <= hi <= self.max_depth:
                raise ValueError(f"{key}: need 0 <= low <= high <= max_depth ({self.max_depth})")
        if self.elite > self.population:
            raise ValueError(f"elite: {self.elite} exceeds the population ({self.population})")
        unknown = [s for s in self.seeds if s not in SEEDS]
        if unknown:
            raise ValueError(f"seeds: unknown {unknown[0]!r}; allowed: {', '.join(SEEDS)}")
        from .grammar import FormulaError, parse
        from .primitives import TERMINALS, Scalar, names, used_names

        bad = [n for n in self.exclude if n not in names()]
        if bad:
            raise ValueError(
                f"exclude: unknown primitive {bad[0]!r}; allowed: {', '.join(names())}"
            )
        if all(t.name in self.exclude for t in TERMINALS if t.type is Scalar):
            raise ValueError("exclude: leaves no Scalar terminal (N, mX, mP, mQ)")
        for i, text in enumerate(self.extra_seeds):
            try:
                parse(text)
            except FormulaError as exc:
                raise ValueError(f"extra_seeds[{i}]: {exc}") from None
        texts = [(f"seeds: {s!r}", SEEDS[s]) for s in self.seeds] + [
            (f"extra_seeds[{i}]", t) for i, t in enumerate(self.extra_seeds)
        ]
        for where, text in texts:
            hit = sorted(used_names(parse(text)) & set(self.exclude))
            if hit:
                raise ValueError(f"{where} uses the excluded {hit[0]!r}")
        if (len(self.seeds) + len(self.extra_seeds)) * self.seed_copies > self.population:
            raise ValueError(
                f"seed_copies: {len(self.seeds) + len(self.extra_seeds)} seeds x "
                f"{self.seed_copies} copies exceed the "
                f"population ({self.population})"
            )
        return self


class FitnessConfig(_Model):
    """Per task: pre-train once, prune fractions of each hidden layer, fine-tune, val L1."""

    tasks: list[str] = Field(default_factory=lambda: ["bc-10-100-1000", "digits"], min_length=1)
    fractions: list[float] = Field(default_factory=lambda: [0.25, 0.5, 0.75], min_length=1)
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    pretrain_epochs: int = Field(default=40, ge=1, le=100_000)
    finetune_epochs: int = Field(default=2, ge=0, le=100_000)
    lr: float = Field(default=1e-3, gt=0.0, le=10.0)
    batch_size: int = Field(default=25, ge=1, le=1_000_000)
    calibration_rows: int = Field(default=200, ge=2, le=1_000_000)
    pseudo_classes: int = Field(default=10, ge=1, le=1000, description="k-means k without labels")

    @model_validator(mode="after")
    def _checks(self) -> FitnessConfig:
        if any(not 0.0 < f < 1.0 for f in self.fractions):
            raise ValueError("fractions: each must lie in (0, 1)")
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError("tasks: must be distinct")
        return self


class TransferConfig(_Model):
    """After evolving: the hall of fame vs the seeds and built-in operators on a held-out task."""

    enabled: bool = True
    task: str = "bc-50-100-1000"
    seeds: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5], min_length=1)
    top: int = Field(default=3, ge=1, le=100, description="hall-of-fame formulas compared")
    operators: list[str] = Field(
        default_factory=lambda: ["random", "magnitude", "variance", "conjunctive"]
    )


class EvolveFile(_Model):
    """A whole evolution file."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$",
        description="the evolution's name: its checkpoint directory and MLflow experiment",
        examples=["quickstart"],
    )
    description: str = ""
    seed: int = Field(default=1, ge=0, le=2**63 - 1, description="seed of the GP and the tasks")
    evolution: EvolutionConfig = Field(default_factory=EvolutionConfig)
    fitness: FitnessConfig = Field(default_factory=FitnessConfig)
    transfer: TransferConfig = Field(default_factory=TransferConfig)
    compute: ComputeConfig = Field(default_factory=ComputeConfig)
    tracking: str = Field(default="mlflow", pattern=r"^[A-Za-z0-9_.:\-]+$")

    def _identity_data(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data["evolution"].pop("generations")
        data.pop("transfer")
        data.pop("description")
        data.pop("tracking")
        data["compute"].pop("threads")
        return data

    def identity(self) -> str:
        """A hash of everything that determines the evolution except ``generations`` and transfer
        (a checkpoint resumes, or extends, only an evolution with the same identity)."""
        text = json.dumps(self._identity_data(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def content(self) -> dict[str, Any]:
        """What ``identity`` hashes, as dotted keys (a checkpoint keeps it to name changes)."""
        from ..config import flatten

        return flatten(self._identity_data())


def load_evolve_config(path: str | Path, overrides: list[str] | None, registry: Any) -> EvolveFile:
    """Read, override (``--set key=value``) and validate an evolution file; its dataset and
    operator names are checked against ``registry`` (an ``evoprune_core.Registry``)."""
    src = str(path)
    data = read_toml(path)
    apply_overrides(data, overrides or [], source=f"{src}: --set")
    try:
        cfg = EvolveFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, EvolveFile, src)) from None
    registry.tracker(cfg.tracking, f"{src}: tracking")
    names = registry.names("dataset")
    for key, task in [("fitness.tasks", t) for t in cfg.fitness.tasks] + [
        ("transfer.task", cfg.transfer.task)
    ]:
        if task not in names:
            raise ConfigError(
                f"{src}: {key}: unknown dataset {task!r}; allowed: {', '.join(names)}"
            )
    if cfg.transfer.task in cfg.fitness.tasks:
        raise ConfigError(
            f"{src}: transfer.task: {cfg.transfer.task!r} is an evolution task; choose a "
            "held-out one"
        )
    ops = registry.names("operator")
    for op in cfg.transfer.operators:
        if op not in ops or op in ("none", "formula"):
            allowed = ", ".join(o for o in ops if o not in ("none", "formula"))
            raise ConfigError(f"{src}: transfer.operators: unknown {op!r}; allowed: {allowed}")
    return cfg
