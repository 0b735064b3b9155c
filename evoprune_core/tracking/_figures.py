"""A trial's figures (matplotlib, no pyplot state): loss and remaining weights, per layer."""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure

__all__ = ["layer_sparsity_figure", "training_figure"]


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
