"""The one-way layers of popnb (DESIGN.md): core <- analysis <- presentation, and no import cycle.

An AST scan of every module under popnb/, imports inside functions included (a lazy import is still a
dependency). `from pkg import name` counts as an import of the module pkg.name when that is a module, else
of pkg itself.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "popnb"

# Layer of a module: the first prefix that matches. Lower layers never import higher ones.
LAYERS = {"core": 0, "analysis": 1, "presentation": 2, "entry": 3}
PREFIXES = (
    ("popnb.cli", "entry"), ("popnb.__main__", "entry"), ("popnb.train.__main__", "entry"),
    ("popnb.analysis", "analysis"),
    ("popnb.reports", "presentation"), ("popnb.figures", "presentation"), ("popnb.explain", "presentation"),
    ("popnb.app", "presentation"),
    ("popnb", "core"),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(path: Path, name: str, known: set[str]) -> set[str]:
    """popnb modules that the module `name` (file `path`) imports anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x / from ..a import b
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                out.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {m for m in out if m in known and m != name}


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imported(path, name, set(found)) for name, path in found.items()}


def layer(name: str) -> str:
    return next(kind for prefix, kind in PREFIXES if name == prefix or name.startswith(prefix + "."))


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_scan_sees_function_level_and_relative_imports(tmp_path):
    pkg = tmp_path / "popnb"
    (pkg / "sub").mkdir(parents=True)
    for rel, text in {"__init__.py": "", "a.py": "def f():\n    from popnb.sub import b\n",
                      "sub/__init__.py": "", "sub/b.py": "from . import c\nfrom ..a import f\n", "sub/c.py": ""}.items():
        (pkg / rel).write_text(text)
    known = {"popnb", "popnb.a", "popnb.sub", "popnb.sub.b", "popnb.sub.c"}
    assert imported(pkg / "a.py", "popnb.a", known) == {"popnb.sub.b"}
    assert imported(pkg / "sub" / "b.py", "popnb.sub.b", known) == {"popnb.sub.c", "popnb.a"}
    assert cycles({"x": {"y"}, "y": {"x"}, "z": {"x"}}) == [["x", "y"]]


def test_popnb_has_no_import_cycle():
    assert cycles(graph()) == []


def test_imports_point_down_the_layers():
    edges = graph()
    wrong = [f"{a} ({layer(a)}) imports {b} ({layer(b)})" for a, targets in sorted(edges.items())
             for b in sorted(targets) if LAYERS[layer(b)] > LAYERS[layer(a)]]
    assert wrong == []


@pytest.mark.parametrize("name", ["popnb.data.schema", "popnb.train.loop", "popnb.metrics"])
def test_core_modules_are_classed_as_core(name):
    assert name in modules() and layer(name) == "core"
