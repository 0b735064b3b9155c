"""The evolution file (TOML): a strict pydantic model; unknown keys and impossible limits refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ..config import (
    ComputeConfig,
    NetworkConfig,
    apply_overrides,
    format_validation_error,
    read_toml,
)
from ..errors import ConfigError
from .seeds import SEEDS

if TYPE_CHECKING:
    from ..plugins import Registry

__all__ = [
    "METHODS",
    "CompareConfig",
    "EvolutionConfig",
    "EvolveFile",
    "FitnessConfig",
    "SearchConfig",
    "TransferConfig",
    "load_evolve_config",
    "selection_seeds",
]

#: Search methods at equal budgets: typed GP, mutation only (no crossover), random sampling.
METHODS = ("gp", "random", "mutation")
#: The CNN classifiers of ``network:dataset`` fitness tasks (``evolve.classifier.NETWORKS``).
NETWORK_NAMES = ("lenet5", "vgg-small", "cnn3")


def is_classifier(task: str) -> bool:
    """Whether ``task`` is a CNN classifier task ``network:dataset`` (else a dataset name)."""
    return task.partition(":")[0] in NETWORK_NAMES


def selection_seeds(seed: int, k: int) -> list[int]:
    """The pre-training seeds the fitness of evolution ``seed`` uses (k networks per task).

    Hash-derived (at least 1000), so they never meet the small fresh seeds of the report.
    """
    out = []
    for i in range(k):
        digest = hashlib.sha256(json.dumps(["selection", seed, i]).encode()).digest()
        out.append(1000 + int.from_bytes(digest[:6], "big") % (2**40))
    return out


class _Model(BaseModel):
    """Strict like the run configuration: ``generations = "5"`` is refused, not coerced."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


# TOML has arrays, not tuples: a (low, high) pair is read from a list, its items strictly.
_Heights = Annotated[tuple[int, int], Field(strict=False)]


class EvolutionConfig(_Model):
    """The GP: population, truncation selection with elitism, variation, limits."""

    population: int = Field(default=40, ge=2, le=10_000, description="formulas per generation")
    generations: int = Field(
        default=15, ge=0, le=10_000, description="generations after generation 0"
    )
    elite: int = Field(default=6, ge=1, le=10_000, description="the best k survive and breed")
    crossover: float = Field(
        default=0.75, ge=0.0, le=1.0, description="probability of one-point crossover per child"
    )
    mutation: float = Field(
        default=0.75, ge=0.0, le=1.0, description="probability of uniform mutation per child"
    )
    mutation_height: _Heights = Field(
        default=(0, 4), description="[low, high] height of the subtree a mutation grows"
    )
    init_height: _Heights = Field(
        default=(1, 4), description="[low, high] height of ramped half-and-half random trees"
    )
    max_depth: int = Field(
        default=8, ge=1, le=17, description="largest tree height crossover and mutation keep"
    )
    seeds: list[str] = Field(
        default_factory=lambda: list(SEEDS),
        description="hand-written formulas of generation 0 (evoprune_core/evolve/seeds.py)",
    )
    seed_copies: int = Field(
        default=2, ge=0, le=100, description="copies of each seed formula in generation 0"
    )
    extra_seeds: list[str] = Field(default_factory=list, description="formula texts")
    exclude: list[str] = Field(default_factory=list, description="primitives/terminals left out")
    hall_of_fame: int = Field(
        default=10, ge=1, le=1000, description="best distinct formulas kept and re-scored"
    )
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

    tasks: list[str] = Field(
        default_factory=lambda: ["bc-10-100-1000", "digits"],
        min_length=1,
        description="datasets (autoencoder tasks) or network:dataset pairs (classifier tasks)",
    )
    fractions: list[float] = Field(
        default_factory=lambda: [0.25, 0.5, 0.75],
        min_length=1,
        description="fractions of each hidden layer pruned, each in (0, 1); fitness is their mean",
    )
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    pretrain_epochs: int = Field(
        default=40, ge=1, le=100_000, description="epochs of the pre-training before pruning"
    )
    finetune_epochs: int = Field(
        default=2, ge=0, le=100_000, description="epochs of fine-tuning after pruning"
    )
    finetune_batches: int | None = Field(
        default=None, ge=1, description="classifier tasks: at most this many minibatches an epoch"
    )
    lr: float = Field(
        default=1e-3,
        gt=0.0,
        le=10.0,
        description="Adam's learning rate (pre-training, fine-tuning)",
    )
    batch_size: int = Field(default=25, ge=1, le=1_000_000, description="rows per minibatch")
    calibration_rows: int = Field(
        default=200, ge=2, le=1_000_000, description="training rows a formula is evaluated on"
    )
    pseudo_classes: int = Field(default=10, ge=1, le=1000, description="k-means k without labels")
    pretrain_seeds: int = Field(
        default=3, ge=1, le=100, description="pre-trained networks per task; fitness = their mean"
    )
    alpha: float = Field(
        default=0.5, gt=0.0, lt=1.0, description="weight of the first of two tasks (geometric)"
    )
    fresh_seeds: list[int] = Field(
        default_factory=lambda: [101, 102, 103, 104, 105],
        min_length=1,
        description="pre-training seeds never used in selection: the hall of fame's reported scores",
    )

    @property
    def kind(self) -> str:
        """``classifier`` when the tasks are ``network:dataset`` pairs, else ``autoencoder``."""
        return "classifier" if any(is_classifier(t) for t in self.tasks) else "autoencoder"

    @model_validator(mode="after")
    def _checks(self) -> FitnessConfig:
        if any(not 0.0 < f < 1.0 for f in self.fractions):
            raise ValueError("fractions: each must lie in (0, 1)")
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError("tasks: must be distinct")
        if any(s < 0 for s in self.fresh_seeds) or len(set(self.fresh_seeds)) != len(
            self.fresh_seeds
        ):
            raise ValueError("fresh_seeds: must be distinct non-negative integers")
        return self


class SearchConfig(_Model):
    """How new candidates are found; every method spends the same number of evaluations."""

    method: str = Field(default="gp", description="gp | random | mutation")

    @field_validator("method")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in METHODS:
            raise ValueError(f"allowed: {', '.join(METHODS)}")  # the input is added once
        return value


class CompareConfig(_Model):
    """``--compare``: every method over several evolution seeds, winners on the fresh seeds."""

    seeds: list[int] = Field(
        default_factory=lambda: [1, 2, 3],
        min_length=1,
        description="evolution seeds each method runs with",
    )
    methods: list[str] = Field(
        default_factory=lambda: list(METHODS),
        min_length=1,
        description="search methods compared: gp, random, mutation",
    )

    @field_validator("methods")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        bad = [m for m in value if m not in METHODS]
        if bad:
            raise ValueError(f"allowed: {', '.join(METHODS)}; {bad[0]!r} is none of them")
        return value

    @model_validator(mode="after")
    def _distinct(self) -> CompareConfig:
        if len(set(self.methods)) != len(self.methods) or len(set(self.seeds)) != len(self.seeds):
            raise ValueError("methods and seeds must be distinct")
        if any(s < 0 for s in self.seeds):
            raise ValueError("seeds: must be non-negative")
        return self


class TransferConfig(_Model):
    """After evolving: the hall of fame vs the seeds and built-in operators on a held-out task."""

    enabled: bool = Field(default=True, description="run the transfer comparison after evolving")
    task: str = Field(
        default="bc-50-100-1000",
        description="the held-out task: a dataset (autoencoder) or a network:dataset pair (CNN)",
    )
    more_tasks: list[str] = Field(
        default_factory=list, description="further held-out tasks, named as for task"
    )
    fractions: list[float] = Field(
        default_factory=list, description="fractions of the transfer (default: the fitness's)"
    )
    evolution_tasks: bool = Field(default=True, description="also tabulate the evolution tasks")
    seeds: list[int] = Field(
        default_factory=lambda: [1, 2, 3, 4, 5],
        min_length=1,
        description="pre-training seeds of the held-out task",
    )
    top: int = Field(default=3, ge=1, le=100, description="hall-of-fame formulas compared")
    operators: list[str] = Field(
        default_factory=lambda: ["random", "magnitude", "variance", "conjunctive"],
        description="built-in operators the formulas are compared with (autoencoder tasks)",
    )

    @property
    def held_out(self) -> list[str]:
        return [self.task, *self.more_tasks]

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, value: list[float]) -> list[float]:
        if any(not 0.0 < f < 1.0 for f in value):
            raise ValueError(f"each must lie in (0, 1) (got {value})")
        return value

    @model_validator(mode="after")
    def _checks(self) -> TransferConfig:
        if len(set(self.held_out)) != len(self.held_out):
            raise ValueError("more_tasks: must differ from each other and from task")
        return self


class EvolveFile(_Model):
    """A whole evolution file."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$",
        description="the evolution's name: its checkpoint directory and MLflow experiment",
        examples=["quickstart"],
    )
    description: str = Field(default="", description="free text, shown nowhere else")
    seed: int = Field(default=1, ge=0, le=2**63 - 1, description="seed of the GP and the tasks")
    evolution: EvolutionConfig = Field(default_factory=EvolutionConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    fitness: FitnessConfig = Field(default_factory=FitnessConfig)
    transfer: TransferConfig = Field(default_factory=TransferConfig)
    compare: CompareConfig = Field(default_factory=CompareConfig)
    compute: ComputeConfig = Field(default_factory=ComputeConfig)
    tracking: str = Field(
        default="mlflow",
        pattern=r"^[A-Za-z0-9_.:\-]+$",
        description='the tracker plugin: "mlflow" (default), "none" (no tracking store) or a '
        "plugin's name",
    )

    @model_validator(mode="after")
    def _fresh_unused(self) -> EvolveFile:
        k = self.fitness.pretrain_seeds
        used = {s for e in {self.seed, *self.compare.seeds} for s in selection_seeds(e, k)}
        clash = sorted(used & set(self.fitness.fresh_seeds))
        if clash:
            raise ValueError(f"fitness.fresh_seeds: {clash[0]} is a selection seed")
        return self

    def budget(self) -> int:
        """Candidate evaluations every search method spends (distinct new formulas)."""
        ev = self.evolution
        return ev.population + ev.generations * (ev.population - ev.elite)

    def _identity_data(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data["evolution"].pop("generations")
        data.pop("transfer")
        data.pop("compare")
        data.pop("description")
        data["fitness"].pop("fresh_seeds")
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


def load_evolve_config(
    path: str | Path, overrides: list[str] | None, registry: Registry
) -> EvolveFile:
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
    kinds = {is_classifier(t) for t in cfg.fitness.tasks}
    if len(kinds) > 1:
        raise ConfigError(
            f"{src}: fitness.tasks: all autoencoder datasets or all network:dataset classifier "
            f"tasks, not both (got {cfg.fitness.tasks})"
        )
    held = [("transfer.task", cfg.transfer.task)] + [
        ("transfer.more_tasks", t) for t in cfg.transfer.more_tasks
    ]
    for key, task in [("fitness.tasks", t) for t in cfg.fitness.tasks] + held:
        if is_classifier(task):
            from .classifier import check_classifier_task

            check_classifier_task(task, registry, f"{src}: {key}")
        elif task not in names:
            raise ConfigError(
                f"{src}: {key}: unknown dataset {task!r}; allowed: {', '.join(names)}, or a "
                f"classifier task network:dataset with network one of {', '.join(NETWORK_NAMES)}"
            )
    for key, task in held:
        if task in cfg.fitness.tasks:
            raise ConfigError(f"{src}: {key}: {task!r} is an evolution task; choose a held-out one")
    if cfg.transfer.operators and any(
        is_classifier(t) for t in cfg.fitness.tasks + cfg.transfer.held_out
    ):
        raise ConfigError(
            f"{src}: transfer.operators: the built-in operators prune autoencoder units; leave "
            f"it empty ([]) with classifier tasks (got {cfg.transfer.operators})"
        )
    ops = registry.names("operator")
    for op in cfg.transfer.operators:
        if op not in ops or op in ("none", "formula"):
            allowed = ", ".join(o for o in ops if o not in ("none", "formula"))
            raise ConfigError(f"{src}: transfer.operators: unknown {op!r}; allowed: {allowed}")
    return cfg
