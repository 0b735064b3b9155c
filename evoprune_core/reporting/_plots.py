"""Plots of a trial (matplotlib, no pyplot state) and of a study (Optuna's plotly figures)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from .study._keys import Attr

__all__ = ["layer_sparsity_figure", "study_figures", "training_figure"]


def training_figure(summaries: list[dict[str, Any]]) -> Figure:
    """Validation/training loss and remaining fraction over generations, one line per seed."""
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    loss_ax, frac_ax = fig.subplots(1, 2)
    for s in summaries:
        hist = s["history"]
        gens = [r.get("generation", i) for i, r in enumerate(hist)]
        loss_ax.plot(gens, [r["val_loss"] for r in hist], label=f"val, seed {s['seed']}")
        if all("train_loss" in r for r in hist):
            loss_ax.plot(
                gens, [r["train_loss"] for r in hist], ls="--", label=f"train, seed {s['seed']}"
            )
        frac_ax.plot(gens, [r["remaining_fraction"] for r in hist], label=f"seed {s['seed']}")
    loss_ax.set(xlabel="generation", ylabel="L1 loss", title="loss")
    frac_ax.set(xlabel="generation", ylabel="fraction", title="remaining weights", ylim=(0, 1.02))
    loss_ax.legend(fontsize=7)
    frac_ax.legend(fontsize=7)
    return fig


def layer_sparsity_figure(summaries: list[dict[str, Any]]) -> Figure:
    """Remaining fraction per layer at the end (mean over seeds)."""
    names = list(summaries[0]["layers"])
    means = [
        sum(s["layers"][n]["alive"] / s["layers"][n]["total"] for s in summaries) / len(summaries)
        for n in names
    ]
    fig = Figure(figsize=(max(4.0, 0.9 * len(names) + 2), 3.4), layout="constrained")
    ax = fig.subplots()
    colors = ["tab:blue" if n.startswith("encoder") else "tab:orange" for n in names]
    ax.bar(names, means, color=colors)
    ax.set(ylabel="remaining fraction", ylim=(0, 1.02), title="per-layer remaining weights")
    ax.tick_params(axis="x", labelrotation=30)
    return fig


def study_figures(study: Any, objectives: tuple[str, ...], out: Path) -> list[Path]:
    """Optimisation history, parameter importances and (two objectives) the Pareto front as
    self-contained HTML files in ``out``; a plot that cannot be drawn is skipped."""
    import optuna
    from optuna.trial import TrialState

    done = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not t.user_attrs.get(Attr.BASELINE)
    ]
    if not done:
        return []
    pruned = optuna.create_study(directions=study.directions)
    pruned.add_trials(done)
    vis = optuna.visualization
    multi = len(objectives) > 1
    first: dict[str, Any] = (
        {"target": lambda t: t.values[0], "target_name": objectives[0]} if multi else {}
    )
    jobs = {
        "optimization_history.html": lambda: vis.plot_optimization_history(study, **first),
        "param_importances.html": lambda: vis.plot_param_importances(pruned, **first),
    }
    if multi:
        jobs["pareto_front.html"] = lambda: vis.plot_pareto_front(
            study, target_names=list(objectives)
        )
    written = []
    for name, make in jobs.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fig = make()
        except Exception as exc:  # noqa: BLE001 - e.g. too few trials for importances
            warnings.warn(f"evoprune: {name} skipped: {exc}", stacklevel=2)
            continue
        path = out / name
        fig.write_html(str(path), include_plotlyjs=True)
        written.append(path)
    return written
