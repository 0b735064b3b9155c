"""Best-combination tables and the Pareto front of a study, with mean ± std across seeds.

Everything here reads what the study stored in Optuna (each completed trial's per-seed results
sit in its user attributes), so a report needs no MLflow and can be printed again at any time.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ._trials import pareto, read_trials

__all__ = [
    "FORMATS",
    "TrialRow",
    "best_combinations",
    "format_rows",
    "mean_std",
    "pareto_front",
    "rows_from_trials",
    "study_report",
]

FORMATS = ("text", "markdown", "csv", "json")


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = sum(values) / n
    if n == 1:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


@dataclass(frozen=True)
class TrialRow:
    """One completed trial: its combination and its results across seeds."""

    trial: int
    engine: str
    operator: str
    schedule: str
    probability: float | None
    amount: float | None
    population: str
    seeds: int
    val_loss: float
    val_loss_std: float
    test_loss: float
    test_loss_std: float
    remaining_fraction: float
    remaining_fraction_std: float
    baseline: bool = False
    mlflow_run_id: str = ""

    @property
    def combination(self) -> tuple[str, str, str]:
        return (self.engine, self.operator, self.schedule)


def rows_from_trials(trials: Iterable[Any]) -> list[TrialRow]:
    """Rows of the completed trials that carry evoprune results (others are ignored)."""
    rows = []
    for t in read_trials(trials):
        res, combo = t.results, t.combination
        val = mean_std([r["val_loss"] for r in res])
        test = mean_std([r["test_loss"] for r in res])
        rem = mean_std([r["remaining_fraction"] for r in res])
        rows.append(
            TrialRow(
                trial=t.number,
                engine=combo["engine"],
                operator=combo["operator"],
                schedule=combo["schedule"],
                probability=combo.get("probability"),
                amount=combo.get("amount"),
                population=combo.get("population", "1"),
                seeds=len(res),
                val_loss=val[0],
                val_loss_std=val[1],
                test_loss=test[0],
                test_loss_std=test[1],
                remaining_fraction=rem[0],
                remaining_fraction_std=rem[1],
                baseline=t.baseline,
                mlflow_run_id=t.mlflow_run_id,
            )
        )
    return rows


def best_combinations(rows: Iterable[TrialRow], top: int | None = 10) -> list[TrialRow]:
    """The best trial (lowest mean val loss) of each engine/operator/schedule, best first."""
    best: dict[tuple[str, str, str], TrialRow] = {}
    for r in rows:
        cur = best.get(r.combination)
        if cur is None or (r.val_loss, r.trial) < (cur.val_loss, cur.trial):
            best[r.combination] = r
    ordered = sorted(best.values(), key=lambda r: (r.val_loss, r.trial))
    return ordered if top is None else ordered[:top]


def pareto_front(rows: Iterable[TrialRow]) -> list[TrialRow]:
    """Trials no other trial beats on both mean val loss and remaining fraction."""
    return pareto(
        list(rows), lambda r: (r.val_loss, r.remaining_fraction), lambda r: (r.val_loss, r.trial)
    )


_COLUMNS = (
    ("trial", "trial"),
    ("engine", "engine"),
    ("operator", "operator"),
    ("schedule", "schedule"),
    ("p", "probability"),
    ("amount", "amount"),
    ("population", "population"),
    ("seeds", "seeds"),
    ("val L1", "val_loss"),
    ("test L1", "test_loss"),
    ("remaining", "remaining_fraction"),
)


def _cell(row: TrialRow, attr: str) -> str:
    value = getattr(row, attr)
    if attr in ("val_loss", "test_loss", "remaining_fraction"):
        std = getattr(row, attr + "_std")
        return f"{value:.4f}" + (f" ± {std:.4f}" if row.seeds > 1 else "")
    if attr == "operator" and row.baseline:
        return "none (baseline)"
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def format_rows(rows: Sequence[TrialRow], fmt: str = "text") -> str:
    """A table as aligned text, Markdown, CSV (mean and std columns) or JSON."""
    if fmt == "json":
        return json.dumps([asdict(r) for r in rows], indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        fields = [f for f in TrialRow.__dataclass_fields__]
        writer = csv.DictWriter(buf, fields, lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow(asdict(r))
        return buf.getvalue()
    head = [h for h, _ in _COLUMNS]
    body = [[_cell(r, a) for _, a in _COLUMNS] for r in rows]
    if fmt == "markdown":
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return "\n".join(lines)
    if fmt != "text":
        raise ValueError(f"unknown format {fmt!r}; allowed: {', '.join(FORMATS)}")
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(cells, widths)) for cells in body]
    return "\n".join(line.rstrip() for line in lines)


def study_report(
    trials: Iterable[Any], objectives: Sequence[str], fmt: str = "text", top: int | None = 10
) -> str:
    """The best-combinations table, then the Pareto front when there are two objectives."""
    rows = rows_from_trials(trials)
    if not rows:
        return "no completed trials yet"
    tables = {"best_combinations": best_combinations(rows, top)}
    if len(objectives) > 1:
        tables["pareto_front"] = pareto_front(rows)
    if fmt == "json":
        return json.dumps({k: [asdict(r) for r in v] for k, v in tables.items()}, indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        fields = ["table", *TrialRow.__dataclass_fields__]
        writer = csv.DictWriter(buf, fields, lineterminator="\n")
        writer.writeheader()
        for name, chosen in tables.items():
            for r in chosen:
                writer.writerow({"table": name, **asdict(r)})
        return buf.getvalue()
    title = "## " if fmt == "markdown" else ""
    parts = [
        f"{title}Best combinations (lowest mean validation L1 per engine/operator/schedule; "
        f"{len(rows)} completed trials)",
        "",
        format_rows(tables["best_combinations"], fmt),
    ]
    if "pareto_front" in tables:
        parts += [
            "",
            f"{title}Pareto front (validation L1 vs remaining fraction, both minimised)",
            "",
            format_rows(tables["pareto_front"], fmt),
        ]
    return "\n".join(parts)
