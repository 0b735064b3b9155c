"""The mypy configuration: the strict packages get every flag of this mypy's ``--strict``.

mypy reads ``strict`` only as a global option (a ``strict = true`` in a per-module override
turns the flags on for every module: mypy issue 11401), so ``pyproject.toml`` lists the flags
one by one; this test fails when a newer mypy adds a flag to ``--strict`` that the list lacks.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
STRICT_PACKAGES = [
    "evoprune_core.engines.*",
    "evoprune_core.population.*",
    "evoprune_core.operators.*",
    "evoprune_core.schedules",
    "evoprune_core.reporting.*",
]


def _strict_flags() -> dict[str, bool]:
    """``--strict``'s flags as config keys and values, from ``mypy --help``."""
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--help"], capture_output=True, text=True, check=True
    ).stdout
    text = re.search(r"--strict\s+Strict mode; enables the following flags:(.*?)\n  --", out, re.S)
    assert text is not None, "mypy --help no longer describes --strict"
    words = re.sub(r"-\s+", "-", re.sub(r"\s+", " ", text.group(1)))
    flags = re.findall(r"--([a-z-]+)", words)
    assert len(flags) >= 10, flags
    out_flags = {}
    for flag in flags:
        key = flag.replace("-", "_")
        if key.startswith("no_"):
            out_flags[key[3:]] = False
        else:
            out_flags[key] = True
    return out_flags


def test_the_strict_packages_get_every_flag_of_strict() -> None:
    pytest.importorskip("mypy")
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    (override,) = [o for o in cfg["overrides"] if "disallow_untyped_defs" in o]
    assert override["module"] == STRICT_PACKAGES
    assert "strict" not in cfg and "strict" not in override  # see the module docstring
    for key, value in _strict_flags().items():
        got = override.get(key, cfg.get(key))
        assert got == value, f"{key} = {value} missing for the strict packages (got {got})"
