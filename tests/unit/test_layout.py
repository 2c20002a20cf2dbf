"""The layout rules of issue 16 that a reviewer should not have to check by eye.

* No import cycle among gatewayd's modules: every ``import`` counts, at the top of a module or inside a
  function (a deferred import hides a cycle from the interpreter at start-up, not from a reader: the two
  modules still cannot be understood, tested or moved one without the other). Imports under
  ``if TYPE_CHECKING:`` are left out: they exist for annotations only and never run.
* No module over 400 lines: a module of one job reads in a sitting.

Both walk the source with ast (nothing is imported) and, on failure, list every offender.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "gatewayd"
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement in ``tree`` but those under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield from _imports(child) if not isinstance(child, (ast.Import, ast.ImportFrom)) else [child]
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        else:
            yield from _imports(node)


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The gatewayd modules ``name`` imports: ``from a.b import c`` is ``a.b.c`` when that is a module,
    else ``a.b``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names
            ]
        found.update(t for t in targets if t in known and t != name)
    return found


def import_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imported_modules(name, path, known) for name, path in found.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One path per strongly connected group of two or more modules (Tarjan), e.g. ``[a, b, a]``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_path_through(group, graph) for group in groups]


def _path_through(group: set[str], graph: dict[str, set[str]]) -> list[str]:
    """A cycle inside ``group`` starting at its first module: the shortest way back to it (BFS)."""
    start = min(group)
    previous: dict[str, str] = {}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph[node] & group):
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [*reversed(path), start]
            if nxt not in previous:
                previous[nxt] = node
                queue.append(nxt)
    raise AssertionError(f"no cycle through {start} in {sorted(group)}")


def test_the_graph_sees_imports_inside_functions_and_relative_ones() -> None:
    """The walk must find what the rules are about, or the cycle test would pass on an empty graph."""
    graph = import_graph()
    assert "gatewayd.cliargs" in graph["gatewayd.cli"]  # top level
    assert "gatewayd.demo" in graph["gatewayd.cli"]  # inside a function (cmd_demo)
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_among_gatewayd_modules() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles (each a path back to its start):\n" + "\n".join(
        " -> ".join(c) for c in found
    )


def test_no_gatewayd_module_is_over_400_lines() -> None:
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in modules().items()}
    over = sorted(((n, name) for name, n in sizes.items() if n > MAX_LINES), reverse=True)
    assert not over, f"modules over {MAX_LINES} lines (split them by job):\n" + "\n".join(
        f"{modules()[name].relative_to(PACKAGE.parent)}: {n}" for n, name in over
    )


def test_the_emulator_shares_no_code_with_the_clients() -> None:
    """The emulator stands for the real servers: a check shared with the clients would agree with itself."""
    shared = sorted(
        f"{name} imports {target}"
        for name, targets in import_graph().items()
        if name.startswith("gatewayd.emulator")
        for target in targets
        if target.startswith("gatewayd.clouds")
    )
    assert not shared, "\n".join(shared)
