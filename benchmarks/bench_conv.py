"""Speed of the batched conv population (a benchmark script, not a test; prints JSON).

- ``seconds_per_epoch_canonical``: one training epoch of one conv autoencoder on mnist-5k's
  3,000 training images (``Trainer.epoch``, batch 32).
- ``seconds_per_generation_lipi``: one generation of the coevolutionary engine with N = 10
  cells on mnist-5k (evaluation, selection, one epoch of every selected pair, no pruning).
- ``speedup_vs_module_loop``: ``--steps`` minibatch steps of N = 10 members as one batched
  program against the same steps done by N separate ``nn.Module``s, each with its own
  ``torch.optim.Adam``, in this process; their parameters are asserted equal to rounding.
- ``grouped_vs_vmap``: the forward+backward of those steps with grouped convolutions (what
  the population uses) against ``torch.func.vmap`` over the members' stacked parameters.
- ``profile``: the operators taking most of the batched step's time.

All timings run single-threaded with denormals flushed, as the engines do.

    nice python benchmarks/bench_conv.py [--preset conv-small] [--steps 40]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import torch
from torch.func import functional_call, grad, vmap

from evoprune_core.data import mnist_5k
from evoprune_core.engines.runtime import cpu_numerics
from evoprune_core.engines.steps import Trainer, loss_value
from evoprune_core.loading import load_run
from evoprune_core.population import ConvArchitecture, ConvPopulation


def _best(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


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
    arch: ConvArchitecture, batches: list[torch.Tensor], n: int, check_steps: int = 3
) -> dict[str, float]:
    """The same Adam steps: N modules with N optimisers against one batched population.

    Equality is asserted after ``check_steps`` steps from the same start: Adam turns
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
    t_loop = _best(lambda: _loop(nets, opts, batches, shape), 1)
    t_batched = _best(lambda: _batched(pop, lrs, batches), 1)
    return {
        "module_loop_s": t_loop,
        "batched_s": t_batched,
        "check_steps": check_steps,
        "max_abs_output_diff": out_diff,
        "params_within_1e-6": float((diff <= 1e-6).float().mean()),
        "max_abs_param_diff": float(diff.max()),
    }


def grouped_vs_vmap(arch: ConvArchitecture, batches: list[torch.Tensor], n: int) -> dict:
    pop = ConvPopulation.create(arch, n, torch.Generator().manual_seed(3))
    buf = torch.empty_like(pop.params)

    def loss(z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return loss_value(z, x, "bce")

    def grouped() -> None:
        for x in batches:
            pop.gradients(x, loss, buf)

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
    pop.gradients(batches[0], loss, buf)
    ref = torch.cat([g[k].flatten(1) for k in names], 1)
    diff = float((ref - buf).abs().max())
    return {"grouped_s": _best(grouped, 2), "vmap_s": _best(vmapped, 2), "max_abs_grad_diff": diff}


def profile(arch: ConvArchitecture, batches: list[torch.Tensor], n: int) -> list[list]:
    pop = ConvPopulation.create(arch, n, torch.Generator().manual_seed(4))
    trainer = Trainer("bce", (0.5, 0.999), 1e-8)
    buf = torch.empty_like(pop.params)
    lrs = [1e-3] * n
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for x in batches:
            trainer.step(pop, x, lrs, buf)
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in rows)
    return [[e.key, round(e.self_cpu_time_total / total, 3)] for e in rows[:10]]


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
        side = module_loop_vs_batched(arch, batches, args.n)
        out.update(side)
        out["speedup_vs_module_loop"] = side["module_loop_s"] / side["batched_s"]
        out["grouped_vs_vmap"] = grouped_vs_vmap(arch, batches[:10], args.n)
        out["profile"] = profile(arch, batches[:10], args.n)
    out["seconds_per_generation_lipi"] = lipi_generation(args.preset)
    out["torch"] = torch.__version__
    out["threads"] = 1
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
