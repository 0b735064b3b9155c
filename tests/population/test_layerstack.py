"""The batched layer stack against torch.nn modules and torch.optim.Adam, member by member."""

from __future__ import annotations

import pytest
import torch

from evoprune_core.errors import ConfigError
from evoprune_core.population import (
    LayerStack,
    activation,
    avg_pool2d,
    conv2d,
    conv_transpose2d,
    dense,
    flatten,
    infer_shapes,
    max_pool2d,
    unflatten,
)

# every kind of layer, both conv directions, both pools, both reshapes
SPECS = (
    conv2d(4, 3, 2, 1),
    activation("relu"),
    max_pool2d(2),
    conv2d(6, 3, 1, 1),
    activation("tanh"),
    flatten(),
    dense(12),
    activation("relu"),
    dense(6 * 2 * 2),
    unflatten(6, 2, 2),
    conv_transpose2d(3, 3, 2, 1, 1),
    activation("sigmoid"),
    avg_pool2d(2),
)
# the same with every conv strided: the im2col + bmm program (SPECS runs as grouped convs)
STRIDED = tuple(conv2d(6, 3, 2, 1) if s == conv2d(6, 3, 1, 1) else s for s in SPECS)
IN = (2, 8, 8)
N = 4
PROGRAMS = pytest.mark.parametrize("specs", [SPECS, STRIDED], ids=["grouped", "im2col"])


def make(seed: int = 0, specs: tuple = SPECS) -> LayerStack:
    st = LayerStack.standalone(specs, IN, N)
    st.init_(torch.Generator().manual_seed(seed))
    return st


def test_shapes_and_parameter_layout() -> None:
    assert infer_shapes(SPECS, IN) == [
        (4, 4, 4), (4, 4, 4), (4, 2, 2), (6, 2, 2), (6, 2, 2), (24,), (12,), (12,), (24,),
        (6, 2, 2), (3, 4, 4), (3, 4, 4), (3, 2, 2),
    ]  # fmt: skip
    st = make()
    assert [pl.weight_shape for pl in st.layers] == [
        (4, 2, 3, 3), (6, 4, 3, 3), (12, 24), (24, 12), (6, 3, 3, 3),
    ]  # fmt: skip
    assert [pl.act for pl in st.layers] == ["relu", "tanh", "relu", "identity", "sigmoid"]
    assert st.size == 72 + 4 + 216 + 6 + 288 + 12 + 288 + 24 + 162 + 3


@PROGRAMS
def test_forward_matches_torch_nn_per_member(specs) -> None:
    st = make(0, specs)
    assert st.im2col == (specs is STRIDED)
    x = torch.rand(5, *IN, generator=torch.Generator().manual_seed(1))
    shared = st.forward(x)
    xs = torch.rand(N, 5, *IN, generator=torch.Generator().manual_seed(2))
    own = st.forward(xs)
    assert shared.shape == own.shape == (N, 5, 3, 2, 2)
    for m in range(N):
        mod = st.to_module(m)
        torch.testing.assert_close(shared[m], mod(x), rtol=0, atol=1e-6)
        torch.testing.assert_close(own[m], mod(xs[m]), rtol=0, atol=1e-6)
    # the members differ (a bug stacking one member's filters for all would not)
    assert (shared[0] - shared[1]).abs().max() > 1e-3


@PROGRAMS
def test_gradients_match_autograd_of_each_module(specs) -> None:
    st = make(3, specs)
    x = torch.rand(6, *IN, generator=torch.Generator().manual_seed(4))
    target = torch.rand(6, 3, 2, 2, generator=torch.Generator().manual_seed(5))

    def loss(out: torch.Tensor) -> torch.Tensor:
        return (out - target).pow(2).mean((1, 2, 3, 4))

    grad = torch.zeros_like(st.params)
    value = st.value_and_grad(x, loss, grad)
    for m in range(N):
        mod = st.to_module(m)
        ref = (mod(x) - target).pow(2).mean()
        torch.testing.assert_close(value[m], ref.detach(), rtol=0, atol=1e-6)
        ref.backward()
        params = [p for p in mod.parameters()]
        for i in range(st.n_layers):
            torch.testing.assert_close(
                st.weight(i, grad)[m], params[2 * i].grad, rtol=1e-4, atol=1e-7
            )
            torch.testing.assert_close(
                st.bias(i, grad)[m], params[2 * i + 1].grad, rtol=1e-4, atol=1e-7
            )


def _train_modules(st: LayerStack, xs: list[torch.Tensor], lrs: list[float], fresh: bool):
    mods = [st.to_module(m) for m in range(N)]
    opts = [
        torch.optim.Adam(mod.parameters(), lr=lr, betas=(0.5, 0.999)) for mod, lr in zip(mods, lrs)
    ]
    for x in xs:
        for m, (mod, opt) in enumerate(zip(mods, opts)):
            if fresh:
                opt = torch.optim.Adam(mod.parameters(), lr=lrs[m], betas=(0.5, 0.999))
            opt.zero_grad()
            mod(x).sum(tuple(range(1, 4))).mean().backward()
            opt.step()
    return mods


@pytest.mark.parametrize("fresh", [False, True])
def test_adam_training_matches_separate_modules_with_own_adam(fresh: bool) -> None:
    st = make(6)
    gen = torch.Generator().manual_seed(7)
    xs = [torch.rand(5, *IN, generator=gen) for _ in range(4)]
    lrs = [1e-3, 3e-3, 1e-2, 2e-2]
    mods = _train_modules(st, xs, lrs, fresh)
    grad = torch.zeros_like(st.params)
    for x in xs:
        if fresh:
            st.reset_optimizer()
        st.value_and_grad(x, lambda out: out.sum((2, 3, 4)).mean(1), grad)
        st.adam_step(grad, lrs, (0.5, 0.999), 1e-8)
    assert st.steps.tolist() == [1.0 if fresh else 4.0] * N
    for m in range(N):
        params = list(mods[m].parameters())
        for i in range(st.n_layers):
            torch.testing.assert_close(st.weight(i)[m], params[2 * i].detach(), rtol=0, atol=1e-5)
            torch.testing.assert_close(st.bias(i)[m], params[2 * i + 1].detach(), rtol=0, atol=1e-5)


def test_a_pruned_channel_stays_exactly_zero_through_training() -> None:
    st = make(8)
    keep = torch.ones_like(st.params)
    pl = st.layers[0]  # conv2d(4 out): prune channel 2 of member 1 (its filter and its bias)
    w = st.weight(0, keep)
    w[1, 2] = 0
    st.bias(0, keep)[1, 2] = 0
    st.prune(keep)
    assert st.channel_masks(0).tolist()[1] == [True, True, False, True]
    assert st.channel_masks(0)[[0, 2, 3]].all()
    grad = torch.zeros_like(st.params)
    gen = torch.Generator().manual_seed(9)
    for _ in range(5):
        x = torch.rand(5, *IN, generator=gen)
        st.value_and_grad(x, lambda out: out.sum((2, 3, 4)).mean(1), grad)
        st.adam_step(grad, [1e-2] * N, (0.9, 0.999), 1e-8)
    assert int((st.weight(0)[1, 2] != 0).sum()) == 0 and float(st.bias(0)[1, 2]) == 0.0
    assert float(st.weight(0)[0, 2].abs().sum()) > 0  # member 0's channel 2 trained on
    rec: list[torch.Tensor] = []
    st.forward(torch.rand(3, *IN, generator=gen), record=rec)
    assert rec[0].shape == (N, 3, *pl.out_shape)
    assert float(rec[0][1, :, 2].abs().max()) == 0.0  # relu(0): the channel outputs exactly 0
    assert float(rec[0][0, :, 2].abs().max()) > 0.0
    # masks persist: a reset optimiser does not revive the pruned entries
    st.reset_optimizer()
    st.value_and_grad(x, lambda out: out.sum((2, 3, 4)).mean(1), grad)
    st.adam_step(grad, [1e-2] * N, (0.9, 0.999), 1e-8)
    assert int((st.weight(0)[1, 2] != 0).sum()) == 0


def test_same_seed_same_stack_and_take_copies() -> None:
    a, b, c = make(11), make(11), make(12)
    assert torch.equal(a.params, b.params) and not torch.equal(a.params, c.params)
    t = a.take([2, 2, 0])
    assert torch.equal(t.params, a.params[[2, 2, 0]])
    t.params.zero_()
    assert torch.equal(a.params, b.params)  # copies, not views


@pytest.mark.parametrize(
    ("specs", "shape", "message"),
    [
        ((dense(3),), (1, 4, 4), "layer 0 (dense) cannot take input shape (1, 4, 4): needs flat"),
        (
            (conv2d(2, 3),),
            (16,),
            "layer 0 (conv2d) cannot take input shape (16,): needs a (c, h, w)",
        ),
        ((conv2d(2, 5),), (1, 4, 4), "the image is smaller than the kernel"),
        ((flatten(), unflatten(2, 2, 2)), (1, 3, 3), "cannot unflatten into (2, 2, 2)"),
        ((activation("gelu"),), (4,), "unknown activation 'gelu'"),
    ],
)
def test_impossible_layer_lists_get_one_line(specs, shape, message) -> None:
    with pytest.raises(ConfigError) as info:
        infer_shapes(specs, shape)
    assert message in str(info.value) and "\n" not in str(info.value)
