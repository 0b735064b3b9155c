"""``docs/study-files.md`` is generated from the models: every key is in it, and no other."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, Field

from evoprune_core.config import RunConfig
from evoprune_core.evolve.config import EvolveFile
from evoprune_core.reference import document, keys
from evoprune_core.study import StudyFileModel

DOC = Path(__file__).resolve().parents[1] / "docs" / "study-files.md"


def _documented() -> set[str]:
    """The keys named in the first column of the page's tables."""
    return set(re.findall(r"^\| `([^`]+)` \|", DOC.read_text(encoding="utf-8"), re.M))


def test_the_page_is_what_the_models_generate() -> None:
    """Fails when a key was added, renamed or removed without regenerating the page with
    ``python -m evoprune_core.reference docs/study-files.md``."""
    assert DOC.read_text(encoding="utf-8") == document()


def test_every_key_is_documented_and_every_documented_key_exists() -> None:
    model_keys = {
        k.key for model in (RunConfig, EvolveFile, StudyFileModel) for k in keys(model)
    } | {
        "choices",
        "low",
        "high",
        "log",
        "step",
    }  # the fields of a [space] entry
    documented = _documented()
    assert model_keys - documented == set(), "undocumented keys"
    assert documented - model_keys == set(), "documented keys that do not exist"
    assert {"coevolution.lr_max", "n_trials", "fitness.lr", "compute.backend"} <= documented


def test_every_key_has_a_description() -> None:
    """A key added without ``Field(description=...)`` fails here, named."""
    empty = [
        k.key
        for model in (RunConfig, EvolveFile, StudyFileModel)
        for k in keys(model)
        if not k.description.strip()
    ]
    assert empty == []
    blank = re.findall(r"^\| `([^`]+)` \|.*\|\s*\|$", DOC.read_text(encoding="utf-8"), re.M)
    assert blank == []  # the page too: no row ends with an empty description cell


def test_a_key_row_says_type_default_allowed_and_example() -> None:
    class Tiny(BaseModel):
        """A table."""

        rate: float = Field(default=0.5, gt=0.0, le=1.0, description="how often")
        mode: str = "a"

    class Outer(BaseModel):
        inner: Tiny = Field(default_factory=Tiny)
        names: list[str] = Field(default_factory=list, min_length=1)

    rows = {k.key: k for k in keys(Outer)}
    assert list(rows) == ["inner.rate", "inner.mode", "names"]
    rate = rows["inner.rate"]
    assert (rate.type, rate.default, rate.allowed, rate.example, rate.description) == (
        "float", "0.5", "(0.0, 1.0]; finite", "inner.rate = 0.5", "how often",
    )  # fmt: skip
    assert rows["names"].type == "array of strings" and rows["names"].allowed == "at least 1 item"
    doc = document()
    assert "| `coevolution.lr_max` | float | `10.0` | (0.0, inf); finite |" in doc
    assert '| `sampler` | string | `"tpe"` | "tpe", "nsga2", "random", "grid" |' in doc
