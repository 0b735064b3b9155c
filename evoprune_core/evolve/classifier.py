"""CNN classifier tasks for the evolution: the second paper's setting (channel pruning).

A task is ``"<network>:<dataset>"`` (``lenet5:mnist-5k``, ``vgg-small:digits``): a network of
``NETWORKS`` on an image dataset with labels. Per pre-training seed the network is trained
(cross-entropy, Adam) on the batched layer stack of the population package, once, and cached.
A pruning unit is an output channel of a conv layer; its statistics come from the calibration
rows' activations averaged over the spatial positions and from the real class labels, its
weights are the filter (``WI``, length in x k x k), the layer's filters (``W``) and the next
layer's weights reading it (``WO``). A candidate removes ``round(f * channels)`` channels of
every conv layer (the dense layers are not pruned, as in the paper); the pruned copies of all
candidates x fractions fine-tune together as one stack (every member the same minibatches),
and the task's value is the validation error (1 - accuracy; lower is better).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..data import Dataset, build_dataset
from ..errors import ConfigError
from ..operators import prune_fraction
from ..population import (
    LayerSpec,
    LayerStack,
    activation,
    conv2d,
    dense,
    flatten,
    infer_shapes,
    max_pool2d,
)
from .compile import layer_sizes, unit_inputs

if TYPE_CHECKING:
    from ..engines.runtime import Compute
    from ..plugins import Registry
    from .config import FitnessConfig

__all__ = [
    "NETWORKS",
    "ClassifierTask",
    "check_classifier_task",
    "cnn3",
    "lenet5",
    "prepare_classifier",
    "split_task",
    "vgg_small",
]


def lenet5(shape: tuple[int, ...], classes: int) -> tuple[LayerSpec, ...]:
    """LeNet-5 (28x28 input: conv 6@5x5 pad 2, pool, conv 16@5x5, pool, 120, 84, classes)."""
    relu = activation("relu")
    return (
        conv2d(6, 5, padding=2), relu, max_pool2d(2),
        conv2d(16, 5), relu, max_pool2d(2),
        flatten(), dense(120), relu, dense(84), relu, dense(classes),
    )  # fmt: skip


def vgg_small(shape: tuple[int, ...], classes: int) -> tuple[LayerSpec, ...]:
    """A small VGG-style net: two blocks of two 3x3 convs (16, then 32 channels) and a 2x2
    max-pool each, then dense 64 and the classes."""
    relu = activation("relu")
    return (
        conv2d(16, 3, padding=1), relu, conv2d(16, 3, padding=1), relu, max_pool2d(2),
        conv2d(32, 3, padding=1), relu, conv2d(32, 3, padding=1), relu, max_pool2d(2),
        flatten(), dense(64), relu, dense(classes),
    )  # fmt: skip


def cnn3(shape: tuple[int, ...], classes: int) -> tuple[LayerSpec, ...]:
    """Three 3x3 convs (8, 16, 32 channels; a 2x2 max-pool after the first two) and one dense
    layer to the classes: no hidden dense layer, unlike LeNet-5 and vgg-small (a held-out
    architecture for the transfer, of about LeNet-5's cost on 28x28 images)."""
    relu = activation("relu")
    return (
        conv2d(8, 3, padding=1), relu, max_pool2d(2),
        conv2d(16, 3, padding=1), relu, max_pool2d(2),
        conv2d(32, 3, padding=1), relu,
        flatten(), dense(classes),
    )  # fmt: skip


NETWORKS: dict[str, Callable[[tuple[int, ...], int], tuple[LayerSpec, ...]]] = {
    "lenet5": lenet5,
    "vgg-small": vgg_small,
    "cnn3": cnn3,
}


def split_task(task: str) -> tuple[str, str]:
    net, _, data = task.partition(":")
    return net, data


def check_classifier_task(task: str, registry: Registry, where: str) -> None:
    """One-line ``ConfigError`` unless ``task`` is a known network on a labelled image set
    of a shape it takes."""
    net, data_name = split_task(task)
    if net not in NETWORKS:
        raise ConfigError(
            f"{where}: unknown network {net!r} in {task!r}; allowed: {', '.join(NETWORKS)}"
        )
    names = registry.names("dataset")
    if data_name not in names:
        raise ConfigError(
            f"{where}: unknown dataset {data_name!r} in {task!r}; allowed: {', '.join(names)}"
        )
    data = build_dataset(registry.dataset(data_name).obj, {}, 0, where=where)
    if not data.has_labels:
        raise ConfigError(f"{where}: {task!r}: a classifier needs labels; {data_name} has none")
    if not data.is_image:
        raise ConfigError(
            f"{where}: {task!r}: a CNN needs images; {data_name} has flat rows {data.sample_shape}"
        )
    classes = int(data.train_labels.max()) + 1  # type: ignore[union-attr]
    try:
        infer_shapes(NETWORKS[net](data.sample_shape, classes), data.sample_shape)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {task!r}: {exc}") from None


def _seed(*parts: Any) -> int:
    text = json.dumps(parts, sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:7], "big")


def _images(data: Dataset, rows: Tensor) -> Tensor:
    return rows.view(rows.shape[0], *data.sample_shape)


def train_epochs(
    stack: LayerStack,
    data: Dataset,
    epochs: int,
    cfg: FitnessConfig,
    order: torch.Generator,
    max_batches: int | None = None,
) -> None:
    """``epochs`` epochs (of at most ``max_batches`` minibatches) of per-member cross-entropy
    with Adam; every member sees the same minibatches."""
    x_all, y_all = data.train, data.train_labels
    assert y_all is not None
    n = stack.n
    grad = torch.zeros_like(stack.params)
    for _ in range(epochs):
        perm = torch.randperm(x_all.shape[0], generator=order)
        starts = list(range(0, x_all.shape[0], cfg.batch_size))[:max_batches]
        for start in starts:
            idx = perm[start : start + cfg.batch_size]
            x, y = _images(data, x_all[idx]), y_all[idx]

            def loss(logits: Tensor, y: Tensor = y) -> Tensor:
                flat = logits.reshape(-1, logits.shape[-1])
                ce = F.cross_entropy(flat, y.repeat(n), reduction="none")
                return ce.view(n, -1).mean(1)

            stack.value_and_grad(x, loss, grad)
            stack.adam_step(grad, [cfg.lr] * n, (0.9, 0.999), 1e-8)


@torch.no_grad()
def accuracy(stack: LayerStack, data: Dataset, split: str) -> Tensor:
    """``(N,)`` accuracy of every member on ``split`` (``val`` or ``test``)."""
    x_all = getattr(data, split)
    y_all = getattr(data, f"{split}_labels")
    correct = torch.zeros(stack.n, dtype=torch.float64)
    for start in range(0, x_all.shape[0], 500):
        x = _images(data, x_all[start : start + 500])
        pred = stack.forward(x).argmax(-1)
        correct += (pred == y_all[start : start + 500]).sum(1).double()
    return correct / x_all.shape[0]


def _outgoing(stack: LayerStack, i: int) -> Tensor:
    """``(1, O', U)``: the next parameter layer's weights reading each unit of layer ``i``."""
    nxt = stack.weight(i + 1).detach()
    units = stack.layers[i].units
    if nxt.dim() == 5:  # conv (M, O, U, k, k)
        return nxt.permute(0, 1, 3, 4, 2).reshape(nxt.shape[0], -1, units)
    # dense after flatten: (M, O, U * h * w), flattened channel-major
    m, o = nxt.shape[:2]
    return nxt.reshape(m, o, units, -1).permute(0, 1, 3, 2).reshape(m, -1, units)


@dataclass(frozen=True)
class ClassifierTask:
    """One pre-trained CNN of a classifier task and its per-channel formula terminals."""

    name: str
    seed: int
    data: Dataset
    pretrained: LayerStack
    inputs: list[dict[str, Any] | None]
    sizes: list[dict[str, int] | None]
    finetune_seed: int

    def keep(self, scores: Sequence[Tensor | None], fraction: float) -> Tensor:
        """``(1, P)`` 0/1: the network without ``round(fraction * alive)`` lowest-scoring
        channels (all their weights and bias) in every conv layer."""
        stack = self.pretrained
        keep = torch.ones(1, stack.size)
        for i, s in enumerate(scores):
            if s is None:
                continue
            alive = stack.channel_masks(i)[:1]
            kept = prune_fraction(alive, s[:1].to(torch.float64), fraction)
            gone = (alive & ~kept)[0]
            stack.weight(i, keep)[:, gone] = 0.0
            stack.bias(i, keep)[:, gone] = 0.0
        return keep

    def finetune(self, keeps: Tensor, cfg: FitnessConfig, compute: Compute | None = None) -> Tensor:
        """Validation error ``(K,)`` of K pruned copies fine-tuned together (fresh Adam)."""
        k = keeps.shape[0]
        stack = self.pretrained.take([0] * k)
        stack.prune(keeps)
        stack.reset_optimizer()
        order = torch.Generator().manual_seed(self.finetune_seed)
        train_epochs(stack, self.data, cfg.finetune_epochs, cfg, order, cfg.finetune_batches)
        err = 1.0 - accuracy(stack, self.data, "val")
        finite = torch.isfinite(stack.params).all(1)
        return torch.where(finite, err, torch.full_like(err, math.inf))


def channel_terminals(
    stack: LayerStack, rows: Tensor, labels: Tensor
) -> tuple[list[dict[str, Any] | None], list[dict[str, int] | None]]:
    """Per parameter layer: the formula terminals of its channels (conv layers; None for the
    dense ones) and their symbolic sizes, from the calibration ``rows`` ``(S, c, h, w)`` and
    their class ``labels``. A channel's activation on a row is its post-ReLU output averaged
    over the spatial positions."""
    record: list[Tensor] = []
    with torch.no_grad():
        stack.forward(rows, record=record)
    n_cls = int(torch.unique(labels).numel())
    inputs: list[dict[str, Any] | None] = []
    sizes: list[dict[str, int] | None] = []
    for i, pl in enumerate(stack.layers):
        if pl.kind != "conv2d":
            inputs.append(None)
            sizes.append(None)
            continue
        acts = record[i].mean((-2, -1))  # (M, S, U)
        w = stack.weight(i).detach().flatten(2)  # (M, U, in * k * k)
        wo = _outgoing(stack, i)
        inputs.append(unit_inputs(acts, w, wo, labels))
        sizes.append(
            layer_sizes(units=pl.units, inputs=w.shape[2], outputs=wo.shape[1],
                        rows=rows.shape[0], classes=n_cls)
        )  # fmt: skip
    return inputs, sizes


def _cache_path(cache_dir: Path | None, task: str, key: int) -> Path | None:
    safe = task.replace(":", "-")
    return None if cache_dir is None else cache_dir / f"pretrained-{safe}-{key:x}.npz"


def prepare_classifier(
    task: str,
    cfg: FitnessConfig,
    seed: int,
    registry: Registry,
    cache_dir: Path | None,
    log: Callable[[str], None] | None = None,
) -> ClassifierTask:
    """Build the data, pre-train (or load) the network of ``seed`` and its channel terminals."""
    net, data_name = split_task(task)
    data = build_dataset(registry.dataset(data_name).obj, {}, seed, where=f"fitness.tasks[{task}]")
    assert data.train_labels is not None
    classes = int(data.train_labels.max()) + 1
    specs = NETWORKS[net](data.sample_shape, classes)
    arch = [sp.describe() for sp in specs]
    key = _seed(task, seed, arch, cfg.pretrain_epochs, cfg.lr, cfg.batch_size, "classifier/1")
    path = _cache_path(cache_dir, task, key)
    stack = LayerStack.standalone(specs, data.sample_shape, 1)
    if path is not None and path.is_file():
        with np.load(path, allow_pickle=False) as saved:
            stack.params.copy_(torch.from_numpy(saved["params"]))
    else:
        stack.init_(torch.Generator().manual_seed(_seed("init", seed)))
        order = torch.Generator().manual_seed(_seed("order", seed))
        train_epochs(stack, data, cfg.pretrain_epochs, cfg, order)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.stem + ".tmp.npz")
            np.savez(tmp, params=stack.params.numpy())
            tmp.replace(path)
    stack.reset_optimizer()
    if log is not None:
        acc = float(accuracy(stack, data, "val")[0])
        log(f"{task} seed {seed}: pre-trained, validation accuracy {acc:.4f}")
    gen = torch.Generator().manual_seed(_seed("calibration", seed))
    idx = torch.randperm(data.train.shape[0], generator=gen)[: cfg.calibration_rows]
    inputs, sizes = channel_terminals(stack, _images(data, data.train[idx]), data.train_labels[idx])
    return ClassifierTask(task, seed, data, stack, inputs, sizes, _seed("finetune", seed))


def pretrained_test_accuracy(task: ClassifierTask) -> float:
    """The pre-trained network's test accuracy (reported only; selection never reads it)."""
    return float(accuracy(task.pretrained, task.data, "test")[0])
