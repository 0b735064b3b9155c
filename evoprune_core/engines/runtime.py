"""What a run needs while it runs: seeded streams, the compute set-up (native kernels or
torch, threads, CPU flags), the divergence check; ``calibration`` (rows for a pruning event)
lives in ``steps`` and is re-exported here."""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..data import Dataset
from ..errors import ConfigError, TrialFailed
from ..native import NativeKernels, NativeUnavailable
from ..native import load as load_native
from ..population import ConvArchitecture, ConvPopulation, Population
from .steps import Trainer, calibration

if TYPE_CHECKING:
    from ..config import ComputeConfig, RunConfig

__all__ = [
    "Compute",
    "Streams",
    "build_population",
    "calibration",
    "check_finite",
    "cpu_numerics",
    "resolve_compute",
]


class Streams:
    """Independent, seeded random streams (one per purpose) derived from one seed."""

    NAMES = ("init", "data", "prune", "operator", "select", "mutate", "eval")
    init: torch.Generator
    data: torch.Generator
    prune: torch.Generator
    operator: torch.Generator
    select: torch.Generator
    mutate: torch.Generator
    eval: torch.Generator

    def __init__(self, seed: int) -> None:
        seeds = np.random.SeedSequence(seed).spawn(len(self.NAMES))
        for name, ss in zip(self.NAMES, seeds):
            gen = torch.Generator().manual_seed(int(ss.generate_state(1, np.uint64)[0] >> 1))
            setattr(self, name, gen)

    def uniform(self, name: str) -> float:
        return float(torch.rand(1, generator=getattr(self, name)))


@dataclass(frozen=True)
class Compute:
    """The resolved ``compute`` settings: native kernels (or None for torch), threads and the
    torch device of the torch path (conv networks, and dense ones when the kernels are off)."""

    native: NativeKernels | None
    threads: int
    device: str = "cpu"

    @property
    def backend(self) -> str:
        return "torch" if self.native is None else "native"

    def backend_for(self, pop: Population | ConvPopulation) -> str:
        """What trained ``pop``: conv networks always run in torch."""
        return "torch" if isinstance(pop, ConvPopulation) else self.backend

    def device_for(self, pop: Population | ConvPopulation) -> str:
        return str(pop.device)

    def trainer(
        self, loss: str, betas: tuple[float, float], eps: float, reset_each_step: bool = False
    ) -> Trainer:
        return Trainer(loss, betas, eps, self.native, self.threads, reset_each_step)

    def l1(self, pop: Population | ConvPopulation, x: torch.Tensor) -> torch.Tensor:
        """Every pair's mean absolute reconstruction error on ``x`` (``(N,)``)."""
        if self.native is not None and self.native.supports(pop):
            return self.native.l1(pop, x, self.threads)
        return pop.l1(x)


def resolve_compute(cfg: ComputeConfig) -> Compute:
    """Load the native kernels as ``cfg.backend`` asks; call before ``cpu_numerics``.

    "native" without a working C compiler raises ``NativeUnavailable`` (a one-line config
    error); "auto" falls back to torch with a warning (the result's ``backend`` says which ran),
    and takes torch at once when ``device`` is not the CPU (the kernels are CPU-only).
    ``threads = 0`` takes torch's thread count, which ``cpu_numerics`` then lowers to one.
    """
    threads = cfg.threads or torch.get_num_threads()
    device = resolve_device(cfg.device)
    if cfg.backend == "torch" or (cfg.backend == "auto" and device != "cpu"):
        return Compute(None, threads, device)
    try:
        return Compute(load_native(), threads, device)
    except NativeUnavailable as exc:
        if cfg.backend == "native":
            raise
        warnings.warn(f"{exc}; using the torch backend (slower)", RuntimeWarning, stacklevel=2)
        return Compute(None, threads, device)


def resolve_device(device: str) -> str:
    """``compute.device`` as a torch device name: "auto" is CUDA when torch sees a GPU."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            'compute.device: "cuda" needs a CUDA build of torch and a GPU, and neither is '
            'here; allowed: "cpu", "auto" (got "cuda")'
        )
    return device


def build_population(
    cfg: RunConfig, data: Dataset, n: int, generator: torch.Generator, compute: Compute
) -> Population | ConvPopulation:
    """``n`` fresh networks of ``cfg.network`` for ``data``'s samples, on ``compute.device``
    (dense networks trained by the C kernels stay on the CPU, the only device they run on)."""
    arch = cfg.network.build(data.sample_shape)
    if isinstance(arch, ConvArchitecture):
        return ConvPopulation.create(arch, n, generator, compute.device)
    return Population.create(
        arch, n, generator, compute.device if compute.native is None else "cpu"
    )


def check_finite(value: float, what: str, t: int) -> None:
    if not math.isfinite(value):
        raise TrialFailed(f"{what} is {value} at generation {t}: the run diverged")


@contextlib.contextmanager
def cpu_numerics() -> Iterator[None]:
    """Flush denormal floats to zero and run tensor ops on the calling thread, then restore.

    Adam's tiny second moments are otherwise denormal and make updates many times slower.
    The flush-to-zero mode is a per-thread CPU flag, so PyTorch's intra-op worker threads
    (created earlier, without it) would still crawl - measured: 15 s instead of 0.22 s for an
    N=10 epoch. Torch ops on one thread lose little here: the batched step is bound by memory
    bandwidth (splitting the members over two threads measured no faster). The native kernels
    run their own worker threads and set flush-to-zero on each.
    """
    threads = torch.get_num_threads()
    torch.set_flush_denormal(True)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.set_flush_denormal(False)
