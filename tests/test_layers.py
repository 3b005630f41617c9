"""The package layout is the architecture (docs/ARCHITECTURE.md), checked on every import,
lazy imports inside functions included:

- imports point down the layers only, and no two modules import each other (directly or
  through others);
- `from pkg import mod` counts as an import of the module `pkg.mod` (not of the package);
- no module imports another module's private names (`from workbench.x import _y`);
- no tab of the app imports another tab (tabs talk through `Ctx`: components and events);
- `core/` is pure: no torch, model libraries, hub or network access.

Exceptions are listed in EXCEPTIONS with the reason, and in docs/ARCHITECTURE.md ("Exceptions to
the import rules")."""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "workbench"
# Lower number = lower layer. A module may import its own layer or any lower one.
LAYERS = {"errors": 0, "paths": 0, "core": 1, "storage": 2, "engine": 3, "jobs": 4,
          "app": 5, "commands": 5, "cli": 5, "__init__": 5}
# What core/ must not import: tensors and models, the hub, the network.
CORE_FORBIDDEN = ("torch", "transformers", "peft", "accelerate", "safetensors", "huggingface_hub", "datasets",
                  "requests", "httpx", "aiohttp", "urllib.request", "urllib3", "http.client", "socket",
                  "gradio", "gradio_client")
# (importer, imported module, name or None): why the rule does not hold there
# (docs/ARCHITECTURE.md, "Exceptions to the import rules").
EXCEPTIONS: dict[tuple[str, str, str | None], str] = {
    ("workbench.jobs.training", "workbench.jobs.run_folder", "_write_json_atomic"):
        "run_folder owns the training run's files; training writes its checkpoints' JSON the same atomic way",
}


@dataclass(frozen=True)
class Imp:
    target: str          # the imported module, resolved: `from workbench.engine import session` -> workbench.engine.session
    name: str | None     # the name taken from it (`from m import name`), None for a module import
    line: int


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(p) for p in PKG.rglob("*.py")}


def parse_imports(source: str, where: str = "<source>") -> list[Imp]:
    """Every import in `source`, with `from pkg import mod` resolved to the module pkg.mod when
    that is a module of the package."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                raise AssertionError(f"{where}:{node.lineno}: use absolute imports (from workbench.x import y)")
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                if sub in MODULES:
                    out.append(Imp(sub, None, node.lineno))
                else:
                    out.append(Imp(node.module, a.name, node.lineno))
        elif isinstance(node, ast.Import):
            out += [Imp(a.name, None, node.lineno) for a in node.names]
    return out


GRAPH = {_module_name(p): parse_imports(p.read_text(), str(p)) for p in PKG.rglob("*.py")}


def _ours(imp: Imp) -> bool:
    return imp.target == "workbench" or imp.target.startswith("workbench.")


def _layer(mod: str) -> int:
    parts = mod.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    if top == "__version__":   # a constant of the package, not a module
        return 0
    return LAYERS[top]


def _allowed(mod: str, imp: Imp) -> bool:
    return (mod, imp.target, imp.name) in EXCEPTIONS


def upward(mod: str, imps: list[Imp]) -> list[str]:
    return [imp.target for imp in imps if _ours(imp) and _layer(imp.target) > _layer(mod) and not _allowed(mod, imp)]


def private_names(mod: str, imps: list[Imp]) -> list[str]:
    return [f"{imp.target}.{imp.name} (line {imp.line})" for imp in imps
            if _ours(imp) and imp.name and imp.name.startswith("_") and not imp.name.endswith("__")
            and imp.target != mod
            and not _allowed(mod, imp)]


def tab_to_tab(mod: str, imps: list[Imp]) -> list[str]:
    def is_tab(m: str) -> bool:
        return m.startswith("workbench.app.tab_")
    return [imp.target for imp in imps if is_tab(mod) and is_tab(imp.target) and imp.target != mod
            and not _allowed(mod, imp)]


def impure_core(mod: str, imps: list[Imp]) -> list[str]:
    if not mod.startswith("workbench.core"):
        return []
    return [f"{imp.target} (line {imp.line})" for imp in imps
            if any(imp.target == f or imp.target.startswith(f + ".") for f in CORE_FORBIDDEN)
            and not _allowed(mod, imp) and (mod, imp.target, None) not in EXCEPTIONS]


def cycles(graph: dict[str, list[Imp]]) -> list[tuple[str, str]]:
    names = set(graph)
    edges = {m: {i.target for i in graph[m] if i.target in names and i.target != m} for m in names}
    out = []
    for a in names:
        for b in edges[a]:
            if a in _reachable(b, edges) and a < b:
                out.append((a, b))
    return sorted(out)


def _reachable(start: str, edges: dict) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        for n in edges.get(m, ()):
            if n not in seen:
                seen.add(n)
                todo.append(n)
    return seen


@pytest.mark.parametrize("mod", sorted(GRAPH))
def test_imports_point_down(mod):
    bad = upward(mod, GRAPH[mod])
    assert not bad, f"{mod} (layer {_layer(mod)}) imports higher layers: {bad}"


def test_no_import_cycles():
    found = cycles(GRAPH)
    assert not found, f"modules that import each other (directly or through others): {found}"


@pytest.mark.parametrize("mod", sorted(GRAPH))
def test_no_private_names_across_modules(mod):
    bad = private_names(mod, GRAPH[mod])
    assert not bad, f"{mod} imports private names of other modules: {bad}; make them public or move the code"


@pytest.mark.parametrize("mod", sorted(m for m in GRAPH if m.startswith("workbench.app.tab_")))
def test_tabs_do_not_import_tabs(mod):
    bad = tab_to_tab(mod, GRAPH[mod])
    assert not bad, f"{mod} imports other tabs: {bad}; share through Ctx or a non-tab module of app/"


@pytest.mark.parametrize("mod", sorted(m for m in GRAPH if m.startswith("workbench.core")))
def test_core_is_pure(mod):
    bad = impure_core(mod, GRAPH[mod])
    assert not bad, f"{mod} (core: no torch, hub or network) imports {bad}"


def env_writes(src: str) -> list[int]:
    """Lines that change the process environment: os.environ[...] = / .setdefault / .update /
    .pop / del, os.putenv / os.unsetenv."""
    import ast

    bad = []
    for node in ast.walk(ast.parse(src)):
        target = None
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
            for t in (node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]):
                if isinstance(t, ast.Subscript):
                    target = t.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in ("setdefault", "update", "pop", "clear"):
                target = node.func.value
            elif node.func.attr in ("putenv", "unsetenv"):
                bad.append(node.lineno)
        if target is not None and ast.unparse(target) in ("os.environ", "environ"):
            bad.append(node.lineno)
    return bad


@pytest.mark.parametrize("mod", sorted(m for m in GRAPH if m.startswith("workbench.core")))
def test_core_does_not_set_the_environment(mod):
    """Core is pure (docs/ARCHITECTURE.md): settings for the hub or task code are set where the I/O is."""
    path = PKG / Path(*mod.split(".")[1:]).with_suffix(".py")
    if not path.exists():
        path = PKG / Path(*mod.split(".")[1:]) / "__init__.py"
    bad = env_writes(path.read_text())
    assert not bad, f"{mod} changes os.environ at lines {bad}"


def test_exceptions_are_still_needed():
    """An exception whose import is gone is removed from the list (and from the docs)."""
    present = {(m, i.target, n) for m, imps in GRAPH.items() for i in imps for n in (i.name, None)}
    stale = [k for k in EXCEPTIONS if k not in present]
    assert not stale, f"EXCEPTIONS lists imports that no longer exist: {stale}"


# ---------------------------------------------------------------------------- the checker itself
def test_checker_sees_injected_violations():
    """Each rule fails on an import that breaks it, in every import form (the checks above
    would pass vacuously if the parser missed a form)."""
    lazy = "def f():\n    from workbench.engine import session\n"
    graph = dict(GRAPH, **{"workbench.engine.prefix_scoring": GRAPH["workbench.engine.prefix_scoring"]
                           + parse_imports(lazy)})
    assert ("workbench.engine.prefix_scoring", "workbench.engine.session") in cycles(graph)
    assert upward("workbench.core.stats", parse_imports("from workbench.jobs import compare\n"))
    assert upward("workbench.core.stats", parse_imports("import workbench.jobs.compare\n"))
    assert upward("workbench.storage.runs", parse_imports("from workbench.engine.session import get_session\n"))
    assert private_names("workbench.jobs.compare", parse_imports("from workbench.core.stats import _helper\n"))
    assert not private_names("workbench.jobs.compare", parse_imports("from workbench.core.stats import helper\n"))
    assert tab_to_tab("workbench.app.tab_run", parse_imports("from workbench.app import tab_compare\n"))
    assert not tab_to_tab("workbench.app.tab_run", parse_imports("from workbench.app import template_list\n"))
    for src in ("import torch\n", "from transformers import AutoTokenizer\n", "import urllib.request\n",
                "from huggingface_hub import hf_hub_download\n", "def f():\n    import requests\n"):
        assert impure_core("workbench.core.data", parse_imports(src)), src
    assert not impure_core("workbench.core.data", parse_imports("import urllib.parse\n"))
    for src in ('import os\nos.environ["X"] = "1"\n', 'import os\nos.environ.setdefault("X", "1")\n',
                'import os\nos.environ.update(X="1")\n', 'import os\nos.putenv("X", "1")\n',
                'import os\ndel os.environ["X"]\n'):
        assert env_writes(src), src
    assert not env_writes('import os\nx = os.environ.get("X")\nd = {}\nd.update(a=1)\n')


def _trees():
    for path in sorted(PKG.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"))


def test_imports_are_absolute():
    """docs/ARCHITECTURE.md, Conventions: absolute imports only (`from workbench.core.x import y`)."""
    bad = [f"{p.relative_to(PKG.parent)}:{n.lineno}" for p, t in _trees()
           for n in ast.walk(t) if isinstance(n, ast.ImportFrom) and n.level > 0]
    assert not bad, f"relative imports (write `from workbench.<layer>.<module> import ...`): {bad}"


def test_config_fields_carry_help():
    """docs/ARCHITECTURE.md, Conventions: the config dataclasses' fields carry metadata={"help": ...}
    (the CLI builds its flags from them)."""
    tree = ast.parse((PKG / "core" / "config.py").read_text(encoding="utf-8"))
    bad, seen = [], 0
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name.endswith("Config")):
        for st in cls.body:
            if isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name) and not st.target.id.startswith("_"):
                seen += 1
                if st.value is None or "'help'" not in ast.dump(st.value):
                    bad.append(f"{cls.name}.{st.target.id}")
    assert seen > 20, f"found only {seen} config fields in core/config.py; the checker no longer sees them"
    assert not bad, f"config fields without metadata help: {bad}"
