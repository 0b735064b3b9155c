"""Compiling the C kernels: the system compiler, the flags, the on-disk cache.

``kernels.c`` (with ``abi.h``, ``dense.h``, ``adam.h`` and ``compact.h``) is compiled on first
use with ``$CC`` (default ``cc``; ``-O3 -march=native -mprefer-vector-width=512``) into
``cache_dir()``, keyed by the source, the flags, the compiler and the CPU, so a changed
source or another machine builds afresh.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import tempfile
from pathlib import Path

from ..errors import ConfigError

__all__ = [
    "FLAGS",
    "HEADERS",
    "SOURCE",
    "NativeUnavailable",
    "cache_dir",
    "compile_kernels",
    "cpu_count",
]

SOURCE = Path(__file__).with_name("kernels.c")
HEADERS = tuple(Path(__file__).with_name(h) for h in ("abi.h", "dense.h", "adam.h", "compact.h"))
FLAGS = (
    "-O3",
    "-fno-math-errno",
    "-fno-trapping-math",
    "-mprefer-vector-width=512",
    "-fPIC",
    "-shared",
    "-pthread",
)


class NativeUnavailable(ConfigError):
    """The C kernels cannot be built or loaded here (the message says why)."""


def cache_dir() -> Path:
    env = os.environ.get("EVOPRUNE_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "evoprune"


def cpu_count() -> int:
    """CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _cpu_signature() -> str:
    """What ``-march=native`` depends on: the CPU's model and feature flags."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() + platform.machine()
    keep = [ln for ln in text.splitlines() if ln.split(":")[0].strip() in ("model name", "flags")]
    return "\n".join(sorted(set(keep)))


def compile_kernels(cc: str, march: str = "native") -> Path:
    """The path of the kernels built by ``cc`` for ``-march=<march>`` (from the cache if there)."""
    version = subprocess.run(
        [cc, "--version"], capture_output=True, text=True, check=False, timeout=60
    ).stdout
    source = b"\0".join(p.read_bytes() for p in (SOURCE, *HEADERS))
    key = hashlib.sha256(
        b"\0".join(
            [source, " ".join(FLAGS).encode(), march.encode(), version.encode()]
            + [_cpu_signature().encode()]
        )
    ).hexdigest()[:20]
    folder = cache_dir()
    target = folder / f"kernels-{key}.so"
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".kernels-", suffix=".so", dir=folder)
    os.close(fd)
    try:
        proc = subprocess.run(
            [cc, *FLAGS, f"-march={march}", "-I", str(SOURCE.parent), str(SOURCE), "-o", tmp]
            + ["-lm"],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        if proc.returncode != 0:
            first = (proc.stderr.strip().splitlines() or ["no output"])[0]
            raise NativeUnavailable(f"native kernels: {cc} failed: {first}")
        os.replace(tmp, target)  # atomic: concurrent builders race harmlessly
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
