"""What an evolution writes: hall of fame (JSON, Markdown), a run file using the best formula,
and the fitness-over-generations figure."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import EvolveFile, is_classifier, selection_seeds
from .fresh import FreshScores, spread
from .grammar import parse
from .loop import Entry, EvolutionState
from .simplify import forms

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["fitness_figure", "hall_rows", "hall_text", "write_outputs"]


def hall_rows(
    hall: list[Entry], fresh: FreshScores, labels: list[str], method: str
) -> list[dict[str, Any]]:
    """JSON rows, ranked by the fitness on the fresh seeds (``labels[i]`` names ``hall[i]`` in
    ``fresh``): expression, infix, LaTeX, fresh fitness (overall; per task median, IQR, n),
    the selection fitness beside it, size, depth."""
    rows = []
    for rank, (e, label) in enumerate(zip(hall, labels), 1):
        text, tex = forms(parse(e.text))
        per_task = {t: float(sum(v) / len(v)) for t, v in fresh.values[label].items()}
        rows.append(
            {
                "rank": rank,
                "method": method,
                "expression": e.text,
                "infix": text,
                "latex": tex,
                "fitness": fresh.fitness(label),
                "fitness_per_task": per_task,
                "fitness_fresh": fresh.summary(label),
                "fitness_fresh_overall": spread(fresh.overall(label)),
                "fitness_selection": e.fitness,
                "fitness_selection_per_task": e.tasks,
                "size": e.size,
                "depth": e.depth,
                "generation": e.generation,
            }
        )
    return rows


def _cell(s: dict[str, Any]) -> str:
    return "diverged" if s["median"] is None else f"{s['median']:.4f} ({s['iqr']:.4f})"


def hall_text(rows: list[dict[str, Any]], tasks: list[str]) -> str:
    """The closing table printed by the command (fresh seeds: median (IQR) per task)."""
    lines = [f"{'#':>2}  {'fresh':>8}  {'select':>8}  "
             + "  ".join(f"{t[:17]:>17}" for t in tasks)
             + "  size depth  formula (simplified)"]  # fmt: skip
    for r in rows:
        per = "  ".join(f"{_cell(r['fitness_fresh'][t]):>17}" for t in tasks)
        lines.append(
            f"{r['rank']:>2}  {r['fitness']:8.4f}  {r['fitness_selection']:8.4f}  {per}  "
            f"{r['size']:4d} {r['depth']:5d}  {r['infix']}"
        )
    return "\n".join(lines)


def _markdown(
    cfg: EvolveFile, rows: list[dict[str, Any]], state: EvolutionState, rho: float | None
) -> str:
    tasks = cfg.fitness.tasks
    fit = cfg.fitness
    shown = "unmeasurable" if rho is None else f"{rho:.3f}"
    warn = " (below 0.5: selection is mostly noise)" if rho is None or rho < 0.5 else ""
    out = [
        f"# Hall of fame: {cfg.name}",
        "",
        f"Method `{cfg.search.method}`, seed {cfg.seed}, {state.generation + 1} generations of "
        f"{cfg.evolution.population}. Fitness: validation L1 after pruning "
        f"{', '.join(map(str, fit.fractions))} of every hidden layer's units and "
        f"{fit.finetune_epochs} fine-tuning epoch(s); mean over fractions and over "
        f"{fit.pretrain_seeds} pre-trained network(s) per task (selection seeds "
        f"{selection_seeds(cfg.seed, fit.pretrain_seeds)}), geometric mean over tasks "
        f"({', '.join(tasks)}); lower is better.",
        "",
        f"Ranked by the fitness on the fresh pre-training seeds {fit.fresh_seeds} (never used "
        "in selection); per task: median (IQR) over them. fitness_reliability (Spearman of the "
        f"last generation between the two halves of the selection networks): {shown}{warn}.",
        "",
        "| # | fresh fitness | selection fitness | " + " | ".join(tasks)
        + " | size | depth | formula | infix | LaTeX |",
        "|---|---|---|" + "---|" * len(tasks) + "---|---|---|---|---|",
    ]  # fmt: skip
    for r in rows:
        per = " | ".join(_cell(r["fitness_fresh"][t]) for t in tasks)
        out.append(
            f"| {r['rank']} | {r['fitness']:.4f} | {r['fitness_selection']:.4f} | {per} | "
            f"{r['size']} | {r['depth']} | `{r['expression']}` | `{r['infix']}` | "
            f"${r['latex']}$ |"
        )
    return "\n".join(out) + "\n"


def _target(cfg: EvolveFile) -> tuple[str, str]:
    """(dataset, [network] body) the run files prune: the held-out task with the evolution's
    autoencoder, or - for classifier evolutions - the conv autoencoder ``conv-small`` on the
    8x8 digits (a conv network the formula never saw)."""
    if cfg.fitness.kind == "classifier" or is_classifier(cfg.transfer.task):
        return "digits", 'preset = "conv-small"'
    net = cfg.fitness.network
    network = (
        f'preset = "{net.preset}"'
        if net.encoder is None
        else f"encoder = {list(net.encoder)}"
        + (f"\ndecoder = {list(net.decoder)}" if net.decoder is not None else "")
    )
    return cfg.transfer.task, network


def _run_file(cfg: EvolveFile, best: str, engine: str = "canonical") -> str:
    data, network = _target(cfg)
    extra = "\n[coevolution]\ncells = 4\nradius = 1\n" if engine == "coevolution" else ""
    return f"""# A {engine} run pruning with the best formula of evolution {cfg.name!r}
# (written by `evoprune evolve`): `evoprune run <this file>`
engine = "{engine}"
seed = 1
generations = 100

[data]
name = "{data}"

[network]
{network}

[pruning]
operator = "formula"
schedule = "exponential"
probability = 0.5
amount = 0.25

[pruning.operators.formula]
expression = {json.dumps(best)}
{extra}"""


def _study_file(cfg: EvolveFile, formulas: list[str]) -> str:
    data, network = _target(cfg)
    body = network.replace("\n", "\n")
    return f"""# An Optuna study choosing among the top formulas of evolution {cfg.name!r} in both
# engines (written by `evoprune evolve`): `evoprune study <this file>`
name = "{cfg.name}-formulas"
n_trials = {2 * len(formulas)}
seeds = [1]
objectives = ["val_loss", "remaining_fraction"]
sampler = "tpe"
sampler_seed = 0
baseline = false

[base]
generations = 20

[base.data]
name = "{data}"

[base.network]
{body}

[base.pruning]
operator = "formula"

[space]
engine = {{ choices = ["canonical", "coevolution"] }}
"operator.formula.expression" = {{ choices = {json.dumps(formulas)} }}
"pruning.amount" = {{ low = 0.1, high = 0.4 }}
"coevolution.cells" = {{ low = 2, high = 3 }}
"""


def fitness_figure(state: EvolutionState) -> Figure:
    """Best and median fitness per generation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gens = [h["generation"] for h in state.history]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for key, style in (("best_fitness", "-o"), ("median_fitness", "--")):
        ys = [h[key] if math.isfinite(h[key]) else float("nan") for h in state.history]
        ax.plot(gens, ys, style, label=key.replace("_", " "), markersize=3)
    ax.set_xlabel("generation")
    ax.set_ylabel("fitness (val L1, lower is better)")
    ax.legend()
    fig.tight_layout()
    return fig


def write_outputs(
    cfg: EvolveFile,
    state: EvolutionState,
    rows: list[dict[str, Any]],
    json_path: Path,
    reliability: float | None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write ``json_path``, its ``.md`` sibling, ``<stem>-run.toml`` and ``<stem>-fitness.png``

    (``rows`` from ``hall_rows``)."""
    payload = {
        "name": cfg.name,
        "method": cfg.search.method,
        "fitness_reliability": reliability,
        "selection_seeds": selection_seeds(cfg.seed, cfg.fitness.pretrain_seeds),
        "fresh_seeds": list(cfg.fitness.fresh_seeds),
        "seed": cfg.seed,
        "identity": cfg.identity(),
        "generations": state.generation + 1,
        "config": cfg.model_dump(mode="json"),
        "hall_of_fame": rows,
        "history": state.history,
        **(extra or {}),
    }
    paths = {
        "json": json_path,
        "markdown": json_path.with_suffix(".md"),
        "run": json_path.with_name(json_path.stem + "-run.toml"),
        "run_coevolution": json_path.with_name(json_path.stem + "-run-coevolution.toml"),
        "study": json_path.with_name(json_path.stem + "-study.toml"),
        "figure": json_path.with_name(json_path.stem + "-fitness.png"),
    }
    _atomic(paths["json"], json.dumps(payload, indent=2) + "\n")
    _atomic(paths["markdown"], _markdown(cfg, rows, state, reliability))
    _atomic(paths["run"], _run_file(cfg, rows[0]["expression"]))
    _atomic(paths["run_coevolution"], _run_file(cfg, rows[0]["expression"], "coevolution"))
    _atomic(paths["study"], _study_file(cfg, [r["expression"] for r in rows[:3]]))
    fig = fitness_figure(state)
    fig.savefig(paths["figure"], dpi=80)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return paths


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
