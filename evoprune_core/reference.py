"""The reference of study, run and evolution files, generated from their pydantic models.

``python -m evoprune_core.reference docs/study-files.md`` writes ``docs/study-files.md``: every
key with its type, default, allowed values, an example and its description (the ``Field``'s
``description``). A test compares the file with what this module generates, so a key added to a
model without regenerating the page (or a page naming a key that is gone) fails it.
"""

from __future__ import annotations

import json
import sys
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import annotated_types as at
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

__all__ = ["KeyDoc", "document", "keys", "main"]

_COMMAND = "python -m evoprune_core.reference docs/study-files.md"


@dataclass(frozen=True)
class KeyDoc:
    """One key of a file: its dotted name and what the reference says about it."""

    key: str
    type: str
    default: str
    allowed: str
    example: str
    description: str


def _toml(value: Any) -> str:
    """A value as TOML writes it (inline)."""
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return repr(value)


def _args(ann: Any) -> list[Any]:
    return [a for a in typing.get_args(ann) if a is not type(None)]


def _optional(ann: Any) -> bool:
    origin = typing.get_origin(ann)
    return (origin is typing.Union or origin is types.UnionType) and type(None) in typing.get_args(
        ann
    )


def _type_text(ann: Any) -> str:
    if _optional(ann):
        return _type_text(_args(ann)[0]) + " (optional)"
    origin = typing.get_origin(ann)
    if origin is Literal:
        kinds = {type(c) for c in typing.get_args(ann)}
        return _type_text(kinds.pop()) if len(kinds) == 1 else "string"
    if origin in (list, tuple):
        args = list(typing.get_args(ann))
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"array of {len(args)} {_type_text(args[0])}s"
        return f"array of {_type_text(args[0])}s" if args else "array"
    if origin is dict:
        return "table"
    if origin is typing.Annotated:
        return _type_text(typing.get_args(ann)[0])
    return {int: "integer", float: "float", str: "string", bool: "boolean"}.get(ann, str(ann))


def _choices(ann: Any) -> tuple[Any, ...]:
    """The allowed values of a Literal (or of a list's Literal items)."""
    if _optional(ann):
        return _choices(_args(ann)[0])
    origin = typing.get_origin(ann)
    if origin is Literal:
        return typing.get_args(ann)
    if origin in (list, tuple) and typing.get_args(ann):
        return _choices(typing.get_args(ann)[0])
    return ()


def _bounds(field: FieldInfo) -> str:
    low = high = ""
    parts = []
    for m in field.metadata:
        if isinstance(m, at.Ge):
            low = f"[{m.ge}"
        elif isinstance(m, at.Gt):
            low = f"({m.gt}"
        elif isinstance(m, at.Le):
            high = f"{m.le}]"
        elif isinstance(m, at.Lt):
            high = f"{m.lt})"
        elif isinstance(m, at.MinLen):
            parts.append(f"at least {m.min_length} item{'s' * (m.min_length != 1)}")
        elif isinstance(m, at.MaxLen):
            parts.append(f"at most {m.max_length} item{'s' * (m.max_length != 1)}")
        elif getattr(m, "pattern", None):
            parts.append(f"matches `{m.pattern}`")
    if low or high:
        parts.insert(0, f"{low or '(-inf'}, {high or 'inf)'}")
    return "; ".join(parts)


def _allowed(field: FieldInfo) -> str:
    choices = _choices(field.annotation)
    text = ", ".join(_toml(c) for c in choices)
    if field.annotation is bool:
        text = "true, false"
    bounds = _bounds(field)
    if field.annotation is float or _args(field.annotation) == [float]:
        bounds = "; ".join(p for p in (bounds, "finite") if p)
    return "; ".join(p for p in (text, bounds) if p) or "any"


def _default(field: FieldInfo) -> Any:
    if field.default_factory is not None:
        return field.default_factory()  # type: ignore[call-arg]
    return field.default


def _example(key: str, field: FieldInfo, default: Any) -> str:
    if field.examples:
        return f"{key} = {_toml(field.examples[0])}"
    ann = field.annotation
    if typing.get_origin(ann) is dict:
        inner = _args(ann)[-1] if _args(ann) else Any
        if typing.get_origin(inner) is dict:
            return f"{key}.<name>.<parameter> = ..."
        return f"{key}.<parameter> = ..."
    if default is PydanticUndefined or default is None:
        choices = _choices(ann)
        if choices:
            return f"{key} = {_toml(choices[0])}"
        return f"{key} = ..."
    return f"{key} = {_toml(default)}"


def _model(ann: Any) -> type[BaseModel] | None:
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def keys(model: type[BaseModel], prefix: str = "") -> Iterator[KeyDoc]:
    """Every key of ``model``, nested tables flattened to dotted keys (``training.lr``)."""
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        nested = _model(field.annotation)
        if nested is not None:
            yield from keys(nested, key + ".")
            continue
        default = _default(field)
        required = default is PydanticUndefined
        yield KeyDoc(
            key=key,
            type=_type_text(field.annotation),
            default="required" if required else _toml(default),
            allowed=_allowed(field),
            example=_example(key, field, default),
            description=" ".join((field.description or "").split()),
        )


def _sections(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, str, list[KeyDoc]]]:
    """(table name, its summary, its own keys) for ``model`` and each nested table."""
    nested = [
        (name, sub)
        for name, field in model.model_fields.items()
        if (sub := _model(field.annotation)) is not None
    ]
    own = [d for d in keys(model, prefix) if "." not in d.key[len(prefix) :]]
    summary = (model.__doc__ or "").strip().split("\n\n")[0]
    yield prefix.rstrip(".") or "(top level)", " ".join(summary.split()), own
    for name, sub in nested:
        yield from _sections(sub, f"{prefix}{name}.")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _table(rows: list[KeyDoc]) -> list[str]:
    out = [
        "| key | type | default | allowed | example | description |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = (
            f"`{r.key}`", r.type, f"`{r.default}`" if r.default != "required" else "required",
            _cell(r.allowed), f"`{_cell(r.example)}`", _cell(r.description),
        )  # fmt: skip
        out.append("| " + " | ".join(cells) + " |")
    return out


_SPACE_FIELDS = (
    KeyDoc("choices", "array", "-", "strings, numbers or booleans, distinct", "choices = [\"random\", \"magnitude\"]",
           'categorical; `choices = "all"` for `pruning.operator` / `pruning.schedule`: every '
           "installed one"),
    KeyDoc("low", "integer or float", "-", "finite; low <= high (low > 0 with log)", "low = 0.02",
           "a range: integers when low, high (and step) are integers"),
    KeyDoc("high", "integer or float", "-", "finite", "high = 0.3", "upper end (inclusive)"),
    KeyDoc("log", "boolean", "false", "true, false", "log = true", "sample on a log scale"),
    KeyDoc("step", "integer or float", "-", "finite, > 0; not with log", "step = 2",
           "a discretised range"),
)  # fmt: skip


def _file_section(title: str, intro: str, model: type[BaseModel]) -> list[str]:
    out = [f"## {title}", "", intro, ""]
    for table, summary, rows in _sections(model):
        if not rows:
            continue
        out += [f"### `{table}`" if table != "(top level)" else "### Top-level keys", ""]
        if summary and table != "(top level)":
            out += [summary, ""]
        out += [*_table(rows), ""]
    return out


def document() -> str:
    """The whole of ``docs/study-files.md``."""
    from .config import RunConfig
    from .evolve.config import EvolveFile
    from .study import StudyFileModel

    out = [
        "# Study, run and evolution files",
        "",
        f"<!-- Generated from the pydantic models by `{_COMMAND}`; do not edit by hand. -->",
        "",
        "Every key of the three TOML files evoprune reads, generated from the models that "
        "validate them. After adding or changing a key (give its `Field` a `description`), "
        f"regenerate this page with `{_COMMAND}`; `tests/test_reference.py` fails while it is "
        "out of date.",
        "",
        'Types are TOML types; numbers are strict (`"5"` is not a number, `5` is a valid '
        "float), floats must be finite (`inf` and `nan` are refused) and unknown keys are "
        "errors. `allowed` gives ranges as intervals (`[` inclusive, `(` exclusive). The "
        "declared parameters of operators, schedules, datasets and plugin engines depend on "
        "the installed plugins: `evoprune plugins` lists them with their ranges and defaults.",
        "",
    ]
    out += _file_section(
        "Study files (`evoprune study FILE`)",
        "An Optuna study: a name, a `[base]` run configuration, a `[space]` to sample, the "
        "objectives. Example: `studies/quickstart.toml`. Resuming a study whose file changed "
        "(anything but `n_trials`, `name`, `description`, `sampler_seed`) is refused; "
        "`--fork NAME` runs the edited file as a new study.",
        StudyFileModel,
    )
    out += [
        "### `[space]` entries",
        "",
        'Each key of `[space]` is a dotted run-file key (quoted: `"pruning.amount"`) or '
        "`operator.<name>.<parameter>` for a declared string parameter; its value is an "
        "inline table of these fields. A key is sampled only when the trial's engine reads "
        "it; `pruning.amount` only for operators that use it.",
        "",
        *_table(list(_SPACE_FIELDS)),
        "",
    ]
    out += _file_section(
        "Run files (`evoprune run FILE`, and `[base]` of a study file)",
        "One engine run. Example: `studies/runs/canonical.toml`. `--set key=value` overrides "
        "any key (the value read as TOML).",
        RunConfig,
    )
    out += _file_section(
        "Evolution files (`evoprune evolve FILE`)",
        "Typed GP over pruning functions. Example: `studies/evolve/quickstart.toml`. A "
        "checkpoint resumes only the same content (all but `evolution.generations`, "
        "`transfer.*`, `description`, `compute.threads`).",
        EvolveFile,
    )
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the reference to the path given (or print it)."""
    args = sys.argv[1:] if argv is None else argv
    text = document()
    if args:
        Path(args[0]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
