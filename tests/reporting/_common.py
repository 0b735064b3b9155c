"""Trials and reports shared by the tests of ``evoprune_core.reporting``."""

from __future__ import annotations

from typing import Any

from tests.conftest import study_trial


def trial(number: int, op: str, sched: str, vals: list[float], **kw: Any) -> Any:
    rem = kw.get("rem", 1.0)
    results = [
        {"seed": i + 1, "val_loss": v, "test_loss": v + 0.01, "remaining_fraction": rem}
        for i, v in enumerate(vals)
    ]
    for r in results:
        r.pop(kw.get("drop", ""), None)  # a metric the trial did not record
    return study_trial(
        number, op, sched, results, sum(vals) / len(vals), engine=kw.get("engine", "canonical"),
        probability=kw.get("p"), amount=kw.get("amount"),
    )  # fmt: skip


TRIALS = [
    trial(0, "none", "-", [0.30, 0.31, 0.32, 0.33]),
    trial(1, "random", "fixed", [0.20, 0.21, 0.22, 0.23], p=0.5, rem=0.5),
    trial(2, "random", "fixed", [0.29, 0.34, 0.35, 0.36], p=0.9, rem=0.4),
    trial(3, "variance", "fixed", [0.31, 0.32, 0.33], p=0.5, rem=0.7),
    trial(4, "none", "-", [0.10, 0.11], engine="coevolution"),
    trial(5, "random", "fixed", [0.12], engine="coevolution", p=0.5, rem=0.9),
]
