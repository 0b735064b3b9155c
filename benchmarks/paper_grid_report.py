"""The paper's schedule claims from the grid studies ``paper_claims.py --dir studies/paper`` ran.

Reads every ``paper-*`` study (each chunk of seeds is its own study) in ``<store>/optuna/``,
pools the seeds of each (engine, operator, schedule), and prints markdown per protocol: the
median training L1 of every schedule per operator and engine (the best one in bold), and for
each operator and engine whether the schedule matters (Kruskal-Wallis over the six schedules,
Holm over the operator-engine cells of one protocol) and whether the paper's best schedule
beats each other schedule (two-sided Mann-Whitney U, Holm over the five comparisons of a cell,
Vargha-Delaney A12). ``--json`` writes every per-seed value and every test. ``--pool`` adds
the seeds the claims runs (``paper_claims.py``) have of the same combinations: a claims run and
a grid run of one combination and seed are the same configuration (bit-identical results,
checked on seeds 1-2), so each seed is counted once.

    python benchmarks/paper_grid_report.py --store /tmp/grid-store --pool /tmp/repro-store \
      --json out.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import optuna
from paper_claims_report import PROTOCOLS, add_seeds, cell, chunk_trials
from paper_claims_report import collect as collect_claims

from evoprune_core.reporting import holm, kruskal_wallis, mann_whitney, summarize

SCHEDULES = ("fixed", "increase", "population", "decrease", "exponential", "final_n")
# grid study base (without the protocol) -> engine label
ENGINES = {
    "canonical": "canonical",
    "canonical-variance": "canonical",
    "lipi10-variance": "Lipi N=10",
    "lipi5": "Lipi N=5",
    "prune-after": "canonical",
    "prune-after-variance": "canonical",
    "population-sizes": "Lipi N={population}",
}
# the paper's best schedule per (engine, operator) (spec section 8)
PAPER_BEST = {
    ("canonical", "random"): "exponential",
    ("canonical", "conjunctive"): "exponential",
    ("canonical", "variance"): "exponential",
    ("Lipi N=5", "random"): "exponential",
    ("Lipi N=5", "conjunctive"): "final_n",
    ("Lipi N=10", "variance"): "population",
}
Key = tuple[str, str, str]  # engine, operator, schedule ("-" for the no-pruning baseline)
# the claims' rows (paper_claims_report.CELLS) that are grid combinations
CLAIM_KEYS: dict[str, Key] = {
    "canonical, no pruning": ("canonical", "none", "-"),
    "canonical CONJUNCTIVE-exponential": ("canonical", "conjunctive", "exponential"),
    "canonical RANDOM-exponential": ("canonical", "random", "exponential"),
    "canonical VARIANCE-exponential": ("canonical", "variance", "exponential"),
    "Lipi N=10, no pruning": ("Lipi N=10", "none", "-"),
    "Lipi N=5, no pruning": ("Lipi N=5", "none", "-"),
    "Lipi N=5 RANDOM-exponential": ("Lipi N=5", "random", "exponential"),
    "Lipi N=5 CONJUNCTIVE-final_n": ("Lipi N=5", "conjunctive", "final_n"),
    "Lipi N=10 VARIANCE-population": ("Lipi N=10", "variance", "population"),
}


def collect(store: Path) -> dict[str, dict[Key, list[dict[str, Any]]]]:
    """``{protocol: {(engine, operator, schedule): [per-seed results]}}``."""
    out: dict[str, dict[Key, list[dict[str, Any]]]] = {p: {} for p in PROTOCOLS}
    for base, proto, t in chunk_trials(store, "paper"):
        engine = ENGINES.get(base)
        if engine is None:
            continue
        combo = t.user_attrs.get("evoprune.combination", {})
        engine = engine.format(
            population=str(combo.get("population", "")).split(" ")[0]
        )  # "5 cells r1"
        baseline = bool(t.user_attrs.get("evoprune.baseline", False))
        op = "none" if baseline else combo["operator"]
        schedule = "-" if op == "none" else combo["schedule"]  # no pruning, whatever schedule
        add_seeds(
            out[proto].setdefault((engine, op, schedule), []), t.user_attrs["evoprune.results"]
        )
    return out


def pool(data: dict[str, dict[Key, list[dict[str, Any]]]], claims_store: Path) -> None:
    """Add the claims runs' seeds of grid combinations to ``data`` (each seed once)."""
    for proto, rows in collect_claims(claims_store).items():
        for label, results in rows.items():
            key = CLAIM_KEYS.get(label)
            if key is not None:
                add_seeds(data[proto].setdefault(key, []), results)


def _losses(rows: list[dict[str, Any]] | None) -> list[float]:
    return [r["train_loss"] for r in rows or []]


def schedule_tests(data: dict[Key, list[dict[str, Any]]], proto: str) -> list[dict[str, Any]]:
    """Per (engine, operator) of the paper: Kruskal-Wallis and the paper's best vs the rest."""
    cells = []
    for (engine, op), claimed in PAPER_BEST.items():
        groups = {s: _losses(data.get((engine, op, s))) for s in SCHEDULES}
        if not groups[claimed] or sum(1 for g in groups.values() if g) < 2:
            continue
        medians = {s: summarize(g).median for s, g in groups.items() if g}
        best = min(medians, key=lambda s: medians[s])
        comps = [
            (s, mann_whitney(groups[claimed], g)) for s, g in groups.items() if g and s != claimed
        ]
        adjusted = holm([r.p for _, r in comps])
        vs = []
        for (s, r), p_adj in zip(comps, adjusted):
            vs.append({
                "schedule": s, "n_x": r.n_x, "n_y": r.n_y, "a12": r.a12, "magnitude": r.magnitude,
                "p": r.p, "p_holm": p_adj, "direction": r.direction,
            })  # fmt: skip
        cells.append({
            "protocol": proto, "engine": engine, "operator": op, "paper_best": claimed,
            "observed_best": best, "medians": medians,
            "seeds": {s: len(g) for s, g in groups.items()},
            "kruskal_p": kruskal_wallis(list(groups.values())), "vs_others": vs,
        })  # fmt: skip
    for c, p_adj in zip(cells, holm([c["kruskal_p"] for c in cells])):
        c["kruskal_p_holm"] = p_adj
        wins = [v for v in c["vs_others"] if v["p_holm"] is not None and v["p_holm"] < 0.05]
        beaten = [v for v in wins if v["direction"] == "lower"]
        worse = [v for v in wins if v["direction"] != "lower"]
        if worse:
            verdict = "**contradicted**: " + ", ".join(v["schedule"] for v in worse) + " better"
        elif c["vs_others"] and len(beaten) == len(c["vs_others"]):
            verdict = "**supported**"
        elif c["observed_best"] == c["paper_best"]:
            verdict = f"not supported (lowest median; beats {len(beaten)} of {len(c['vs_others'])})"
        else:
            verdict = f"not supported (beats {len(beaten)} of {len(c['vs_others'])})"
        c["verdict"] = verdict
    return cells


def _fmt(p: float | None) -> str:
    return "-" if p is None else f"{p:.3g}"


def _grid(rows: dict[Key, list[dict[str, Any]]], key: str, digits: int, bold: bool) -> list[str]:
    """One markdown row per (engine, operator): no pruning, each schedule, ``prune_after``."""
    columns = (*SCHEDULES, "prune_after")
    lines = ["| engine | operator | no pruning | " + " | ".join(columns) + " |"]
    lines.append("|---|---|---|" + "---|" * len(columns))
    for engine, op in sorted({(e, o) for e, o, s in rows if o != "none"}):
        meds = {s: summarize([r[key] for r in rows[(engine, op, s)]]).median
                for s in SCHEDULES if rows.get((engine, op, s))}  # fmt: skip
        best = min(meds, key=lambda s: meds[s]) if meds and bold else None
        base = rows.get((engine, "none", "-"))
        cells = [f"{cell(base, key, digits)} ({len(base)})" if base else "-"]
        for s in columns:
            r = rows.get((engine, op, s))
            text = f"{cell(r, key, digits)} ({len(r)})" if r else "-"
            cells.append(f"**{text}**" if s == best else text)
        lines.append(f"| {engine} | {op} | " + " | ".join(cells) + " |")
    return lines


def size_tests(
    sizes: dict[int, list[dict[str, Any]]], canonical: list[dict[str, Any]] | None
) -> list[str]:
    """Exploratory tests of the population sizes (outside the Holm families): Kruskal-Wallis
    over the sizes, and a one-cell ring against N=10 and against the canonical network."""
    out = []
    if len(sizes) > 1:
        p = kruskal_wallis([_losses(r) for r in sizes.values()])
        out.append(f"Kruskal-Wallis over the sizes: p {_fmt(p)}")
    pairs = [("N=1 vs N=10", sizes.get(1), sizes.get(10)),
             ("N=1 vs canonical without pruning", sizes.get(1), canonical)]  # fmt: skip
    for name, x, y in pairs:
        if x and y:
            r = mann_whitney(_losses(x), _losses(y))
            out.append(f"{name}: A12 {r.a12:.2f}, p {_fmt(r.p)} ({r.n_x} vs {r.n_y} seeds)")
    return ["", "Exploratory (not in a Holm family): " + "; ".join(out)] if out else []


def tables(data: dict[str, dict[Key, list[dict[str, Any]]]]) -> tuple[str, list[dict[str, Any]]]:
    lines: list[str] = []
    tests: list[dict[str, Any]] = []
    for proto in PROTOCOLS:
        rows = data[proto]
        if not rows:
            continue
        lines += [f"#### {proto}: training L1, median [IQR] over seeds (seeds per cell)", ""]
        lines += _grid(rows, "train_loss", 3, bold=True)
        sizes = sorted(
            (int(e.removeprefix("Lipi N=")), r)
            for (e, o, _), r in rows.items()
            if e.startswith("Lipi N=") and o == "none"
        )
        if sizes:
            lines += ["", "Lipi-AE-S without pruning, by population size: " + "; ".join(
                f"N={n} {cell(r, 'train_loss')} ({len(r)})" for n, r in sizes
            )]  # fmt: skip
            lines += size_tests(dict(sizes), rows.get(("canonical", "none", "-")))
        lines += [
            "",
            f"#### {proto}: remaining fraction (non-zero weights and biases at the end), "
            "median [IQR] over seeds",
            "",
        ]
        lines += _grid(rows, "remaining_fraction", 2, bold=False)
        lines.append("")
        found = schedule_tests(rows, proto)
        tests += found
        lines += [
            "| engine | operator | Kruskal-Wallis p (Holm) | lowest median | paper's best "
            "| paper's best vs each other schedule: A12, Holm p | verdict |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in found:
            vs = "; ".join(
                f"{v['schedule']} {v['a12']:.2f}, {_fmt(v['p_holm'])}" for v in c["vs_others"]
            )
            lines.append(
                f"| {c['engine']} | {c['operator']} | {_fmt(c['kruskal_p'])} "
                f"({_fmt(c['kruskal_p_holm'])}) | {c['observed_best']} | {c['paper_best']} | {vs} "
                f"| {c['verdict']} |"
            )
        lines.append("")
    return "\n".join(lines), tests


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--pool", help="a claims store whose seeds of grid combinations to add")
    ap.add_argument("--json", help="write every per-seed value and every test here")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = collect(Path(args.store))
    if args.pool:
        pool(data, Path(args.pool))
    text, tests = tables(data)
    print(text)
    if args.json:
        results = {p: {"/".join(k): v for k, v in sorted(d.items())} for p, d in data.items()}
        Path(args.json).write_text(
            json.dumps({"results": results, "tests": tests}, indent=1, sort_keys=True) + "\n",
            encoding="utf-8",
        )


if __name__ == "__main__":
    main()
