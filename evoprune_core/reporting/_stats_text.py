"""A ``StatsReport`` as aligned text, Markdown, CSV (one row per group and metric) or JSON."""

from __future__ import annotations

import csv
import io
import json
import textwrap
from collections.abc import Sequence

from ._compare import METRICS, ONE_SEED, Comparison, StatsReport, pareto_groups
from ._statistics import A12_THRESHOLDS, Summary
from ._trials import TrialRow

__all__ = ["ALPHA", "format_stats", "verdict"]

ALPHA = 0.05
LABELS = {
    "val_loss": "val L1",
    "test_loss": "test L1",
    "train_loss": "train L1",
    "remaining_fraction": "remaining",
}


def verdict(c: Comparison, alpha: float = ALPHA) -> str:
    """``lower``/``higher`` (Holm-adjusted p < alpha), ``n.s.``, or ``not tested``."""
    if c.p_holm is None:
        return "not tested"
    if c.p_holm >= alpha:
        return "n.s."
    return c.result.direction


def _num(x: float | None, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _p(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.2e}" if x < 1e-3 else f"{x:.4f}"


def _median_iqr(s: Summary) -> str:
    return "-" if s.median is None else f"{s.median:.4f} [{s.q1:.4f}, {s.q3:.4f}]"


def _mean_std(s: Summary) -> str:
    return "-" if s.mean is None else f"{s.mean:.4f} ± {s.std:.4f}"


def _order(report: StatsReport) -> list[TrialRow]:
    """Groups by their median of the first tested metric (best first), then trial."""
    first = report.metrics[0]

    def key(g: TrialRow) -> tuple[float, tuple[int, ...]]:
        med = g.summary(first).median
        return (float("inf") if med is None else med, g.trials)

    return sorted(report.groups, key=key)


def _table(head: Sequence[str], body: Sequence[Sequence[str]], fmt: str) -> str:
    if fmt == "markdown":
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return "\n".join(lines)
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(cells, widths)) for cells in body]
    return "\n".join(line.rstrip() for line in lines)


def _group_cells(g: TrialRow) -> list[str]:
    op = "none (baseline)" if g.baseline else g.operator
    return [
        g.key,
        g.engine,
        op,
        g.schedule,
        _num(g.probability, 3),
        _num(g.amount, 3),
        g.population,
        str(len(g.seeds)),
    ]


_GROUP_HEAD = ["group", "engine", "operator", "schedule", "p", "amount", "population", "n"]


def _reference_line(report: StatsReport) -> str:
    if report.against is not None:
        return f"Reference: {report.against} (every other group is compared with it)"
    refs = sorted({(c.reference, report.group(c.reference).engine) for c in report.comparisons})
    named = ", ".join(f"{engine}: {key}" for key, engine in refs) or "none found"
    return f"Reference: each engine's no-pruning baseline ({named})"


def _csv(report: StatsReport) -> str:
    tests = {(c.group, c.metric): c for c in report.comparisons}
    buf = io.StringIO()
    fields = [
        "group", "combination", "engine", "operator", "schedule", "probability", "amount",
        "population", "baseline", "trials", "seeds", "metric", "n", "median", "q1", "q3", "iqr",
        "mean", "std", "min", "max", "reference", "u", "p", "p_holm", "a12", "magnitude",
        "direction", "verdict", "method", "note", "values",
    ]  # fmt: skip
    writer = csv.DictWriter(buf, fields, lineterminator="\n")
    writer.writeheader()
    for g in report.groups:
        for metric in (m for m in METRICS if m in g.values):
            s = g.summary(metric)
            row = {
                "group": g.key, "combination": g.combination, "engine": g.engine,
                "operator": g.operator, "schedule": g.schedule, "probability": g.probability,
                "amount": g.amount, "population": g.population, "baseline": g.baseline,
                "trials": " ".join(map(str, g.trials)), "seeds": " ".join(map(str, g.seeds)),
                "metric": metric, "n": s.n, "median": s.median, "q1": s.q1, "q3": s.q3,
                "iqr": s.iqr, "mean": s.mean, "std": s.std, "min": s.min, "max": s.max,
                "values": " ".join(repr(v) for v in g.values[metric]),
            }  # fmt: skip
            c = tests.get((g.key, metric))
            if c is not None:
                r = c.result
                row.update(
                    reference=c.reference, u=r.u, p=r.p, p_holm=c.p_holm, a12=r.a12,
                    magnitude=r.magnitude, verdict=verdict(c),
                    direction=r.direction if r.a12 is not None else None,
                    method=r.method, note=r.note,
                )  # fmt: skip
            writer.writerow(row)
    return buf.getvalue()


def format_stats(report: StatsReport, fmt: str = "text") -> str:
    """The report in one of ``text``, ``markdown``, ``csv`` or ``json`` (all per-seed values)."""
    if fmt == "json":
        return json.dumps(report.to_dict(), indent=2)
    if fmt == "csv":
        return _csv(report)
    if fmt not in ("text", "markdown"):
        raise ValueError(f"unknown format {fmt!r}; allowed: text, markdown, csv, json")
    title = "## " if fmt == "markdown" else ""
    sub = "### " if fmt == "markdown" else ""
    if not report.groups:
        return "no completed trials yet"
    how = (
        "one group = one trial (one sampled configuration on every seed)"
        if report.grouping == "trial"
        else "one group = every trial of one engine/operator/schedule, pooled"
    )
    groups = _order(report)
    if ONE_SEED in report.notes:
        return _one_seed(report, groups, f"{title}Statistics over seeds: {len(groups)} groups; "
                         f"{how}", sub, fmt)  # fmt: skip
    parts = [
        f"{title}Statistics over seeds: {len(report.groups)} groups; {how}",
        "",
        _reference_line(report),
        "",
        f"{sub}Spread over seeds: median [Q1, Q3] and mean ± std",
        "",
    ]
    head = list(_GROUP_HEAD)
    for m in report.metrics:
        head += [f"{LABELS[m]} median [Q1, Q3]", f"{LABELS[m]} mean ± std"]
    body = []
    for g in groups:
        cells = _group_cells(g)
        for m in report.metrics:
            s = g.summary(m)
            cells += [_median_iqr(s), _mean_std(s)]
        body.append(cells)
    parts.append(_table(head, body, fmt))
    bounds = ", ".join(f"{label} >= {b}" for b, label in A12_THRESHOLDS)
    parts += [
        "",
        f"{sub}Tests: two-sided Mann-Whitney U of each group against its reference",
        "",
        textwrap.fill(
            "p Holm: adjusted over the tests of one metric. A12 = P(group > reference) + "
            "P(tie)/2; every metric is minimised, so below 0.5 the group tends to be lower "
            f"(better). Effect on max(A12, 1 - A12): {bounds}, else negligible. "
            f"Verdict: lower/higher at Holm p < {ALPHA}, else n.s.",
            width=100 if fmt == "text" else 10_000,
        ),
    ]
    pooled = report.grouping == "combination"
    for m in report.metrics:
        tests = {c.group: c for c in report.comparisons if c.metric == m}
        family = sum(c.result.p is not None for c in tests.values())
        parts += ["", f"{sub}{LABELS[m]}: {family} tests in the family", ""]
        head = ["group", *([] if pooled else ["combination"]), "reference", "n", "n ref", "U"]
        head += ["p", "p Holm", "A12", "effect", "verdict", "method", "note"]
        body = []
        for g in groups:
            c = tests.get(g.key)
            if c is None:
                continue
            r = c.result
            body.append(
                [
                    g.key,
                    *([] if pooled else [g.combination]),
                    c.reference,
                    str(r.n_x),
                    str(r.n_y),
                    _num(r.u, 1),
                    _p(r.p),
                    _p(c.p_holm),
                    _num(r.a12, 3),
                    r.magnitude or "-",
                    verdict(c),
                    r.method,
                    r.note,
                ]  # fmt: skip
            )
        parts.append(_table(head, body, fmt) if body else "no tests (no reference)")
    return "\n".join(parts + _front_and_notes(report, sub, fmt))


def _front_and_notes(report: StatsReport, sub: str, fmt: str) -> list[str]:
    front = ", ".join(g.key for g in pareto_groups(report.groups))
    parts = [
        "",
        f"{sub}Pareto front of the medians (remaining fraction and val L1, both minimised)",
        "",
        textwrap.fill(front, width=100 if fmt == "text" else 10_000) or "-",
    ]
    notes = [n for n in report.notes if n != ONE_SEED]  # said once, at the top
    if notes:
        parts += ["", "Notes:"] + [f"- {n}" for n in notes]
    return parts


def _one_seed(report: StatsReport, groups: list[TrialRow], head: str, sub: str, fmt: str) -> str:
    """One value per group: the values (their medians) and nothing that pretends to test."""
    parts = [head, "", ONE_SEED[0].upper() + ONE_SEED[1:] + ".", "", f"{sub}Medians", ""]
    cols = list(_GROUP_HEAD) + [f"{LABELS[m]} median" for m in report.metrics]
    body = [_group_cells(g) + [_num(g.summary(m).median) for m in report.metrics] for g in groups]
    parts.append(_table(cols, body, fmt))
    return "\n".join(parts + _front_and_notes(report, sub, fmt))
