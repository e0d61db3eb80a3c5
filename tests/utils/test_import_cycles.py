"""facelab's modules import each other without cycles.

The rule: an edge A -> B is an import of B that runs while A is being imported, i.e.
- an ``import`` / ``from ... import`` in A's module body, also inside module-level ``if`` / ``try`` / ``with`` /
  ``for`` blocks and class bodies, but not under ``if TYPE_CHECKING:``;
- an import inside a function of A that A's module body itself calls (it runs at import time too).
Imports inside other functions are deferred (they run on first call, when every module is loaded) and may be used
to reach an optional or heavy dependency; they do not count. ``from P import name`` points at ``P.name`` when that
is a module, else at ``P``; a package's ``__init__`` is not an implicit target of its submodules' imports.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import facelab

ROOT = Path(facelab.__file__).parent


@dataclass(frozen=True)
class Edge:
    target: str
    line: int
    deferred: bool  # inside a function the module body does not call


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file for every ``.py`` under ``root`` (the folder of ``package``)."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in known]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    found = [f"{source}.{a.name}" if f"{source}.{a.name}" in known else source for a in node.names]
    return [t for t in dict.fromkeys(found) if t in known]


def _is_type_checking(node: ast.stmt) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _called_at_import(tree: ast.Module) -> set[str]:
    """Names of module-level functions that the module body calls (directly or through one another)."""
    functions = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}

    def calls(nodes: list[ast.stmt]) -> set[str]:
        found = set()
        for stmt in nodes:
            for sub in ast.walk(stmt):
                if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id in functions:
                    found.add(sub.func.id)
        return found

    body = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    todo, seen = list(calls(body)), set()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += calls(functions[name].body) - seen
    return seen


def module_edges(path: Path, module: str, known: set[str]) -> list[Edge]:
    """The facelab imports of one module, each marked deferred or not (see the module docstring)."""
    tree = ast.parse(path.read_text("utf-8"), str(path))
    is_package = path.name == "__init__.py"
    at_import = _called_at_import(tree)
    edges: list[Edge] = []

    def visit(nodes: list[ast.stmt], deferred: bool) -> None:
        for node in nodes:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges.extend(Edge(t, node.lineno, deferred) for t in _targets(node, module, is_package, known))
            elif _is_type_checking(node):
                continue
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                runs_now = not deferred and node in tree.body and node.name in at_import
                visit(node.body, not runs_now)
            else:
                for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                    visit(getattr(node, field, None) or [], deferred)

    visit(tree.body, False)
    return edges


def import_graph(root: Path, package: str, deferred: bool = False) -> dict[str, list[Edge]]:
    """Module -> its edges; ``deferred`` also counts imports inside functions."""
    names = module_names(root, package)
    known = set(names)
    return {m: [e for e in module_edges(p, m, known) if deferred or not e.deferred] for m, p in names.items()}


def find_cycle(graph: dict[str, list[Edge]]) -> list[tuple[str, Edge]] | None:
    """One cycle as ``[(module, edge to the next module), ...]``, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for start in sorted(graph):
        if start in state:
            continue
        path: list[tuple[str, Edge]] = []
        stack = [(start, iter(graph[start]))]  # targets outside ``graph`` are leaves
        state[start] = 1
        while stack:
            module, edges = stack[-1]
            edge = next(edges, None)
            if edge is None:
                state[module] = 2
                stack.pop()
                if path:
                    path.pop()
                continue
            if state.get(edge.target) == 1:
                path.append((module, edge))
                first = next(i for i, (m, _) in enumerate(path) if m == edge.target)
                return path[first:]
            if edge.target not in state:
                path.append((module, edge))
                state[edge.target] = 1
                stack.append((edge.target, iter(graph.get(edge.target, ()))))
    return None


def describe(cycle: list[tuple[str, Edge]], graph_root: Path, package: str) -> str:
    names = module_names(graph_root, package)
    steps = [f"{m} ({names[m].relative_to(graph_root.parent)}:{e.line}{', deferred' if e.deferred else ''})"
             for m, e in cycle]
    return "import cycle: " + " -> ".join(steps + [cycle[0][0]])


def test_facelab_has_no_import_cycle():
    graph = import_graph(ROOT, "facelab")
    assert len(graph) > 100 and sum(map(len, graph.values())) > 300  # the parser really saw the package
    cycle = find_cycle(graph)
    assert cycle is None, describe(cycle, ROOT, "facelab")


def test_align_and_wsol_have_no_cycle_even_through_deferred_imports():
    """The two cycles removed by moving the shared piece (frontal_landmarks into geometry; BackboneParts and the
    BAS registry into wsol.parts) must not come back as function-level imports either."""
    graph = import_graph(ROOT, "facelab", deferred=True)
    rooms = {m: [e for e in edges if e.target.startswith(("facelab.align", "facelab.wsol"))]
             for m, edges in graph.items() if m.startswith(("facelab.align", "facelab.wsol"))}
    cycle = find_cycle(rooms)
    assert cycle is None, describe(cycle, ROOT, "facelab")


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for rel, text in {"__init__.py": "", **files}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_checker_finds_cycles_and_follows_the_rule(tmp_path):
    root = _package(tmp_path, {
        "a.py": "from pkg.b import x\n",
        "b.py": "import pkg.c\nx = 1\n",
        "c.py": "def f():\n    from pkg.a import y\n\n\nf()\n",  # called while importing: counts
        "d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.e import z\n",
        "e.py": "def g():\n    from pkg.d import w\n",  # deferred: does not count
        "sub/__init__.py": "from . import m\n",
        "sub/m.py": "from ..sub import n\n",  # relative import of a sibling module
        "sub/n.py": "",
    })
    graph = import_graph(root, "pkg")
    assert [e.target for e in graph["pkg.sub"]] == ["pkg.sub.m"]
    assert [e.target for e in graph["pkg.sub.m"]] == ["pkg.sub.n"]
    assert graph["pkg.d"] == [] and graph["pkg.e"] == []
    cycle = find_cycle(graph)
    assert cycle is not None and sorted(m for m, _ in cycle) == ["pkg.a", "pkg.b", "pkg.c"]
    assert describe(cycle, root, "pkg").count("->") == 3
    assert find_cycle(import_graph(root, "pkg", deferred=True)) is not None
    (root / "c.py").write_text("def f():\n    from pkg.a import y\n")  # no longer called at import time
    assert find_cycle(import_graph(root, "pkg")) is None
