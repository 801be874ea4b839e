"""The house by stage (docs/development.md): no module past 350 lines, no import cycle
between any two modules, and every room of ``featurize/`` opening with what it is for
and what it may import. The direction of imports itself is ``.importlinter``'s, checked
by ``make test`` (lint-imports) before pytest starts."""
from __future__ import annotations

import ast
import pathlib

import grimp

ROOT = pathlib.Path(__file__).resolve().parents[1]
#: The product's code: what ships (featurize/, emr/, jobs/), the DAG, the benchmarks.
CODE = ("featurize", "emr", "jobs", "dags", "bench")
MAX_LINES = 350


def _modules() -> list[pathlib.Path]:
    return sorted(p for d in CODE for p in (ROOT / d).rglob("*.py"))


def test_no_module_is_longer_than_350_lines():
    long = {str(p.relative_to(ROOT)): n for p in _modules()
            if (n := len(p.read_text("utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(graph.modules):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(
                        graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    component.append(m)
                    if m == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_cycle_finder_finds_a_cycle():
    """The finder itself, on a graph with one cycle of three and a tail."""
    graph = grimp.ImportGraph()
    for a, b in [("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")]:
        graph.add_import(importer=a, imported=b)
    assert _cycles(graph) == [["p.a", "p.b", "p.c"]]


def test_no_import_cycle_between_modules():
    """Any import counts, a function's own included (grimp reads them all)."""
    graph = grimp.build_graph("featurize", "emr", "jobs")
    assert len(graph.modules) > 80  # the whole tree was read
    assert _cycles(graph) == []


def test_each_room_says_what_it_is_for_and_what_it_may_import():
    rooms = sorted(p.parent.name for p in (ROOT / "featurize").glob("*/__init__.py"))
    assert rooms == ["classifier", "extract", "inputs", "model", "photo", "reduce",
                     "review", "search", "storage"]
    for room in rooms:
        doc = ast.get_docstring(ast.parse((ROOT / "featurize" / room / "__init__.py")
                                          .read_text("utf-8")))
        assert doc and "May import" in doc, room
