"""lm-eval's task library opened by name: the installed lm_eval/tasks folder plus the folders
the user names (--include-path), with groups and tags, and each task resolved into an
LmEvalTask (core/lmeval_tasks.py) with its trusted code imported (storage/lmeval_code.py).

    lib = TaskLibrary(include_paths=["~/my_tasks"])
    lib.expand("mmlu")                                   # group/tag -> leaf task names
    task = lib.load("hellaswag", trust_code=True)        # LmEvalTask: .template, .config

Reads files (task YAMLs, the on-disk name index) and imports task code, so it lives in
storage/, not core/ (#23). Everything the workbench cannot reproduce is refused in
task_from_config, when the task is resolved, before any data or model loads."""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from workbench.core.lmeval_refusals import refusal
from workbench.core.lmeval_tasks import SUPPORTED_OUTPUT_TYPES, TRUST_HINT, Entry, LmEvalTask
from workbench.core.lmeval_template import PLACEHOLDER, LmEvalTemplate
from workbench.core.lmeval_yaml import (FunctionRef, IncludeRoots, check_include_paths, function_refs,
                                        installed_tasks_dir, load_with_refs, read_task_yaml, read_yaml_text,
                                        resolve_includes)
from workbench.core.template_lmeval import from_lm_eval
from workbench.core.templates import PromptTemplate
from workbench.errors import TemplateError
from workbench.storage.lmeval_code import resolve_function, resolve_task_class


def _code_hash(files: set[Path]) -> str:
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(str(f.name).encode())
        try:
            h.update(f.read_bytes())
        except OSError:
            pass
    return h.hexdigest()[:16]


def task_from_config(config: Mapping, path: Path | None, *, trust_code: bool = False,
                     code_roots: Sequence[Path] = ()) -> LmEvalTask:
    """An LmEvalTask from a task config (includes already merged)."""
    cfg = dict(config)
    name = str(cfg.get("task") or (path.stem if path else "lm_eval_task"))
    where = str(path) if path else "the task YAML"
    if "class" in cfg:
        return _class_task(cfg, path, name, where, trust_code=trust_code, code_roots=code_roots)
    out_type = cfg.get("output_type", "generate_until")
    if out_type not in SUPPORTED_OUTPUT_TYPES:
        raise TemplateError(f"{where}: lm-eval task {name!r}: output_type {out_type!r} is not an lm-eval output type",
                            f"use one of {', '.join(SUPPORTED_OUTPUT_TYPES)}")
    # Everything the workbench cannot reproduce is refused here, when the task is resolved,
    # before any data or model loads (lmeval_refusals.py says why and what would work).
    why = refusal(cfg, trusted=trust_code)
    if why:
        raise TemplateError(f"{where}: lm-eval task {name!r}: {why[0]}", why[1])
    refs = function_refs(cfg)
    if refs and not trust_code:
        key, ref = refs[0]
        more = f" (and {len(refs) - 1} more)" if len(refs) > 1 else ""
        raise TemplateError(f"lm-eval task {name!r} runs Python code: `{key}: {ref}` in {ref.where()}{more}",
                            TRUST_HINT)
    fns: dict[str, Callable] = {}
    names: dict[str, str] = {}
    files: set[Path] = set()
    roots = [Path(r).resolve() for r in code_roots]

    def need(key: str, ref: FunctionRef) -> Callable:
        fn = resolve_function(ref, roots)
        names[key] = f"!function {ref.name}"
        try:
            files.add(Path(inspect.getfile(fn)).resolve())
        except (TypeError, OSError):
            pass
        return fn

    t_cfg = dict(cfg)
    if out_type in ("loglikelihood", "loglikelihood_rolling"):
        # Rendered like a generation prompt: doc_to_text is the context, doc_to_target the
        # continuation (loglikelihood) or the whole scored text (rolling).
        t_cfg["output_type"] = "generate_until"
        t_cfg.pop("doc_to_choice", None)
    for key in ("doc_to_text", "doc_to_target", "doc_to_choice"):
        if isinstance(cfg.get(key), FunctionRef):
            fns[key] = need(key, cfg[key])
            t_cfg[key] = PLACEHOLDER.format(key) if key != "doc_to_text" else "{{ %s }}" % PLACEHOLDER.format(key)
    if isinstance(cfg.get("description"), FunctionRef):
        raise TemplateError(f"{where}: a !function description is not supported", "use a Jinja description")
    process_docs = need("process_docs", cfg["process_docs"]) if isinstance(cfg.get("process_docs"), FunctionRef) else None
    process_results = (need("process_results", cfg["process_results"])
                       if isinstance(cfg.get("process_results"), FunctionRef) else None)
    # Everything else that names code (metrics, filters, samples) must import too: a task
    # that "loads" must be one whose code is all there.
    resolved: dict[str, Callable] = {}
    for key, ref in refs:
        if key.split(".")[0] not in ("doc_to_text", "doc_to_target", "doc_to_choice", "process_docs", "process_results"):
            resolved[key] = need(key, ref)
    for key in ("doc_to_text", "doc_to_target", "doc_to_choice"):
        if key in fns:
            resolved[key] = fns[key]
    if isinstance(cfg.get("doc_to_choice"), FunctionRef) and cfg.get("doc_to_target") is None:
        raise TemplateError(f"{where}: lm-eval task {name!r} has no doc_to_target", "add doc_to_target")
    # Jinja/YAML-only fields map through the existing importer; function fields are placeholders.
    clean = {k: v for k, v in t_cfg.items() if not isinstance(v, (FunctionRef,)) and not function_refs(v)}
    for key in ("doc_to_text", "doc_to_target", "doc_to_choice"):
        if key in t_cfg:
            clean[key] = t_cfg[key]
    clean.pop("include", None)
    clean.pop("gen_prefix", None)       # not a plain-template field: LmEvalTemplate.gen_prefix
    clean["task"] = name
    base = from_lm_eval(clean, None)
    kw = {f.name: getattr(base, f.name) for f in dataclasses.fields(PromptTemplate)}
    kw["metadata"] = {**kw["metadata"], "lm_eval_task": name, **({"path": str(path)} if path else {})}
    gp = cfg.get("gen_prefix")
    if gp is not None and not isinstance(gp, str):
        raise TemplateError(f"{where}: lm-eval task {name!r}: gen_prefix must be text (a column name or Jinja)",
                            "write gen_prefix: \"Answer:\"")
    tpl = LmEvalTemplate(**kw, functions=fns, function_names=names, code_hash=_code_hash(files) if files else "",
                         gen_prefix=gp or None)
    fc = cfg.get("fewshot_config") if isinstance(cfg.get("fewshot_config"), Mapping) else {}
    fmt = {k: fc[k] for k in ("doc_to_text", "doc_to_target", "doc_to_choice", "target_delimiter", "fewshot_delimiter",
                              "gen_prefix") if fc.get(k) is not None}
    if fmt:
        # lm-eval's FewshotConfig: demos use these fields, the rest is inherited from the task
        demo_cfg = {k: v for k, v in cfg.items() if k not in ("fewshot_config", "process_docs", "process_results",
                                                              "metric_list", "filter_list", "description")}
        demo_cfg.update(fmt)
        tpl.demo_template = task_from_config(demo_cfg, path, trust_code=trust_code, code_roots=code_roots).template
    return LmEvalTask(name=name, path=path, config=cfg, template=tpl, process_docs=process_docs,
                      process_results=process_results, code=_with_code(cfg, resolved))


def _class_task(cfg: dict, path: Path | None, name: str, where: str, *, trust_code: bool,
                code_roots: Sequence[Path]) -> LmEvalTask:
    """A task defined by a Python class (`class: !function task.Name`): the class is imported
    under trust and checked here (storage/lmeval_code.resolve_task_class); its prompt, requests
    and metrics are its own code's, run by jobs/lmeval_class.py. The template is a stand-in
    that names the class (the app shows it; it cannot be rendered as a prompt)."""
    ref = cfg["class"]
    if not isinstance(ref, FunctionRef):
        raise TemplateError(f"{where}: lm-eval task {name!r}: `class:` must name task code", "write class: !function module.ClassName")
    if not trust_code:
        raise TemplateError(f"lm-eval task {name!r} runs Python code: `class: {ref}` in {ref.where()} "
                            "(a Python Task class)", TRUST_HINT)
    cls = resolve_task_class(ref, [Path(r).resolve() for r in code_roots], where, name)
    marker = PLACEHOLDER.format("class")
    base = from_lm_eval({"task": name, "doc_to_text": "{{ %s }}" % marker, "output_type": "generate_until",
                          "doc_to_target": marker}, None)
    kw = {f.name: getattr(base, f.name) for f in dataclasses.fields(PromptTemplate)}
    kw["metadata"] = {**kw["metadata"], "lm_eval_task": name, "lm_eval_class": f"!function {ref.name}",
                      **({"path": str(path)} if path else {})}
    files = {Path(inspect.getfile(cls)).resolve()}
    tpl = LmEvalTemplate(**kw, function_names={"class": f"!function {ref.name}"}, code_hash=_code_hash(files))
    code = {**cfg, "class": cls}
    return LmEvalTask(name=name, path=path, config=cfg, template=tpl, code=code, task_class=cls)


def _with_code(obj: Any, resolved: Mapping[str, Callable], where: str = "") -> Any:
    """The config with every trusted `!function` replaced by its callable (filters' classes
    and filter_fn, metric aggregations): what the filter and metric layers run."""
    if isinstance(obj, FunctionRef):
        return resolved.get(where, obj)
    if isinstance(obj, Mapping):
        return {k: _with_code(v, resolved, f"{where}.{k}" if where else str(k)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_with_code(v, resolved, f"{where}[{i}]") for i, v in enumerate(obj)]
    return obj


class TaskLibrary:
    """Every task, group and tag under the installed lm-eval tasks folder and the folders the
    user names (`--include-path`; later folders win, as in lm-eval)."""

    def __init__(self, include_paths: Sequence[str | Path] = (), *, installed: bool = True):
        check_include_paths(include_paths)
        self.include_paths = [Path(p).expanduser().resolve() for p in include_paths]
        for p in self.include_paths:
            if not p.is_dir():
                raise TemplateError(f"--include-path {p} is not a folder", "name a folder of lm-eval task YAML files")
        lib = installed_tasks_dir() if installed else None
        self.roots = ([lib] if lib else []) + self.include_paths
        self._index: dict[str, Entry] | None = None

    # the roots where task code may run, and includes may read
    @property
    def code_roots(self) -> list[Path]:
        return list(self.roots)

    def include_roots(self, path: Path | None) -> IncludeRoots:
        return IncludeRoots.for_file(path, include_paths=self.include_paths)

    @property
    def index(self) -> dict[str, Entry]:
        if self._index is None:
            self._index = {}
            for root in self.roots:
                self._index.update(_index_root(root))
        return self._index

    def names(self, kind: str | None = None) -> list[str]:
        return sorted(n for n, e in self.index.items() if kind is None or e.kind == kind)

    def search(self, query: str, limit: int = 50) -> list[str]:
        q = query.lower().strip()
        names = self.names()
        hits = [n for n in names if n.lower().startswith(q)] + [n for n in names if q in n.lower() and not n.lower().startswith(q)]
        return hits[:limit]

    def entry(self, name: str) -> Entry:
        e = self.index.get(name)
        if e is None:
            import difflib

            close = difflib.get_close_matches(name, list(self.index), n=3)
            raise TemplateError(f"no lm-eval task, group or tag named {name!r}",
                                (f"did you mean {', '.join(close)}? " if close else "")
                                + "list them with `workbench eval --list-tasks WORD`; add your own folder with --include-path")
        return e

    def expand(self, name: str, _depth: int = 0) -> list[str | dict]:
        """Leaf tasks of a task, group or tag, in lm-eval's order; inline group tasks as dicts."""
        if _depth > 20:
            raise TemplateError(f"group {name!r} nests too deep", "check the group files for a loop")
        e = self.entry(name)
        if e.kind in ("task", "python"):
            return [name]
        out: list[str | dict] = []
        for m in e.members:
            if isinstance(m, str):
                out += self.expand(m, _depth + 1)
            elif isinstance(m, Mapping) and isinstance(m.get("task"), list):
                out += [x for sub in m["task"] for x in (self.expand(sub, _depth + 1) if isinstance(sub, str) else [dict(sub, _group_file=str(e.path))])]
            elif isinstance(m, Mapping):
                out.append(dict(m, _group_file=str(e.path)))
        return out

    def groups_of(self, name: str) -> list[Entry]:
        """The group itself when `name` is a group with an aggregate (lm-eval reports those)."""
        e = self.entry(name)
        return [e] if e.kind == "group" else []

    def config(self, name_or_inline: str | Mapping) -> tuple[dict, Path | None]:
        if isinstance(name_or_inline, Mapping):
            d = dict(name_or_inline)
            gfile = Path(d.pop("_group_file"))
            tname = d.get("task")
            if isinstance(tname, str) and tname in self.index and self.index[tname].kind == "task":
                base, p = self.config(tname)
                return {**base, **{k: v for k, v in d.items()}}, p
            return resolve_includes(d, gfile, self.include_roots(gfile), load_with_refs), gfile
        e = self.entry(name_or_inline)
        if e.kind not in ("task", "python") or e.path is None:
            raise TemplateError(f"{name_or_inline!r} is an lm-eval {e.kind}, not one task", "use expand() for its tasks")
        return read_task_yaml(e.path, self.include_roots(e.path)), e.path

    def load(self, name_or_inline: str | Mapping, *, trust_code: bool = False) -> LmEvalTask:
        cfg, path = self.config(name_or_inline)
        return task_from_config(cfg, path, trust_code=trust_code, code_roots=self.code_roots)

    def load_file(self, path: str | Path, *, trust_code: bool = False) -> LmEvalTask:
        """A task YAML named by path. Its includes stay in its folder, --include-path folders
        or the installed library; its code runs only when it lies under a code root."""
        path = Path(path)
        cfg = read_task_yaml(path, self.include_roots(path))
        return task_from_config(cfg, path, trust_code=trust_code, code_roots=self.code_roots)


def _index_root(root: Path) -> dict[str, Entry]:
    """{name: Entry} for one folder, cached on disk keyed by the files' names and mtimes."""
    files = sorted(p for p in root.rglob("*.yaml") if "__pycache__" not in p.parts and p.is_file())
    key = hashlib.sha256(("\n".join(f"{p}:{p.stat().st_mtime_ns}" for p in files)).encode()).hexdigest()[:16]
    cache = None
    try:
        from workbench import paths

        cache = paths.cache_home() / "lmeval_index" / f"{key}.json"
        if cache.is_file():
            raw = json.loads(cache.read_text(), object_hook=_decode_ref)
            return {n: Entry(n, d["kind"], Path(d["path"]) if d["path"] else None, d["members"], d["aggregate"])
                    for n, d in raw.items()}
    except (OSError, ValueError, KeyError):
        pass
    index: dict[str, Entry] = {}
    roots = IncludeRoots(roots=[root.resolve()] + ([installed_tasks_dir()] if installed_tasks_dir() else []))
    memo: dict[str, Any] = {}

    def load(text: str, origin: str, path: Path | None = None):
        # many files include the same few templates: parse each once per indexing pass
        if origin not in memo:
            memo[origin] = load_with_refs(text, origin, path)
        return memo[origin]

    for p in files:
        try:
            raw = load(read_yaml_text(p), str(p), p)   # regular files only: a FIFO would block
            if not isinstance(raw, Mapping):
                continue
            cfg = resolve_includes(raw, p, roots, load)
        except (TemplateError, OSError, UnicodeDecodeError):
            continue
        if "class" in cfg and isinstance(cfg.get("task"), str):
            index.setdefault(cfg["task"], Entry(cfg["task"], "python", p))
        elif "group" in cfg and isinstance(cfg.get("group"), str):
            members = cfg.get("task") or []
            members = members if isinstance(members, list) else [members]
            agg = [dict(a) for a in (cfg.get("aggregate_metric_list") or []) if isinstance(a, Mapping)]
            index.setdefault(cfg["group"], Entry(cfg["group"], "group", p, members, agg))
        elif isinstance(cfg.get("task"), str):
            index.setdefault(cfg["task"], Entry(cfg["task"], "task", p))
        else:
            continue
        tags = cfg.get("tag")
        if isinstance(cfg.get("task"), str) and tags and "group" not in cfg:
            for tag in tags if isinstance(tags, list) else [tags]:
                e = index.setdefault(str(tag), Entry(str(tag), "tag", None))
                if e.kind == "tag":
                    e.members.append(cfg["task"])
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp")
            tmp.write_text(json.dumps({n: {"kind": e.kind, "path": str(e.path) if e.path else None,
                                           "members": e.members, "aggregate": e.aggregate} for n, e in index.items()},
                                       default=_encode_ref))
            tmp.replace(cache)
        except OSError:
            pass
    return index


def _encode_ref(x):
    if isinstance(x, FunctionRef):
        return {"__function__": x.name, "file": str(x.file) if x.file else None, "line": x.line}
    raise TypeError(type(x).__name__)


def _decode_ref(d: dict):
    if "__function__" in d and set(d) == {"__function__", "file", "line"}:
        return FunctionRef(d["__function__"], Path(d["file"]) if d["file"] else None, d["line"])
    return d

