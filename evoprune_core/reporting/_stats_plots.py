"""Figures of a ``StatsReport`` (matplotlib ``Figure`` objects, no pyplot state): box plots of
every tested metric across seeds, and the Pareto front of loss against remaining fraction."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from ._compare import StatsReport, pareto_groups
from ._statistics import Summary
from ._stats_text import LABELS
from ._trials import TrialRow

__all__ = ["box_figure", "pareto_figure", "write_figures"]

_ENGINE_MARKERS = {"canonical": "o", "coevolution": "s"}


def _quartiles(s: Summary) -> tuple[float, float, float]:
    """Median, first and third quartile of a metric that has values."""
    if s.median is None or s.q1 is None or s.q3 is None:
        raise ValueError("a summary without values has no quartiles")
    return s.median, s.q1, s.q3


def _name(g: TrialRow) -> str:
    if g.key == g.combination:
        return g.key
    return f"{g.key} {g.combination}"


def box_figure(report: StatsReport, metric: str) -> Figure:
    """One horizontal box per group (seeds as dots), best median at the top; references red."""
    groups = [g for g in report.groups if metric in g.values]
    groups.sort(key=lambda g: (g.summary(metric).median or 0.0, g.trials), reverse=True)
    refs = {c.reference for c in report.comparisons}
    fig = Figure(figsize=(7.5, 1.2 + 0.24 * max(1, len(groups))), layout="constrained")
    ax = fig.subplots()
    data = [list(g.values[metric]) for g in groups]
    if data:
        ax.boxplot(data, orientation="horizontal", widths=0.6, showfliers=False)
    for i, g in enumerate(groups, start=1):
        color = "tab:red" if g.key in refs else "tab:blue"
        ax.scatter(g.values[metric], [i] * len(g.values[metric]), s=10, color=color, zorder=3)
    ax.set_yticks(range(1, len(groups) + 1), [_name(g) for g in groups], fontsize=7)
    ax.set(xlabel=f"{LABELS[metric]} (minimised; one dot per seed)", title=report.study or None)
    return fig


def pareto_figure(
    report: StatsReport, x: str = "remaining_fraction", y: str = "val_loss"
) -> Figure:
    """Medians of every group (IQR bars), the non-dominated ones joined and labelled."""
    fig = Figure(figsize=(7.5, 5.0), layout="constrained")
    ax = fig.subplots()
    groups = [g for g in report.groups if x in g.values and y in g.values]
    operators = sorted({"baseline" if g.baseline else g.operator for g in groups})
    colors = {op: f"C{i % 10}" for i, op in enumerate(operators)}
    seen: set[str] = set()
    for g in groups:
        (mx, x1, x3), (my, y1, y3) = _quartiles(g.summary(x)), _quartiles(g.summary(y))
        op = "baseline" if g.baseline else g.operator
        label = op if op not in seen else None
        seen.add(op)
        ax.errorbar(
            mx, my,
            xerr=[[mx - x1], [x3 - mx]],
            yerr=[[my - y1], [y3 - my]],
            fmt=_ENGINE_MARKERS.get(g.engine, "^"), color=colors[op], ms=5, alpha=0.8,
            elinewidth=0.8, label=label,
        )  # fmt: skip
    front = sorted(pareto_groups(groups, x, y), key=lambda g: g.summary(x).median or 0.0)
    if front:
        xs = [_quartiles(g.summary(x))[0] for g in front]
        ys = [_quartiles(g.summary(y))[0] for g in front]
        ax.step(xs, ys, where="post", color="black", lw=1.0, label="Pareto front")
        for g, a, b in zip(front, xs, ys):
            ax.annotate(g.key, (a, b), fontsize=6, xytext=(3, 3), textcoords="offset points")
    engines = ", ".join(f"{m} {e}" for e, m in _ENGINE_MARKERS.items())
    ax.set(
        xlabel=f"{LABELS[x]} (median, IQR bars)",
        ylabel=f"{LABELS[y]} (median, IQR bars)",
        title=f"{report.study}: Pareto front, both minimised ({engines})".strip(": "),
    )
    ys_all = [g.summary(y).median or 0.0 for g in groups]
    if ys_all and min(ys_all) > 0 and max(ys_all) / min(ys_all) > 5:
        ax.set_yscale("log")  # losses from the noise floor to an unlearnt network
    ax.legend(fontsize=7)
    return fig


def write_figures(report: StatsReport, out: Path, dpi: int = 100) -> list[Path]:
    """``box_<metric>.png`` per tested metric and ``pareto_front.png`` into ``out`` (nothing
    without groups)."""
    if not report.groups:
        return []
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for metric in report.metrics:
        path = out / f"box_{metric}.png"
        box_figure(report, metric).savefig(path, dpi=dpi)
        written.append(path)
    path = out / "pareto_front.png"
    pareto_figure(report).savefig(path, dpi=dpi)
    written.append(path)
    return written
