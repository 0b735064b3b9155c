"""Conv autoencoder populations: maths against torch.nn per member, masks, export, determinism."""

from __future__ import annotations

import pytest
import torch

from evoprune_core.engines.steps import Trainer, loss_value
from evoprune_core.errors import ConfigError
from evoprune_core.population import ConvArchitecture, ConvPopulation

ARCH = ConvArchitecture.from_preset("conv-small", (1, 8, 8))


def make(n: int = 3, seed: int = 0) -> ConvPopulation:
    return ConvPopulation.create(ARCH, n, torch.Generator().manual_seed(seed))


def rows(b: int, seed: int) -> torch.Tensor:
    return torch.rand(b, 64, generator=torch.Generator().manual_seed(seed))


def modules(pop: ConvPopulation, m: int) -> torch.nn.Sequential:
    return torch.nn.Sequential(pop.encoders.to_module(m), pop.decoders.to_module(m))


def test_presets_shapes_and_parameter_counts() -> None:
    assert ARCH.latent_shape == (10,)
    # conv 1->8 (3x3), conv 8->16, dense 64->10 | dense 10->64, convT 16->8, convT 8->1
    enc = 8 * 9 + 8 + 16 * 8 * 9 + 16 + 64 * 10 + 10
    dec = 10 * 64 + 64 + 16 * 8 * 9 + 8 + 8 * 9 + 1
    assert (ARCH.encoder_size, ARCH.n_params) == (enc, enc + dec)
    big = ConvArchitecture.from_preset("conv-standard", (1, 28, 28))
    assert big.latent_shape == (32,) and big.describe()["decoder"][2] == {
        "kind": "unflatten",
        "shape": [32, 7, 7],
    }


@pytest.mark.parametrize(
    ("preset", "shape", "message"),
    [
        ("conv-small", (64,), "takes (c, h, w) images; the dataset's samples are flat rows"),
        ("conv-small", (1, 27, 27), "height and width are multiples of 4 (got (1, 27, 27))"),
        ("conv-huge", (1, 8, 8), "unknown 'conv-huge'; allowed: conv-small, conv-standard"),
    ],
)
def test_presets_refuse_shapes_they_cannot_take(preset, shape, message) -> None:
    with pytest.raises(ConfigError) as info:
        ConvArchitecture.from_preset(preset, shape)
    assert str(info.value).startswith("network.preset: ") and message in str(info.value)


def test_reconstruction_and_gradients_match_torch_nn_per_member() -> None:
    pop = make()
    x = rows(6, 1)
    y = pop.reconstruct(x)
    grad = torch.zeros_like(pop.params)
    value = pop.gradients(x, lambda z, t: loss_value(z, t, "bce"), grad)
    split = pop.encoders.size
    for m in range(pop.n):
        net = modules(pop, m)
        logits = net(x.view(6, 1, 8, 8)).flatten(1)
        torch.testing.assert_close(y[m], torch.sigmoid(logits), rtol=0, atol=1e-6)
        ref = torch.nn.functional.binary_cross_entropy_with_logits(logits, x)
        torch.testing.assert_close(value[m], ref.detach(), rtol=1e-5, atol=1e-7)
        ref.backward()
        got = torch.cat(
            [
                grad[m, :split],
                grad[m, split:],
            ]
        )
        want = torch.cat([p.grad.flatten() for p in net.parameters()])
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-7)


def test_a_trainer_epoch_equals_per_member_adam_on_modules() -> None:
    pop = make(3, 2)
    data = rows(20, 3)
    nets = [modules(pop, m) for m in range(3)]
    lrs = [1e-3, 5e-3, 2e-2]
    trainer = Trainer("l1", (0.5, 0.999), 1e-8)
    gen = torch.Generator().manual_seed(4)
    order = torch.randperm(20, generator=torch.Generator().manual_seed(4))
    trainer.epoch(pop, data, 8, lrs, gen)
    shuffled = data[order]
    for net, lr in zip(nets, lrs):
        opt = torch.optim.Adam(net.parameters(), lr=lr, betas=(0.5, 0.999), eps=1e-8)
        for s in range(0, 20, 8):
            xb = shuffled[s : s + 8]
            opt.zero_grad()
            out = torch.sigmoid(net(xb.view(-1, 1, 8, 8)).flatten(1))
            (out - xb).abs().mean().backward()
            opt.step()
    assert pop.steps.tolist() == [3.0, 3.0, 3.0]
    for m, net in enumerate(nets):
        want = torch.cat([p.detach().flatten() for p in net.parameters()])
        torch.testing.assert_close(pop.params[m], want, rtol=0, atol=1e-5)


def test_pruned_channels_stay_zero_and_silent_through_an_epoch() -> None:
    pop = make(2, 5)
    keep = torch.ones_like(pop.params)
    enc_keep = keep[:, : pop.encoders.size]
    pop.encoders.weight(1, enc_keep)[0, 4] = 0  # channel 4 of the second conv, member 0
    pop.encoders.bias(1, enc_keep)[0, 4] = 0
    pop.prune(keep)
    before = pop.masks.clone()
    Trainer("bce").epoch(pop, rows(40, 6), 10, [1e-2, 1e-2], torch.Generator().manual_seed(7))
    assert torch.equal(pop.masks, before)
    assert float(pop.encoders.weight(1)[0, 4].abs().sum()) == 0.0
    assert float(pop.encoders.bias(1)[0, 4]) == 0.0
    acts = pop.activations(rows(5, 8))
    assert acts[1].shape == (2, 5, 16, 2, 2)
    assert float(acts[1][0, :, 4].abs().max()) == 0.0  # relu(0 + 0): exactly silent
    assert int((acts[1][0].abs().sum((0, 2, 3)) > 0).sum()) > 0  # the other channels work
    assert pop.encoders.channel_masks(1)[0].tolist() == [c != 4 for c in range(16)]


def test_same_seed_same_training_and_take_follows_networks() -> None:
    a, b = make(3, 9), make(3, 9)
    for p in (a, b):
        Trainer("bce").epoch(p, rows(30, 1), 8, [1e-3] * 3, torch.Generator().manual_seed(2))
    assert torch.equal(a.params, b.params) and torch.equal(
        a.buffers["exp_avg_sq"], b.buffers["exp_avg_sq"]
    )
    mixed = a.take([2, 0], [1, 1])
    split = a.encoders.size
    assert torch.equal(mixed.params[0, :split], a.params[2, :split])
    assert torch.equal(mixed.params[1, split:], a.params[1, split:])
    assert mixed.steps.tolist() == [a.steps[2].item(), a.steps[0].item()]
    into = b.take([0, 0])
    assert a.take([2, 0], [1, 1], out=into) is into
    assert torch.equal(into.params, mixed.params) and torch.equal(into.steps, mixed.steps)
    assert torch.equal(into.buffers["exp_avg_sq"], mixed.buffers["exp_avg_sq"])
    c = make(3, 4)
    a0, c0 = a.clone(), c.clone()
    a.swap(c)
    assert torch.equal(a.params, c0.params) and torch.equal(c.params, a0.params)
    assert torch.equal(c.steps, a0.steps) and float(a.steps.abs().sum()) == 0.0
    torch.testing.assert_close(a.l1(rows(7, 3)), c0.l1(rows(7, 3)), rtol=0, atol=0)
    with pytest.raises(ValueError, match="^out: need another ConvPopulation of 3 members"):
        a.swap(into)
    pairs = a.pair_l1(rows(7, 3))
    torch.testing.assert_close(pairs.diagonal(), a.l1(rows(7, 3)), rtol=1e-5, atol=1e-7)
    # only the listed pairings: decoder 2 with encoders 0 and 1, decoder 0 with 2 and 2
    listed = a.pairings_l1(rows(7, 3), torch.tensor([2, 0]), torch.tensor([[0, 1], [2, 2]]))
    want = torch.stack([pairs[[0, 1], 2], pairs[[2, 2], 0]])
    torch.testing.assert_close(listed, want, rtol=1e-5, atol=1e-7)


def test_compact_export_removes_dead_channels_and_keeps_the_output() -> None:
    pop = make(2, 11)
    keep = torch.ones_like(pop.params)
    split = pop.encoders.size
    ke, kd = keep[:, :split], keep[:, split:]
    enc, dec = pop.encoders, pop.decoders
    enc.weight(0, ke)[1, 2] = 0  # conv0 channel 2: no incoming weights, no bias
    enc.bias(0, ke)[1, 2] = 0
    enc.weight(1, ke)[1, :, 5] = 0  # conv0 channel 5: nobody reads it
    enc.weight(1, ke)[1, 3] = 0  # conv1 channel 3 (read by the dense layer through a flatten)
    enc.bias(1, ke)[1, 3] = 0
    dec.weight(0, kd)[1, :8] = 0  # dense units 0..7 = channels 0 and 1 of the unflatten
    dec.bias(0, kd)[1, :8] = 0
    dec.weight(1, kd)[1, :, 4] = 0  # convT0 output channel 4
    dec.bias(1, kd)[1, 4] = 0
    pop.prune(keep)
    net = pop.compact(1)
    convs = [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1, 6), (6, 15), (14, 7), (7, 1)]
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(60, 10), (10, 56)]
    x = rows(50, 12)
    torch.testing.assert_close(net(x), pop.reconstruct(x)[1], rtol=0, atol=1e-6)
    removed = ARCH.n_params - net.n_params()
    # conv0 8->6 filters: 2*(9+1); conv1 (16,8)->(15,6): 1168-825; dense in 64->60: 10*4;
    # dense out 64->56: 8*(10+1); convT0 (16,8)->(14,7): 1160-889; convT1 in 8->7: 9
    assert removed == 20 + 343 + 40 + 88 + 271 + 9
    # what is left is what the export keeps: every pruned entry lies in a removed slot, and
    # the alive ones there (channel 5's filter, the weights reading removed slots) not counted
    kept = ARCH.n_params - removed
    assert int(pop.masks[1].sum()) > kept  # the masks alone would count those as left
    sp = pop.sparsity(1)
    assert sp.encoder[0] + sp.decoder[0] == kept
    assert sum(alive for alive, _ in sp.layers.values()) == kept
    fr = pop.remaining_fractions()
    assert float(fr["whole"][1]) == pytest.approx(kept / ARCH.n_params, rel=1e-6)
    assert float(fr["whole"][0]) == 1.0 and float(fr["encoder"][0]) == 1.0
    assert float(fr["encoder"][1]) == pytest.approx(sp.encoder[0] / pop.encoders.size, rel=1e-6)
    untouched = pop.compact(0)
    assert untouched.n_params() == ARCH.n_params
    torch.testing.assert_close(untouched(x), pop.reconstruct(x)[0], rtol=0, atol=1e-6)


def test_save_and_load_round_trip(tmp_path) -> None:
    pop = make(2, 13)
    pop.save(tmp_path / "p.pt")
    back = ConvPopulation.load(tmp_path / "p.pt")
    assert back.arch == pop.arch
    for k in pop.BUFFERS:
        assert torch.equal(back.buffers[k], pop.buffers[k])


def test_to_bytes_is_what_save_writes_and_loads_back(tmp_path) -> None:
    # `evoprune run --save-model` writes a population's to_bytes(): conv populations too
    import io

    pop = make(2, 13)
    pop.save(tmp_path / "p.pt")
    data = pop.take([1]).to_bytes()
    assert pop.to_bytes() == (tmp_path / "p.pt").read_bytes()
    back = ConvPopulation.from_state_dict(torch.load(io.BytesIO(data), weights_only=True))
    assert back.n == 1
    for k in pop.BUFFERS:
        assert torch.equal(back.buffers[k][0], pop.buffers[k][1])
