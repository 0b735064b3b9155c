"""Population: shapes, batched forward, persistent masks, sparsity, compact export, save/load."""

from __future__ import annotations

import pickle
from fractions import Fraction

import pytest
import torch
from torch import Tensor

from evoprune_core.engines.steps import Trainer
from evoprune_core.population import Architecture, Population, Stack, compact


def _pop(n: int = 3, arch: Architecture | None = None, seed: int = 0) -> Population:
    arch = arch or Architecture(20, (8, 4), (8,))
    return Population.create(arch, n, torch.Generator().manual_seed(seed))


def test_presets_have_the_published_parameter_counts() -> None:
    assert Architecture.from_preset("standard", 1000).n_params == 61_670
    assert Architecture.from_preset("small", 1000).n_params == 61_182
    assert Architecture.from_preset("large", 1000).n_params == 125_390


def test_batched_forward_equals_each_member_alone() -> None:
    pop = _pop(4)
    x = torch.rand(6, 20)
    together = pop.reconstruct(x)
    for i in range(4):
        alone = pop.take([i]).reconstruct(x)[0]
        torch.testing.assert_close(together[i], alone, rtol=0, atol=1e-6)
    assert together.shape == (4, 6, 20)


def test_pair_l1_matches_a_loop_over_pairs() -> None:
    pop = _pop(3)
    x = torch.rand(5, 20)
    matrix = pop.pair_l1(x)
    for e in range(3):
        for d in range(3):
            want = (pop.take([e], [d]).reconstruct(x)[0] - x).abs().mean()
            assert matrix[e, d].item() == pytest.approx(want.item(), abs=1e-6)


def test_masks_persist_through_100_training_steps() -> None:
    pop = _pop(2)
    keep = (torch.rand(pop.masks.shape, generator=torch.Generator().manual_seed(1)) > 0.3).float()
    pop.prune(keep)
    pruned = pop.masks == 0
    assert pruned.any()
    trainer = Trainer("bce")
    grad = torch.empty_like(pop.params)
    x = (torch.rand(100, 20, generator=torch.Generator().manual_seed(2)) < 0.5).float()
    before = pop.params.clone()
    for s in range(100):
        trainer.step(pop, x[s % 20 * 5 : s % 20 * 5 + 5], [1e-2, 3e-2], grad)
    assert torch.count_nonzero(pop.params[pruned]) == 0
    assert torch.equal(pop.masks == 0, pruned)  # masks never grow back
    assert not torch.equal(pop.params[~pruned], before[~pruned])  # the rest did train


def test_prune_members_only_touches_those_members() -> None:
    pop = _pop(3)
    keep = torch.zeros(1, pop.params.shape[1])
    pop.prune(keep, [1])
    assert pop.masks[1].sum() == 0 and pop.params[1].abs().sum() == 0
    assert pop.masks[0].sum() == pop.masks.shape[1] and pop.masks[2].sum() == pop.masks.shape[1]


def test_sparsity_counts_alive_entries_per_layer_and_part() -> None:
    arch = Architecture(20, (8, 4), (8,))
    pop = _pop(1, arch)
    enc0_w = pop.encoders.weight(0, pop.encoders.masks)
    enc0_w[0, :, :3] = 0  # three output units lose all 20 inputs -> 60 weights
    dec1_b = pop.decoders.bias(1, pop.decoders.masks)
    dec1_b[0, :5] = 0  # five output biases
    pop.prune(torch.ones_like(pop.masks))  # re-apply mask side effects
    sp = pop.sparsity(0)
    assert sp.layers["encoder.0"] == (20 * 8 + 8 - 60, 20 * 8 + 8)
    assert sp.layers["decoder.1"] == (8 * 20 + 20 - 5, 8 * 20 + 20)
    assert sp.whole == (arch.n_params - 65, arch.n_params)
    assert sp.fraction() == pytest.approx((arch.n_params - 65) / arch.n_params)


def test_compact_removes_dead_units_and_keeps_outputs_identical() -> None:
    pop = _pop(2, Architecture(20, (10, 4), (9,)))
    # member 1: kill hidden units 0-3 of encoder.0 (incoming + bias) and unit 2 of decoder.0
    m = pop.masks
    em, dm = pop.encoders.masks, pop.decoders.masks
    pop.encoders.weight(0, em)[1, :, :4] = 0
    pop.encoders.bias(0, em)[1, :4] = 0
    pop.decoders.weight(0, dm)[1, :, 2] = 0
    pop.decoders.bias(0, dm)[1, 2] = 0
    # and random unstructured pruning elsewhere
    g = torch.Generator().manual_seed(3)
    pop.prune((torch.rand(m.shape, generator=g) > 0.2).float() * m.clone())
    net = pop.compact(1)
    assert net.encoder[0].out_features <= 6  # four dead units removed (more if others died)
    assert net.decoder[0].out_features <= 8
    assert net.n_params() < pop.arch.n_params
    x = torch.rand(7, 20)
    torch.testing.assert_close(net(x), pop.reconstruct(x)[1], rtol=0, atol=1e-6)


def test_save_and_load_round_trip(tmp_path) -> None:
    pop = _pop(2)
    pop.prune(
        (torch.rand(pop.masks.shape, generator=torch.Generator().manual_seed(4)) > 0.5).float()
    )
    path = tmp_path / "pop.pt"
    pop.save(path)
    back = Population.load(path)
    assert back.arch == pop.arch
    assert torch.equal(back.params, pop.params) and torch.equal(back.masks, pop.masks)
    assert torch.equal(back.steps, pop.steps)
    x = torch.rand(3, 20)
    assert torch.equal(back.reconstruct(x), pop.reconstruct(x))
    assert not (tmp_path / "pop.pt.tmp").exists()


def test_take_copies_state_so_the_original_is_untouched() -> None:
    pop = _pop(3)
    pop.steps.copy_(torch.tensor([1.0, 2.0, 3.0]))
    before = pop.clone()
    sub = pop.take([2, 2], [0, 1])
    for key in Population.BUFFERS:  # write into every buffer of the copy
        sub.buffers[key].add_(1.0)
    sub.steps.add_(1.0)
    for key in Population.BUFFERS:
        assert torch.equal(pop.buffers[key], before.buffers[key]), key
    assert torch.equal(pop.steps, before.steps)
    assert sub.steps.tolist() == [4.0, 4.0]  # encoder 2's count, plus the write
    split = pop.encoders.size
    fresh = pop.take([2, 2], [0, 1])
    assert torch.equal(fresh.params[0, :split], pop.params[2, :split])
    assert torch.equal(fresh.params[1, split:], pop.params[1, split:])


def test_take_into_out_reuses_its_buffers_and_swap_exchanges_state() -> None:
    pop = _pop(3)
    pop.steps.copy_(torch.tensor([1.0, 2.0, 3.0]))
    for key in Population.BUFFERS:
        pop.buffers[key].add_(torch.arange(3.0).unsqueeze(1))  # rows told apart everywhere
    out = _pop(2, seed=5)
    ptrs = {k: out.buffers[k].data_ptr() for k in Population.BUFFERS}
    got = pop.take([2, 0], [1, 1], out=out)
    want = pop.take([2, 0], [1, 1])
    assert got is out
    for key in Population.BUFFERS:
        assert torch.equal(out.buffers[key], want.buffers[key]), key
        assert out.buffers[key].data_ptr() == ptrs[key], key  # written in place
    assert out.steps.tolist() == [3.0, 1.0]
    # the stacks are views of the same buffers: a forward pass sees the copies
    assert torch.equal(out.reconstruct(torch.ones(1, 20)), want.reconstruct(torch.ones(1, 20)))
    for bad in (_pop(3, seed=5), pop, _pop(2, Architecture(20, (8, 5), (8,)))):
        with pytest.raises(ValueError, match="^out: need another Population of 2 members"):
            pop.take([2, 0], [1, 1], out=bad)
    # swap: every member's state changes sides, buffers and views together
    a, b = _pop(3, seed=1), _pop(3, seed=2)
    a0, b0 = a.clone(), b.clone()
    b.steps.fill_(7.0)
    a.swap(b)
    assert torch.equal(a.params, b0.params) and torch.equal(b.params, a0.params)
    assert a.steps.tolist() == [7.0] * 3 and b.steps.tolist() == [0.0] * 3
    assert torch.equal(a.reconstruct(torch.ones(1, 20)), b0.reconstruct(torch.ones(1, 20)))
    with pytest.raises(ValueError, match="^out: need another Population of 3 members"):
        a.swap(_pop(2))


def test_invalid_architecture_is_a_config_error() -> None:
    from evoprune_core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"widths must be >= 1, latent required$"):
        Architecture(10, (), (5,))
    for bad in ((0, (1,), ()), (3, (0,), ()), (3, (2,), (0,))):
        with pytest.raises(ConfigError, match="invalid architecture"):
            Architecture(*bad)
    assert Architecture(1, (1,), ()).n_params == 4  # width 1 everywhere is allowed: 2 + 2
    with pytest.raises(ConfigError, match="allowed: standard, small, large"):
        Architecture.from_preset("huge", 10)


def test_compact_removes_exactly_the_dead_units_and_defaults_to_member_0() -> None:
    arch = Architecture(4, (3, 2), (3,))  # 4 -> 3 -> 2 -> 3 -> 4: 15 + 8 + 9 + 16 = 48 entries
    pop = _pop(2, arch)
    em = pop.encoders.masks
    pop.encoders.weight(0, em)[1, :, 0] = 0  # member 1, unit 0 of encoder.0: no input, no bias
    pop.encoders.bias(0, em)[1, 0] = 0
    pop.encoders.weight(1, em)[1, 1, :] = 0  # unit 1 of encoder.0: nothing reads it
    pop.prune(torch.ones_like(pop.masks))
    net = pop.compact(1)
    assert [(m.in_features, m.out_features) for m in (net.encoder[0], net.encoder[2])] == [
        (4, 1),
        (1, 2),
    ]
    assert net.n_params() == 5 + 4 + 9 + 16
    x = torch.rand(5, 4, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(net(x), pop.reconstruct(x)[1], rtol=0, atol=1e-6)
    # without a member, member 0 (unpruned) is exported, by the method and the function alike
    assert pop.compact().n_params() == compact(pop).n_params() == 48


def test_sparsity_as_dict_is_exact() -> None:
    pop = _pop(1, Architecture(2, (1,), ()))  # encoder 2 -> 1 (3 entries), decoder 1 -> 2 (4)
    pop.encoders.weight(0, pop.encoders.masks)[0, 0, 0] = 0
    pop.prune(torch.ones_like(pop.masks))
    assert pop.sparsity().as_dict() == {
        "remaining_fraction": 6 / 7,
        "encoder_remaining_fraction": 2 / 3,
        "decoder_remaining_fraction": 1.0,
        "layers": {"encoder.0": {"alive": 2, "total": 3}, "decoder.0": {"alive": 4, "total": 4}},
    }


def test_load_refuses_a_file_with_arbitrary_pickled_objects(tmp_path) -> None:
    state = _pop(1).state_dict()
    state["note"] = Fraction(1, 3)  # not a tensor or a plain container: needs full unpickling
    path = tmp_path / "pop.pt"
    torch.save(state, path)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        Population.load(path)


def test_stack_standalone_has_its_own_alive_zero_buffers() -> None:
    s = Stack.standalone((3, 2, 1), "sigmoid", 4)  # 3 * 2 + 2 + 2 * 1 + 1 = 11 entries
    assert (s.final, s.n, s.size, s.dims) == ("sigmoid", 4, 11, (3, 2, 1))
    assert torch.equal(s.masks, torch.ones(4, 11))
    for t in (s.params, s.exp_avg, s.exp_avg_sq):
        assert torch.equal(t, torch.zeros(4, 11))
    assert [(w, b, wa.tolist(), ba.tolist()) for w, b, wa, ba in s.layer_counts()] == [
        (6, 2, [6.0] * 4, [2.0] * 4),
        (2, 1, [2.0] * 4, [1.0] * 4),
    ]


def test_stack_take_keeps_the_final_activation_and_copies_members() -> None:
    pop = _pop(3)
    sub = pop.decoders.take([2, 0])
    assert (sub.final, sub.dims, sub.n) == ("sigmoid", pop.decoders.dims, 2)
    assert torch.equal(sub.params, pop.decoders.params[[2, 0]])
    sub.params.add_(1.0)
    assert not torch.equal(sub.params, pop.decoders.params[[2, 0]])


def test_remaining_fractions_and_sparsity_default_are_per_member() -> None:
    pop = _pop(2, Architecture(2, (1,), ()))  # encoder 3 entries, decoder 4
    pop.prune(torch.tensor([[1.0] * 7, [0, 1, 1, 0, 0, 1, 1]]))
    fr = pop.remaining_fractions()
    assert torch.equal(fr["encoder"], torch.tensor([1.0, 2 / 3]))  # float32 quotients
    assert torch.equal(fr["decoder"], torch.tensor([1.0, 0.5]))
    assert torch.equal(fr["whole"], torch.tensor([1.0, 4 / 7]))
    assert pop.sparsity().whole == (7, 7) and pop.sparsity(1).whole == (4, 7)


def test_prune_zeroes_weights_and_first_moments_and_sets_second_moments_inf() -> None:
    pop = _pop(2, Architecture(2, (1,), ()))
    pop.buffers["exp_avg"].fill_(0.5)
    pop.buffers["exp_avg_sq"].fill_(0.25)
    pop.prune(torch.tensor([[0, 1, 1, 1, 1, 1, 0]], dtype=torch.float32), [1])
    dead = torch.zeros(2, 7, dtype=torch.bool)
    dead[1, 0] = dead[1, 6] = True
    assert torch.equal(pop.masks, (~dead).float())
    assert torch.equal(pop.params == 0, dead)
    assert torch.equal(pop.buffers["exp_avg"], torch.where(dead, 0.0, 0.5))
    assert torch.equal(pop.buffers["exp_avg_sq"], torch.where(dead, float("inf"), 0.25))


@pytest.mark.parametrize("part", ["encoder", "decoder"])
def test_adam_step_of_one_part_leaves_the_other_part_alone(part: str) -> None:
    pop = _pop(2)
    before = pop.clone()
    split = pop.encoders.size
    pop.adam_step(torch.ones_like(pop.params), torch.tensor([0.1, 0.2]), (0.9, 0.999), 1e-8, part)
    mine, other = (slice(0, split), slice(split, None))[:: 1 if part == "encoder" else -1]
    assert torch.equal(pop.params[:, other], before.params[:, other])
    # Adam's first step moves every entry by lr * g / (|g| + eps): 0.1 and 0.2 here
    moved = (before.params[:, mine] - pop.params[:, mine]).mean(1)
    assert moved.tolist() == pytest.approx([0.1, 0.2], rel=1e-5)
    assert pop.steps.tolist() == [1.0, 1.0]


def _member_grads(s: Stack, x: Tensor, g: Tensor) -> tuple[Tensor, Tensor]:
    """Autograd reference: input gradient (N, B, in) and parameter gradient (N, P) of
    ``sum(forward(x) * g)``, member by member."""
    gx, gp = [], []
    for m in range(s.n):
        p = s.params[m].clone().requires_grad_(True)
        xm = x[m].clone().requires_grad_(True)
        h = xm
        for layer in range(s.n_layers):
            a, b, c = s.offsets[layer]
            w = p[a:b].view(s.dims[layer], s.dims[layer + 1])
            h = h @ w + p[b:c]
            if layer < s.n_layers - 1:
                h = torch.relu(h)
        (h * g[m]).sum().backward()
        gx.append(xm.grad)
        gp.append(p.grad)
    return torch.stack(gx), torch.stack(gp)


def test_stack_backward_matches_autograd_and_its_return_contract() -> None:
    s = Stack.standalone((3, 4, 2), "relu", 2)
    s.init_(torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 5, 3, generator=gen)  # negative inputs: no ReLU on the input itself
    g = torch.randn(2, 5, 2, generator=gen)
    ref_x, ref_p = _member_grads(s, x, g)
    cache: list[Tensor] = []
    s.forward(x, cache)
    out = torch.zeros(2, s.size)
    assert s.backward(cache, g, out) is None  # no input gradient unless asked
    torch.testing.assert_close(out, ref_p, rtol=1e-5, atol=1e-6)
    assert s.backward(cache, g, out, input_grad=False) is None
    gx = s.backward(cache, g, out, input_grad=True)
    torch.testing.assert_close(gx, ref_x, rtol=1e-5, atol=1e-6)
    frozen = s.backward(cache, g, None, input_grad=True)  # no parameter gradients formed
    torch.testing.assert_close(frozen, ref_x, rtol=1e-5, atol=1e-6)
    # a second buffer at the same address with another row stride gets its own views
    big = torch.zeros(2, 2 * s.size)
    s.backward(cache, g, big[:, : s.size])
    packed = big.view(-1)[: 2 * s.size].view(2, s.size)
    packed.zero_()
    s.backward(cache, g, packed)
    torch.testing.assert_close(packed, ref_p, rtol=1e-5, atol=1e-6)


def test_population_stacks_know_their_final_activation() -> None:
    pop = _pop(1)
    assert (pop.encoders.final, pop.decoders.final) == ("relu", "sigmoid")
    assert (pop.encoders.dims, pop.decoders.dims) == ((20, 8, 4), (4, 8, 20))
