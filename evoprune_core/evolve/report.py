"""What an evolution writes: hall of fame (JSON, Markdown), a run file using the best formula,
and the fitness-over-generations figure."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .config import EvolveFile, selection_seeds
from .fresh import FreshScores, spread
from .grammar import parse
from .loop import Entry, EvolutionState
from .simplify import forms

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
        + " | size | depth | formula | simplified |",
        "|---|---|---|" + "---|" * len(tasks) + "---|---|---|---|",
    ]  # fmt: skip
    for r in rows:
        per = " | ".join(_cell(r["fitness_fresh"][t]) for t in tasks)
        out.append(
            f"| {r['rank']} | {r['fitness']:.4f} | {r['fitness_selection']:.4f} | {per} | "
            f"{r['size']} | {r['depth']} | `{r['expression']}` | ${r['latex']}$ |"
        )
    return "\n".join(out) + "\n"


def _run_file(cfg: EvolveFile, best: str) -> str:
    task = cfg.transfer.task
    net = cfg.fitness.network
    network = (
        f'preset = "{net.preset}"'
        if net.encoder is None
        else f"encoder = {list(net.encoder)}"
        + (f"\ndecoder = {list(net.decoder)}" if net.decoder is not None else "")
    )
    return f"""# A canonical run pruning with the best formula of evolution {cfg.name!r}
# (written by `evoprune evolve`): `evoprune run <this file>`
engine = "canonical"
seed = 1
generations = 100

[data]
name = "{task}"

[network]
{network}

[pruning]
operator = "formula"
schedule = "exponential"
probability = 0.5
amount = 0.25

[pruning.operators.formula]
expression = {json.dumps(best)}
"""


def fitness_figure(state: EvolutionState) -> Any:
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
        "figure": json_path.with_name(json_path.stem + "-fitness.png"),
    }
    _atomic(paths["json"], json.dumps(payload, indent=2) + "\n")
    _atomic(paths["markdown"], _markdown(cfg, rows, state, reliability))
    _atomic(paths["run"], _run_file(cfg, rows[0]["expression"]))
    fig = fitness_figure(state)
    fig.savefig(paths["figure"], dpi=80)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return paths


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
