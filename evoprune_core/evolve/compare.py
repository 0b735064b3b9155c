"""``evoprune evolve FILE --compare``: GP against equal-budget random search and mutation only.

Every method in ``compare.methods`` evolves once per evolution seed in ``compare.seeds`` (each
with its own selection networks, the same budget of candidate evaluations); the winner of
each run (best selection fitness) is re-scored on the fresh pre-training seeds beside the
seven seed metrics, random units and the built-in operators of ``transfer.operators``. A cell
is one (evolution seed, fresh seed): the winner's fitness on that fresh network (geometric
mean over the tasks); a comparator, which has no evolution seed, repeats its value for each
evolution seed. Paired one-sided Wilcoxon signed-rank tests in both directions, Holm over
each method's comparisons.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import EvolveFile, SearchConfig, selection_seeds
from .fitness import FitnessTask
from .fresh import FreshScores, score_fresh, spread
from .loop import Entry, Evolution, EvolutionState, fitness_reliability, hall_of_fame
from .paired import paired_tests
from .seeds import SEEDS
from .transfer import Method

if TYPE_CHECKING:
    from ..engines.runtime import Compute
    from ..plugins import Registry

__all__ = ["compare_text", "run_compare"]

_NAMES = {"gp": "GP", "random": "random search", "mutation": "mutation only"}


def _label(method: str, seed: int) -> str:
    return f"{method} winner (evolution seed {seed})"


def comparators(cfg: EvolveFile) -> list[Method]:
    """The hand-made methods every search method is compared with."""
    out = [Method(f"seed {name}", "seed", formula=text) for name, text in SEEDS.items()]
    out.append(Method("random units", "random_units"))
    out += [Method(f"operator {op}", "builtin", operator=op) for op in cfg.transfer.operators]
    return out


def run_compare(
    cfg: EvolveFile,
    prepare: Callable[[str, int], FitnessTask],
    compute: Compute,
    registry: Registry,
    work: Path,
    progress: Callable[[str], None] | None = None,
    done: dict[tuple[str, int], EvolutionState] | None = None,
) -> dict[str, Any]:
    """Run every (method, evolution seed), re-score winners and comparators on fresh seeds."""
    k = cfg.fitness.pretrain_seeds
    runs: dict[tuple[str, int], EvolutionState] = dict(done or {})
    for method in cfg.compare.methods:
        for seed in cfg.compare.seeds:
            if (method, seed) in runs:
                continue
            sub = cfg.model_copy(update={"seed": seed, "search": SearchConfig(method=method)})
            if progress is not None:
                progress(f"compare: {method}, evolution seed {seed}")
            tasks = [prepare(n, s) for n in cfg.fitness.tasks for s in selection_seeds(seed, k)]
            ckpt = work / "compare" / f"{method}-seed{seed}.json"
            runs[(method, seed)] = Evolution(sub, tasks, compute, ckpt).run()
    winners: dict[tuple[str, int], Entry] = {}
    methods: list[Method] = []
    for method in cfg.compare.methods:
        for seed in cfg.compare.seeds:
            best = hall_of_fame(runs[(method, seed)], 1)
            if best:
                winners[(method, seed)] = best[0]
                methods.append(Method(_label(method, seed), "evolved", formula=best[0].text))
    hand = comparators(cfg)
    fresh = score_fresh(cfg, methods + hand, prepare, compute, registry, progress)
    return _summarise(cfg, runs, winners, hand, fresh)


def _summarise(
    cfg: EvolveFile,
    runs: dict[tuple[str, int], EvolutionState],
    winners: dict[tuple[str, int], Entry],
    hand: list[Method],
    fresh: FreshScores,
) -> dict[str, Any]:
    seeds = cfg.compare.seeds
    per_method: dict[str, Any] = {}
    cells: dict[str, list[float]] = {}
    for method in cfg.compare.methods:
        rows, all_cells = [], []
        for seed in seeds:
            state = runs[(method, seed)]
            entry = winners.get((method, seed))
            label = _label(method, seed)
            overall = fresh.overall(label) if entry is not None else []
            all_cells += overall if entry is not None else [float("inf")] * len(fresh.seeds)
            rows.append(
                {
                    "evolution_seed": seed,
                    "expression": None if entry is None else entry.text,
                    "fitness_selection": None if entry is None else entry.fitness,
                    "fitness_fresh": {} if entry is None else fresh.summary(label),
                    "fitness_fresh_overall": spread(overall),
                    "fitness_reliability": fitness_reliability(state, cfg.fitness),
                    "evaluated": int(sum(h["evaluated"] for h in state.history)),
                }
            )
        cells[method] = all_cells
        per_method[method] = {"winners": rows, "fitness_fresh": spread(all_cells)}
    comp: dict[str, Any] = {}
    for m in hand:
        overall = fresh.overall(m.label)
        cells[m.label] = overall * len(seeds)
        comp[m.label] = {
            "expression": m.formula or None,
            "operator": m.operator or None,
            "fitness_fresh": fresh.summary(m.label),
            "fitness_fresh_overall": spread(overall),
        }
    tests: list[dict[str, Any]] = []
    for method in cfg.compare.methods:
        others = [o for o in cfg.compare.methods if o != method] + [m.label for m in hand]
        tests += paired_tests(
            [(method, o, cells[method], cells[o]) for o in others], lower_is_better=True
        )
    return {
        "evolution_seeds": list(seeds),
        "fresh_seeds": list(fresh.seeds),
        "budget": cfg.budget(),
        "methods": per_method,
        "comparators": comp,
        "tests": tests,
        "verdict": _verdict(cfg, tests),
    }


def _verdict(cfg: EvolveFile, tests: list[dict[str, Any]]) -> list[str]:
    lines = []
    rows = {(t["method"], t["against"]): t for t in tests}
    main = "gp" if "gp" in cfg.compare.methods else cfg.compare.methods[0]
    for other in cfg.compare.methods:
        if other == main:
            continue
        t = rows[(main, other)]
        answer = {"better": "yes", "worse": "no: it was worse",
                  "no significant difference": "no: no significant difference"}[t["verdict"]]  # fmt: skip
        lines.append(
            f"Did {_NAMES[main]} beat {_NAMES[other]} at equal budget? {answer} "
            f"({t['wins']}/{t['cells']} cells won, Holm p {t['p_holm']:.3g}, "
            f"worse p {t['p_worse_holm']:.3g})."
        )
    for method in cfg.compare.methods:
        mine = [t for t in tests if t["method"] == method and t["against"] not in _NAMES]
        better = [t["against"] for t in mine if t["verdict"] == "better"]
        worse = [t["against"] for t in mine if t["verdict"] == "worse"]
        rest = len(mine) - len(better) - len(worse)
        lines.append(
            f"{_NAMES[method]} winners against the hand-made methods: better than "
            f"{', '.join(better) or 'none'}; worse than {', '.join(worse) or 'none'}; "
            f"{rest} without a significant difference."
        )
    return lines


def _fmt(s: dict[str, Any]) -> str:
    if s.get("median") is None:
        return "diverged"
    extra = f", {s['diverged']} diverged" if s.get("diverged") else ""
    return f"{s['median']:.4f} (IQR {s['iqr']:.4f}, n {s['n']}{extra})"


def compare_text(result: dict[str, Any], tasks: list[str]) -> str:
    """The side-by-side table (fresh seeds), the tests and the plain verdict."""
    head = ["method", "overall", *tasks, "formula"]
    lines = [
        f"Fresh pre-training seeds {result['fresh_seeds']}; evolution seeds "
        f"{result['evolution_seeds']}; {result['budget']} candidate evaluations per run. "
        "Median (IQR) over the cells; lower is better.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for method, data in result["methods"].items():
        for w in data["winners"]:
            per = [_fmt(w["fitness_fresh"].get(t, {})) for t in tasks]
            lines.append(
                f"| {method} (seed {w['evolution_seed']}) | {_fmt(w['fitness_fresh_overall'])} | "
                + " | ".join(per)
                + f" | `{w['expression']}` |"
            )
    for label, data in result["comparators"].items():
        per = [_fmt(data["fitness_fresh"][t]) for t in tasks]
        what = f"`{data['expression']}`" if data["expression"] else ""
        lines.append(
            f"| {label} | {_fmt(data['fitness_fresh_overall'])} | " + " | ".join(per)
            + f" | {what} |"
        )  # fmt: skip
    lines += ["", "Paired one-sided Wilcoxon signed-rank tests, Holm per method (alpha 0.05):", ""]
    for t in result["tests"]:
        lines.append(
            f"- {t['method']} vs {t['against']}: {t['wins']}/{t['cells']} wins, median "
            f"difference {t['median_difference']:+.4f}, p_holm {t['p_holm']:.3g} (better), "
            f"{t['p_worse_holm']:.3g} (worse): {t['verdict']}"
        )
    lines += ["", "Plainly:", *[f"- {v}" for v in result["verdict"]]]
    return "\n".join(lines) + "\n"
