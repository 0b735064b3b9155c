"""The import graph of ``evoprune_core``, built from the source with ``ast``.

Every ``import`` statement that runs counts, wherever it sits (module level or inside a
function: a function-level import is still an edge a reader has to follow). Imports under
``if TYPE_CHECKING:`` never run and only name types for annotations; they are left out, as
the import-linter contracts in ``pyproject.toml`` leave them out. Run it as a script to print
the cycles (none expected) as JSON::

    python tests/import_graph.py
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

PACKAGE = "evoprune_core"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE


def module_name(path: Path, root: Path = ROOT) -> str:
    """``evoprune_core/a/b.py`` -> ``evoprune_core.a.b``; a package's ``__init__`` -> the package."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` except the bodies of ``if TYPE_CHECKING:`` blocks."""
    out: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return out


def unresolved(root: Path = ROOT) -> list[str]:
    """``file: module`` for every ``evoprune_core`` import naming no module or package of the
    tree (e.g. a module that moved): an editable install elsewhere could otherwise answer it."""
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    found = []
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _runtime_nodes(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.split(".")[0] == PACKAGE]
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(module, path.name == "__init__.py", node)
                if target.split(".")[0] == PACKAGE:
                    names = [target]
            found += [f"{path.relative_to(root.parent)}: {n}" for n in names if n not in files]
    return sorted(found)


def imports_of(path: Path, modules: set[str], root: Path = ROOT) -> set[str]:
    """The ``evoprune_core`` modules that the file at ``path`` imports (the most specific one)."""
    module = module_name(path, root)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()

    def add(name: str) -> None:
        # the longest prefix that is one of our modules (``a.b.C`` -> module ``a.b``)
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name and name != module:
            found.add(name)

    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_package, node)
            if target.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                add(sub if sub in modules else target)
    return found


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the modules it imports, for every module of the package under ``root``."""
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    return {m: imports_of(p, set(files), root) for m, p in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def main() -> int:
    graph = import_graph()
    found = cycles(graph)
    missing = unresolved()
    print(json.dumps({"modules": len(graph), "cycles": found, "unresolved": missing}, indent=2))
    return 1 if found or missing else 0


if __name__ == "__main__":
    sys.exit(main())
