"""Speed of the batched conv population (a benchmark script, not a test; prints JSON).

- ``seconds_per_epoch_canonical``: one training epoch of one conv autoencoder on mnist-5k's
  3,000 training images (``Trainer.epoch``, batch 32).
- ``seconds_per_generation_lipi``: one generation of the coevolutionary engine with N = 10
  cells on mnist-5k (evaluation, selection, one epoch of every selected pair, no pruning).
- ``speedup_vs_module_loop``: ``--steps`` minibatch steps of N = 10 members as one batched
  program against the same steps done by N separate ``nn.Module``s, each with its own
  ``torch.optim.Adam``, in this process; their parameters are asserted equal to rounding.
- ``formulations``: the forward+backward of 10 of those steps as im2col + ``bmm`` with a
  written-out backward (what the population uses), as grouped convolutions over the members'
  stacked channels (oneDNN, channels-last; what it used before) and as ``torch.func.vmap``
  over the members' stacked parameters (gradients asserted equal).
- ``profile``: the operators taking most of the batched step's time.

All timings run single-threaded with denormals flushed, as the engines do. Alternatives are
timed in turn in this process (best of ``--repeats``); each ``*_cpu_s`` is the process's CPU
time, the better guide on a loaded machine (wall time there includes waiting for a core).

    nice python benchmarks/bench_conv.py [--preset conv-small] [--steps 40]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable

import torch
from torch.func import functional_call, grad, vmap

from evoprune_core.data import mnist_5k
from evoprune_core.engines.runtime import cpu_numerics
from evoprune_core.engines.steps import Trainer, loss_value
from evoprune_core.loading import load_run
from evoprune_core.population import ConvArchitecture, ConvPopulation


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _best(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Best wall and CPU seconds of each function, run in turn ``repeats`` times (A B A B ...),
    so a load change on the shared machine hits all of them alike."""
    best = {k: [float("inf"), float("inf")] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            w0, c0 = _clock()
            fn()
            w1, c1 = _clock()
            best[k] = [min(best[k][0], w1 - w0), min(best[k][1], c1 - c0)]
    return best


def canonical_epoch(arch: ConvArchitecture, train: torch.Tensor, repeats: int) -> float:
    pop = ConvPopulation.create(arch, 1, torch.Generator().manual_seed(0))
    trainer = Trainer("bce", (0.5, 0.999), 1e-8)
    gen = torch.Generator().manual_seed(1)
    return _best(lambda: trainer.epoch(pop, train, 32, [1e-3], gen), repeats)


def lipi_generation(preset: str) -> float:
    sets = [
        "engine=coevolution", "data.name=mnist-5k", f"network.preset={preset}",
        "generations=2", "coevolution.cells=10", "coevolution.eval_batch=64",
        "training.batch_size=32", "pruning.operator=none",
    ]  # fmt: skip
    result = load_run(None, sets).run()
    s = [r["seconds"] for r in result.history]
    return s[1] - s[0]  # the second generation (the first includes warm-up)


def _modules(pop: ConvPopulation) -> list[torch.nn.Sequential]:
    return [
        torch.nn.Sequential(pop.encoders.to_module(m), pop.decoders.to_module(m))
        for m in range(pop.n)
    ]


def _setup(arch: ConvArchitecture, n: int):
    lrs = [1e-3 * (1 + m / n) for m in range(n)]
    pop = ConvPopulation.create(arch, n, torch.Generator().manual_seed(2))
    nets = _modules(pop)
    opts = [
        torch.optim.Adam(net.parameters(), lr=lr, betas=(0.5, 0.999), eps=1e-8)
        for net, lr in zip(nets, lrs)
    ]
    return lrs, pop, nets, opts


def _loop(nets, opts, batches: list[torch.Tensor], shape: tuple[int, ...]) -> None:
    for x in batches:
        for net, opt in zip(nets, opts):
            opt.zero_grad()
            logits = net(x.view(shape)).flatten(1)
            torch.nn.functional.binary_cross_entropy_with_logits(logits, x).backward()
            opt.step()


def _batched(pop: ConvPopulation, lrs: list[float], batches: list[torch.Tensor]) -> None:
    trainer = Trainer("bce", (0.5, 0.999), 1e-8)
    buf = torch.empty_like(pop.params)
    for x in batches:
        trainer.step(pop, x, lrs, buf)


def module_loop_vs_batched(
    arch: ConvArchitecture,
    batches: list[torch.Tensor],
    n: int,
    repeats: int,
    check_steps: int = 3,
) -> dict[str, float]:
    """The same Adam steps: N modules with N optimisers against one batched population.

    Both run ``repeats`` times in turn (each repeat goes on training); the best wall and CPU
    times are kept. Equality is asserted after ``check_steps`` steps from the same start: Adam turns
    rounding-level gradient differences (dead ReLU regions) into +-lr steps, and over many
    steps the two trajectories drift apart like any two float orders of summation would.
    """
    shape = (-1, *arch.input_shape)
    lrs, pop, nets, opts = _setup(arch, n)
    _loop(nets, opts, batches[:check_steps], shape)
    _batched(pop, lrs, batches[:check_steps])
    want = torch.stack(
        [torch.cat([p.detach().flatten() for p in net.parameters()]) for net in nets]
    )
    diff = (pop.params - want).abs()
    x = batches[0]
    with torch.no_grad():
        ours = pop.reconstruct(x)
        theirs = torch.stack([torch.sigmoid(net(x.view(shape)).flatten(1)) for net in nets])
    out_diff = float((ours - theirs).abs().max())
    assert out_diff < 1e-4, f"the batched population and the modules differ by {out_diff}"
    lrs, pop, nets, opts = _setup(arch, n)
    t = _interleaved(
        {
            "loop": lambda: _loop(nets, opts, batches, shape),
            "batched": lambda: _batched(pop, lrs, batches),
        },
        repeats,
    )
    return {
        "module_loop_s": t["loop"][0],
        "batched_s": t["batched"][0],
        "module_loop_cpu_s": t["loop"][1],
        "batched_cpu_s": t["batched"][1],
        "check_steps": check_steps,
        "max_abs_output_diff": out_diff,
        "params_within_1e-6": float((diff <= 1e-6).float().mean()),
        "max_abs_param_diff": float(diff.max()),
    }


def _grouped_logits(pop: ConvPopulation, x: torch.Tensor, leaves: list) -> torch.Tensor:
    """The conv autoencoders' logits ``(N, B, D)`` as grouped convolutions over the members'
    stacked channels (``(B, N*C, H, W)``, channels-last; the formulation the population used
    before im2col + bmm), differentiable in ``leaves`` (per parameter layer (weight, bias))."""
    n, cl = pop.n, torch.channels_last
    h: torch.Tensor = pop.images(x)
    form, layer = "shared", 0
    for stack in (pop.encoders, pop.decoders):
        for s in stack.specs:
            if s.kind == "activation":
                h = torch.relu(h) if s.fn == "relu" else h
            elif s.kind == "flatten":
                h, form = h.reshape(h.shape[0], n, -1).transpose(0, 1), "members"
            elif s.kind == "unflatten":
                m, b = h.shape[:2]
                h = h.reshape(m, b, *s.shape).permute(1, 0, 2, 3, 4).reshape(b, -1, *s.shape[1:])
                form = "grouped"
            elif s.kind == "dense":
                w, bias = leaves[layer]
                h, form = torch.baddbmm(bias.unsqueeze(1), h, w.transpose(1, 2)), "members"
                layer += 1
            else:
                w, bias = leaves[layer]
                groups = 1 if form == "shared" else n
                h = h.contiguous(memory_format=cl)
                if s.kind == "conv2d":
                    wt = w.reshape(-1, *w.shape[2:]).contiguous(memory_format=cl)
                    h = torch.nn.functional.conv2d(
                        h, wt, bias.reshape(-1), s.stride, s.padding, 1, groups
                    )
                else:
                    wt = w.reshape(-1, *w.shape[2:]).contiguous(memory_format=cl)
                    h = torch.nn.functional.conv_transpose2d(
                        h, wt, bias.reshape(-1), s.stride, s.padding, s.output_padding, groups
                    )
                form = "grouped"
                layer += 1
    return h.reshape(h.shape[0], n, -1).transpose(0, 1)


def formulations(arch: ConvArchitecture, batches: list[torch.Tensor], n: int) -> dict:
    """Forward + backward of the N conv autoencoders over ``batches``, three ways: im2col +
    ``bmm`` with a written-out backward (what the population uses), grouped convolutions over
    the members' stacked channels (autograd), and ``torch.func.vmap`` over the members'
    stacked parameters; the gradients are asserted equal."""
    pop = ConvPopulation.create(arch, n, torch.Generator().manual_seed(3))
    buf = torch.empty_like(pop.params)
    trainer = Trainer("bce", (0.5, 0.999), 1e-8)

    def im2col_bmm() -> None:
        for x in batches:
            trainer.gradients(pop, x, buf)

    leaves = pop.encoders.leaves() + pop.decoders.leaves()
    flat = [t for pair in leaves for t in pair]

    def grouped_grads(x: torch.Tensor) -> list[torch.Tensor]:
        with torch.enable_grad():
            logits = _grouped_logits(pop, x, leaves)
            return list(torch.autograd.grad(loss_value(logits, x, "bce").sum(), flat))

    def grouped() -> None:
        for x in batches:
            grouped_grads(x)

    template = _modules(pop)[0]
    names = [k for k, _ in template.named_parameters()]
    stacked = {
        k: torch.stack([dict(net.named_parameters())[k].detach() for net in _modules(pop)])
        for k in names
    }
    shape = (-1, *arch.input_shape)

    def one(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        logits = functional_call(template, params, (x.view(shape),)).flatten(1)
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, x)

    per_member = vmap(grad(one), in_dims=(0, None))

    def vmapped() -> None:
        for x in batches:
            per_member(stacked, x)

    g = per_member(stacked, batches[0])
    trainer.gradients(pop, batches[0], buf)
    ref = torch.cat([g[k].flatten(1) for k in names], 1)
    grouped_ref = torch.cat([t.flatten(1) for t in grouped_grads(batches[0])], 1)
    diffs = {
        "max_abs_grad_diff_vmap": float((ref - buf).abs().max()),
        "max_abs_grad_diff_grouped": float((grouped_ref - buf).abs().max()),
    }
    assert max(diffs.values()) < 1e-5, f"the formulations' gradients differ: {diffs}"
    t = _interleaved({"im2col_bmm": im2col_bmm, "grouped_conv": grouped, "vmap": vmapped}, 2)
    out: dict[str, float] = {f"{k}_s": v[0] for k, v in t.items()}
    out.update({f"{k}_cpu_s": v[1] for k, v in t.items()})
    out.update(diffs)
    return out


def profile(arch: ConvArchitecture, batches: list[torch.Tensor], n: int) -> list[list]:
    pop = ConvPopulation.create(arch, n, torch.Generator().manual_seed(4))
    trainer = Trainer("bce", (0.5, 0.999), 1e-8)
    buf = torch.empty_like(pop.params)
    lrs = [1e-3] * n
    trainer.step(pop, batches[0], lrs, buf)
    cpu = torch.profiler.ProfilerActivity.CPU
    with torch.profiler.profile(activities=[cpu], record_shapes=True) as prof:
        for x in batches:
            trainer.step(pop, x, lrs, buf)
    rows = sorted(
        prof.key_averages(group_by_input_shape=True),
        key=lambda e: e.self_cpu_time_total,
        reverse=True,
    )
    total = sum(e.self_cpu_time_total for e in rows)
    return [
        [e.key, str(e.input_shapes)[:60], round(e.self_cpu_time_total / total, 3)]
        for e in rows[:15]
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="conv-small")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    data = mnist_5k(0)
    arch = ConvArchitecture.from_preset(args.preset, data.sample_shape)
    gen = torch.Generator().manual_seed(5)
    order = torch.randperm(data.train.shape[0], generator=gen)
    batches = [data.train[order[i * 32 : (i + 1) * 32]] for i in range(args.steps)]
    out: dict[str, object] = {"preset": args.preset, "n": args.n, "steps": args.steps}
    with cpu_numerics():
        out["seconds_per_epoch_canonical"] = canonical_epoch(arch, data.train, args.repeats)
        side = module_loop_vs_batched(arch, batches, args.n, args.repeats)
        out.update(side)
        out["speedup_vs_module_loop"] = side["module_loop_s"] / side["batched_s"]
        out["speedup_vs_module_loop_cpu"] = side["module_loop_cpu_s"] / side["batched_cpu_s"]
        out["formulations"] = formulations(arch, batches[:10], args.n)
        out["profile"] = profile(arch, batches[:10], args.n)
    out["seconds_per_generation_lipi"] = lipi_generation(args.preset)
    out["torch"] = torch.__version__
    out["load_average"] = [round(v, 2) for v in os.getloadavg()]
    out["threads"] = 1
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
