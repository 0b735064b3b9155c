"""Run the paper's claims (studies/paper/claims/*.toml) in chunks of seeds, and time them.

``--dir studies/paper`` runs the paper's grid files instead, in the same way; a step
``DIR::REGEX@FIRST-LAST`` takes its files from DIR, so one queue can mix both.

The claim study files carry seeds 1..30; a trial runs all of a study's seeds in turn, so this
script writes one copy of each file per chunk of seeds (name suffix ``-s<first>-<last>``) into
``<store>/chunks/`` and runs the copies through ``evoprune study`` from ``--queues`` parallel
queues, chunk by chunk (every combination gets the same seeds before the next chunk starts).
A study that completed is skipped on a re-run (``evoprune study`` resumes), so an interrupted
run continues where it stopped. Prints one JSON line per study run (wall seconds) and appends
it to ``<store>/timings.jsonl``.

    nice -n 10 python benchmarks/paper_claims.py --store /tmp/repro-store --seeds 1-10
"""

from __future__ import annotations

import argparse
import json
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

CLAIMS = Path(__file__).resolve().parents[1] / "studies" / "paper" / "claims"
# slowest first inside a chunk, so the queues finish together
ORDER = (
    "population-sizes",
    "lipi10",
    "control-steps",
    "lipi5",
    "canonical",
    "control-reset",
    "prune-after",
)


def chunk_file(src: Path, out_dir: Path, seeds: list[int]) -> Path:
    """A copy of study file ``src`` with only ``seeds`` and a name that says which."""
    text = src.read_text(encoding="utf-8")
    suffix = f"-s{seeds[0]}-{seeds[-1]}"
    head, sep, rest = text.partition("\n[")  # the study's own keys come before any table
    head, n1 = re.subn(r'(?m)^name = "([^"]+)"', lambda m: f'name = "{m[1]}{suffix}"', head)
    text = head + sep + rest
    text, n2 = re.subn(r"(?m)^seeds = \[[^\]]*\]", f"seeds = {seeds}", text)
    if n1 != 1 or n2 != 1:
        raise SystemExit(f"{src}: expected one name and one seeds line")
    out = out_dir / f"{src.stem}{suffix}.toml"
    out.write_text(text, encoding="utf-8")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--dir", type=Path, default=CLAIMS, help="folder of study files")
    ap.add_argument("--seeds", default="1-10", help="first-last")
    ap.add_argument("--chunk", type=int, default=2, help="seeds per study copy")
    ap.add_argument("--queues", type=int, default=2)
    ap.add_argument("--only", default="", help="comma-separated substrings of file names")
    ap.add_argument(
        "--step",
        action="append",
        default=[],
        help="[DIR::]REGEX@FIRST-LAST (files in DIR, default --dir, whose name matches), "
        "repeatable: queued in this order instead of --only/--seeds",
    )
    args = ap.parse_args()
    store = Path(args.store).resolve()
    out_dir = store / "chunks"
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs: queue.Queue[Path] = queue.Queue()
    only = "|".join(re.escape(s) for s in args.only.split(",") if s)
    for step in args.step or [f"{only}@{args.seeds}"]:
        pattern, _, span = step.rpartition("@")
        folder, _, pattern = pattern.rpartition("::")
        folder = Path(folder) if folder else args.dir
        first, last = (int(v) for v in span.split("-"))
        files = [f for f in sorted(folder.glob("*.toml")) if re.search(pattern, f.name)]
        files.sort(key=lambda f: next(i for i, p in enumerate(ORDER) if f.name.startswith(p)))
        for a in range(first, last + 1, args.chunk):
            seeds = list(range(a, min(a + args.chunk - 1, last) + 1))
            for f in files:
                jobs.put(chunk_file(f, out_dir, seeds))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            try:
                path = jobs.get_nowait()
            except queue.Empty:
                return
            start = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "evoprune_core.cli", "study", str(path), "--workers", "1"]
                + ["--store", str(store), "--quiet"],
                capture_output=True,
                text=True,
            )
            rec = {
                "study": path.stem,
                "rc": proc.returncode,
                "seconds": round(time.perf_counter() - start, 1),
                "error": proc.stderr.strip().splitlines()[-1] if proc.returncode else "",
            }
            with lock:
                print(json.dumps(rec), flush=True)
                with (store / "timings.jsonl").open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(rec) + "\n")

    threads = [threading.Thread(target=worker) for _ in range(args.queues)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
