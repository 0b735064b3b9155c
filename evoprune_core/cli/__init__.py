"""The ``evoprune`` command. Errors of the ``EvopruneError`` family become one line, exit 2."""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from ..errors import ConfigError, EvopruneError
from ._signals import Terminated, exit_status, interruptible

__all__ = ["DESCRIPTION", "main"]

DESCRIPTION = (
    "Evolutionary pruning of neural networks: Optuna studies tracked in MLflow, single runs, "
    "typed-GP evolution of pruning functions. Bad input is one 'error:' line (exit 2); "
    "--quiet silences progress."
)


class _Progress:
    """A tqdm bar over generations (silent with ``--quiet``)."""

    def __init__(self, total: int, quiet: bool, desc: str) -> None:
        self.bar = None
        if not quiet:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="gen", file=sys.stderr, leave=False)

    def generation(self, t: int, record: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(
                val=f"{record['val_loss']:.4f}", rem=f"{record['remaining_fraction']:.3f}"
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_run(args: argparse.Namespace) -> int:
    from .._fs import check_output_file, write_output
    from ..loading import load_run
    from ..plugins import Registry

    registry = Registry.load()
    resolved = load_run(args.config, args.set, registry)
    cfg = resolved.config
    for option, value in (("--output", args.output), ("--save-model", args.save_model)):
        if value is not None:  # checked before the run, so that no result is lost
            check_output_file(option, value)
    progress = _Progress(cfg.generations, args.quiet, f"{cfg.engine} {cfg.pruning.operator}")
    try:
        result = resolved.run(progress)
    except ConfigError as exc:  # a key only the built dataset can check (e.g. a file's shape)
        raise ConfigError(f"{args.config or '<defaults>'}: {exc}") from None
    finally:
        progress.close()
    summary = result.summary()
    summary["config"] = cfg.model_dump(mode="json")
    if args.output is not None:
        write_output("--output", args.output, json.dumps(summary, indent=2) + "\n")
    if args.save_model is not None:
        model = result.population.take([result.best]).to_bytes()
        write_output("--save-model", args.save_model, model)
    sp = result.sparsity
    lines = [
        f"engine {cfg.engine}  operator {cfg.pruning.operator}  schedule {cfg.pruning.schedule}"
        f"  seed {cfg.seed}  generations {cfg.generations}",
        f"test L1 {result.test_loss:.4f}  val L1 {result.val_loss:.4f}  "
        f"train L1 {result.train_loss:.4f}",
        f"remaining fraction: whole {sp.fraction():.4f}  encoder {sp.fraction('encoder'):.4f}"
        f"  decoder {sp.fraction('decoder'):.4f}",
        f"pruning events {summary['pruning_events']}  seconds {result.seconds:.1f}"
        f"  backend {result.extra.get('backend', '-')}",
    ]
    print("\n".join(lines))
    return 0


def _param_text(q: dict[str, Any]) -> str:
    """``name: kind in [low, high] = default`` for the plugin listing."""
    if q["kind"] in ("float", "int"):
        rng = f" in [{q['low']}, {q['high']}]" + (" log" if q.get("log") else "")
    elif q["kind"] == "categorical":
        rng = " in {" + ", ".join(str(c) for c in q["choices"]) + "}"
    else:
        rng = ""
    fixed = "" if q.get("tunable", True) else "  (not tuned)"
    return f"{q['name']}: {q['kind']}{rng} = {json.dumps(q['default'])}{fixed}"


def _plugins_text(desc: list[dict[str, Any]]) -> str:
    lines: list[str] = []
    for p in desc:
        origin = "built-in" if p["builtin"] else f"plugin {p['name']!r}"
        head = f"{p['distribution']} {p['version']}  ({origin})"
        if p["broken"]:
            lines.append(f"{head}  BROKEN: {p['broken']}")
            continue
        lines.append(head)
        lines.append("  hooks: " + (", ".join(p["hooks"]) or "none"))
        for kind, items in p["provides"].items():
            for it in items:
                extra = []
                if kind == "engines" and it["keys"]:
                    extra.append("keys " + ", ".join(k + ".*" for k in it["keys"]))
                if kind == "operators":
                    if it.get("needs"):
                        extra.append("needs " + ", ".join(it["needs"]))
                    if not it.get("uses_amount", True):
                        extra.append("ignores amount")
                tail = f"  [{'; '.join(extra)}]" if extra else ""
                lines.append(f"  {kind[:-1]:8} {it['name']:18} {it['description']}{tail}".rstrip())
                for q in it["parameters"]:
                    lines.append(f"  {'':8} {'':18}   {_param_text(q)}")
    broken = sum(1 for p in desc if p["broken"])
    lines.append(f"{len(desc)} plugins, {broken} broken")
    return "\n".join(lines)


def cmd_plugins(args: argparse.Namespace) -> int:
    """List every plugin (built-in, entry point) with what it provides; broken ones too."""
    from ..plugins import Registry

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # broken plugins are listed with their reason
        registry = Registry.load()
    desc = registry.describe()
    print(json.dumps(desc, indent=2) if args.json else _plugins_text(desc))
    for name in registry.unmatched:
        print(
            f"warning: EVOPRUNE_PLUGINS names {name!r}, which matches no installed plugin",
            file=sys.stderr,
        )
    for what, where in registry.collisions().items():
        print(
            f"warning: {what} is provided by {' and '.join(where)}; name it as one of these",
            file=sys.stderr,
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    from ..version import __version__

    parser = argparse.ArgumentParser(prog="evoprune", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"evoprune {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="one engine run (no Optuna)")
    p.add_argument("config", help="run configuration (TOML)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a key, e.g. --set training.lr=0.001 (repeatable)",
    )
    p.add_argument("--output", help="write the result (metrics + history) as JSON here")
    p.add_argument("--save-model", help="save the reported network (weights, masks) here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("plugins", help="list installed plugins and what they provide")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_plugins)

    for register in _extensions():
        register(sub)
    return parser


def _extensions() -> list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]]:
    """Sub-commands defined in other modules (studies, reports, UI)."""
    out: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = []
    try:
        from ._study import register as study_register
    except ImportError:
        return out
    out.append(study_register)
    from ._evolve import register as evolve_register

    out.append(evolve_register)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    worker = "--worker-index" in (sys.argv[1:] if argv is None else argv)  # started by a study
    with interruptible(insist=not worker) as checkpoint:
        try:
            args = build_parser().parse_args(argv)
            checkpoint()  # a signal held back during the parser's imports: before any write
            with warnings.catch_warnings():  # restores the warning machinery on exit
                warnings.showwarning = _one_line_warning
                return _dispatch(args)
        except KeyboardInterrupt as exc:  # also SIGTERM/SIGHUP, at any moment
            name = f" ({exc.args[0]})" if isinstance(exc, Terminated) else ""
            print(f"interrupted{name}", file=sys.stderr)
            return exit_status(exc)


def _one_line_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """Warnings as one ``warning: ...`` line on stderr (no source line)."""
    text = " ".join(str(message).split())
    print(f"warning: {text}", file=sys.stderr if file is None else file)


_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG)


def _dispatch(args: argparse.Namespace) -> int:
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()
        return status
    except EvopruneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_status
    except OSError as exc:
        if exc.errno not in _FULL:
            raise
        where = exc.filename or "standard output"
        print(f"error: {where}: cannot write ({exc.strerror})", file=sys.stderr)
        _drop_stdout()
        return 1


def _drop_stdout() -> None:
    """Point standard output at the null device: what is still buffered for a full disk would
    fail again when the interpreter exits (a traceback after the error line)."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError):
        pass
