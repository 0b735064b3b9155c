"""The package's import graph is a DAG and every internal import names a module of the tree."""

from __future__ import annotations

from pathlib import Path

from tests.import_graph import cycles, import_graph, unresolved


def test_the_import_graph_has_no_cycles() -> None:
    graph = import_graph()
    assert len(graph) > 80  # the whole package was read
    assert cycles(graph) == []


def test_every_internal_import_names_a_module_of_the_tree() -> None:
    assert unresolved() == []


def test_layers_hold_where_they_matter() -> None:
    graph = import_graph()
    below_cli = [m for m in graph if not m.startswith("evoprune_core.cli")]
    assert not any(d.startswith("evoprune_core.cli") for m in below_cli for d in graph[m])
    for core in ("engines", "population", "operators", "schedules", "data"):
        for m in (m for m in graph if m.startswith(f"evoprune_core.{core}")):
            assert "evoprune_core.plugins" not in graph[m], m
            assert "evoprune_core.resolved" not in graph[m], m


def test_the_graph_finds_a_cycle_and_skips_type_checking(tmp_path: Path) -> None:
    pkg = tmp_path / "evoprune_core"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from .sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("from ..a import f\n")
    (pkg / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import f\n"
    )
    graph = import_graph(pkg)
    assert graph["evoprune_core.a"] == {"evoprune_core.sub.b"}  # a function-level import counts
    assert graph["evoprune_core.c"] == set()  # a TYPE_CHECKING import does not
    assert cycles(graph) == [["evoprune_core.a", "evoprune_core.sub.b"]]
    (pkg / "d.py").write_text("from .gone import x\n")
    assert unresolved(pkg) == ["evoprune_core/d.py: evoprune_core.gone"]
