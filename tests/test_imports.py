"""The package's imports point one way: no cycle, and no lower floor importing a higher one,
counting the imports inside functions (read from the source, not by importing it)."""
import ast
import functools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dartsviz"


def _modules(root: Path = PACKAGE) -> dict:
    """Module name -> (path, is a package's __init__)."""
    out = {}
    for p in root.rglob("*.py"):
        parts = list(p.relative_to(root.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (p, is_pkg)
    return out


@functools.lru_cache(maxsize=None)
def import_graph(root: Path = PACKAGE) -> dict:
    """Module -> the package modules it imports anywhere in its source. `from X import y`
    counts as an import of X.y where that is a module, else of X; a module's own parent
    packages are not counted (Python imports them first in any case)."""
    mods = _modules(root)
    graph = {}
    for name, (path, is_pkg) in mods.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name in mods)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = base[:len(base) - (node.level - 1)]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                for a in node.names:
                    sub = f"{prefix}.{a.name}"
                    target = sub if sub in mods else prefix
                    if target in mods:
                        deps.add(target)
        graph[name] = {d for d in deps if d != name and not name.startswith(d + ".")}
    return graph


def cycles(graph: dict) -> list:
    """The strongly connected components of more than one module (Tarjan), sorted."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import(tmp_path):
    pkg = tmp_path / "dartsviz"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "low.py").write_text("def f():\n    from .sub import high\n")           # hidden in a function
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "high.py").write_text("from .. import low\nfrom ..sub import high as _\n")
    (pkg / "alone.py").write_text("import dartsviz.low\n")
    graph = import_graph(pkg)
    assert graph["dartsviz.low"] == {"dartsviz.sub.high"} and graph["dartsviz.alone"] == {"dartsviz.low"}
    assert cycles(graph) == [["dartsviz.low", "dartsviz.sub.high"]]


def test_the_package_has_no_import_cycle():
    assert cycles(import_graph()) == []


# what a floor must not import, at module level or inside functions
FLOORS = {
    "dartsviz.records": ("dartsviz.spaces", "dartsviz.methods", "dartsviz.runs", "dartsviz.loop"),
    "dartsviz.config": ("dartsviz.spaces", "dartsviz.methods", "dartsviz.search", "dartsviz.train"),
    "dartsviz.runs": ("dartsviz.spaces", "dartsviz.methods", "dartsviz.loop", "dartsviz.search"),
    "dartsviz.distributed": ("dartsviz.spaces", "dartsviz.search", "dartsviz.train", "dartsviz.loop"),
    "dartsviz.spaces": ("dartsviz.train", "dartsviz.search", "dartsviz.loop", "dartsviz.bilevel",
                        "dartsviz.experiments", "dartsviz.viz", "dartsviz.commands"),
    "dartsviz.methods": ("dartsviz.train", "dartsviz.search", "dartsviz.loop", "dartsviz.viz", "dartsviz.commands"),
    "dartsviz.summary": ("dartsviz.viz", "dartsviz.search", "dartsviz.experiments"),
    "dartsviz.viz": ("dartsviz.commands", "dartsviz.cli"),
}


@pytest.mark.parametrize("floor", sorted(FLOORS))
def test_no_floor_imports_a_higher_one(floor):
    graph = import_graph()
    upward = sorted(f"{m} -> {d}" for m, deps in graph.items() if m == floor or m.startswith(floor + ".")
                    for d in deps if any(d == h or d.startswith(h + ".") for h in FLOORS[floor]))
    assert upward == []
