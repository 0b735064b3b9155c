"""The ``evoprune evolve`` sub-command: run or resume an evolution, write and track its results."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from ..errors import ConfigError, TrialFailed

if TYPE_CHECKING:
    from tqdm import tqdm

    from ..engines.runtime import Compute
    from ..evolve.config import EvolveFile
    from ..evolve.fitness import FitnessTask
    from ..plugins import Registry

__all__ = ["cmd_evolve", "register"]

_STORE_HELP = "local store directory (checkpoints, cached networks, MLflow); default: mlruns"


class _Prepare:
    """``prepare(task, seed)``: the pre-trained network of a task (made once per process);
    ``network:dataset`` tasks are CNN classifiers, plain dataset names autoencoders."""

    def __init__(
        self,
        cfg: EvolveFile,
        compute: Compute,
        registry: Registry,
        cache: Path,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.cfg, self.compute, self.registry, self.cache, self.log = (
            cfg, compute, registry, cache, log
        )  # fmt: skip
        self.made: dict[tuple[str, int], FitnessTask] = {}

    def __call__(self, name: str, seed: int) -> FitnessTask:
        from ..evolve.classifier import prepare_classifier
        from ..evolve.config import is_classifier
        from ..evolve.fitness import prepare_task

        if (name, seed) not in self.made:
            fit = self.cfg.fitness
            self.made[(name, seed)] = (
                prepare_classifier(name, fit, seed, self.registry, self.cache, self.log)
                if is_classifier(name)
                else prepare_task(name, fit, seed, self.compute, self.registry, self.cache)
            )
        return self.made[(name, seed)]


def _phase(quiet: bool, total: int, desc: str, unit: str) -> tqdm[NoReturn]:
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
    from ..evolve.compare import compare_text, run_compare
    from ..evolve.config import selection_seeds
    from ..evolve.fresh import score_fresh
    from ..evolve.loop import Evolution, fitness_reliability, hall_of_fame
    from ..evolve.report import hall_rows, hall_text, write_outputs
    from ..evolve.transfer import Method, run_transfer, transfer_markdown

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

    def progress(message: str) -> None:
        if not args.quiet:
            print(f"evolve {cfg.name}: {message}", file=sys.stderr, flush=True)

    try:
        with cpu_numerics():
            prepare = _Prepare(cfg, compute, registry, work / "cache", progress)
            seeds = selection_seeds(cfg.seed, cfg.fitness.pretrain_seeds)
            progress(f"pre-training {len(seeds)} network(s) per task (seeds {seeds})")
            tasks = []
            pairs = [(name, s) for name in cfg.fitness.tasks for s in seeds]
            with _phase(args.quiet, len(pairs), "pre-train", "network") as pre:
                for name, s in pairs:
                    pre.set_postfix_str(f"{name} seed {s}")
                    tasks.append(prepare(name, s))
                    pre.update(1)
            if not args.quiet:
                bar = _phase(False, cfg.evolution.generations + 1, f"evolve {cfg.name}", "gen")
            evo = Evolution(cfg, tasks, compute, work / "checkpoint.json", on_generation)
            state = evo.run()
            if bar is not None:
                bar.close()
            reliability = fitness_reliability(state, cfg.fitness)
            if reliability is None or reliability < 0.5:
                shown = "unmeasurable" if reliability is None else f"{reliability:.2f}"
                print(
                    f"warning: fitness_reliability {shown} (below 0.5): the selection "
                    "scores rank the last generation differently on the two halves of the "
                    "pre-trained networks; raise fitness.pretrain_seeds or fine-tuning",
                    file=sys.stderr,
                )
            selected = hall_of_fame(state, cfg.evolution.hall_of_fame)
            if not selected:
                raise TrialFailed("no formula reached a finite fitness (every network diverged)")
            progress(f"re-scoring the hall of fame on fresh seeds {cfg.fitness.fresh_seeds}")
            labels = [Method(f"hof {i}", "evolved", formula=e.text) for i, e in enumerate(selected)]
            fresh = score_fresh(cfg, labels, prepare, compute, registry, progress)
            order = sorted(
                range(len(selected)),
                key=lambda i: (fresh.fitness(labels[i].label), selected[i].size, selected[i].text),
            )
            hall = [selected[i] for i in order]
            ranked = [labels[i].label for i in order]
            transfer = None
            if cfg.transfer.enabled and not args.no_transfer:
                progress("transfer table")
                top = [e.text for e in hall[: cfg.transfer.top]]
                own = len(cfg.fitness.tasks) if cfg.transfer.evolution_tasks else 0
                steps = (own + len(cfg.transfer.held_out)) * len(cfg.transfer.seeds)
                with _phase(args.quiet, steps, "transfer", "task-seed") as tb:

                    def step(name: str, seed: int) -> None:
                        tb.set_postfix_str(f"{name} seed {seed}")
                        tb.update(1)

                    transfer = run_transfer(cfg, top, registry, compute, prepare, step)
            compared = None
            if args.compare:
                done = {(cfg.search.method, cfg.seed): state}
                compared = run_compare(cfg, prepare, compute, registry, work, progress, done)
        json_path = Path(args.output) if args.output else work / "hall_of_fame.json"
        extra: dict[str, Any] = {}
        if transfer is not None:
            extra["transfer"] = transfer.to_json()
        if compared is not None:
            extra["compare"] = compared
        if cfg.fitness.kind == "classifier":
            from ..evolve.classifier import ClassifierTask, pretrained_test_accuracy

            extra["pretrained_test_accuracy"] = {
                f"{name} seed {seed}": pretrained_test_accuracy(t)
                for (name, seed), t in prepare.made.items()
                if isinstance(t, ClassifierTask)
            }
        rows = hall_rows(hall, fresh, ranked, cfg.search.method)
        paths = write_outputs(cfg, state, rows, json_path, reliability, extra)
        if transfer is not None:
            paths["transfer"] = json_path.with_name(json_path.stem + "-transfer.md")
            paths["transfer"].write_text(transfer_markdown(transfer), encoding="utf-8")
        if compared is not None:
            paths["compare"] = json_path.with_name(json_path.stem + "-compare.md")
            paths["compare"].write_text(
                compare_text(compared, list(cfg.fitness.tasks)), encoding="utf-8"
            )
        for key, path in paths.items():
            tracker.log_artifact(run_id, path, "plots" if key == "figure" else None)
        if state.history:
            last = state.history[-1]
            final = {"final_best_fitness": rows[0]["fitness"]}
            if reliability is not None:
                final["fitness_reliability"] = reliability
            tracker.log_metrics(run_id, final, int(last["generation"]))
        tracker.close_run(run_id, "FINISHED")
    except BaseException as exc:
        if bar is not None:
            bar.close()
        tracker.close_run(run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED",
                          f"{type(exc).__name__}: {exc}")  # fmt: skip
        raise
    print(hall_text(rows, list(cfg.fitness.tasks)))
    shown = "unmeasurable" if reliability is None else f"{reliability:.3f}"
    print(f"fitness_reliability: {shown}")
    if transfer is not None:
        print()
        print(transfer_markdown(transfer))
    if compared is not None:
        print()
        print(compare_text(compared, list(cfg.fitness.tasks)))
    here = str(Path.cwd()) + "/"
    print(
        (f"\nhall of fame: {paths['json']} (+ .md); run file: {paths['run']}; "
         f"checkpoint: {work / 'checkpoint.json'}; "
         + (f"MLflow experiment evolve-{cfg.name}" if tracker_cls.uses_store
            else f"tracking: {cfg.tracking}"))
        .replace(here, "")
    )  # fmt: skip
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
        "--compare", action="store_true",
        help="also run every [compare] method over its evolution seeds at equal budget and "
        "test the winners on the fresh seeds",
    )  # fmt: skip
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no progress (pre-training, generations, re-scoring, transfer, comparison)",
    )
    p.set_defaults(func=cmd_evolve)
