"""What an evolution writes: hall of fame (JSON, Markdown), a run file using the best formula,
and the fitness-over-generations figure."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .config import EvolveFile
from .grammar import parse
from .loop import Entry, EvolutionState
from .simplify import forms

__all__ = ["fitness_figure", "hall_rows", "hall_text", "write_outputs"]


def hall_rows(hall: list[Entry]) -> list[dict[str, Any]]:
    """JSON rows: expression, simplified infix, LaTeX, fitness (overall, per task), size, depth."""
    rows = []
    for rank, e in enumerate(hall, 1):
        text, tex = forms(parse(e.text))
        rows.append(
            {
                "rank": rank,
                "expression": e.text,
                "infix": text,
                "latex": tex,
                "fitness": e.fitness,
                "fitness_per_task": e.tasks,
                "size": e.size,
                "depth": e.depth,
                "generation": e.generation,
            }
        )
    return rows


def hall_text(rows: list[dict[str, Any]], tasks: list[str]) -> str:
    """The closing table printed by the command."""
    lines = [f"{'#':>2}  {'fitness':>8}  " + "  ".join(f"{t[:14]:>14}" for t in tasks)
             + "  size depth  formula (simplified)"]  # fmt: skip
    for r in rows:
        per = "  ".join(f"{r['fitness_per_task'][t]:14.4f}" for t in tasks)
        lines.append(
            f"{r['rank']:>2}  {r['fitness']:8.4f}  {per}  {r['size']:4d} {r['depth']:5d}  {r['infix']}"
        )
    return "\n".join(lines)


def _markdown(cfg: EvolveFile, rows: list[dict[str, Any]], state: EvolutionState) -> str:
    tasks = cfg.fitness.tasks
    out = [
        f"# Hall of fame: {cfg.name}",
        "",
        f"Fitness: validation L1 after pruning {', '.join(map(str, cfg.fitness.fractions))} of "
        f"every hidden layer's units and {cfg.fitness.finetune_epochs} fine-tuning epoch(s); "
        f"mean over fractions, geometric mean over tasks ({', '.join(tasks)}); lower is better. "
        f"{state.generation + 1} generations of {cfg.evolution.population}, seed {cfg.seed}.",
        "",
        "| # | fitness | " + " | ".join(tasks) + " | size | depth | formula | simplified |",
        "|---|---|" + "---|" * len(tasks) + "---|---|---|---|",
    ]
    for r in rows:
        per = " | ".join(f"{r['fitness_per_task'][t]:.4f}" for t in tasks)
        out.append(
            f"| {r['rank']} | {r['fitness']:.4f} | {per} | {r['size']} | {r['depth']} | "
            f"`{r['expression']}` | ${r['latex']}$ |"
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
    extra: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write ``json_path``, its ``.md`` sibling, ``<stem>-run.toml`` and ``<stem>-fitness.png``

    (``rows`` from ``hall_rows``)."""
    payload = {
        "name": cfg.name,
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
    _atomic(paths["markdown"], _markdown(cfg, rows, state))
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
