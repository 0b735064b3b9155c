"""Plugin discovery, isolation, EVOPRUNE_PLUGINS filtering, collisions and `evoprune plugins`.

Fake distributions are real ones: a module plus a ``<name>-<version>.dist-info`` folder in a
temporary directory put on the path, so ``importlib.metadata`` finds their entry points.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evoprune_core import Operator, PluginError, hookimpl
from evoprune_core.operators import RandomPruning
from evoprune_core.plugins import PluginWarning, Registry

BUILTIN_OPERATORS = ["conjunctive", "formula", "magnitude", "none", "random", "variance"]

OPERATOR_MODULE = """
from evoprune_core import Operator, hookimpl

class Op(Operator):
    name = {op!r}
    description = "test operator from {dist}"
    uses_amount = False

    def prune(self, ctx):
        return ctx.unchanged()

@hookimpl
def evoprune_register_operators():
    return [Op]
"""

TINY_RUN = """
engine = "canonical"
generations = 2
[data]
name = "binary-clustering"
[data.params]
clusters = 3
dims = 20
rows_per_cluster = 20
val_rows_per_cluster = 5
test_rows_per_cluster = 5
[network]
encoder = [8, 4]
[training]
batch_size = 10
[pruning]
probability = 1.0
calibration_rows = 20
calibration_batches = 2
"""


def fake_dist(root: Path, dist: str, module: str, source: str, ep: str | None = None) -> None:
    """Write module ``module`` and a dist-info declaring entry point ``ep = module``."""
    (root / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        f"[evoprune]\n{ep or module} = {module}\n", encoding="utf-8"
    )


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on ``sys.path`` for fake distributions; their modules are forgotten after."""
    before = set(sys.modules)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("fake_"):
            del sys.modules[name]


def load(env: dict[str, str] | None = None, **kw: Any) -> Registry:
    return Registry.load(env=env or {}, **kw)


def by_dist(registry: Registry) -> dict[str, dict[str, Any]]:
    return {p["distribution"]: p for p in registry.describe()}


def cli(*args: str, root: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``evoprune ARGS`` in a subprocess with ``root`` on PYTHONPATH."""
    full = {k: v for k, v in os.environ.items() if k != "EVOPRUNE_PLUGINS"}
    full["PYTHONPATH"] = os.pathsep.join([str(root), full.get("PYTHONPATH", "")])
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "evoprune_core.cli", *args],
        capture_output=True,
        text=True,
        env=full,
        cwd=root,
        timeout=120,
    )


# -- in-process plugins ----------------------------------------------------------------------
class _Plugin:
    """An in-test plugin providing one operator called ``name``."""

    def __init__(self, name: str) -> None:
        self.op = type("TestOp", (RandomPruning,), {"name": name})

    @hookimpl
    def evoprune_register_operators(self) -> list[type[Operator]]:
        return [self.op]


def test_builtins_are_a_plugin() -> None:
    registry = load({"EVOPRUNE_PLUGINS": "none"})
    (info,) = registry.describe()
    assert info["name"] == info["distribution"] == "evoprune"
    assert info["builtin"] is True and info["broken"] is None
    assert info["hooks"] == [
        "evoprune_register_engines",
        "evoprune_register_operators",
        "evoprune_register_schedules",
        "evoprune_register_datasets",
        "evoprune_register_trackers",
    ]
    assert sorted(o["name"] for o in info["provides"]["operators"]) == BUILTIN_OPERATORS
    assert [t["name"] for t in info["provides"]["trackers"]] == ["mlflow", "none"]
    magnitude = next(o for o in info["provides"]["operators"] if o["name"] == "magnitude")
    assert magnitude["parameters"] == [
        {
            "name": "scope",
            "kind": "categorical",
            "default": "layer",
            "choices": ["layer", "global"],
            "help": "rank within each tensor, or across all weights of a member",
            "tunable": True,
        }
    ]
    assert registry.names("operator") == BUILTIN_OPERATORS


def test_in_process_plugin_provides_an_operator() -> None:
    registry = load({"EVOPRUNE_PLUGINS": "none"}, extra=[(_Plugin("extra-op"), "my-dist")])
    got = registry.operator("extra-op")
    assert (got.distribution, got.version, got.qualified) == (
        "my-dist",
        "in-process",
        "my-dist:extra-op",
    )
    info = by_dist(registry)["my-dist"]
    assert info["hooks"] == ["evoprune_register_operators"]
    assert [o["name"] for o in info["provides"]["operators"]] == ["extra-op"]


class _Raises:
    @hookimpl
    def evoprune_register_operators(self) -> list[Any]:
        raise RuntimeError("boom in hook")


class _Malformed:
    @hookimpl
    def evoprune_register_operators(self) -> list[Any]:
        return [object]


class _NotAList:
    @hookimpl
    def evoprune_register_operators(self) -> Any:
        return RandomPruning


class _Typo:
    @hookimpl
    def evoprune_register_operator(self) -> list[Any]:
        return []


@pytest.mark.parametrize(
    ("plugin", "reason"),
    [
        (_Raises(), "hook failed: RuntimeError: boom in hook"),
        (_Malformed(), "hook failed: TypeError: operator hook returned <class 'object'>, not a"),
        (_NotAList(), "hook failed: TypeError: evoprune_register_operators returned <class"),
        (_Typo(), "invalid plugin: TypeError: unknown hook evoprune_register_operator;"),
    ],
    ids=["raises", "malformed", "not-a-list", "unknown-hook"],
)
def test_bad_plugin_is_skipped_with_one_warning(plugin: object, reason: str) -> None:
    with pytest.warns(PluginWarning) as record:
        registry = load({"EVOPRUNE_PLUGINS": "none"}, extra=[(plugin, "bad-dist")])
    assert len(record) == 1
    message = str(record[0].message)
    assert "'bad-dist'" in message and reason in message and "\n" not in message
    info = by_dist(registry)["bad-dist"]
    assert info["broken"].startswith(reason)
    assert info["provides"] == {}
    assert registry.names("operator") == BUILTIN_OPERATORS


def test_collision_error_names_both_distributions() -> None:
    registry = load(
        {"EVOPRUNE_PLUGINS": "none"},
        extra=[(_Plugin("twin"), "dist-a"), (_Plugin("twin"), "dist-b")],
    )
    assert "dist-a:twin" in registry.names("operator")
    assert "dist-b:twin" in registry.names("operator")
    with pytest.raises(PluginError) as err:
        registry.operator("twin")
    assert str(err.value) == (
        "pruning.operator: operator 'twin' is provided by 'dist-a' and 'dist-b'; "
        "pick one with 'dist-a:twin' or 'dist-b:twin'"
    )
    assert registry.operator("dist-b:twin").distribution == "dist-b"
    assert registry.operator("Dist_A:twin").distribution == "dist-a"


def test_unknown_name_lists_allowed() -> None:
    with pytest.raises(PluginError, match="unknown operator 'nope'; allowed: conjunctive, "):
        load({"EVOPRUNE_PLUGINS": "none"}).operator("nope")


# -- entry points (fake distributions on sys.path) ------------------------------------------
def test_entry_point_discovered(site: Path) -> None:
    fake_dist(site, "fake-one", "fake_one", OPERATOR_MODULE.format(op="one-op", dist="fake-one"))
    registry = load({"EVOPRUNE_PLUGINS": "fake-one"})
    info = by_dist(registry)["fake-one"]
    assert (info["name"], info["version"], info["builtin"]) == ("fake_one", "0.1", False)
    assert registry.operator("one-op").distribution == "fake-one"


def test_broken_entry_point_is_isolated(site: Path) -> None:
    fake_dist(site, "fake-broken", "fake_broken", "raise RuntimeError('boom on import')\n")
    fake_dist(site, "fake-ok", "fake_ok", OPERATOR_MODULE.format(op="ok-op", dist="fake-ok"))
    with pytest.warns(PluginWarning, match="'fake-broken'") as record:
        registry = load({"EVOPRUNE_PLUGINS": "fake-broken,fake-ok"})
    assert len(record) == 1
    assert by_dist(registry)["fake-broken"]["broken"] == (
        "import failed: RuntimeError: boom on import"
    )
    assert registry.operator("ok-op").distribution == "fake-ok"


@pytest.mark.parametrize(
    ("selected", "expected"),
    [
        (None, {"evoprune", "fake-a", "fake-b"}),
        ("none", {"evoprune"}),
        ("NONE", {"evoprune"}),
        ("fake-a", {"evoprune", "fake-a"}),
        ("fake_a, Fake-B", {"evoprune", "fake-a", "fake-b"}),
        ("fake_b_ep", {"evoprune", "fake-b"}),
    ],
)
def test_evoprune_plugins_filter(site: Path, selected: str | None, expected: set[str]) -> None:
    fake_dist(site, "fake-a", "fake_a", OPERATOR_MODULE.format(op="a-op", dist="fake-a"))
    fake_dist(
        site, "fake-b", "fake_b", OPERATOR_MODULE.format(op="b-op", dist="fake-b"), "fake_b_ep"
    )
    registry = load({} if selected is None else {"EVOPRUNE_PLUGINS": selected})
    got = {p.distribution for p in registry.plugins}
    if selected is None:  # every installed plugin: the fakes and whatever else is installed
        assert expected <= got
    else:
        assert got == expected


def test_evoprune_plugins_unknown_name_warns(site: Path) -> None:
    with pytest.warns(PluginWarning, match="EVOPRUNE_PLUGINS names 'not-installed'"):
        registry = load({"EVOPRUNE_PLUGINS": "not-installed"})
    assert [p.distribution for p in registry.plugins] == ["evoprune"]


# -- through the CLI, in subprocesses -------------------------------------------------------
def test_cli_broken_plugin_does_not_stop_listing_or_run(tmp_path: Path) -> None:
    fake_dist(tmp_path, "fake-broken", "fake_broken", "raise RuntimeError('boom on import')\n")
    fake_dist(tmp_path, "fake-ok", "fake_ok", OPERATOR_MODULE.format(op="ok-op", dist="fake-ok"))
    env = {"EVOPRUNE_PLUGINS": "fake-broken,fake-ok"}
    listing = cli("plugins", "--json", root=tmp_path, env=env)
    assert listing.returncode == 0, listing.stderr
    plugins = {p["distribution"]: p for p in json.loads(listing.stdout)}
    assert plugins["fake-broken"]["broken"] == "import failed: RuntimeError: boom on import"
    assert plugins["fake-ok"]["broken"] is None
    text = cli("plugins", root=tmp_path, env=env)
    assert text.returncode == 0, text.stderr
    assert (
        "fake-broken 0.1  (plugin 'fake_broken')  BROKEN: import failed: RuntimeError: "
        "boom on import"
    ) in text.stdout.splitlines()
    assert text.stdout.splitlines()[-1] == "3 plugins, 1 broken"

    (tmp_path / "run.toml").write_text(TINY_RUN, encoding="utf-8")
    run = cli(
        "run", "run.toml", "--quiet", "--set", "pruning.operator=ok-op", root=tmp_path, env=env
    )
    assert run.returncode == 0, run.stderr
    assert "operator ok-op" in run.stdout
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("warning: plugin ")
    assert "'fake-broken'" in lines[0] and "RuntimeError: boom on import" in lines[0]


def test_cli_collision(tmp_path: Path) -> None:
    for dist, module in (("fake-a", "fake_a"), ("fake-b", "fake_b")):
        fake_dist(tmp_path, dist, module, OPERATOR_MODULE.format(op="twin", dist=dist))
    (tmp_path / "run.toml").write_text(TINY_RUN, encoding="utf-8")
    env = {"EVOPRUNE_PLUGINS": "fake-a,fake-b"}
    bad = cli(
        "run", "run.toml", "--quiet", "--set", "pruning.operator=twin", root=tmp_path, env=env
    )
    assert bad.returncode == 2
    assert bad.stderr == (
        "error: run.toml: pruning.operator: operator 'twin' is provided by 'fake-a' and "
        "'fake-b'; pick one with 'fake-a:twin' or 'fake-b:twin'\n"
    )
    good = cli(
        "run",
        "run.toml",
        "--quiet",
        "--set",
        "pruning.operator=fake-b:twin",
        root=tmp_path,
        env=env,
    )
    assert good.returncode == 0, good.stderr
    assert "operator fake-b:twin" in good.stdout


# -- the really installed example plugin ----------------------------------------------------
def _installed(dist: str) -> bool:
    try:
        md.distribution(dist)
    except md.PackageNotFoundError:
        return False
    return True


needs_taylor = pytest.mark.skipif(
    not _installed("evoprune-taylor"),
    reason="evoprune-taylor is not installed (pip install ./plugins/evoprune-taylor)",
)


@needs_taylor
def test_installed_taylor_plugin_discovered() -> None:
    registry = load()
    info = by_dist(registry)["evoprune-taylor"]
    assert info["name"] == "taylor" and info["builtin"] is False and info["broken"] is None
    assert info["version"] == md.version("evoprune-taylor")
    assert info["hooks"] == ["evoprune_register_operators"]
    (op,) = info["provides"]["operators"]
    assert op["name"] == "taylor" and op["needs"] == ["gradients"] and op["uses_amount"]
    assert [p["name"] for p in op["parameters"]] == [
        "scope",
        "structured",
        "aggregate",
        "include_output",
    ]
    assert "taylor" not in load({"EVOPRUNE_PLUGINS": "none"}).names("operator")


@needs_taylor
def test_installed_taylor_plugin_listed_by_cli(tmp_path: Path) -> None:
    out = cli("plugins", "--json", root=tmp_path)
    assert out.returncode == 0, out.stderr
    plugins = {p["distribution"]: p for p in json.loads(out.stdout)}
    assert plugins["evoprune-taylor"]["provides"]["operators"][0]["name"] == "taylor"


def test_entry_point_name_works_where_a_distribution_name_does(site: Path) -> None:
    fake_dist(
        site, "fake-b", "fake_b", OPERATOR_MODULE.format(op="b-op", dist="fake-b"), "fake_b_ep"
    )
    registry = load({"EVOPRUNE_PLUGINS": "fake-b"})
    assert registry.operator("fake_b_ep:b-op").distribution == "fake-b"
    assert registry.operator("fake-b:b-op").distribution == "fake-b"
    with pytest.raises(PluginError, match="unknown operator 'other:b-op'"):
        registry.operator("other:b-op")


def test_cli_plugins_warns_about_unmatched_names_and_collisions(tmp_path: Path) -> None:
    for dist, module in (("fake-a", "fake_a"), ("fake-b", "fake_b")):
        fake_dist(tmp_path, dist, module, OPERATOR_MODULE.format(op="twin", dist=dist))
    env = {"EVOPRUNE_PLUGINS": "fake-a,fake-b,fake-typo"}
    listing = cli("plugins", root=tmp_path, env=env)
    assert listing.returncode == 0, listing.stderr
    assert listing.stderr.splitlines() == [
        "warning: EVOPRUNE_PLUGINS names 'fake-typo', which matches no installed plugin",
        "warning: operator twin is provided by fake-a:twin and fake-b:twin; name it as one of "
        "these",
    ]
