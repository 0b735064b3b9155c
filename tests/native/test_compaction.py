"""The kernels train and evaluate each member without its structurally dead hidden units.

A hidden unit whose incoming weights and bias are all pruned outputs relu(0) = 0 on every row;
the kernels drop it from the member's working copy (the compact geometry is exactly the network
without those units) and give the removed entries that still move - unpruned outgoing weights,
first moments not yet 0 - the epoch's zero-gradient Adam updates afterwards. Tolerance: the
compacted epoch equals the uncompacted one up to the order of a few float sums; after two
epochs the weights agree within 1e-5 and the first moments within 1e-6 + 1e-4 relative, the
same bounds as the native kernels against torch (tests/test_native.py).
"""

from __future__ import annotations

import pytest
import torch

from evoprune_core import native
from evoprune_core.engines.runtime import cpu_numerics
from evoprune_core.population import Architecture, Population

LRS = [1e-2, 3e-3, 1e-3]


@pytest.fixture(scope="module")
def kernels() -> native.NativeKernels:
    return native.load()


def _boundaries(arch: Architecture) -> list[int]:
    """Widths of the whole network, input first (encoder then decoder)."""
    return [*arch.encoder_dims, *arch.decoder_dims[1:]]


def _layer_views(pop: Population, buffer: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(weight (N, in, out), bias (N, out)) views of every layer of ``buffer``, in order."""
    out = []
    split = pop.encoders.size
    for stack, cols in ((pop.encoders, slice(0, split)), (pop.decoders, slice(split, None))):
        buf = pop.buffers[buffer][:, cols]
        out += [(stack.weight(i, buf), stack.bias(i, buf)) for i in range(stack.n_layers)]
    return out


def _kill_units(pop: Population, dead: dict[int, list[int]]) -> None:
    """Prune the incoming weights and bias of units ``dead[boundary]`` of every member."""
    keep = torch.ones_like(pop.masks)
    split = pop.encoders.size
    views = []
    for stack, cols in ((pop.encoders, slice(0, split)), (pop.decoders, slice(split, None))):
        views += [
            (stack.weight(i, keep[:, cols]), stack.bias(i, keep[:, cols]))
            for i in range(stack.n_layers)
        ]
    for boundary, units in dead.items():
        w, b = views[boundary - 1]
        w[:, :, units] = 0.0
        b[:, units] = 0.0
    pop.prune(keep)


def _narrow(pop: Population, dead: dict[int, list[int]]) -> tuple[Population, list[list[int]]]:
    """The same members with the dead units physically removed (and the kept unit indices)."""
    widths = _boundaries(pop.arch)
    kept = [[u for u in range(w) if u not in dead.get(b, [])] for b, w in enumerate(widths)]
    enc_layers = len(pop.arch.encoder)
    sizes = [len(k) for k in kept]
    arch = Architecture(
        pop.arch.input_dim, tuple(sizes[1 : enc_layers + 1]), tuple(sizes[enc_layers + 1 : -1])
    )
    small = Population.create(arch, pop.n, torch.Generator().manual_seed(0))
    for key in Population.BUFFERS:
        for layer, ((w, b), (sw, sb)) in enumerate(
            zip(_layer_views(pop, key), _layer_views(small, key))
        ):
            rows, cols = kept[layer], kept[layer + 1]
            sw.copy_(w[:, rows][:, :, cols])
            sb.copy_(b[:, cols])
    small.steps.copy_(pop.steps)
    return small, kept


def _epochs(k, pop, rows, loss, epochs=2, compact=True, threads=1, reset=False) -> None:  # noqa: ANN001
    with cpu_numerics(), torch.no_grad():
        for _ in range(epochs):
            k.train_epoch(
                pop, rows, 5, LRS[: pop.n], loss, (0.5, 0.999), 1e-8, threads,
                reset_each_step=reset, compact=compact,
            )  # fmt: skip


# boundaries 40 | 12 | 36 | 20 | 40; the latent's dead units move the others to other SIMD lanes
ARCH = Architecture(40, (12, 36), (20,))
DEAD = {1: [0, 3, 4, 5, 11], 2: [1, 2, 5, 17, 20, 30, 33], 3: [1, 2, 3, 4, 5, 6, 7, 19]}


def _setup(seed: int = 1) -> tuple[Population, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    pop = Population.create(ARCH, 3, gen)
    pop.prune((torch.rand(3, ARCH.n_params, generator=gen) >= 0.2).float())  # scattered too
    _kill_units(pop, DEAD)
    rows = (torch.rand(23, ARCH.input_dim, generator=gen) < 0.4).float()  # ragged last batch
    return pop, rows


@pytest.mark.parametrize("loss", ["bce", "l1", "mse"])
def test_compacted_epoch_is_the_narrow_network_bit_for_bit(kernels, loss: str) -> None:
    pop, rows = _setup()
    small, kept = _narrow(pop, DEAD)
    _epochs(kernels, pop, rows, loss)
    _epochs(kernels, small, rows, loss)
    assert torch.equal(pop.steps, small.steps) and pop.steps.tolist() == [10.0] * 3
    for key in ("params", "exp_avg", "exp_avg_sq"):
        for layer, ((w, b), (sw, sb)) in enumerate(
            zip(_layer_views(pop, key), _layer_views(small, key))
        ):
            assert torch.equal(w[:, kept[layer]][:, :, kept[layer + 1]], sw), (key, layer)
            assert torch.equal(b[:, kept[layer + 1]], sb), (key, layer)


@pytest.mark.parametrize("loss", ["bce", "l1", "mse"])
def test_compacted_epoch_matches_the_uncompacted_one(kernels, loss: str) -> None:
    a, rows = _setup()
    # first moments of the dead units' pruned inputs not yet 0 (a unit that died at the last
    # event keeps them): they decay under the zero gradient, in both runs
    _layer_views(a, "exp_avg")[0][0][:, :, DEAD[1]] = 1e-3
    b = a.clone()
    outgoing = _layer_views(a, "params")[1][0][:, DEAD[1]].clone()
    _epochs(kernels, a, rows, loss, compact=True)
    _epochs(kernels, b, rows, loss, compact=False)
    assert torch.equal(a.steps, b.steps)
    torch.testing.assert_close(a.params, b.params, atol=1e-5, rtol=0)
    torch.testing.assert_close(a.buffers["exp_avg"], b.buffers["exp_avg"], atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(
        a.buffers["exp_avg_sq"], b.buffers["exp_avg_sq"], atol=1e-9, rtol=1e-4
    )
    dead = a.masks == 0
    assert bool((a.params[dead] == 0).all()) and bool(a.buffers["exp_avg_sq"][dead].isinf().all())
    # the dead units' outgoing weights start without momentum and get zero gradients: unmoved
    assert torch.equal(_layer_views(a, "params")[1][0][:, DEAD[1]], outgoing)
    decayed = _layer_views(a, "exp_avg")[0][0][:, :, DEAD[1]]
    assert torch.equal(decayed, torch.full_like(decayed, 1e-3 * 0.5**10))  # 10 steps, b1 = 0.5


def test_lazy_updates_of_moving_outgoing_weights_match(kernels) -> None:
    """Units that die after training: their outgoing weights carry momentum that keeps moving
    them for a few steps after the unit is gone - the same steps with and without compaction."""
    gen = torch.Generator().manual_seed(4)
    a = Population.create(ARCH, 3, gen)
    rows = (torch.rand(23, ARCH.input_dim, generator=gen) < 0.4).float()
    _epochs(kernels, a, rows, "bce", epochs=1)  # moments everywhere
    _kill_units(a, DEAD)
    b = a.clone()
    before = _layer_views(a, "params")[1][0][:, DEAD[1]].clone()
    _epochs(kernels, a, rows, "bce", compact=True)
    _epochs(kernels, b, rows, "bce", compact=False)
    after = _layer_views(a, "params")[1][0][:, DEAD[1]]
    assert not torch.equal(after, before)  # momentum moved them
    torch.testing.assert_close(after, _layer_views(b, "params")[1][0][:, DEAD[1]])
    torch.testing.assert_close(a.params, b.params, atol=1e-5, rtol=0)
    torch.testing.assert_close(a.buffers["exp_avg"], b.buffers["exp_avg"], atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(
        a.buffers["exp_avg_sq"], b.buffers["exp_avg_sq"], atol=1e-9, rtol=1e-4
    )


def test_compaction_with_a_fresh_adam_per_step_and_any_thread_count(kernels) -> None:
    a, rows = _setup(seed=2)
    b, c = a.clone(), a.clone()
    _epochs(kernels, a, rows, "bce", epochs=1, reset=True, threads=1)
    _epochs(kernels, b, rows, "bce", epochs=1, reset=True, threads=2)
    _epochs(kernels, c, rows, "bce", epochs=1, reset=True, compact=False)
    for key in ("params", "exp_avg", "exp_avg_sq"):
        assert torch.equal(a.buffers[key], b.buffers[key])  # thread count: bit for bit
    torch.testing.assert_close(a.params, c.params, atol=1e-5, rtol=0)
    removed_out = _layer_views(a, "exp_avg_sq")[1][0][:, DEAD[1]]
    pruned = _layer_views(a, "masks")[1][0][:, DEAD[1]] == 0
    # a fresh Adam at every step: the unpruned removed entries' moments end at 0, pruned: +inf
    assert bool((removed_out[~pruned] == 0).all()) and bool(removed_out[pruned].isinf().all())


def test_a_layer_with_every_unit_dead_keeps_one(kernels) -> None:
    gen = torch.Generator().manual_seed(6)
    a = Population.create(ARCH, 2, gen)
    _kill_units(a, {2: list(range(36))})  # the whole latent
    rows = (torch.rand(12, ARCH.input_dim, generator=gen) < 0.4).float()
    b = a.clone()
    _epochs(kernels, a, rows, "l1", compact=True)
    _epochs(kernels, b, rows, "l1", compact=False)
    torch.testing.assert_close(a.params, b.params, atol=1e-6, rtol=0)
    with cpu_numerics():
        got = kernels.l1(a, rows, 1)
    assert torch.allclose(got, a.l1(rows), atol=1e-6, rtol=0)


def test_l1_without_dead_units_is_exact(kernels) -> None:
    pop, rows = _setup(seed=3)
    small, _ = _narrow(pop, DEAD)
    with cpu_numerics():
        wide_l1 = kernels.l1(pop, rows, 2)
        narrow_l1 = kernels.l1(small, rows, 1)
    assert torch.equal(wide_l1, narrow_l1)
    assert torch.allclose(wide_l1, pop.l1(rows), atol=1e-6, rtol=0)


def test_rows_from_a_view_at_any_offset(kernels) -> None:
    """Rows whose width needs no padding are used in place only when 64-byte aligned: a view
    starting one float in (a split of a larger tensor) is copied, not read misaligned - the
    output-major first layer (8 units, half a vector) loads whole vectors of each row."""
    arch = Architecture(48, (8, 4), (8,))  # 48 inputs: no padding on any SIMD width
    gen = torch.Generator().manual_seed(8)
    a = Population.create(arch, 2, gen)
    b = a.clone()
    big = (torch.rand(31 * 48 + 1, generator=gen) < 0.4).float()
    view = big[1:].view(31, 48)  # starts 4 bytes into big's storage
    assert view.data_ptr() % 64 != 0
    copy = view.clone()
    _epochs(kernels, a, view, "bce", epochs=1)
    _epochs(kernels, b, copy, "bce", epochs=1)
    assert torch.equal(a.params, b.params)
    with cpu_numerics():
        assert torch.equal(kernels.l1(a, view, 2), kernels.l1(a, copy, 2))
