"""Best-combination tables and the Pareto front of a study, with mean ± std across seeds.

Everything here reads what the study stored in Optuna (each completed trial's per-seed results
sit in its user attributes), so a report needs no MLflow and can be printed again at any time.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence

from ._trials import StoredTrial, TrialRow, mean_std, pareto, read_trials

__all__ = [
    "COLUMNS",
    "FORMATS",
    "best_combinations",
    "format_rows",
    "mean_std",
    "pareto_front",
    "rows_from_trials",
    "study_report",
    "table_record",
]

FORMATS = ("text", "markdown", "csv", "json")

COLUMNS = (
    "trial",
    "engine",
    "operator",
    "schedule",
    "probability",
    "amount",
    "population",
    "seeds",
    "val_loss",
    "val_loss_std",
    "test_loss",
    "test_loss_std",
    "remaining_fraction",
    "remaining_fraction_std",
    "baseline",
    "mlflow_run_id",
)
"""The columns of a table in CSV and JSON: a trial's settings, its number of seeds, and the
mean and sample std over seeds of each objective."""


def table_record(row: TrialRow) -> dict[str, object]:
    """A row as a table shows it (:data:`COLUMNS`): means and stds over its seeds."""
    val = row.mean_std("val_loss")
    test = row.mean_std("test_loss")
    rem = row.mean_std("remaining_fraction")
    return {
        "trial": row.trial,
        "engine": row.engine,
        "operator": row.operator,
        "schedule": row.schedule,
        "probability": row.probability,
        "amount": row.amount,
        "population": row.population,
        "seeds": len(row.seeds),
        "val_loss": val[0],
        "val_loss_std": val[1],
        "test_loss": test[0],
        "test_loss_std": test[1],
        "remaining_fraction": rem[0],
        "remaining_fraction_std": rem[1],
        "baseline": row.baseline,
        "mlflow_run_id": row.mlflow_run_id,
    }


def rows_from_trials(trials: Iterable[StoredTrial]) -> list[TrialRow]:
    """Rows of the completed trials that carry evoprune results (others are ignored)."""
    return read_trials(trials)


def _val_loss(r: TrialRow) -> float:
    return r.mean_std("val_loss")[0]


def best_combinations(rows: Iterable[TrialRow], top: int | None = 10) -> list[TrialRow]:
    """The best trial (lowest mean val loss) of each engine/operator/schedule, best first."""
    best: dict[tuple[str, str, str], TrialRow] = {}
    for r in rows:
        combination = (r.engine, r.operator, r.schedule)
        cur = best.get(combination)
        if cur is None or (_val_loss(r), r.trial) < (_val_loss(cur), cur.trial):
            best[combination] = r
    ordered = sorted(best.values(), key=lambda r: (_val_loss(r), r.trial))
    return ordered if top is None else ordered[:top]


def pareto_front(rows: Iterable[TrialRow]) -> list[TrialRow]:
    """Trials no other trial beats on both mean val loss and remaining fraction."""
    return pareto(
        list(rows),
        lambda r: (_val_loss(r), r.mean_std("remaining_fraction")[0]),
        lambda r: (_val_loss(r), r.trial),
    )


_TEXT_COLUMNS = (
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
    if attr in ("val_loss", "test_loss", "remaining_fraction"):
        mean, std = row.mean_std(attr)
        return f"{mean:.4f}" + (f" ± {std:.4f}" if len(row.seeds) > 1 else "")
    if attr == "operator" and row.baseline:
        return "none (baseline)"
    value = len(row.seeds) if attr == "seeds" else getattr(row, attr)
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def format_rows(rows: Sequence[TrialRow], fmt: str = "text") -> str:
    """A table as aligned text, Markdown, CSV (mean and std columns) or JSON."""
    if fmt == "json":
        return json.dumps([table_record(r) for r in rows], indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, COLUMNS, lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow(table_record(r))
        return buf.getvalue()
    head = [h for h, _ in _TEXT_COLUMNS]
    body = [[_cell(r, a) for _, a in _TEXT_COLUMNS] for r in rows]
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
    trials: Iterable[StoredTrial],
    objectives: Sequence[str],
    fmt: str = "text",
    top: int | None = 10,
) -> str:
    """The best-combinations table, then the Pareto front when there are two objectives."""
    rows = rows_from_trials(trials)
    if not rows:
        return "no completed trials yet"
    tables = {"best_combinations": best_combinations(rows, top)}
    if len(objectives) > 1:
        tables["pareto_front"] = pareto_front(rows)
    if fmt == "json":
        return json.dumps({k: [table_record(r) for r in v] for k, v in tables.items()}, indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        fields = ["table", *COLUMNS]
        writer = csv.DictWriter(buf, fields, lineterminator="\n")
        writer.writeheader()
        for name, chosen in tables.items():
            for r in chosen:
                writer.writerow({"table": name, **table_record(r)})
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
