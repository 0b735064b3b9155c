"""CNN classifier tasks: per-channel terminals from spatially averaged activations and real
labels, the seven seeds on channels against numpy, conv channel pruning, classifier fitness,
bad input."""

from __future__ import annotations

import math
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from evoprune_core.cli import main
from evoprune_core.data import Dataset, DatasetSpec
from evoprune_core.engines.runtime import cpu_numerics
from evoprune_core.errors import ConfigError
from evoprune_core.evolve.classifier import (
    channel_terminals,
    cnn3,
    lenet5,
    prepare_classifier,
    vgg_small,
)
from evoprune_core.evolve.compile import compile_tree
from evoprune_core.evolve.config import FitnessConfig, load_evolve_config
from evoprune_core.evolve.fitness import combine
from evoprune_core.evolve.grammar import parse
from evoprune_core.evolve.seeds import SEEDS
from evoprune_core.plugins import Registry, hookimpl
from evoprune_core.population import (
    LayerStack,
    activation,
    conv2d,
    dense,
    flatten,
    infer_shapes,
)

SPECS = (conv2d(3, 3, padding=1), activation("relu"), conv2d(2, 3), activation("relu"),
         flatten(), dense(4))  # fmt: skip
LABELS = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 1])


@pytest.fixture(scope="module")
def hand() -> tuple[LayerStack, torch.Tensor]:
    stack = LayerStack.standalone(SPECS, (1, 4, 4), 1)
    stack.init_(torch.Generator().manual_seed(3))
    rows = torch.rand((12, 1, 4, 4), generator=torch.Generator().manual_seed(4))
    return stack, rows


def _direct_acts(stack: LayerStack, rows: torch.Tensor) -> list[np.ndarray]:
    """Each conv layer's post-ReLU channel activations averaged over space, by F.conv2d."""
    w1, b1 = stack.weight(0)[0], stack.bias(0)[0]
    w2, b2 = stack.weight(1)[0], stack.bias(1)[0]
    h1 = torch.relu(F.conv2d(rows, w1, b1, padding=1))
    h2 = torch.relu(F.conv2d(h1, w2, b2))
    return [h1.mean((2, 3)).double().numpy(), h2.mean((2, 3)).double().numpy()]


def _geomedian(rows: np.ndarray) -> np.ndarray:
    from scipy.optimize import minimize

    res = minimize(lambda z: np.linalg.norm(rows - z, axis=1).sum(), rows.mean(0),
                   method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12,
                                                  "maxiter": 40000, "maxfev": 40000})  # fmt: skip
    return res.x


def _numpy_seed(name: str, acts: np.ndarray, w: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The seed metric of every channel, written directly: summed over one-vs-rest classes."""
    out = np.zeros(acts.shape[1])
    gm = _geomedian(w) if name == "geomedian" else None
    for c in np.unique(labels):
        p, q = acts[labels == c], acts[labels != c]
        mp, mq, vp, vq = p.mean(0), q.mean(0), p.var(0), q.var(0)
        if name == "abs_snr":
            out += np.abs(mp - mq) / (p.std(0) + q.std(0) + 1e-4)
        elif name == "fdr":
            out += (mp - mq) ** 2 / (vp + vq + 1e-4)
        elif name == "symdiv":
            out += vp / (vq + 0.05) + vq / (vp + 0.05) + (mp - mq) ** 2 / (vp + vq + 0.05)
        elif name == "t_stat":
            out += np.abs(mp - mq) / np.sqrt(vp / len(p) + vq / len(q) + 1e-4)
        elif name == "l1":
            out += np.abs(w).sum(1)
        elif name == "l2":
            out += np.sqrt((w**2).sum(1))
        else:
            out += np.sqrt(((w - gm) ** 2).sum(1))
    return out


@pytest.mark.parametrize("name", list(SEEDS))
def test_seed_metrics_on_channels_match_numpy(hand, name: str) -> None:
    stack, rows = hand
    inputs, sizes = channel_terminals(stack, rows, LABELS)
    assert inputs[2] is None and sizes[2] is None  # the dense layer is not scored
    assert sizes[0] == {"U": 3, "I": 9, "O": 2 * 9, "S": 12, "C": 3}
    assert sizes[1] == {"U": 2, "I": 27, "O": 4 * 4, "S": 12, "C": 3}
    acts = _direct_acts(stack, rows)
    scorer = compile_tree(parse(SEEDS[name]))
    for layer in (0, 1):
        w = stack.weight(layer)[0].flatten(1).double().numpy()
        want = _numpy_seed(name, acts[layer], w, LABELS.numpy())
        got = scorer(inputs[layer])[0].numpy()
        # the activations are float32 forward passes by two code paths (the layer stack, and
        # F.conv2d here) whose summation order depends on the CPU's instruction set: ~1e-7
        # apart, amplified by the label-aware ratios; the weight norms read the same floats
        tol = {"geomedian": 1e-4, "l1": 1e-9, "l2": 1e-9}.get(name, 1e-5)
        np.testing.assert_allclose(got, want, rtol=tol, atol=1e-9)


def test_outgoing_weights_are_the_next_layers_reads_of_the_channel(hand) -> None:
    stack, rows = hand
    inputs, _ = channel_terminals(stack, rows, LABELS)
    wo = compile_tree(parse("sum(abs(WO))"))
    conv2 = stack.weight(1)[0].double()  # (2, 3, 3, 3): reads channel u of layer 0 at [:, u]
    dense_w = stack.weight(2)[0].double()  # (4, 2 * 2 * 2): channel u at columns u*4 .. u*4+3
    want0 = conv2.abs().sum((0, 2, 3)) * 3  # three classes, summed
    want1 = torch.stack([dense_w[:, u * 4 : (u + 1) * 4].abs().sum() for u in range(2)]) * 3
    torch.testing.assert_close(wo(inputs[0])[0], want0, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(wo(inputs[1])[0], want1, rtol=1e-12, atol=1e-12)


def test_lenet5_vgg_small_and_cnn3_shapes() -> None:
    from evoprune_core.evolve.classifier import NETWORKS
    from evoprune_core.evolve.config import NETWORK_NAMES

    assert tuple(NETWORKS) == NETWORK_NAMES  # the config's list names exactly these networks
    assert infer_shapes(lenet5((1, 28, 28), 10), (1, 28, 28))[-1] == (10,)
    assert infer_shapes(vgg_small((1, 8, 8), 10), (1, 8, 8))[-1] == (10,)
    lenet = LayerStack.standalone(lenet5((1, 28, 28), 10), (1, 28, 28), 1)
    assert [pl.units for pl in lenet.layers] == [6, 16, 120, 84, 10]
    assert lenet.size == 61706  # the classic LeNet-5 parameter count with 6@5x5 pad 2
    assert infer_shapes(cnn3((1, 28, 28), 10), (1, 28, 28))[-3:] == [(32, 7, 7), (1568,), (10,)]
    held = LayerStack.standalone(cnn3((1, 28, 28), 10), (1, 28, 28), 1)
    assert [pl.units for pl in held.layers] == [8, 16, 32, 10]  # no hidden dense layer
    assert held.size == 80 + 1168 + 4640 + 15690  # three 3x3 convs and the dense classifier


@pytest.fixture(scope="module")
def vgg_task():
    cfg = FitnessConfig.model_validate(
        {
            "tasks": ["vgg-small:digits"],
            "pretrain_epochs": 1,
            "finetune_epochs": 1,
            "finetune_batches": 3,
            "batch_size": 32,
            "calibration_rows": 60,
        }  # fmt: skip
    )
    with cpu_numerics():
        return cfg, prepare_classifier("vgg-small:digits", cfg, 7, Registry.load(), None)


def test_keep_removes_the_lowest_scoring_channels_of_every_conv_layer(vgg_task) -> None:
    _, task = vgg_task
    stack = task.pretrained
    scores = [None if s is None else torch.arange(s["U"], dtype=torch.float64)[None].flip(1)
              for s in task.sizes]  # fmt: skip
    keep = task.keep(scores, 0.4)
    pruned = stack.take([0])
    pruned.prune(keep)
    for i, pl in enumerate(stack.layers):
        alive = pruned.channel_masks(i)[0]
        if pl.kind == "conv2d":
            k = round(0.4 * pl.units)  # the k highest channel indices score lowest
            assert alive.tolist() == [True] * (pl.units - k) + [False] * k
        else:
            assert bool(alive.all())
    assert [pl.units for pl in stack.layers] == [16, 16, 32, 32, 64, 10]


def test_finetune_is_batched_deterministic_and_scores_errors(vgg_task) -> None:
    cfg, task = vgg_task
    l1 = compile_tree(parse(SEEDS["l1"]))
    scores = [None if inp is None else l1(inp) for inp in task.inputs]
    rnd = [None if s is None else torch.rand((1, s["U"]), generator=torch.Generator()
           .manual_seed(i)) for i, s in enumerate(task.sizes)]  # fmt: skip
    keeps = torch.cat([task.keep(scores, 0.4), task.keep(rnd, 0.9), task.keep(scores, 0.4)])
    with cpu_numerics():
        err = task.finetune(keeps, cfg)
        again = task.finetune(keeps, cfg)
    assert err.shape == (3,) and torch.equal(err, again)
    assert err[0] == err[2]  # the same network and minibatches in one population
    assert 0.0 <= float(err.min()) and float(err.max()) <= 1.0
    assert float(err[1]) > float(err[0])  # 90% of the channels at random hurts more


def test_classifier_fitness_is_one_minus_weighted_geometric_mean_accuracy() -> None:
    cfg = FitnessConfig.model_validate({"tasks": ["lenet5:mnist-5k", "vgg-small:digits"]})
    assert cfg.kind == "classifier"
    assert combine(cfg, [0.1, 0.2]) == pytest.approx(1 - math.sqrt(0.9 * 0.8), rel=1e-12)
    skew = cfg.model_copy(update={"alpha": 0.25})
    assert combine(skew, [0.1, 0.2]) == pytest.approx(1 - 0.9**0.25 * 0.8**0.75, rel=1e-12)
    assert combine(cfg, [0.1, math.inf]) == math.inf
    ae = FitnessConfig.model_validate({"tasks": ["digits", "bc-10-100-1000"]})
    assert ae.kind == "autoencoder"
    assert combine(ae, [0.1, 0.4]) == pytest.approx(0.2, rel=1e-12)


class _Unlabelled:
    """A plugin providing an image dataset without labels."""

    @hookimpl
    def evoprune_register_datasets(self) -> list:
        def build(params: dict, seed: int) -> Dataset:
            g = torch.Generator().manual_seed(seed)
            rows = [torch.rand((n, 784), generator=g) for n in (30, 10, 10)]
            return Dataset("blank-images", *rows, shape=(1, 28, 28))

        return [DatasetSpec("blank-images", (), build, "unlabelled images")]


def test_a_classifier_task_on_data_without_labels_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "e.toml"
    path.write_text('name = "x"\n[fitness]\ntasks = ["lenet5:blank-images"]\n'
                    '[transfer]\nenabled = false\ntask = "vgg-small:digits"\noperators = []\n',
                    encoding="utf-8")  # fmt: skip
    registry = Registry.load(extra=[(types.SimpleNamespace(**{
        "evoprune_register_datasets": _Unlabelled().evoprune_register_datasets}), "t")])  # fmt: skip
    with pytest.raises(ConfigError) as info:
        load_evolve_config(path, [], registry)
    assert str(info.value) == (
        f"{path}: fitness.tasks: 'lenet5:blank-images': a classifier needs labels; "
        "blank-images has none"
    )


CNN = """
name = "c"
[fitness]
tasks = ["lenet5:mnist-5k", "vgg-small:digits"]
[transfer]
task = "vgg-small:mnist-5k"
operators = []
"""


@pytest.mark.parametrize(
    "sets, message",
    [
        (
            ['fitness.tasks=["lenet5:digits"]'],
            "'lenet5:digits': network: layer 3 (conv2d) cannot take input shape (6, 4, 4)",
        ),
        (['fitness.tasks=["vgg-small:bc-10-100-1000"]'], "a CNN needs images; bc-10-100-1000"),
        (['fitness.tasks=["lenet5:mnist-5k", "digits"]'], "not both"),
        (['fitness.tasks=["lenet5:cifar"]'], "unknown dataset 'cifar' in 'lenet5:cifar'"),
        (['transfer.operators=["magnitude"]'], "transfer.operators: the built-in operators"),
        (["fitness.fractions=[0.4, 1.5]"], "fractions: each must lie in (0, 1)"),
        (["transfer.fractions=[0.0]"], "transfer.fractions: each must lie in (0, 1)"),
        (['transfer.more_tasks=["lenet5:mnist-5k"]'], "is an evolution task"),
    ],
)
def test_bad_classifier_input_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sets: list[str], message: str
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(CNN, encoding="utf-8")
    store = tmp_path / "store"
    args = ["evolve", str(path), "--store", str(store), "--quiet"]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {path}: ") and "\n" not in err and message in err
    assert not store.exists()
