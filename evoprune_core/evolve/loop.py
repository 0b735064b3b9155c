"""The evolution loop: DEAP typed GP, truncation selection with elitism, JSON checkpoints.

Generation 0 holds the seeds (``seed_copies`` each) and ramped half-and-half trees. Each
following generation keeps the ``elite`` best (fitness, then size: parsimony breaks ties)
and fills the population with new candidates; how depends on ``search.method``:

- ``gp``: children of the elite by one-point crossover and uniform mutation (new subtrees of
  full height ``mutation_height``), both under a static depth limit;
- ``mutation``: the same without crossover;
- ``random``: fresh ramped half-and-half trees (``init_height``), the elite only kept.

A candidate that is invalid (dimension mismatch, oversized intermediates, a non-finite score
on the probe) or whose canonical sympy form was already evaluated is redrawn, so every method
evaluates ``population - elite`` new formulas per generation: equal budgets.

The fitness of a formula is the mean over ``fitness.pretrain_seeds`` pre-trained networks per
task (``per_seed`` keeps each); ``fitness_reliability`` is the Spearman rank correlation of a
generation's scores between two disjoint halves of those networks.

After every generation the state is written as JSON (trees as formula text, re-parsed on
resume; the random generator's state as numbers): running again resumes, and a larger
``generations`` extends a finished evolution.
"""

from __future__ import annotations

import functools
import json
import math
import operator as op
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deap import gp

from .._identity import changes
from ..errors import ConfigError
from .config import EvolveFile
from .fitness import FitnessTask, combine, evaluate, task_scores
from .grammar import parse, to_text
from .primitives import Scalar, primitive_set
from .randomness import deap_random, rng_from_state, rng_state
from .seeds import SEEDS
from .simplify import cache_key

if TYPE_CHECKING:
    from torch import Tensor

    from ..engines.runtime import Compute
    from .config import FitnessConfig

__all__ = ["Entry", "Evolution", "EvolutionState", "fitness_reliability", "hall_of_fame"]

FORMAT = "evoprune.evolve/2"


@dataclass
class Entry:
    """One evaluated formula (the first text seen for its canonical form)."""

    text: str
    key: str
    fitness: float
    tasks: dict[str, float]
    size: int
    depth: int
    generation: int
    per_seed: dict[str, list[float]] = field(default_factory=dict)  # task -> per network

    def rank(self) -> tuple[float, int, str]:
        return (self.fitness, self.size, self.text)


@dataclass
class EvolutionState:
    """Everything a checkpoint holds."""

    identity: str
    generation: int  # last completed generation (-1: none)
    population: list[str]
    rng: list[Any]
    cache: dict[str, Entry] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    content: dict[str, Any] = field(default_factory=dict)  # what ``identity`` hashes

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "identity": self.identity,
            "content": self.content,
            "generation": self.generation,
            "population": self.population,
            "rng": self.rng,
            "cache": [vars(e) for e in self.cache.values()],
            "history": self.history,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str) -> EvolutionState:
        if data.get("format") != FORMAT:
            raise ConfigError(f"{where}: not an evoprune evolution checkpoint")
        cache = {}
        for e in data["cache"]:
            entry = Entry(**e)
            parse(entry.text)  # the text must still be a valid formula
            cache[entry.key] = entry
        return cls(
            identity=data["identity"],
            generation=int(data["generation"]),
            population=list(data["population"]),
            rng=data["rng"],
            cache=cache,
            history=list(data["history"]),
            content=dict(data.get("content") or {}),  # absent in older checkpoints
        )


def hall_of_fame(state: EvolutionState, n: int) -> list[Entry]:
    """The ``n`` best distinct formulas ever evaluated (fitness, then size, then text)."""
    valid = [e for e in state.cache.values() if math.isfinite(e.fitness)]
    return sorted(valid, key=Entry.rank)[:n]


def _half_fitness(entry: Entry, half: slice, cfg: FitnessConfig) -> float:
    return combine(cfg, [statistics.fmean(v[half]) for v in entry.per_seed.values()])


def fitness_reliability(state: EvolutionState, cfg: FitnessConfig) -> float | None:
    """Spearman correlation of the last generation's distinct formulas scored on the first
    and on the second half of the pre-trained networks (None: fewer than 2 networks per task
    or fewer than 3 finite formulas)."""
    from scipy.stats import spearmanr

    entries = {}
    for text in state.population:
        e = state.cache.get(cache_key(parse(text)))
        if e is not None and math.isfinite(e.fitness):
            entries[e.key] = e
    if not entries:
        return None
    k = min(len(v) for e in entries.values() for v in e.per_seed.values())
    if k < 2 or len(entries) < 3:
        return None
    first, second = slice(0, k // 2), slice(k // 2, 2 * (k // 2))
    a = [_half_fitness(e, first, cfg) for e in entries.values()]
    b = [_half_fitness(e, second, cfg) for e in entries.values()]
    pairs = [(x, y) for x, y in zip(a, b) if math.isfinite(x) and math.isfinite(y)]
    if len(pairs) < 3 or len({x for x, _ in pairs}) < 2 or len({y for _, y in pairs}) < 2:
        return None
    rho = spearmanr([x for x, _ in pairs], [y for _, y in pairs]).statistic
    return float(rho) if math.isfinite(rho) else None


class Evolution:
    """Runs (or resumes) one evolution file on prepared tasks."""

    def __init__(
        self,
        cfg: EvolveFile,
        tasks: Sequence[FitnessTask],
        compute: Compute,
        checkpoint: Path | None,
        on_generation: Callable[[dict[str, float]], None] | None = None,
    ) -> None:
        """``tasks``: every pre-trained network of every fitness task (grouped by name)."""
        self.cfg = cfg
        self.tasks = list(tasks)
        self.names = list(dict.fromkeys(t.name for t in self.tasks))
        self.compute = compute
        self.checkpoint = checkpoint
        self.on_generation = on_generation
        ev = cfg.evolution
        self.pset = primitive_set(frozenset(ev.exclude))
        limit = gp.staticLimit(key=op.attrgetter("height"), max_value=ev.max_depth)
        self.mate = limit(gp.cxOnePoint)
        lo, hi = ev.mutation_height
        self.mutate = limit(
            functools.partial(
                gp.mutUniform, expr=functools.partial(gp.genFull, min_=lo, max_=hi), pset=self.pset
            )
        )

    # -- state ---------------------------------------------------------------------------
    def load_or_start(self) -> EvolutionState:
        ident = self.cfg.identity()
        if self.checkpoint is not None and self.checkpoint.is_file():
            where = str(self.checkpoint)
            try:
                data = json.loads(self.checkpoint.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ConfigError(f"{where}: unreadable checkpoint: {exc}") from None
            state = EvolutionState.from_json(data, where)
            if state.identity != ident:
                what = changes(state.content, self.cfg.content()) if state.content else ""
                raise ConfigError(
                    f"{where}: the checkpoint belongs to a different evolution ("
                    + (what or f"identity {state.identity}, this file {ident}")
                    + "); restore the file, or evolve the edited file under a new name "
                    "(--set name=NEW), or delete the checkpoint"
                )
            if not state.content:  # written by an earlier evoprune: adopted
                state.content = self.cfg.content()
            return state
        rng = random.Random(self.cfg.seed)
        return EvolutionState(ident, -1, [], rng_state(rng), content=self.cfg.content())

    def save(self, state: EvolutionState) -> None:
        if self.checkpoint is None:
            return
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoint.with_name(self.checkpoint.name + ".tmp")
        tmp.write_text(json.dumps(state.to_json()) + "\n", encoding="utf-8")
        tmp.replace(self.checkpoint)

    # -- validity and evaluation ---------------------------------------------------------
    def _scores(self, tree: gp.PrimitiveTree) -> list[list[Tensor | None]] | None:
        out = []
        for task in self.tasks:
            s = task_scores(tree, task, self.cfg.evolution.max_elements)
            if s is None:
                return None
            out.append(s)
        return out

    def _evaluate(
        self,
        trees: list[gp.PrimitiveTree],
        scores: dict[str, list[list[Tensor | None]]],
        state: EvolutionState,
        g: int,
    ) -> tuple[int, int]:
        """Evaluate the new canonical forms among ``trees``; return (cache hits, evaluated)."""
        fresh: dict[str, gp.PrimitiveTree] = {}
        hits = 0
        for tree in trees:
            key = cache_key(tree)
            if key in state.cache or key in fresh:
                hits += 1
            else:
                fresh[key] = tree
        keys = list(fresh)
        valid = [k for k in keys if k in scores]
        per_net: dict[str, list[float]] = {k: [math.inf] * len(self.tasks) for k in keys}
        for t, task in enumerate(self.tasks):
            vals = evaluate([scores[k][t] for k in valid], task, self.cfg.fitness, self.compute)
            for k, v in zip(valid, vals):
                per_net[k][t] = v
        for k in keys:
            tree = fresh[k]
            per_seed = {
                name: [v for task, v in zip(self.tasks, per_net[k]) if task.name == name]
                for name in self.names
            }
            means = {n: statistics.fmean(v) if all(map(math.isfinite, v)) else math.inf
                     for n, v in per_seed.items()}  # fmt: skip
            state.cache[k] = Entry(
                text=to_text(tree),
                key=k,
                fitness=combine(self.cfg.fitness, list(means.values())),
                tasks=means,
                size=len(tree),
                depth=tree.height,
                generation=g,
                per_seed=per_seed,
            )
        return hits, len(keys)

    # -- variation -----------------------------------------------------------------------
    def _initial(self, rng: random.Random) -> tuple[list[gp.PrimitiveTree], int, int]:
        ev = self.cfg.evolution
        texts = [SEEDS[name] for name in ev.seeds] + list(ev.extra_seeds)
        trees = [parse(t) for t in texts for _ in range(ev.seed_copies)]
        attempts = valid = 0
        lo, hi = ev.init_height
        while len(trees) < ev.population:
            for _ in range(ev.retries):
                attempts += 1
                with deap_random(rng):
                    tree = gp.PrimitiveTree(
                        gp.genHalfAndHalf(self.pset, min_=lo, max_=hi, type_=Scalar)
                    )
                if self._scores(tree) is not None:
                    valid += 1
                    trees.append(tree)
                    break
            else:  # no valid tree in `retries` draws: a seed (or the mean activation)
                trees.append(parse(texts[len(trees) % len(texts)] if texts else "mX"))
        return trees, attempts, valid

    def _candidate(self, elite: list[gp.PrimitiveTree]) -> gp.PrimitiveTree:
        """One new tree by the search method (draws from the swapped-in ``random``)."""
        ev = self.cfg.evolution
        method = self.cfg.search.method
        if method == "random":
            lo, hi = ev.init_height
            return gp.PrimitiveTree(gp.genHalfAndHalf(self.pset, min_=lo, max_=hi, type_=Scalar))
        a = gp.PrimitiveTree(list(random.choice(elite)))
        b = gp.PrimitiveTree(list(random.choice(elite)))
        if method == "gp" and random.random() < ev.crossover:
            a, b = self.mate(a, b)
        if random.random() < (ev.mutation if method == "gp" else 1.0):
            (a,) = self.mutate(a)
        return a

    def _offspring(
        self, elite: list[gp.PrimitiveTree], rng: random.Random, seen: set[str]
    ) -> tuple[list[gp.PrimitiveTree], int, int]:
        """The elite plus ``population - elite`` new valid formulas (canonical forms not in
        ``seen``, which is updated)."""
        ev = self.cfg.evolution
        children = [gp.PrimitiveTree(list(t)) for t in elite]
        attempts = valid = 0
        while len(children) < ev.population:
            child = None
            for _ in range(ev.retries):
                with deap_random(rng):
                    a = self._candidate(elite)
                key = cache_key(a)
                if key in seen:  # already evaluated: redrawn, not counted as invalid
                    continue
                attempts += 1
                if a.height > ev.max_depth:
                    continue
                if self._scores(a) is not None:
                    valid += 1
                    seen.add(key)
                    child = a
                    break
            if child is None:  # no valid child found: copy a parent
                with deap_random(rng):
                    child = gp.PrimitiveTree(list(random.choice(elite)))
            children.append(child)
        return children, attempts, valid

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> EvolutionState:
        ev = self.cfg.evolution
        state = self.load_or_start()
        rng = rng_from_state(state.rng)
        population = [parse(t) for t in state.population]
        for g in range(state.generation + 1, ev.generations + 1):
            start = time.perf_counter()
            if g == 0:
                population, attempts, valid = self._initial(rng)
            else:
                unique = {cache_key(t): t for t in reversed(population)}  # first copy kept
                ranked = sorted(unique.values(), key=lambda t: state.cache[cache_key(t)].rank())
                seen = set(state.cache)
                population, attempts, valid = self._offspring(ranked[: ev.elite], rng, seen)
            scores = {}
            for tree in population:
                key = cache_key(tree)
                if key not in state.cache and key not in scores:
                    s = self._scores(tree)
                    if s is not None:  # only a seed can be invalid here: it gets inf
                        scores[key] = s
            hits, evaluated = self._evaluate(population, scores, state, g)
            fits = [state.cache[cache_key(t)].fitness for t in population]
            finite = [f for f in fits if math.isfinite(f)]
            record = {
                "generation": g,
                "best_fitness": min(fits),
                "median_fitness": statistics.median(finite) if finite else math.inf,
                "mean_size": statistics.fmean(len(t) for t in population),
                "validity_rate": valid / attempts if attempts else 1.0,
                "cache_hits": hits,
                "evaluated": evaluated,
                "seconds": time.perf_counter() - start,
            }
            state.generation = g
            state.population = [to_text(t) for t in population]
            rho = fitness_reliability(state, self.cfg.fitness)
            if rho is not None:
                record["fitness_reliability"] = rho
            state.rng = rng_state(rng)
            state.history.append(record)
            self.save(state)
            if self.on_generation is not None:
                self.on_generation(record)
        return state
