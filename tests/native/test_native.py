"""The fused C kernels: same training and evaluation as torch, thread-invariant, safe fallback."""

from __future__ import annotations

import ctypes
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from evoprune_core import native
from evoprune_core.engines.runtime import cpu_numerics, resolve_compute
from evoprune_core.engines.steps import Trainer
from evoprune_core.loading import load_run_config, run
from evoprune_core.plugins import Registry
from evoprune_core.population import Architecture, Population
from tests.engines.test_coevolution import TINY


@pytest.fixture(scope="module")
def kernels() -> native.NativeKernels:
    return native.load()  # the CI machine has a C compiler: a failure here is a real failure


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load()


def _population(arch: Architecture, n: int, seed: int, prune: float = 0.0) -> Population:
    gen = torch.Generator().manual_seed(seed)
    pop = Population.create(arch, n, gen)
    if prune:
        keep = (torch.rand(n, arch.n_params, generator=gen) >= prune).float()
        pop.prune(keep)
    return pop


def _torch_epoch(pop: Population, rows: torch.Tensor, batch: int, lrs: list[float], loss: str):
    with cpu_numerics(), torch.no_grad():
        Trainer(loss)._pass(pop, rows, batch, lrs)


def _native_epoch(k, pop, rows, batch, lrs, loss, threads=1) -> None:  # noqa: ANN001
    with cpu_numerics(), torch.no_grad():
        k.train_epoch(pop, rows, batch, lrs, loss, (0.5, 0.999), 1e-8, threads)


SHAPES = [
    (Architecture(1000, (30, 10), (30,)), 5),  # the paper's standard network and batch
    (Architecture(37, (5, 3), (4,)), 13),  # widths no vector width divides; batch > 8 rows
    (Architecture(20, (17, 9, 2), (9, 17)), 1),  # deeper (large-like), single-row steps
]


@pytest.mark.parametrize("loss", ["bce", "l1", "mse"])
@pytest.mark.parametrize("shape", range(len(SHAPES)))
def test_native_epoch_matches_torch(kernels, loss: str, shape: int) -> None:
    arch, batch = SHAPES[shape]
    a = _population(arch, 3, seed=shape, prune=0.3)
    b = a.clone()
    gen = torch.Generator().manual_seed(7)
    rows = (torch.rand(3 * batch + 2, arch.input_dim, generator=gen) < 0.4).float()  # ragged end
    per_epoch = -(-rows.shape[0] // batch)
    lrs = [1e-3, 4e-3, 1e-2]
    for _ in range(2):
        _torch_epoch(a, rows, batch, lrs, loss)
        _native_epoch(kernels, b, rows, batch, lrs, loss)
    assert torch.equal(a.steps, b.steps) and b.steps[0] == 2 * per_epoch
    assert not torch.equal(b.params, _population(arch, 3, seed=shape, prune=0.3).params)
    assert torch.allclose(a.params, b.params, atol=1e-5, rtol=0)
    assert torch.allclose(a.buffers["exp_avg"], b.buffers["exp_avg"], atol=1e-6, rtol=1e-4)
    dead = b.masks == 0
    assert bool(dead.any())
    assert bool((b.params[dead] == 0).all())  # pruned weights stay exactly zero
    assert bool(torch.isinf(b.buffers["exp_avg_sq"][dead]).all())


def test_native_steps_equal_independent_nn_and_torch_adam(kernels) -> None:
    """Three members, different learning rates, four steps each: the kernel against three
    independent ``nn.Linear`` autoencoders trained by ``torch.optim.Adam``."""
    arch = Architecture(24, (9, 3), (9,))
    n, lrs = 3, [1e-3, 3e-3, 1e-2]
    pop = _population(arch, n, seed=3)
    dims = [*arch.encoder_dims, *arch.decoder_dims[1:]]
    views = [(pop.encoders, i) for i in range(2)] + [(pop.decoders, i) for i in range(2)]
    refs = []
    for c in range(n):
        layers = [nn.Linear(i, o) for i, o in zip(dims[:-1], dims[1:])]
        with torch.no_grad():
            for lin, (stack, layer) in zip(layers, views):
                lin.weight.copy_(stack.weight(layer)[c].t())
                lin.bias.copy_(stack.bias(layer)[c])
        model = nn.Sequential(
            layers[0], nn.ReLU(), layers[1], nn.ReLU(), layers[2], nn.ReLU(), layers[3]
        )
        opt = torch.optim.Adam(model.parameters(), lr=lrs[c], betas=(0.5, 0.999), eps=1e-8)
        refs.append((layers, model, opt))
    rows = (torch.rand(20, 24, generator=torch.Generator().manual_seed(4)) < 0.5).float()
    _native_epoch(kernels, pop, rows, 5, lrs, "bce")
    for _, model, opt in refs:
        for s in range(0, 20, 5):
            opt.zero_grad()
            x = rows[s : s + 5]
            nn.functional.binary_cross_entropy_with_logits(model(x), x).backward()
            opt.step()
    for c, (layers, _, _) in enumerate(refs):
        for lin, (stack, layer) in zip(layers, views):
            assert torch.allclose(lin.weight.t(), stack.weight(layer)[c], atol=1e-5)
            assert torch.allclose(lin.bias, stack.bias(layer)[c], atol=1e-5)
    assert pop.steps.tolist() == [4.0] * n


def test_results_do_not_depend_on_threads(kernels) -> None:
    arch = Architecture(64, (16, 4), (16,))
    a = _population(arch, 5, seed=5, prune=0.2)
    b = a.clone()
    rows = (torch.rand(40, 64, generator=torch.Generator().manual_seed(5)) < 0.5).float()
    lrs = [1e-3 * (c + 1) for c in range(5)]
    _native_epoch(kernels, a, rows, 5, lrs, "bce", threads=1)
    _native_epoch(kernels, b, rows, 5, lrs, "bce", threads=3)
    for key in Population.BUFFERS:
        assert torch.equal(a.buffers[key], b.buffers[key])
    assert torch.equal(kernels.l1(a, rows, 1), kernels.l1(a, rows, 4))


@pytest.mark.parametrize("shape", range(len(SHAPES)))
def test_native_l1_matches_torch(kernels, shape: int) -> None:
    arch, _ = SHAPES[shape]
    pop = _population(arch, 4, seed=shape, prune=0.5)
    x = (torch.rand(300, arch.input_dim, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    with cpu_numerics(), torch.no_grad():
        got = kernels.l1(pop, x, 2)
        want = pop.l1(x)
    assert got.shape == (4,) and got.dtype == torch.float32
    assert torch.allclose(got, want, atol=1e-6, rtol=0)


def test_diverged_training_reaches_the_weights(kernels) -> None:
    """A NaN gradient makes NaN weights (as in torch), so divergence is detected, not hidden."""
    arch = Architecture(10, (4, 2), (4,))
    pop = _population(arch, 1, seed=0)
    rows = torch.full((5, 10), float("nan"))
    _native_epoch(kernels, pop, rows, 5, [1e-3], "bce")
    assert bool(torch.isnan(pop.params).any())


# -- in the engines -----------------------------------------------------------------------------
# the coevolution tests' tiny ring, with minibatches of 5 and pruning on (later keys win)
COEVO = [
    *TINY,
    "generations=4",
    "training.batch_size=5",
    "pruning.operator=random",
    "pruning.probability=0.5",
]


def test_engines_report_the_backend_and_threads_do_not_change_results(registry) -> None:
    runs = {
        (backend, threads): run(
            load_run_config(
                None, [*COEVO, f"compute.backend={backend}", f"compute.threads={threads}"], registry
            ),
            registry,
        )
        for backend, threads in [("native", 1), ("native", 3), ("torch", 1)]
    }
    one, three, plain = runs[("native", 1)], runs[("native", 3)], runs[("torch", 1)]
    assert one.extra["backend"] == "native" and plain.extra["backend"] == "torch"
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in one.history]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in three.history]
    assert torch.equal(one.population.params, three.population.params)
    # torch and native agree to rounding; selection may still take another path later on
    assert one.history[0]["selection_loss"] == pytest.approx(
        plain.history[0]["selection_loss"], abs=1e-6
    )
    canonical = [c for c in COEVO if not c.startswith(("engine", "coevolution"))]
    res = run(load_run_config(None, canonical, registry), registry)
    assert res.extra["backend"] == "native"


def test_auto_falls_back_and_native_fails_cleanly_without_a_compiler(tmp_path: Path) -> None:
    env = {**os.environ, "CC": str(tmp_path / "no-such-cc"), "EVOPRUNE_CACHE_DIR": str(tmp_path)}
    config = tmp_path / "run.toml"
    config.write_text("generations = 2\n[network]\nencoder = [8, 4]\n[training]\nbatch_size = 50\n")
    base = [sys.executable, "-m", "evoprune_core.cli", "run", str(config), "--quiet"]
    ok = subprocess.run(
        [*base, "--output", str(tmp_path / "out.json")], env=env, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert '"backend": "torch"' in (tmp_path / "out.json").read_text()
    warned = [ln for ln in ok.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warned) == 1 and "no C compiler" in warned[0] and "torch" in warned[0]
    bad = subprocess.run(
        [*base, "--set", "compute.backend=native"], env=env, capture_output=True, text=True
    )
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and "no C compiler" in lines[0] and "compute.backend" in lines[0]
    assert not list(tmp_path.glob("*.so"))


def test_resolve_compute_torch_needs_no_compiler() -> None:
    from evoprune_core.config import ComputeConfig

    comp = resolve_compute(ComputeConfig(backend="torch", threads=2))
    assert comp.backend == "torch" and comp.native is None and comp.threads == 2


def test_kernels_are_cached_on_disk(kernels) -> None:
    assert kernels.path.exists() and kernels.path.suffix == ".so"
    assert kernels.vector_width in (4, 8, 16)
    assert native.load() is kernels  # built once per process


@pytest.mark.parametrize("shape", range(len(SHAPES)))
def test_native_partner_epoch_matches_torch(kernels, shape: int) -> None:
    """The "selected and random" variant: same partners, same updates, pool untouched."""
    from evoprune_core.engines.coevolution import neighbourhoods

    arch, batch = SHAPES[shape]
    pool = _population(arch, 4, seed=shape + 10, prune=0.2)
    pool_before = pool.clone()
    a = pool.take([1, 2, 3, 0], [3, 0, 1, 2])
    b = a.clone()
    rows = (
        torch.rand(2 * batch + 1, arch.input_dim, generator=torch.Generator().manual_seed(3)) < 0.5
    ).float()
    lrs = [1e-3, 4e-3, 1e-2, 2e-3]
    nbr = neighbourhoods(4, 1)
    for trainer, pop in ((Trainer("bce"), a), (Trainer("bce", native=kernels, threads=2), b)):
        with cpu_numerics(), torch.no_grad():
            trainer.epoch_with_partners(
                pop, pool, nbr, rows, batch, lrs,
                torch.Generator().manual_seed(5), torch.Generator().manual_seed(6),
            )  # fmt: skip
    assert torch.equal(pool.params, pool_before.params)
    assert torch.equal(a.steps, b.steps) and b.steps[0] == pool.steps[1] + 3
    assert not torch.equal(b.params, pool.take([1, 2, 3, 0], [3, 0, 1, 2]).params)
    assert torch.allclose(a.params, b.params, atol=1e-5, rtol=0)
    assert bool((b.params[b.masks == 0] == 0).all())


@pytest.mark.parametrize("reset", [False, True])
def test_trainer_epochs_are_the_kernels_own_when_given_them(kernels, reset: bool) -> None:
    """``Trainer(native=...)`` runs both epochs in the kernels: bit-identical to calling them on
    the shuffled rows with the partners drawn per minibatch (torch's path agrees only to
    rounding here), ``reset_each_step`` passed on."""
    from evoprune_core.engines.coevolution import neighbourhoods

    arch, batch = SHAPES[1]
    pool = _population(arch, 4, seed=10, prune=0.2)
    rows = (
        torch.rand(41, arch.input_dim, generator=torch.Generator().manual_seed(7)) < 0.4
    ).float()
    lrs, adam = [1e-3, 4e-3, 1e-2, 2e-3], ("bce", (0.5, 0.999), 1e-8, 1)
    nbr, steps = neighbourhoods(4, 1), 4  # 41 rows in minibatches of 13
    trainer = Trainer("bce", native=kernels, reset_each_step=reset)
    got, want = pool.clone(), pool.clone()
    pair, pair_want = pool.take([1, 2, 3, 0], [3, 0, 1, 2]), pool.take([1, 2, 3, 0], [3, 0, 1, 2])
    with cpu_numerics(), torch.no_grad():
        trainer.epoch(got, rows, batch, lrs, torch.Generator().manual_seed(5))
        trainer.epoch_with_partners(
            pair, pool, nbr, rows, batch, lrs,
            torch.Generator().manual_seed(5), torch.Generator().manual_seed(6),
        )  # fmt: skip
        order = torch.randperm(41, generator=torch.Generator().manual_seed(5))
        kernels.train_epoch(want, rows[order], batch, lrs, *adam, reset_each_step=reset)
        gen = torch.Generator().manual_seed(6)
        partners = torch.stack(
            [nbr[torch.arange(4), torch.randint(0, 3, (2, 4), generator=gen)] for _ in range(4)]
        )
        kernels.train_epoch(
            pair_want, rows[order], batch, lrs, *adam,
            pool=pool, partners=partners, reset_each_step=reset,
        )  # fmt: skip
    for a, b in ((got, want), (pair, pair_want)):
        assert torch.equal(a.params, b.params) and torch.equal(
            a.buffers["exp_avg"], b.buffers["exp_avg"]
        )
        assert a.steps.tolist() == [1.0 if reset else float(steps)] * 4
    torch_pair = pool.take([1, 2, 3, 0], [3, 0, 1, 2])
    with cpu_numerics(), torch.no_grad():
        Trainer("bce", reset_each_step=reset).epoch_with_partners(
            torch_pair, pool, nbr, rows, batch, lrs,
            torch.Generator().manual_seed(5), torch.Generator().manual_seed(6),
        )  # fmt: skip
    assert torch.allclose(torch_pair.params, pair.params, atol=1e-5, rtol=0)
    assert not torch.equal(torch_pair.params, pair.params)


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86-64 instruction sets")
@pytest.mark.parametrize("march", ["x86-64-v3", "x86-64"])  # AVX2 (8 lanes), SSE2 (4 lanes)
def test_narrower_simd_builds_match_torch(march: str) -> None:
    """The kernels built for older CPUs (exact Adam, narrower vectors) train and evaluate alike."""
    k = native.build(march)
    assert k.vector_width == (8 if march == "x86-64-v3" else 4)
    for arch, batch in SHAPES[1:]:
        a = _population(arch, 3, seed=1, prune=0.3)
        b = a.clone()
        rows = (
            torch.rand(3 * batch + 2, arch.input_dim, generator=torch.Generator().manual_seed(7))
            < 0.4
        ).float()
        for _ in range(2):
            _torch_epoch(a, rows, batch, [1e-3, 4e-3, 1e-2], "bce")
            _native_epoch(k, b, rows, batch, [1e-3, 4e-3, 1e-2], "bce")
        assert torch.allclose(a.params, b.params, atol=1e-5, rtol=0)
        assert bool((b.params[b.masks == 0] == 0).all())
        with cpu_numerics():
            assert torch.allclose(k.l1(b, rows, 2), b.l1(rows), atol=1e-6, rtol=0)


# -- the C boundary ---------------------------------------------------------------------------
def test_abi_constants_are_pinned_and_match_the_library(kernels) -> None:
    """The loader's view of the boundary (pinned here) equals the library's, key by key."""
    want = native.abi_expected()
    assert want["version"] == 2 and want["max_layers"] == 32
    assert (want["loss.l1"], want["loss.mse"], want["loss.bce"]) == (0, 1, 2)
    if ctypes.sizeof(ctypes.c_void_p) == 8:  # 2 ints, 7 pointers, 4 ints, 3 floats, 1 int, ...
        assert want["sizeof.evp_train_args"] == 128 and want["evp_train_args.reset_each_step"] == 92
        assert want["evp_train_args.compact"] == 120
        assert want["sizeof.evp_l1_args"] == 48 and want["evp_l1_args.out"] == 40
    assert native.abi_mismatches(kernels.lib) == []
    query = kernels.lib.evp_abi
    assert query(b"vector_width") == kernels.vector_width
    assert query(b"no.such.key") == -1


def test_a_library_that_disagrees_is_refused(tmp_path: Path) -> None:
    """A build whose struct or constants differ from the loader's is refused at load time."""
    import shutil

    for name in ("kernels.c", "dense.h", "abi.h", "adam.h", "compact.h"):
        shutil.copy(native.SOURCE.with_name(name), tmp_path / name)
    abi = (tmp_path / "abi.h").read_text()
    (tmp_path / "abi.h").write_text(
        abi.replace("#define MAX_LAYERS 32", "#define MAX_LAYERS 16").replace(
            "    int32_t reset_each_step;", "    int32_t extra;\n    int32_t reset_each_step;"
        )
    )
    so = tmp_path / "k.so"
    cc = os.environ.get("CC", "cc")
    subprocess.run(
        [cc, *native.FLAGS, "-I", str(tmp_path), str(tmp_path / "kernels.c"), "-o", str(so), "-lm"],
        check=True,
    )
    lib = ctypes.CDLL(str(so))
    bad = native.abi_mismatches(lib)
    assert "max_layers: library 16 != loader 32" in bad
    assert "evp_train_args.reset_each_step: library 96 != loader 92" in bad
    with pytest.raises(native.NativeUnavailable, match="does not match this loader"):
        native.NativeKernels(lib, so)
