"""lm-evaluation-harness task YAML: reading it safely, and confining its `include:` chains.

    roots = IncludeRoots.for_file(path, include_paths=["~/my_tasks"])
    data = resolve_includes(raw_dict, path, roots, load=read_yaml_file)

An lm-eval task file may `include:` other YAML files (a string or a list, merged in order,
the including file's own keys win, as lm-eval's `load_yaml`). Includes resolve only inside
a *trusted root*:
  * the folder of the file the user named (CLI `--template`, a library file),
  * a task folder the user names (`--include-path`, like lm-eval's `--include_path`),
  * the installed lm-eval tasks folder (lm_eval/tasks).
`..` is fine while the resolved path (symlinks followed) stays inside one of them: 390 of
lm-eval's own files include `../_something.yaml`. Absolute paths, and anything that lands
outside every root, are refused. A file uploaded through the app has no roots at all, only
the other files of the same upload (`upload_files`).

`!function` tags become `FunctionRef`s here: a name plus the file it appeared in, never code.
Whether that code may run is decided by `workbench.core.lmeval_tasks` (`--trust-task-code`).
"""
from __future__ import annotations

import functools
import importlib.util
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from workbench.errors import TemplateError

MAX_INCLUDE_DEPTH = 10
MAX_INCLUDE_BYTES = 1 << 20   # lm-eval's largest task YAML is ~200 kB
MAX_TASK_NODES = 200_000      # values of one task YAML, aliases expanded (core/yaml_budget.py)
MAX_TASK_CHARS = 4_000_000    # characters of its values, aliases expanded


def read_yaml_text(p: Path, origin: str | None = None) -> str:
    """The text of task YAML file `p`: a regular file (not a FIFO, device or socket, which would
    block or never end), at most MAX_INCLUDE_BYTES, UTF-8. Else a TemplateError."""
    import os
    import stat

    origin = origin or str(p)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then tells what it is
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise TemplateError(f"{origin}: cannot be read ({e.strerror})", "check the path") from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise TemplateError(f"{origin}: not a regular file", "task folders may hold only regular YAML files")
        if st.st_size > MAX_INCLUDE_BYTES:
            raise TemplateError(f"{origin}: larger than {MAX_INCLUDE_BYTES // 1024} kB",
                                "an lm-eval task YAML is a few kB")
        with os.fdopen(fd, "rb", closefd=False) as f:
            raw = f.read(MAX_INCLUDE_BYTES + 1)
    finally:
        os.close(fd)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TemplateError(f"{origin}: not UTF-8 text (byte {e.start})", "save the YAML as UTF-8") from e


def check_include_paths(include_paths: Sequence[str | Path]) -> None:
    """An empty --include-path would silently mean the current directory: refuse it."""
    for p in include_paths:
        if not str(p).strip():
            raise TemplateError("--include-path is empty", "name a folder of lm-eval task YAML files, e.g. "
                                "--include-path ./my_tasks (use . for the current folder)")
_NOT_YAML = {".py", ".pyc", ".json", ".jsonl", ".csv", ".tsv", ".parquet", ".txt", ".md", ".zip", ".gz",
             ".so", ".bin", ".safetensors", ".pt", ".sh", ".cfg", ".ini", ".toml", ".pem", ".key"}


@dataclass(frozen=True)
class FunctionRef:
    """An lm-eval `!function module.name` tag: what it names and where it was written."""
    name: str
    file: Path | None
    line: int

    def __str__(self) -> str:
        return f"!function {self.name}"

    def where(self) -> str:
        return f"{self.file or 'the pasted YAML'}, line {self.line}"


@functools.lru_cache(maxsize=1)
def installed_tasks_dir() -> Path | None:
    """lm_eval/tasks of the installed lm-evaluation-harness, found without importing it."""
    try:
        spec = importlib.util.find_spec("lm_eval")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(list(spec.submodule_search_locations)[0]) / "tasks"
    return d.resolve() if d.is_dir() else None


def _within(p: Path, root: Path) -> bool:
    return p == root or root in p.parents


@dataclass
class IncludeRoots:
    """Where `include:` may read from: trusted folders, or the files of one upload."""
    roots: list[Path] = field(default_factory=list)
    upload_files: list[Path] | None = None  # set for app uploads: only these files, nothing else

    @classmethod
    def for_file(cls, path: Path | None, include_paths: Sequence[str | Path] = ()) -> "IncludeRoots":
        check_include_paths(include_paths)
        roots = [Path(p).expanduser().resolve() for p in include_paths]
        if path is not None:
            roots.insert(0, Path(path).expanduser().resolve().parent)
        lib = installed_tasks_dir()
        if lib is not None:
            roots.append(lib)
        return cls(roots=roots)

    @classmethod
    def for_upload(cls, files: Sequence[str | Path]) -> "IncludeRoots":
        return cls(roots=[], upload_files=[Path(f).resolve() for f in files])

    def trusted_root_of(self, p: Path) -> Path | None:
        """The trusted root holding resolved path `p` (None: outside all, or an upload)."""
        if self.upload_files is not None:
            return None
        rp = p.resolve()
        return next((r for r in self.roots if _within(rp, r)), None)

    def resolve(self, inc: Any, including: Path) -> Path:
        s = str(inc)
        if not isinstance(inc, str) or not s.strip():
            raise TemplateError(f"{including}: `include: {inc!r}` is not a file name",
                                "write include: _base.yaml (a YAML file next to the task)")
        if "\0" in s or len(s) > 1024 or any(len(part.encode("utf-8", "surrogatepass")) > 255
                                                for part in s.replace("\\", "/").split("/")):
            raise TemplateError(f"{including}: `include: {s[:60]!r}` is not a usable file name "
                                "(a NUL character, or longer than a file system allows)",
                                "write include: _base.yaml (a YAML file next to the task)")
        if Path(s).expanduser().is_absolute() or s.startswith("~"):
            raise TemplateError(f"{including}: `include: {s}` is an absolute path, which is not allowed",
                                "include files relative to the task file (e.g. ../_base.yaml) inside a task folder "
                                "you trust; name that folder with --include-path")
        try:
            cand = (including.parent / s).resolve()
        except (OSError, ValueError, RuntimeError) as e:
            raise TemplateError(f"{including}: `include: {s[:60]}` cannot be resolved ({type(e).__name__})",
                                "write include: _base.yaml (a YAML file next to the task)") from None
        if self.upload_files is not None:
            if cand not in self.upload_files:
                raise TemplateError(f"{including.name}: `include: {s}` refers to a file that was not part of this upload",
                                    "upload the included YAML together with the task, or paste its keys into the task")
            return cand
        if not any(_within(cand, r) for r in self.roots):
            raise TemplateError(f"{including}: `include: {s}` resolves outside the trusted task folders",
                                "includes must stay inside the folder of the task file, a folder named with "
                                "--include-path, or the installed lm-eval tasks folder")
        return cand


def read_included(p: Path, including: Path, load: Callable[[str, str, Path], Any]) -> dict:
    """The mapping in included file `p`, or a TemplateError saying why it is not one."""
    if not p.is_file():
        raise TemplateError(f"{including}: included file not found: {p.name}",
                            "keep the included YAML inside the task folder, at the path the include names")
    if p.suffix.lower() in _NOT_YAML:
        raise TemplateError(f"{including}: `include: {p.name}` is not a YAML file",
                            "include: may only name lm-eval YAML files (task or template YAML)")
    if p.stat().st_size > MAX_INCLUDE_BYTES:
        raise TemplateError(f"{including}: included file {p.name} is larger than {MAX_INCLUDE_BYTES // 1024} kB",
                            "an lm-eval task YAML is a few kB; include the YAML, not a data file")
    text = read_yaml_text(p, f"{including}: included file {p.name}")
    if "\x00" in text:
        raise TemplateError(f"{including}: included file {p.name} is binary, not YAML", "include: may only name YAML files")
    try:
        data = load(text, str(p), p)
    except TemplateError as e:
        raise TemplateError(f"{including}: included file {p.name}: {e.message}", e.hint) from e
    if not isinstance(data, Mapping):
        raise TemplateError(f"{including}: included file {p.name} is not a YAML mapping (got {type(data).__name__})",
                            "include: may only name lm-eval YAML files holding `key: value` settings")
    return dict(data)


def resolve_includes(data: Mapping, path: Path | None, roots: IncludeRoots | None,
                     load: Callable[[str, str, Path], Any], _seen: tuple[Path, ...] = ()) -> dict:
    """`data` with its `include:` chain merged in (lm-eval order: includes first, own keys win)."""
    data = dict(data)
    inc = data.pop("include", None)
    if inc is None:
        return data
    if path is None or roots is None:
        raise TemplateError(f"this lm-eval task uses `include: {inc}`, which cannot be resolved here",
                            "load the task from its file (with the included files in the same folder or upload), "
                            "or paste the included keys into it")
    if len(_seen) >= MAX_INCLUDE_DEPTH:
        raise TemplateError(f"{path}: include chain deeper than {MAX_INCLUDE_DEPTH} files", "check the includes for a loop")
    merged: dict = {}
    for one in inc if isinstance(inc, list) else [inc]:
        p = roots.resolve(one, path)
        if p in _seen or p == path.resolve():
            raise TemplateError(f"{path}: include cycle through {p.name}", "remove the include that points back")
        sub = resolve_includes(read_included(p, path, load), p, roots, load, (*_seen, path.resolve()))
        sub.pop("task_list", None)  # lm-eval: task_list belongs to the included file only
        merged.update(sub)
    merged.update(data)
    return merged


# ---- a safe loader that records !function tags -------------------------------------------------
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~5x faster on 14k files


class FunctionRefLoader(_BaseLoader):
    """SafeLoader for lm-eval task YAML: `!function x.y` -> FunctionRef, nothing executed.

    YAML 1.2 booleans only (true/false), as workbench.core.templates reads YAML."""
    source_path: Path | None = None


FunctionRefLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
FunctionRefLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                        list("tTfF"))


def _function_ctor(loader: FunctionRefLoader, node):
    name = loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else ""
    return FunctionRef(str(name), loader.source_path, node.start_mark.line + 1)


FunctionRefLoader.add_constructor("!function", _function_ctor)


def load_with_refs(text: str, origin: str = "task", path: Path | None = None) -> Any:
    """Parse lm-eval YAML; `!function` tags become FunctionRef(name, path, line)."""
    if len(text) > MAX_TASK_CHARS:
        raise TemplateError(f"{origin}: {len(text):,} characters (limit {MAX_TASK_CHARS:,})", "an lm-eval task YAML is a few kB")
    loader = FunctionRefLoader(text)
    loader.source_path = path
    try:
        from workbench.core.yaml_budget import expanded

        node = loader.get_single_node()
        if node is None:
            return None
        nodes, chars = expanded(node, MAX_TASK_NODES, MAX_TASK_CHARS)
        if nodes > MAX_TASK_NODES or chars > MAX_TASK_CHARS:
            raise TemplateError(f"{origin}: the YAML expands to more than {MAX_TASK_NODES:,} values or "
                                f"{MAX_TASK_CHARS:,} characters through aliases (*name) — an alias bomb?",
                                "write the values out instead of nesting aliases")
        return loader.construct_document(node)
    except RecursionError as e:
        raise TemplateError(f"{origin}: the YAML is nested too deeply", "flatten the structure") from e
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise TemplateError(f"{origin}: invalid YAML{where}: {e.problem}", "check indentation and quoting") from e
    except yaml.YAMLError as e:
        raise TemplateError(f"{origin}: invalid YAML: {e}", "check the YAML syntax") from e
    finally:
        loader.dispose()


def read_task_yaml(path: Path, roots: IncludeRoots) -> dict:
    """One lm-eval YAML file, includes merged, `!function` tags as FunctionRefs."""
    path = Path(path)
    if not path.exists():
        raise TemplateError(f"task file not found: {path}", "check the path")
    text = read_yaml_text(path)
    data = load_with_refs(text, str(path), path)
    if not isinstance(data, Mapping):
        raise TemplateError(f"{path}: expected a YAML mapping, got {type(data).__name__}", "an lm-eval task is `key: value` YAML")
    return resolve_includes(data, path, roots, load_with_refs)


def function_refs(obj: Any, where: str = "") -> list[tuple[str, FunctionRef]]:
    """Every FunctionRef inside a (nested) config, with the key path it sits under."""
    out: list[tuple[str, FunctionRef]] = []
    if isinstance(obj, FunctionRef):
        out.append((where, obj))
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            out += function_refs(v, f"{where}.{k}" if where else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            out += function_refs(v, f"{where}[{i}]")
    return out
