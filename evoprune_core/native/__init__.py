"""Fused C kernels for the training epoch and the L1 evaluation of a population.

The batched torch program is bound by memory traffic: every minibatch step walks all N
members' weights, gradients and Adam moments (~1 MB per member at the standard preset), which
do not fit in a core's L2 cache together. ``kernels.c`` (the dense-layer maths in
``dense.h``) turns the loop inside out: a worker takes one member, copies its state into a
padded private copy that does fit in L2, runs the member's whole epoch there (forward,
backward, Adam per minibatch, in one pass of C) and writes it back; members are spread over
threads with flush-to-zero set on each. Members are independent, so results are the same for
any thread count.

The boundary is two argument structs (``abi.h``: ``evp_train_args``, ``evp_l1_args``) mirrored
here as ``ctypes.Structure`` classes; on load the library is asked for its ABI version, shared
constants (layer limit, loss codes), struct sizes and field offsets, and refused (one-line
``NativeUnavailable``) if any differs from what this module expects.

The source is compiled on first use with the system C compiler (``$CC``, default ``cc``;
``-O3 -march=native``) into a cache folder (``$EVOPRUNE_CACHE_DIR``, else
``$XDG_CACHE_HOME/evoprune``, else ``~/.cache/evoprune``), keyed by the source, the flags,
the compiler and the CPU, and loaded with ``ctypes``. Without a compiler the engines use the
torch path (``compute.backend = "auto"``) or stop with a one-line error (``"native"``).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..errors import ConfigError

__all__ = [
    "L1Args",
    "NativeKernels",
    "NativeUnavailable",
    "TrainArgs",
    "abi_expected",
    "abi_mismatches",
    "build",
    "cache_dir",
    "cpu_count",
    "load",
]

SOURCE = Path(__file__).with_name("kernels.c")
HEADERS = (Path(__file__).with_name("abi.h"), Path(__file__).with_name("dense.h"))
FLAGS = (
    "-O3",
    "-fno-math-errno",
    "-fno-trapping-math",
    "-fPIC",
    "-shared",
    "-pthread",
)
#: The boundary with the C side (``abi.h``): checked against the library when it loads.
ABI_VERSION = 1
LOSS_CODES = {"l1": 0, "mse": 1, "bce": 2}
MAX_LAYERS = 32


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


def _compile(cc: str, march: str = "native") -> Path:
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


@functools.lru_cache(maxsize=4)
def _load_cached(cc: str) -> NativeKernels | NativeUnavailable:
    """The kernels, or why not (a failure is remembered too: no rebuild attempt per run)."""
    if shutil.which(cc) is None:
        return NativeUnavailable(
            f"native kernels: no C compiler {cc!r} on PATH (set $CC, or compute.backend = 'torch')"
        )
    try:
        path = _compile(cc)
        return NativeKernels(ctypes.CDLL(str(path)), path)
    except NativeUnavailable as exc:
        return exc
    except (OSError, subprocess.SubprocessError) as exc:
        return NativeUnavailable(f"native kernels: cannot build or load: {exc}")


def build(march: str) -> NativeKernels:
    """The kernels compiled for another instruction set (``-march=<march>``), uncached in
    memory; for testing the narrower SIMD paths on a wider machine."""
    cc = os.environ.get("CC", "cc")
    path = _compile(cc, march)
    return NativeKernels(ctypes.CDLL(str(path)), path)


def load() -> NativeKernels:
    """The compiled kernels (built once per process and cached on disk).

    Raises ``NativeUnavailable`` with a one-line reason when they cannot be built.
    """
    got = _load_cached(os.environ.get("CC", "cc"))
    if isinstance(got, NativeUnavailable):
        raise NativeUnavailable(str(got))
    return got


_f32p = ctypes.POINTER(ctypes.c_float)
_f64p = ctypes.POINTER(ctypes.c_double)
_i32p = ctypes.POINTER(ctypes.c_int32)
_i32, _f32 = ctypes.c_int32, ctypes.c_float


class TrainArgs(ctypes.Structure):
    """Mirror of ``evp_train_args`` (abi.h): one epoch of a population."""

    _fields_ = [
        ("n", _i32), ("L", _i32), ("dims", _i32p),
        ("params", _f32p), ("exp_avg", _f32p), ("exp_avg_sq", _f32p), ("steps", _f32p),
        ("lrs", _f64p), ("rows", _f32p),
        ("n_rows", _i32), ("batch", _i32), ("loss", _i32), ("threads", _i32),
        ("b1", _f32), ("b2", _f32), ("eps", _f32),
        ("reset_each_step", _i32),
        ("pool", _f32p), ("picks", _i32p), ("n_pool", _i32), ("enc_layers", _i32),
    ]  # fmt: skip


class L1Args(ctypes.Structure):
    """Mirror of ``evp_l1_args`` (abi.h): the L1 evaluation of a population."""

    _fields_ = [
        ("n", _i32), ("L", _i32), ("dims", _i32p), ("params", _f32p), ("rows", _f32p),
        ("n_rows", _i32), ("threads", _i32), ("out", _f64p),
    ]  # fmt: skip


def abi_expected() -> dict[str, int]:
    """What this loader expects of the library: constants, struct sizes and field offsets."""
    want = {"version": ABI_VERSION, "max_layers": MAX_LAYERS}
    want.update({f"loss.{name}": code for name, code in LOSS_CODES.items()})
    for struct, cname in ((TrainArgs, "evp_train_args"), (L1Args, "evp_l1_args")):
        want[f"sizeof.{cname}"] = ctypes.sizeof(struct)
        for name, *_ in struct._fields_:
            want[f"{cname}.{name}"] = getattr(struct, name).offset
    return want


def abi_mismatches(lib: ctypes.CDLL) -> list[str]:
    """Every ``key: library value != expected`` where the library disagrees with the loader."""
    query = lib.evp_abi
    query.restype = ctypes.c_int64
    query.argtypes = [ctypes.c_char_p]
    got = {key: int(query(key.encode())) for key in abi_expected()}
    return [
        f"{k}: library {got[k]} != loader {v}" for k, v in abi_expected().items() if got[k] != v
    ]


def _ptr(t: Tensor, kind: type = _f32p):  # noqa: ANN202 - a ctypes pointer
    return ctypes.cast(t.data_ptr(), kind)


@dataclass(frozen=True)
class NativeKernels:
    """Handle on the loaded library; methods check their arguments and fall to C."""

    lib: ctypes.CDLL
    path: Path

    def __post_init__(self) -> None:
        bad = abi_mismatches(self.lib)
        if bad:
            raise NativeUnavailable(
                f"native kernels: {self.path.name} does not match this loader ({'; '.join(bad)})"
            )
        self.lib.evp_train_epoch.restype = ctypes.c_int
        self.lib.evp_train_epoch.argtypes = [ctypes.POINTER(TrainArgs)]
        self.lib.evp_l1.restype = ctypes.c_int
        self.lib.evp_l1.argtypes = [ctypes.POINTER(L1Args)]

    @property
    def vector_width(self) -> int:
        return int(self.lib.evp_vector_width())

    @staticmethod
    def supports(pop: object) -> bool:
        """Whether ``pop`` (a ``Population``) has the flat float32 layout the kernels read."""
        bufs = getattr(pop, "buffers", None)
        arch = getattr(pop, "arch", None)
        if bufs is None or arch is None or getattr(arch, "kind", "dense") != "dense":
            return False
        dims = _dims(arch)
        if len(dims) - 1 > MAX_LAYERS:
            return False
        return all(
            t.dtype == torch.float32 and t.is_contiguous() and t.device.type == "cpu"
            for t in (*bufs.values(), pop.steps)  # type: ignore[attr-defined]
        )

    def train_epoch(
        self,
        pop: object,
        rows: Tensor,
        batch_size: int,
        lrs: list[float],
        loss: str,
        betas: tuple[float, float],
        eps: float,
        threads: int,
        pool: object | None = None,
        partners: Tensor | None = None,
        reset_each_step: bool = False,
    ) -> None:
        """One epoch of every pair (encoder i, decoder i) over ``rows`` (already in order).

        ``reset_each_step`` gives every minibatch a fresh Adam (moments and step count zeroed
        for the alive entries; pruned ones stay frozen), as the published Lipi-AE code does.

        With ``pool`` (a ``Population``) and ``partners`` (``(steps, 2, N)`` pool members:
        ``[s, 0, i]`` the decoder and ``[s, 1, i]`` the encoder member i trains against in
        minibatch s), each network trains against a frozen partner instead of its own pair.
        """
        dims_t = torch.tensor(_dims(pop.arch), dtype=torch.int32)  # type: ignore[attr-defined]
        b = pop.buffers  # type: ignore[attr-defined]
        rows = rows.to(torch.float32).contiguous()
        lr_t = torch.tensor(lrs, dtype=torch.float64)
        n = b["params"].shape[0]
        if lr_t.shape != (n,):
            raise ValueError(f"need {n} learning rates, got {len(lrs)}")
        pool_params, picks, n_pool, enc_layers = None, None, 0, 0
        if pool is not None and partners is not None:
            pool_params = pool.buffers["params"].contiguous()  # type: ignore[attr-defined]
            n_pool = pool_params.shape[0]
            enc_layers = len(pool.arch.encoder_dims) - 1  # type: ignore[attr-defined]
            steps = len(range(0, rows.shape[0], batch_size))  # minibatches, the last ragged
            picks = partners.to(torch.int32).contiguous()
            if picks.shape != (steps, 2, n):
                raise ValueError(f"partners: need shape {(steps, 2, n)}, got {tuple(picks.shape)}")
        args = TrainArgs(
            n=n,
            L=len(dims_t) - 1,
            dims=_ptr(dims_t, _i32p),
            params=_ptr(b["params"]),
            exp_avg=_ptr(b["exp_avg"]),
            exp_avg_sq=_ptr(b["exp_avg_sq"]),
            steps=_ptr(pop.steps),  # type: ignore[attr-defined]
            lrs=_ptr(lr_t, _f64p),
            rows=_ptr(rows),
            n_rows=rows.shape[0],
            batch=batch_size,
            loss=LOSS_CODES[loss],
            threads=threads,
            b1=betas[0],
            b2=betas[1],
            eps=eps,
            reset_each_step=int(reset_each_step),
            pool=None if pool_params is None else _ptr(pool_params),
            picks=None if picks is None else _ptr(picks, _i32p),
            n_pool=n_pool,
            enc_layers=enc_layers,
        )
        rc = self.lib.evp_train_epoch(ctypes.byref(args))
        if rc == -1:
            raise ValueError("native train_epoch: invalid arguments")
        if rc != 0:
            raise MemoryError(f"native train_epoch failed (code {rc})")

    def l1(self, pop: object, x: Tensor, threads: int) -> Tensor:
        """Mean absolute reconstruction error of every pair on ``x``: ``(N,)`` float32."""
        dims_t = torch.tensor(_dims(pop.arch), dtype=torch.int32)  # type: ignore[attr-defined]
        params = pop.buffers["params"]  # type: ignore[attr-defined]
        x = x.to(torch.float32).contiguous()
        out = torch.zeros(params.shape[0], dtype=torch.float64)
        args = L1Args(
            n=params.shape[0],
            L=len(dims_t) - 1,
            dims=_ptr(dims_t, _i32p),
            params=_ptr(params),
            rows=_ptr(x),
            n_rows=x.shape[0],
            threads=threads,
            out=_ptr(out, _f64p),
        )
        rc = self.lib.evp_l1(ctypes.byref(args))
        if rc != 0:
            raise MemoryError(f"native l1 failed (code {rc})")
        return out.float()


def _dims(arch: object) -> tuple[int, ...]:
    enc = arch.encoder_dims  # type: ignore[attr-defined]
    dec = arch.decoder_dims  # type: ignore[attr-defined]
    return (*enc, *dec[1:])
