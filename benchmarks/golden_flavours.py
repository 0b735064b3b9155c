"""How far the golden histories move between kernel flavours; prints one JSON object.

    python benchmarks/golden_flavours.py [--margins]

Runs the six cases of ``tests/engines/test_golden.py`` under each flavour of the arithmetic this
machine can run: torch's dispatch (``ATEN_CPU_CAPABILITY`` default/avx2/avx512), MKL's code
paths (``MKL_ENABLE_INSTRUCTIONS``, ``MKL_CBWR=COMPATIBLE``), oneDNN's (``ONEDNN_MAX_CPU_ISA``),
one thread, and the native kernels built for ``x86-64`` (SSE2), ``x86-64-v2``, ``x86-64-v3``
(AVX2), ``x86-64-v4`` (AVX-512) and ``native`` (those this CPU can run; the others are listed
under ``skipped``). For each flavour and case: the largest relative
difference of a float from the recording, and the number of discrete values (counts, names,
the best cell) that differ. ``--margins`` adds, per case, the largest relative change of a
float when ``lr`` is multiplied by 1 + eps (eps = +-1e-6 ... +-1e-4) and whether a discrete
value changed: a smooth run moves in proportion, a decision on a knife edge jumps.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent.parent / "tests" / "engines" / "test_golden.py"
TORCH_FLAVOURS = {
    "torch": {},
    "torch ATEN_CPU_CAPABILITY=default": {"ATEN_CPU_CAPABILITY": "default"},
    "torch ATEN_CPU_CAPABILITY=avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "torch MKL_ENABLE_INSTRUCTIONS=SSE4_2": {"MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
    "torch MKL_ENABLE_INSTRUCTIONS=AVX2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "torch MKL_CBWR=COMPATIBLE": {"MKL_CBWR": "COMPATIBLE"},
    "torch ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE": {
        "ATEN_CPU_CAPABILITY": "default",
        "MKL_CBWR": "COMPATIBLE",
    },
    "torch ONEDNN_MAX_CPU_ISA=SSE41": {"ONEDNN_MAX_CPU_ISA": "SSE41"},
    "torch OMP_NUM_THREADS=1": {"OMP_NUM_THREADS": "1"},
}
MARCHES = ("x86-64", "x86-64-v2", "x86-64-v3", "x86-64-v4", "native")
#: CPU flags (/proc/cpuinfo) a -march level needs to run; a flavour this CPU lacks is skipped
#: (listed under "skipped") instead of dying of an illegal instruction
MARCH_NEEDS = {
    "x86-64-v2": {"sse4_2", "popcnt", "ssse3"},
    "x86-64-v3": {"avx2", "fma", "bmi2", "movbe"},
    "x86-64-v4": {"avx512f", "avx512bw", "avx512vl", "avx512dq"},
}


def _cpu_flags() -> set[str] | None:
    """This CPU's feature flags, or None where /proc/cpuinfo says nothing (then run all)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.split(":")[0].strip() == "flags":
            return set(line.split(":", 1)[1].split())
    return None


def _golden() -> Any:
    spec = importlib.util.spec_from_file_location("golden", TESTS)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _flat(got: Any, want: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    if isinstance(want, dict):
        return [t for k in sorted(want) for t in _flat(got[k], want[k], f"{path}.{k}")]
    if isinstance(want, list):
        return [t for i, (g, w) in enumerate(zip(got, want)) for t in _flat(g, w, f"{path}[{i}]")]
    return [(path, got, want)]


def _difference(got: dict, want: dict) -> dict[str, Any]:
    rel, discrete = 0.0, 0
    for path, g, w in _flat(got, want):
        if type(w) is float:
            if path.rsplit(".", 1)[-1].startswith("lr") or "cell_lrs" in path:
                continue  # the perturbed input itself (margins)
            rel = max(rel, abs(g - w) / abs(w) if w else abs(g))
        elif g != w:
            discrete += 1
    return {"max_relative": float(f"{rel:.3g}"), "discrete": discrete}


def _one(flavour: str) -> dict[str, dict]:
    g = _golden()
    if flavour.startswith("native "):
        from evoprune_core import native
        from evoprune_core.engines import runtime

        kernels = native.build(flavour.split(" ", 1)[1])
        runtime.load_native = lambda: kernels  # type: ignore[assignment]
        return {case: g._run(case, backend="native") for case in sorted(g.CASES)}
    return {case: g._run(case) for case in sorted(g.CASES)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--margins", action="store_true")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(_one(args.one)))
        return
    g = _golden()
    want = {case: g._recorded(case) for case in sorted(g.CASES)}
    out: dict[str, Any] = {"flavours": {}}
    cpu = _cpu_flags()
    runnable = [m for m in MARCHES if cpu is None or MARCH_NEEDS.get(m, set()) <= cpu]
    out["skipped"] = [f"native {m}" for m in MARCHES if m not in runnable]
    flavours = {**TORCH_FLAVOURS, **{f"native {m}": {} for m in runnable}}
    for name, env in flavours.items():
        proc = subprocess.run(
            [sys.executable, __file__, "--one", name],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=True,
        )
        got = json.loads(proc.stdout)
        out["flavours"][name] = {case: _difference(got[case], want[case]) for case in want}
    out["largest_relative"] = max(
        d["max_relative"] for f in out["flavours"].values() for d in f.values()
    )
    out["discrete_differences"] = sum(
        d["discrete"] for f in out["flavours"].values() for d in f.values()
    )
    if args.margins:
        lr = g.BASE["training"]["lr"]
        out["margins"] = {}
        for case in sorted(g.CASES):
            ref = g._run(case)
            row = {}
            for eps in (1e-6, -1e-6, 1e-5, -1e-5, 3e-5, -3e-5, 1e-4, -1e-4):
                got = g._run(case, **{"training.lr": lr * (1 + eps)})
                row[f"{eps:+.0e}"] = _difference(got, ref)
            out["margins"][case] = row
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
