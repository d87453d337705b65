"""The product's modules import one another without a cycle.

Every ``import`` and ``from ... import`` in ``connectors``, ``mappings`` and
``sync`` counts, wherever it sits: module level, inside a function (a deferred
import is still a dependency, only a later one), and under ``if TYPE_CHECKING:``
(such an import never runs, but a cycle through it is still two modules that
each need the other's names). Importing ``a.b.c`` also loads the packages ``a``
and ``a.b``, so those count as dependencies too. The graph is read from the
source with :mod:`ast`, nothing is imported.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("connectors", "mappings", "sync")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def product_modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            found[module_name(path)] = path
    return found


def _with_parents(name: str) -> list[str]:
    """``a.b.c`` -> ``a``, ``a.b``, ``a.b.c``: importing a module loads its packages first."""
    parts = name.split(".")
    return [".".join(parts[:n]) for n in range(1, len(parts) + 1)]


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The product modules ``name`` depends on (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                targets.update(_with_parents(alias.name))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            targets.update(_with_parents(base))
            for alias in node.names:
                # ``from sync.cli import run`` imports the submodule when there is one.
                if f"{base}.{alias.name}" in known:
                    targets.add(f"{base}.{alias.name}")
    # A module is not its own dependency, nor are the packages that contain it
    # (Python initialises them before the module, whatever the module imports).
    return {t for t in targets if t in known and t not in _with_parents(name)}


@functools.cache  # one parse of the tree serves every test
def import_graph() -> dict[str, set[str]]:
    modules = product_modules()
    known = set(modules)
    return {name: imports_of(name, path, known) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            if children:
                child = children.pop()
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, sorted(graph[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_graph_sees_module_function_level_and_package_imports() -> None:
    graph = import_graph()
    assert "sync.cli.register" in graph and "connectors.base" in graph
    # module level, a submodule named in ``from package import module``
    assert {"sync.cli.app", "sync.cli.run", "sync.cli.links"} <= graph["sync.cli.register"]
    # a function-level import (the check command loads sync.checks when it runs)
    assert "sync.checks" in graph["sync.cli.check"]
    # importing a submodule depends on its package's __init__
    assert "sync.cli" in graph["sync.__main__"]


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycle_among_the_products_modules() -> None:
    assert cycles(import_graph()) == []


def test_connectors_and_mappings_never_import_sync() -> None:
    graph = import_graph()
    leaks = {name: sorted(t for t in targets if t.split(".")[0] == "sync")
             for name, targets in graph.items() if name.split(".")[0] in ("connectors", "mappings")}
    assert {name: found for name, found in leaks.items() if found} == {}
