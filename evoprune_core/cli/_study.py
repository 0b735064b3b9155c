"""Sub-commands ``study``, ``report`` and ``ui`` of the ``evoprune`` command."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from .._pause import pause_point
from ..errors import ConfigError
from ..reporting import Attr

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from ..plugins import Registry
    from ..study import StudyConfig, StudyOutcome

__all__ = ["register"]

_STORE_HELP = "local store directory for Optuna journals and MLflow (default: mlruns)"


def _quiet_libraries() -> None:
    """Optuna's logs down to warnings (mlflow's are quieted where it is imported, see
    ``tracking.quiet_mlflow``: a run that tracks nothing never imports it)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def cmd_study(args: argparse.Namespace) -> int:
    from ..plugins import Registry
    from ..study import check_store_path, check_study, load_study_config, resolve_store

    if args.n_trials is not None and args.n_trials < 1:
        raise ConfigError(f"--n-trials: expected a positive integer, got {args.n_trials}")
    if args.workers < 1:
        raise ConfigError(f"--workers: expected a positive integer, got {args.workers}")
    cores = _cores()
    if args.workers > 4 * cores:
        raise ConfigError(
            f"--workers: at most {4 * cores} (4 x the {cores} cores this process may use), "
            f"got {args.workers}"
        )
    registry = Registry.load()
    cfg = load_study_config(args.file, registry)
    if args.fork is not None:
        cfg = _forked(cfg, args.fork, quiet=args.worker_index is not None)
    tracked = registry.tracker(cfg.tracking).obj.uses_store
    store = resolve_store(cfg.name, args.store, args.storage, args.tracking_uri, tracked)
    check_store_path(store)
    if args.worker_index is None:
        check_study(cfg, registry)
    _quiet_libraries()
    from ..study import open_storage, run_study, work

    if store.journal is None and args.worker_index is None:
        open_storage(store)  # an unreachable database is refused before anything is written

    if args.worker_index is not None:
        if args.worker_threads:
            import torch

            torch.set_num_threads(args.worker_threads)
        work(cfg, store, registry, args.n_trials, args.worker_index)
        return 0
    outcome = run_study(cfg, store, registry, args.n_trials, args.workers, args.quiet)
    print(outcome.report)
    here = str(Path.cwd()) + "/"  # show paths below the working directory relative to it
    if outcome.pareto_plot:
        print(f"\nPareto front plot: {outcome.pareto_plot}".replace(here, ""))
    print(
        f"\n{outcome.complete}/{outcome.target} trials complete"
        + (f", {outcome.failed} failed" if outcome.failed else "")
        + f"; Optuna storage: {store.storage}; ".replace(here, "")
        + (
            f"MLflow: {store.tracking_uri}".replace(here, "")
            if tracked
            else f"tracking: {cfg.tracking}"
        )
    )
    if not tracked:
        pass
    elif store.tracking_uri.startswith("sqlite:///"):
        ui = "evoprune ui" + ("" if args.store == "mlruns" else f" --store {args.store}")
        print(
            f"Open the MLflow UI: {ui}  -> http://127.0.0.1:5000"
            + runs_page(outcome.experiment_id, cfg.tracking == "mlflow")
        )
    else:
        print(
            f"MLflow UI: {store.tracking_uri}"
            + runs_page(outcome.experiment_id, cfg.tracking == "mlflow")
        )
    if outcome.complete < outcome.target:
        print(f"error: {_short_of_target(outcome)}", file=sys.stderr)
        return 1
    return 0


def _forked(cfg: StudyConfig, name: str, quiet: bool) -> StudyConfig:
    """The study file's content under another study name (``--fork NAME``)."""
    import dataclasses
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}", name):
        raise ConfigError(
            f"--fork: {name!r}: expected a study name (letters, digits, '_', '.', '-'; "
            "at most 100, starting with a letter or digit)"
        )
    if not quiet and name != cfg.name:
        print(
            f"study {name!r}: forked from {cfg.name!r} with the content of {cfg.path} "
            f"(report it with: evoprune report {name})",
            file=sys.stderr,
        )
    return dataclasses.replace(cfg, name=name)


def _cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the system has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def _short_of_target(outcome: StudyOutcome) -> str:
    """Why a study ended with fewer COMPLETE trials than its target, in one line."""
    common = Counter(outcome.errors).most_common(1)
    why = f"; most frequent error ({common[0][1]}x): {common[0][0]}" if common else ""
    return (
        f"study {outcome.name!r} ended short of its target: {outcome.complete}/{outcome.target} "
        f"trials complete, {outcome.failed} failed{why}; fix the cause and run the same "
        "command again to resume"
    )


def _study_name_and_objectives(
    target: str, registry: Registry
) -> tuple[str, tuple[str, ...] | None]:
    path = Path(target)
    if path.suffix == ".toml" or path.is_file():
        from ..study import load_study_config

        cfg = load_study_config(path, registry)
        return cfg.name, cfg.objectives
    return target, None


def cmd_report(args: argparse.Namespace) -> int:
    from ..plugins import Registry
    from ..reporting import study_report
    from ..study import open_storage, repair_journal, resolve_store

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        registry = Registry.load()
    name, objectives = _study_name_and_objectives(args.study, registry)
    store = resolve_store(name, args.store, args.storage, None)
    if store.journal is not None and not store.journal.is_file():
        raise ConfigError(f"{args.study}: no study {name!r} stored at {store.journal}")
    if args.top < 1:
        raise ConfigError(f"--top: expected a positive integer, got {args.top}")
    _check_stats_options(args)
    _quiet_libraries()
    if store.journal is not None:
        note = repair_journal(store.journal)
        if note:
            warnings.warn(note, stacklevel=1)
    import optuna

    try:
        study = optuna.load_study(study_name=name, storage=open_storage(store))
    except KeyError:
        raise ConfigError(f"{args.study}: no study {name!r} in {store.storage}") from None
    if objectives is None:
        objectives = tuple(study.user_attrs.get(Attr.OBJECTIVES, ["val_loss"]))
    if args.stats:
        return _print_stats(args, name, study.get_trials(deepcopy=False), objectives)
    print(study_report(study.get_trials(deepcopy=False), objectives, args.format, args.top))
    return 0


def _check_stats_options(args: argparse.Namespace) -> None:
    if not args.stats:
        for opt, value in (("--against", args.against), ("--group", args.group),
                           ("--metric", args.metric), ("--plots", args.plots)):  # fmt: skip
            if value is not None:
                raise ConfigError(f"{opt}: only with --stats")
    if args.plots is not None and Path(args.plots).exists() and not Path(args.plots).is_dir():
        raise ConfigError(f"--plots: {args.plots} exists and is not a directory")


def _print_stats(
    args: argparse.Namespace, name: str, trials: list[FrozenTrial], objectives: tuple[str, ...]
) -> int:
    """``report --stats``: tests across seeds (see ``evoprune_core.stats_report``), plots."""
    from ..reporting import build_stats, format_stats

    metrics = tuple(dict.fromkeys(args.metric)) if args.metric else objectives
    report = build_stats(trials, metrics, name, args.group or "trial", args.against)
    print(format_stats(report, args.format))
    if args.plots is not None:
        from ..reporting import write_figures

        for path in write_figures(report, Path(args.plots)):
            print(f"wrote {path}", file=sys.stderr)
    return 0


def runs_page(experiment_id: str, view: bool = True) -> str:
    """The UI path of an experiment's runs table (parent study run, trials nested under it).

    MLflow 3's UI opens experiments on their GenAI pages unless asked for this workflow, and
    shows no metric or param column until one is picked by hand: ``view`` (an experiment a
    study tracked, which shares its view: ``tracking.runs_view``) opens the table with the
    objective metrics and the combination's params as columns.
    """
    from ..tracking import VIEW_KEY

    page = f"/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    return page + (f"&viewStateShareKey={VIEW_KEY}" if view else "")


def _experiments(root: Path) -> list[tuple[str, str, bool]]:
    """(name, id, whether it shares evoprune's view of its runs table) of the studies in the
    local store, for the addresses ``evoprune ui`` prints."""
    import sqlite3

    from ..tracking import VIEW_TAG

    try:
        with sqlite3.connect(f"file:{root / 'mlflow.db'}?mode=ro", uri=True) as db:
            rows = db.execute(
                "SELECT name, experiment_id, EXISTS(SELECT 1 FROM experiment_tags t WHERE "
                "t.experiment_id = e.experiment_id AND t.key = ?) FROM experiments e "
                "WHERE lifecycle_stage = 'active' AND name != 'Default' ORDER BY experiment_id",
                (VIEW_TAG,),
            ).fetchall()
    except sqlite3.Error:
        return []
    return [(str(name), str(exp_id), bool(view)) for name, exp_id, view in rows]


def cmd_ui(args: argparse.Namespace) -> int:
    from ..tracking import default_tracking_uri

    root = Path(args.store).resolve()
    if not (root / "mlflow.db").is_file():
        raise ConfigError(
            f"--store: no MLflow store at {root / 'mlflow.db'}; run `evoprune study` first"
        )
    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port: expected 1..65535, got {args.port}")
    host = _check_host(args.host)
    cmd = [
        sys.executable, "-m", "mlflow", "ui",
        "--backend-store-uri", default_tracking_uri(root),
        "--host", host, "--port", str(args.port),
    ]  # fmt: skip
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base = f"http://{'[' + shown + ']' if ':' in shown else shown}:{args.port}"
    print(f"MLflow UI at {base}  (store {root}; Ctrl-C stops it)", flush=True)
    for name, exp_id, view in _experiments(root):
        print(f"  {name}: {base}{runs_page(exp_id, view)}", flush=True)
    sys.stderr.flush()
    os.execv(sys.executable, cmd)  # become the UI: signals reach it, nothing is left behind
    return 0  # pragma: no cover


def _check_host(host: str) -> str:
    """An IP address or a host name to listen on (one line naming --host otherwise)."""
    import ipaddress
    import re

    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if re.fullmatch(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9-]{1,63})*", host):
        return host
    raise ConfigError(f"--host: expected an IP address or a host name, got {host!r}")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``study``, ``report`` and ``ui`` to the ``evoprune`` sub-command parser."""
    p = sub.add_parser("study", help="run (or resume) an Optuna study tracked in MLflow")
    p.add_argument("file", help="study file (TOML), e.g. studies/quickstart.toml")
    p.add_argument("--n-trials", type=int, help="completed trials to reach (default: the file's)")
    p.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    p.add_argument("--storage", help="Optuna storage: a journal file, or an RDB URL")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite in --store)")
    p.add_argument("--store", default="mlruns", help=_STORE_HELP)
    p.add_argument(
        "--fork",
        metavar="NAME",
        help="run the file as a new study NAME (after editing a study that has run); "
        "the stored study keeps its content",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    p.add_argument("--worker-threads", type=int, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_study)

    p = sub.add_parser("report", help="print a study's best combinations again from storage")
    p.add_argument("study", help="study file or study name")
    p.add_argument("--format", choices=["text", "csv", "markdown", "json"], default="text")
    p.add_argument("--top", type=int, default=10, help="rows of the best-combinations table")
    p.add_argument("--storage", help="Optuna storage (default: the journal in --store)")
    p.add_argument("--store", default="mlruns", help=_STORE_HELP)
    p.add_argument(
        "--stats",
        action="store_true",
        help="median/IQR over seeds, Mann-Whitney U against a reference, Holm, A12",
    )
    p.add_argument(
        "--against",
        metavar="COMBINATION",
        help="reference for every group: engine/operator/schedule, engine/none (a baseline) "
        "or trial:N (default: each engine's no-pruning baseline)",
    )
    p.add_argument(
        "--group",
        choices=["trial", "combination"],
        help="what seeds replicate: one trial (default) or every trial of a combination pooled",
    )
    p.add_argument(
        "--metric",
        action="append",
        choices=["val_loss", "test_loss", "train_loss", "remaining_fraction"],
        help="metric to test (repeatable; default: the study's objectives)",
    )
    p.add_argument(
        "--plots", metavar="DIR", help="with --stats: write box plots and the Pareto front (PNG)"
    )
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "ui",
        help="start the MLflow UI on the project's store",
        description="Start the MLflow UI on the project's local store and print the address "
        "of each study's runs table. It listens on 127.0.0.1 (this machine only) unless "
        "--host says otherwise.",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: every "
        "network interface, which lets anyone who can reach it read and change the runs)",
    )
    p.add_argument("--port", type=int, default=5000, help="port to listen on (default 5000)")
    p.add_argument("--store", default="mlruns", help=_STORE_HELP)
    p.set_defaults(func=cmd_ui)


pause_point("import")  # tests hold a start here, inside an import (tests/test_reliability.py)
