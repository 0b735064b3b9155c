"""Tables and tests of the paper's claims from the studies ``paper_claims.py`` ran.

Reads every ``claims-*`` study in ``<store>/optuna/`` (each chunk of seeds is its own study),
pools the seeds of each combination, and prints markdown: the paper's table beside our
published-protocol and our-defaults results (median and IQR over seeds), then each claim as a
two-sided Mann-Whitney U test with Holm's adjustment over the claims of one protocol and the
Vargha-Delaney A12 (``evoprune_core.stats``): on the training L1 (what the paper plots), then
the same claims on the test L1 as a check that a difference is not training noise fitted.
``--json`` writes every per-seed value and every test.

    python benchmarks/paper_claims_report.py --store /tmp/repro-store --json out.json
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna

from evoprune_core.reporting import holm, mann_whitney, summarize

# (study base without the protocol, baseline trial?, operator) -> row label
CELLS = {
    ("canonical-exponential", True, "none"): "canonical, no pruning",
    ("canonical-exponential", False, "conjunctive"): "canonical CONJUNCTIVE-exponential",
    ("canonical-exponential", False, "random"): "canonical RANDOM-exponential",
    ("canonical-variance-exponential", False, "variance"): "canonical VARIANCE-exponential",
    ("lipi10-variance-population", True, "none"): "Lipi N=10, no pruning",
    ("lipi5-random-exponential", True, "none"): "Lipi N=5, no pruning",
    ("lipi5-random-exponential", False, "random"): "Lipi N=5 RANDOM-exponential",
    ("lipi5-conjunctive-final_n", False, "conjunctive"): "Lipi N=5 CONJUNCTIVE-final_n",
    ("lipi10-variance-population", False, "variance"): "Lipi N=10 VARIANCE-population",
    ("control-steps", False, "none"): "control: canonical, no pruning, 4000 epochs",
    ("control-reset", False, "none"): "control: canonical, no pruning, fresh Adam per step",
}
# the paper's figures (spec section 8): training-set L1 (median of 30), remaining fraction
PAPER = {
    "canonical, no pruning": ("0.267", "1.00"),
    "canonical CONJUNCTIVE-exponential": ("0.271", "0.75"),
    "canonical RANDOM-exponential": ("0.50", "0.79"),
    "canonical VARIANCE-exponential": ("0.50", "0.43"),
    "Lipi N=10, no pruning": ("0.145", "1.00"),
    "Lipi N=5 RANDOM-exponential": ("0.104", "0.87"),
    "Lipi N=5 CONJUNCTIVE-final_n": ("0.152", "0.80"),
    "Lipi N=10 VARIANCE-population": ("0.157", "~1.0"),
}
# (claim, x, y): "x has a lower training L1 than y"
CLAIMS = [
    ("canonical: CONJUNCTIVE beats RANDOM", "canonical CONJUNCTIVE-exponential",
     "canonical RANDOM-exponential"),
    ("canonical: VARIANCE beats RANDOM", "canonical VARIANCE-exponential",
     "canonical RANDOM-exponential"),
    ("Lipi: RANDOM beats CONJUNCTIVE", "Lipi N=5 RANDOM-exponential",
     "Lipi N=5 CONJUNCTIVE-final_n"),
    ("Lipi: RANDOM beats VARIANCE", "Lipi N=5 RANDOM-exponential",
     "Lipi N=10 VARIANCE-population"),
    ("Lipi: RANDOM pruning beats no pruning (N=5)", "Lipi N=5 RANDOM-exponential",
     "Lipi N=5, no pruning"),
    ("Lipi N=10 beats canonical (no pruning)", "Lipi N=10, no pruning", "canonical, no pruning"),
    ("Lipi N=5 beats canonical (no pruning)", "Lipi N=5, no pruning", "canonical, no pruning"),
    ("confound: Lipi N=10 beats canonical with as many steps",
     "Lipi N=10, no pruning", "control: canonical, no pruning, 4000 epochs"),
    ("confound: Lipi N=10 beats canonical with a fresh Adam per step",
     "Lipi N=10, no pruning", "control: canonical, no pruning, fresh Adam per step"),
]  # fmt: skip
PROTOCOLS = ("published", "defaults")
# the paper's objective first (what its claims are about), then the held-out check
OBJECTIVES = {"train_loss": "training L1", "test_loss": "test L1"}


def chunk_trials(store: Path, prefix: str) -> Iterator[tuple[str, str, Any]]:
    """``(study base, protocol, complete trial)`` of every ``<prefix>-<base>-<protocol>-s<a>-<b>``
    study (a chunk of seeds) in the store's journals."""
    for journal in sorted((store / "optuna").glob(f"{prefix}-*.journal")):
        storage = optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(journal))
        )
        for summary in optuna.get_all_study_summaries(storage):
            m = re.fullmatch(rf"{prefix}-(.+)-(published|defaults)-s\d+-\d+", summary.study_name)
            if m is None:
                continue
            study = optuna.load_study(study_name=summary.study_name, storage=storage)
            for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
                yield m[1], m[2], t


def add_seeds(rows: list[dict[str, Any]], results: list[dict[str, Any]]) -> None:
    """Append per-seed results to ``rows``, each seed once, kept in seed order."""
    seen = {r["seed"] for r in rows}
    rows.extend(r for r in results if r["seed"] not in seen)
    rows.sort(key=lambda r: r["seed"])


def collect(store: Path) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """``{protocol: {row label: [per-seed results]}}`` from every complete claims trial."""
    out: dict[str, dict[str, list[dict[str, Any]]]] = {p: {} for p in PROTOCOLS}
    for base_name, proto, t in chunk_trials(store, "claims"):
        base = bool(t.user_attrs.get("evoprune.baseline", False))
        op = t.user_attrs.get("evoprune.combination", {}).get("operator", "none")
        label = CELLS.get((base_name, base, "none" if base else op))
        if label is not None:
            add_seeds(out[proto].setdefault(label, []), t.user_attrs["evoprune.results"])
    return out


def cell(rows: list[dict[str, Any]] | None, key: str, digits: int = 3) -> str:
    if not rows:
        return "-"
    s = summarize([r[key] for r in rows])
    return f"{s.median:.{digits}f} [{s.q1:.{digits}f}, {s.q3:.{digits}f}]"


def tables(data: dict[str, dict[str, list[dict[str, Any]]]]) -> tuple[str, list[dict[str, Any]]]:
    lines = [
        "| setting | paper L1 | paper remaining | published: train L1 | published: remaining "
        "| published: seeds | ours: train L1 | ours: remaining | ours: seeds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label in CELLS.values():
        pub, ours = data["published"].get(label), data["defaults"].get(label)
        paper = PAPER.get(label, ("-", "-"))
        lines.append(
            f"| {label} | {paper[0]} | {paper[1]} | {cell(pub, 'train_loss')} | "
            f"{cell(pub, 'remaining_fraction', 2)} | {len(pub or [])} | "
            f"{cell(ours, 'train_loss')} | {cell(ours, 'remaining_fraction', 2)} | "
            f"{len(ours or [])} |"
        )
    tests: list[dict[str, Any]] = []
    for objective, what in OBJECTIVES.items():
        rows, found = claims_table(data, objective, what)
        lines += ["", *rows]
        tests += found
    return "\n".join(lines), tests


def claims_table(
    data: dict[str, dict[str, list[dict[str, Any]]]], objective: str, what: str
) -> tuple[list[str], list[dict[str, Any]]]:
    """Every claim tested on ``objective``, one Holm family per protocol."""
    lines = [f"| claim ({what}) | protocol | seeds | A12 | p | Holm p | verdict |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    tests: list[dict[str, Any]] = []
    for proto in PROTOCOLS:
        family = []
        for claim, x, y in CLAIMS:
            xs, ys = data[proto].get(x, []), data[proto].get(y, [])
            if not xs or not ys:
                continue
            res = mann_whitney([r[objective] for r in xs], [r[objective] for r in ys])
            family.append((claim, x, y, res))
        adjusted = holm([res.p for *_, res in family])
        for (claim, x, y, res), p_adj in zip(family, adjusted):
            significant = p_adj is not None and p_adj < 0.05
            if significant and res.direction == "lower":
                verdict = "**supported**"
            elif significant:
                verdict = "**contradicted** (significant, the other way)"
            elif res.direction == "lower":
                verdict = "not supported (same direction, not significant)"
            else:
                verdict = "not supported"
            tests.append({
                "claim": claim, "protocol": proto, "objective": objective, "x": x, "y": y,
                "n_x": res.n_x, "n_y": res.n_y, "a12": res.a12, "magnitude": res.magnitude,
                "p": res.p, "p_holm": p_adj, "method": res.method, "verdict": verdict,
            })  # fmt: skip
            p_txt = "-" if res.p is None else f"{res.p:.3g}"
            h_txt = "-" if p_adj is None else f"{p_adj:.3g}"
            lines.append(
                f"| {claim} | {proto} | {res.n_x} vs {res.n_y} | {res.a12:.2f} ({res.magnitude}) "
                f"| {p_txt} | {h_txt} | {verdict} |"
            )
    return lines, tests


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--json", help="write every per-seed value and every test here")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = collect(Path(args.store))
    text, tests = tables(data)
    print(text)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"results": data, "tests": tests}, indent=1, sort_keys=True) + "\n",
            encoding="utf-8",
        )


if __name__ == "__main__":
    main()
