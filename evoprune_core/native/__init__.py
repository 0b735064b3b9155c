"""Fused C kernels for the training epoch and the L1 evaluation of a population.

The batched torch program is bound by memory traffic: every minibatch step walks all N
members' weights, gradients and Adam moments (~1 MB per member at the standard preset), which
do not fit in a core's L2 cache together. ``kernels.c`` (the dense-layer maths in
``dense.h``, Adam in ``adam.h``, the compaction of dead units in ``compact.h``) turns the loop
inside out: a worker takes one member, copies its state into a
padded private copy that does fit in L2, runs the member's whole epoch there (forward,
backward, Adam per minibatch, in one pass of C) and writes it back; members are spread over
threads with flush-to-zero set on each. Members are independent, so results are the same for
any thread count.

The boundary is two argument structs (``abi.h``: ``evp_train_args``, ``evp_l1_args``) mirrored
here as ``ctypes.Structure`` classes; on load the library is asked for its ABI version, shared
constants (layer limit, loss codes), struct sizes and field offsets, and refused (one-line
``NativeUnavailable``) if any differs from what this module expects.

This module is the wrapper (``NativeKernels``) and the loader (``load``); the compiler and
its cache are in ``_compiler``, the argument structs and the ABI check in ``_abi``.

The source is compiled on first use with the system C compiler (``$CC``, default ``cc``;
``-O3 -march=native``) into a cache folder (``$EVOPRUNE_CACHE_DIR``, else
``$XDG_CACHE_HOME/evoprune``, else ``~/.cache/evoprune``), keyed by the source, the flags,
the compiler and the CPU, and loaded with ``ctypes``. Without a compiler the engines use the
torch path (``compute.backend = "auto"``) or stop with a one-line error (``"native"``).
"""

from __future__ import annotations

import ctypes
import functools
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ._abi import (
    ABI_VERSION,
    LOSS_CODES,
    MAX_LAYERS,
    L1Args,
    TrainArgs,
    _f32p,
    _f64p,
    _i32p,
    abi_expected,
    abi_mismatches,
)
from ._compiler import (
    FLAGS,
    HEADERS,
    SOURCE,
    NativeUnavailable,
    cache_dir,
    compile_kernels,
    cpu_count,
)

__all__ = [
    "ABI_VERSION",
    "FLAGS",
    "HEADERS",
    "LOSS_CODES",
    "MAX_LAYERS",
    "SOURCE",
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


@functools.lru_cache(maxsize=4)
def _load_cached(cc: str) -> NativeKernels | NativeUnavailable:
    """The kernels, or why not (a failure is remembered too: no rebuild attempt per run)."""
    if shutil.which(cc) is None:
        return NativeUnavailable(
            f"native kernels: no C compiler {cc!r} on PATH (set $CC, or compute.backend = 'torch')"
        )
    try:
        path = compile_kernels(cc)
        return NativeKernels(ctypes.CDLL(str(path)), path)
    except NativeUnavailable as exc:
        return exc
    except (OSError, subprocess.SubprocessError) as exc:
        return NativeUnavailable(f"native kernels: cannot build or load: {exc}")


def build(march: str) -> NativeKernels:
    """The kernels compiled for another instruction set (``-march=<march>``), uncached in
    memory; for testing the narrower SIMD paths on a wider machine."""
    cc = os.environ.get("CC", "cc")
    path = compile_kernels(cc, march)
    return NativeKernels(ctypes.CDLL(str(path)), path)


def load() -> NativeKernels:
    """The compiled kernels (built once per process and cached on disk).

    Raises ``NativeUnavailable`` with a one-line reason when they cannot be built.
    """
    got = _load_cached(os.environ.get("CC", "cc"))
    if isinstance(got, NativeUnavailable):
        raise NativeUnavailable(str(got))
    return got


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
        compact: bool = True,
    ) -> None:
        """One epoch of every pair (encoder i, decoder i) over ``rows`` (already in order).

        ``reset_each_step`` gives every minibatch a fresh Adam (moments and step count zeroed
        for the alive entries; pruned ones stay frozen), as the published Lipi-AE code does.

        With ``pool`` (a ``Population``) and ``partners`` (``(steps, 2, N)`` pool members:
        ``[s, 0, i]`` the decoder and ``[s, 1, i]`` the encoder member i trains against in
        minibatch s), each network trains against a frozen partner instead of its own pair.

        ``compact`` (default) trains each member without its structurally dead hidden units
        (every incoming weight and the bias pruned): the same epoch up to float rounding (the
        order of a few sums), at the cost of the alive network (see ``compact.h``).
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
            compact=int(compact),
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
