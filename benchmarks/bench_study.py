"""Where a study's time goes: the quickstart in a fresh store; prints JSON.

    python benchmarks/bench_study.py [--file studies/quickstart.toml] [--workers 1]
        [--n-trials N] [--artifacts all|best|none]

``engine_fraction``: the engine's seconds (each seed's run, as the engine measures it) over
the trials' wall seconds (Optuna's start to complete), both summed over the complete trials:
the share of a trial spent training and pruning rather than tracking, writing artifacts or
building data. ``trials_per_minute``: complete trials over the whole command's wall time
(imports, set-up, the end-of-study reports and artifacts included). ``--artifacts`` overrides
the file's ``artifacts`` (default: the file's, i.e. "best").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _study_file(src: Path, dst: Path, artifacts: str | None) -> Path:
    text = src.read_text(encoding="utf-8")
    if artifacts is not None:
        text = re.sub(r"(?m)^artifacts\s*=.*\n", "", text)
        text = text.replace("[base]", f'artifacts = "{artifacts}"\n\n[base]', 1)
    dst.write_text(text, encoding="utf-8")
    return dst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--file", default="studies/quickstart.toml")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--n-trials", type=int)
    ap.add_argument("--artifacts", choices=["all", "best", "none"])
    args = ap.parse_args()

    import optuna

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = _study_file(Path(args.file), root / Path(args.file).name, args.artifacts)
        cmd = [sys.executable, "-m", "evoprune_core.cli", "study", str(path),
               "--store", str(root / "mlruns"), "--workers", str(args.workers), "--quiet"]  # fmt: skip
        if args.n_trials is not None:
            cmd += ["--n-trials", str(args.n_trials)]
        wall0, cpu0 = time.perf_counter(), os.times()
        proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - wall0
        cpu1 = os.times()
        if proc.returncode != 0:
            sys.exit(f"the study failed ({proc.returncode}): {proc.stderr[-2000:]}")
        name = re.search(r'(?m)^name\s*=\s*"([^"]+)"', path.read_text()).group(1)  # type: ignore[union-attr]
        journal = root / "mlruns" / "optuna" / f"{name}.journal"
        storage = optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(journal))
        )
        trials = optuna.load_study(study_name=name, storage=storage).get_trials(
            states=(optuna.trial.TrialState.COMPLETE,)
        )
        engine = sum(r["seconds"] for t in trials for r in t.user_attrs["evoprune.results"])
        trial_wall = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in trials)
    out = {
        "benchmark": "study",
        "file": args.file,
        "workers": args.workers,
        "artifacts": args.artifacts or "file",
        "complete_trials": len(trials),
        "wall_seconds": round(wall, 2),
        "cpu_seconds_children": round(
            (cpu1.children_user - cpu0.children_user)
            + (cpu1.children_system - cpu0.children_system),
            2,
        ),
        "engine_seconds": round(engine, 2),
        "trial_wall_seconds": round(trial_wall, 2),
        "engine_fraction": round(engine / trial_wall, 3) if trial_wall else None,
        "trials_per_minute": round(len(trials) / (wall / 60.0), 2),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
