"""``compute.device`` for dense networks: which path and device a run takes (CPU-only checks:
nothing here assumes CUDA exists)."""

from __future__ import annotations

import pytest
import torch

from evoprune_core.config import ComputeConfig
from evoprune_core.engines.runtime import Compute, build_population, resolve_compute
from evoprune_core.loading import load_run
from evoprune_core.population import Population


def test_a_dense_torch_run_records_its_device_and_equals_the_default_cpu_run() -> None:
    sets = [
        "data.name=digits",
        "network.preset=small",
        "generations=2",
        "compute.backend=torch",
        "pruning.operator=variance",
        "pruning.probability=1.0",
    ]
    a = load_run(None, [*sets, "compute.device=cpu"]).run()
    b = load_run(None, [*sets, "compute.device=auto"]).run()  # auto: cpu without a GPU
    assert a.extra == {"backend": "torch", "device": "cpu"} == b.extra
    assert a.test_loss == b.test_loss and a.remaining_fraction == b.remaining_fraction


def test_build_population_puts_dense_torch_populations_on_the_compute_device() -> None:
    run = load_run(None, ["data.name=digits", "network.preset=small", "compute.backend=torch"])
    pop = build_population(
        run.config,
        run.build_dataset(),
        3,
        torch.Generator().manual_seed(0),
        Compute(None, 1, "cpu"),
    )
    assert isinstance(pop, Population) and pop.device == torch.device("cpu")
    again = Population.create(pop.arch, 3, torch.Generator().manual_seed(0), device="cpu")
    assert torch.equal(again.params, pop.params) and again.steps.device == pop.device


def test_auto_backend_takes_torch_off_the_cpu_and_native_stays_native(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # only the choice is tested
    auto = resolve_compute(ComputeConfig(backend="auto", device="cuda"))
    assert (auto.native, auto.device, auto.backend) == (None, "cuda", "torch")
    assert resolve_compute(ComputeConfig(backend="torch", device="auto")).device == "cuda"


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present here")
def test_cuda_without_cuda_is_one_config_error_for_dense_torch_networks() -> None:
    from evoprune_core.errors import ConfigError

    with pytest.raises(ConfigError, match=r'compute.device: "cuda" needs a CUDA build'):
        resolve_compute(ComputeConfig(backend="torch", device="cuda"))
