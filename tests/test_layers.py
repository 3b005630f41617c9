"""The package layout is the architecture: imports point down the layers only, and no two
modules import each other (docs/ARCHITECTURE.md). Lazy imports inside functions count too."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "workbench"
# Lower number = lower layer. A module may import its own layer or any lower one.
LAYERS = {"errors": 0, "paths": 0, "core": 1, "storage": 2, "engine": 3, "jobs": 4,
          "app": 5, "commands": 5, "cli": 5, "__init__": 5}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "workbench":
                out.update(f"workbench.{a.name}" for a in node.names)
            elif node.module.startswith("workbench."):
                out.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: use absolute imports (from workbench.x import y)")
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("workbench."))
    return out


def _layer(mod: str) -> int:
    parts = mod.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    if top == "__version__":   # a constant of the package, not a module
        return 0
    return LAYERS[top]


GRAPH = {_module_name(p): _imports(p) for p in PKG.rglob("*.py")}


@pytest.mark.parametrize("mod", sorted(GRAPH))
def test_imports_point_down(mod):
    bad = [imp for imp in GRAPH[mod] if _layer(imp) > _layer(mod)]
    assert not bad, f"{mod} (layer {_layer(mod)}) imports higher layers: {bad}"


def test_no_import_cycles():
    names = set(GRAPH)
    edges = {m: {i for i in GRAPH[m] if i in names and i != m} for m in names}
    cycles = []
    for a in names:
        for b in edges[a]:
            if a in _reachable(b, edges) and a < b:
                cycles.append((a, b))
    assert not cycles, f"modules that import each other (directly or through others): {cycles}"


def _reachable(start: str, edges: dict) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        for n in edges.get(m, ()):
            if n not in seen:
                seen.add(n)
                todo.append(n)
    return seen
