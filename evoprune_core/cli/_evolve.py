"""The ``evoprune evolve`` sub-command: run or resume an evolution, write and track its results."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError, TrialFailed

__all__ = ["cmd_evolve", "register"]

_STORE_HELP = "local store directory (checkpoints, cached networks, MLflow); default: mlruns"


def _prepare_fn(cfg: Any, compute: Any, registry: Any, cache: Path) -> Any:
    from ..evolve.fitness import prepare_task

    made: dict[tuple[str, int], Any] = {}

    def prepare(name: str, seed: int) -> Any:
        if (name, seed) not in made:
            made[(name, seed)] = prepare_task(name, cfg.fitness, seed, compute, registry, cache)
        return made[(name, seed)]

    return prepare


def _phase(quiet: bool, total: int, desc: str, unit: str) -> Any:
    """A progress bar for one phase of ``evolve`` on stderr (a silent one with ``--quiet``)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, disable=quiet)


def cmd_evolve(args: argparse.Namespace) -> int:
    from ..config import flatten
    from ..evolve.config import load_evolve_config
    from ..plugins import Registry
    from ..study import resolve_store
    from ._study import _quiet_libraries

    registry = Registry.load()
    cfg = load_evolve_config(args.file, args.set, registry)
    if args.output is not None:
        out = Path(args.output)
        if out.suffix != ".json":
            raise ConfigError(f"--output: {out}: expected a .json file name")
        if not out.resolve().parent.is_dir():
            raise ConfigError(f"--output: directory {out.resolve().parent} does not exist")
    tracker_cls = registry.tracker(cfg.tracking, f"{args.file}: tracking").obj
    store = resolve_store(cfg.name, args.store, None, args.tracking_uri, tracker_cls.uses_store)
    _quiet_libraries()

    from ..engines.runtime import cpu_numerics, resolve_compute
    from ..evolve.loop import Evolution, hall_of_fame
    from ..evolve.report import hall_rows, hall_text, write_outputs
    from ..evolve.transfer import run_transfer, transfer_markdown

    compute = resolve_compute(cfg.compute)
    store.prepare()
    work = store.root / "evolve" / cfg.name
    work.mkdir(parents=True, exist_ok=True)
    tracker = tracker_cls(store.tracking_uri, store.artifact_root)
    params = flatten(cfg.model_dump(mode="json"))
    params.pop("tracking")  # which tracker is not part of what the run records
    run_id = tracker.start_run(
        f"evolve-{cfg.name}", "evolution", f"{cfg.name}-{cfg.identity()}", params
    ).run_id
    bar = None

    def on_generation(record: dict[str, float]) -> None:
        metrics = {k: v for k, v in record.items() if k != "generation"}
        tracker.log_metrics(run_id, metrics, int(record["generation"]))
        if bar is not None:
            bar.n = int(record["generation"]) + 1
            bar.set_postfix(
                best=f"{record['best_fitness']:.4f}", valid=f"{record['validity_rate']:.2f}"
            )
            bar.refresh()

    try:
        with cpu_numerics():
            prepare = _prepare_fn(cfg, compute, registry, work / "cache")
            tasks = []
            with _phase(args.quiet, len(cfg.fitness.tasks), "pre-train", "task") as pre:
                for name in cfg.fitness.tasks:
                    pre.set_postfix_str(name)
                    tasks.append(prepare(name, cfg.seed))
                    pre.update(1)
            if not args.quiet:
                bar = _phase(False, cfg.evolution.generations + 1, f"evolve {cfg.name}", "gen")
            evo = Evolution(cfg, tasks, compute, work / "checkpoint.json", on_generation)
            state = evo.run()
            if bar is not None:
                bar.close()
            hall = hall_of_fame(state, cfg.evolution.hall_of_fame)
            if not hall:
                raise TrialFailed("no formula reached a finite fitness (every network diverged)")
            transfer = None
            if cfg.transfer.enabled and not args.no_transfer:
                top = [e.text for e in hall[: cfg.transfer.top]]
                steps = (len(cfg.fitness.tasks) + 1) * len(cfg.transfer.seeds)
                with _phase(args.quiet, steps, "transfer", "task-seed") as tb:

                    def step(name: str, seed: int) -> None:
                        tb.set_postfix_str(f"{name} seed {seed}")
                        tb.update(1)

                    transfer = run_transfer(cfg, top, registry, compute, prepare, step)
        json_path = Path(args.output) if args.output else work / "hall_of_fame.json"
        extra = {"transfer": transfer.to_json()} if transfer is not None else {}
        rows = hall_rows(hall)
        paths = write_outputs(cfg, state, rows, json_path, extra)
        if transfer is not None:
            paths["transfer"] = json_path.with_name(json_path.stem + "-transfer.md")
            paths["transfer"].write_text(transfer_markdown(transfer), encoding="utf-8")
        for key, path in paths.items():
            tracker.log_artifact(run_id, path, "plots" if key == "figure" else None)
        if state.history:
            last = state.history[-1]
            tracker.log_metrics(
                run_id, {"final_best_fitness": hall[0].fitness}, int(last["generation"])
            )
        tracker.close_run(run_id, "FINISHED")
    except BaseException as exc:
        if bar is not None:
            bar.close()
        tracker.close_run(run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED",
                          f"{type(exc).__name__}: {exc}")  # fmt: skip
        raise
    print(hall_text(rows, list(cfg.fitness.tasks)))
    if transfer is not None:
        print()
        print(transfer_markdown(transfer))
    here = str(Path.cwd()) + "/"
    print(
        (f"\nhall of fame: {paths['json']} (+ .md); run file: {paths['run']}; "
         f"checkpoint: {work / 'checkpoint.json'}; "
         + (f"MLflow experiment evolve-{cfg.name}" if tracker_cls.uses_store
            else f"tracking: {cfg.tracking}"))
        .replace(here, "")
    )  # fmt: skip
    return 0


def register(sub: Any) -> None:
    """Add ``evolve`` to the ``evoprune`` sub-command parser."""
    p = sub.add_parser("evolve", help="evolve pruning functions with typed GP (resumable)")
    p.add_argument("file", help="evolution file (TOML), e.g. studies/evolve/quickstart.toml")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override a key, e.g. --set evolution.generations=3 (repeatable)",
    )  # fmt: skip
    p.add_argument("--output", help="hall of fame JSON (default: <store>/evolve/<name>/...)")
    p.add_argument("--store", default="mlruns", help=_STORE_HELP)
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite in --store)")
    p.add_argument("--no-transfer", action="store_true", help="skip the transfer table")
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no progress (pre-training, generations, transfer)",
    )
    p.set_defaults(func=cmd_evolve)
