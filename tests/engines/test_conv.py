"""Both engines on conv autoencoders end to end, and the CLI's one-line refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from evoprune_core.loading import load_run
from evoprune_core.population import ConvPopulation

ROOT = Path(__file__).resolve().parents[2]


def conv_run(engine: str, data: str = "digits", **sets: object):
    base = [
        f"engine={engine}",
        f"data.name={data}",
        "network.preset=conv-small",
        "generations=2",
        "training.batch_size=64",
        "pruning.operator=variance",
        "pruning.probability=1.0",
        "pruning.amount=0.2",
        "coevolution.cells=3",
        "coevolution.eval_batch=32",
    ]
    return load_run(None, base + [f"{k}={v}" for k, v in sets.items()])


def test_canonical_conv_on_mnist_5k_learns_prunes_and_records_its_architecture() -> None:
    result = conv_run("canonical", "mnist-5k").run()
    assert isinstance(result.population, ConvPopulation) and result.population.n == 1
    h = result.history
    assert len(h) == 2 and h[1]["train_loss"] < h[0]["train_loss"]
    assert [r["pruning_events"] for r in h] == [1, 1]
    assert 0.5 < result.remaining_fraction < 0.9
    s = result.summary()
    assert s["architecture"]["preset"] == "conv-small"
    assert s["architecture"]["input_shape"] == [1, 28, 28]
    assert [layer["kind"] for layer in s["architecture"]["encoder"]][:2] == ["conv2d", "activation"]
    assert s["backend"] == "torch" and s["device"] == "cpu"
    # the reported remaining fraction is the masks' true count
    masks = result.population.masks
    assert s["remaining_fraction"] == int(masks.sum()) / masks.numel()


def test_canonical_conv_is_deterministic() -> None:
    a = conv_run("canonical").run()
    b = conv_run("canonical").run()
    assert a.history[-1]["val_loss"] == b.history[-1]["val_loss"]
    assert torch.equal(a.population.params, b.population.params)
    c = conv_run("canonical", seed=2).run()
    assert not torch.equal(a.population.params, c.population.params)


@pytest.mark.parametrize(
    ("variant", "update"),
    [
        ("standard", "synchronous"),
        ("prune_then_eval", "synchronous"),
        ("all_vs_all", "synchronous"),
        ("selected_and_random", "synchronous"),
        ("standard", "sequential"),
    ],
)
def test_coevolution_runs_a_ring_of_conv_cells(variant: str, update: str) -> None:
    run = conv_run(
        "coevolution",
        **{"coevolution.variant": variant, "coevolution.update": update},
        **{"training.optimizer_state": "reset_each_step", "pruning.masks": "regrow"},
    )
    a = run.run()
    assert a.population.n == 3 and len(a.history) == 2
    assert a.history[-1]["pruning_events"] == 3
    # regrow: masks stay whole, the pruned entries were zeroed once
    assert bool((a.population.masks == 1).all())
    assert a.summary()["pruned_entries_published"] > 0
    assert a.remaining_fraction < 1.0
    if variant == "selected_and_random":  # the variant with the most random draws
        b = run.run()
        assert torch.equal(a.population.params, b.population.params)  # same seed, same run


def test_coevolution_conv_on_mnist_5k() -> None:
    result = conv_run("coevolution", "mnist-5k", generations=1).run()
    assert result.population.n == 3 and np.isfinite(result.test_loss)
    assert result.summary()["architecture"]["input_shape"] == [1, 28, 28]


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "evoprune_core.cli", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[data]\nname = "bc-10-100-1000"\n[network]\npreset = "conv-small"\n',
            "network.preset: 'conv-small' takes (c, h, w) images; dataset 'bc-10-100-1000' "
            "has flat rows (allowed: a dense preset",
        ),
        (
            '[data]\nname = "digits"\n[network]\npreset = "conv-small"\n[compute]\ndevice = "cuda"\n',
            'compute.device: "cuda" needs a CUDA build of torch and a GPU',
        ),
        (
            '[data]\nname = "digits"\n[network]\npreset = "conv-huge"\n',
            "network.preset",
        ),
        (
            '[data]\nname = "digits"\n[compute]\nbackend = "torch"\ndevice = "cuda"\n',
            'compute.device: "cuda" needs a CUDA build of torch and a GPU',
        ),
    ],
    ids=["conv-on-flat", "cuda-absent", "unknown-preset", "dense-cuda-absent"],
)
def test_bad_conv_configurations_get_one_line_and_exit_2(tmp_path, toml, message) -> None:
    if "cuda" in toml and torch.cuda.is_available():  # pragma: no cover - CPU machines
        pytest.skip("CUDA is present here")
    path = _write(tmp_path, toml)
    out = tmp_path / "out.json"
    proc = _cli(tmp_path, "run", str(path), "--output", str(out), "--quiet")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert str(path) in lines[0] and not out.exists()


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        (
            (10, 1, 27, 27),
            "network.preset: 'conv-small' takes images whose height and width are "
            "multiples of 4 (got (1, 27, 27))",
        ),
        ((10, 2, 3), "expected a 2-D array of rows or a 4-D (n, c, h, w) image array"),
        (
            (10, 16),
            "network.preset: 'conv-small' takes (c, h, w) images; the dataset's samples "
            "are flat rows of shape (16,)",
        ),
    ],
    ids=["27x27", "rank-3", "flat-file"],
)
def test_image_files_the_preset_cannot_take(tmp_path, shape, message) -> None:
    np.save(tmp_path / "x.npy", np.full(shape, 0.5, dtype=np.float32))
    path = _write(
        tmp_path,
        f'[data]\nname = "file"\nparams = {{path = "{tmp_path / "x.npy"}"}}\n'
        '[network]\npreset = "conv-small"\n',
    )
    out = tmp_path / "out.json"
    proc = _cli(tmp_path, "run", str(path), "--output", str(out), "--quiet")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and not out.exists()
    if message.startswith("network"):  # checked once the dataset is built: the file named
        assert lines[0].startswith(f"error: {path}: network.preset: ")


def test_the_run_file_runs_and_saves_a_loadable_conv_model(tmp_path) -> None:
    out, model = tmp_path / "out.json", tmp_path / "model.pt"
    proc = _cli(
        tmp_path,
        "run",
        str(ROOT / "studies" / "runs" / "mnist-conv-lipi.toml"),
        "--set", "generations=1", "--set", "coevolution.cells=2",
        "--set", "network.preset=conv-small",
        "--output", str(out), "--save-model", str(model), "--quiet",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(out.read_text())
    assert summary["architecture"]["preset"] == "conv-small" and summary["generations"] == 1
    pop = ConvPopulation.load(model)
    assert pop.n == 1 and pop.arch.input_shape == (1, 28, 28)
