"""lm-evaluation-harness's task library, opened in the workbench: tasks by name, groups, task
code (opt-in), the task's own data and its few-shot conventions.

    lib = TaskLibrary(include_paths=["~/my_tasks"])        # + the installed lm_eval/tasks
    lib.expand("mmlu")                                      # group/tag -> leaf task names
    task = lib.load("hellaswag", trust_code=True)           # LmEvalTask: .template, .config
    data = task_data(task, data=None)                       # its rows: eval split + few-shot pool
    demos = FewshotPicker(task, data).for_row               # lm-eval's sampler (first_n / default)

Trust. `!function module.name` in a task YAML names Python code in the task's folder. It runs
only when the user asked (`--trust-task-code`, the app's checkbox for server folders) *and*
the YAML and the module both lie under the installed lm-eval tasks folder or a folder the
user named with `--include-path`. The module is loaded as lm-eval loads it (the `.py` next to
the YAML that names it, under lm-eval's module name), so `process_docs`, `doc_to_text`,
`doc_to_target`, `doc_to_choice` and `process_results` behave as in lm-eval. Uploads never
reach this module with trust. Without trust the refusal names the function, the file and the
flag.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import inspect
import json
import random
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.core.lmeval_yaml import (FunctionRef, IncludeRoots, check_include_paths, function_refs,
                                        installed_tasks_dir, load_with_refs, read_task_yaml, read_yaml_text,
                                        resolve_includes)
from workbench.core.templates import PromptTemplate, _from_lm_eval
from workbench.errors import DataError, TemplateError

SUPPORTED_OUTPUT_TYPES = ("multiple_choice", "loglikelihood", "loglikelihood_rolling", "generate_until")
TRUST_HINT = ("pass --trust-task-code (CLI) or tick “Trust task code” (app, server folders only); code runs only "
              "from the installed lm-eval tasks folder or a folder named with --include-path")
# Template fields that a !function may stand in for (lm-eval key -> our template field).
_FN_FIELDS = {"doc_to_text": "input", "doc_to_target": "target", "doc_to_choice": "choices_expr"}
_PLACEHOLDER = "__lmeval_{}__"


# ---------------------------------------------------------------------------- docs
def to_doc(row: Any) -> dict:
    """A row (pandas Series or mapping) as the plain dict lm-eval hands its functions."""
    d = row.to_dict() if hasattr(row, "to_dict") else dict(row)
    return {k: _plain(v) for k, v in d.items()}


def _plain(v: Any) -> Any:
    if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):
        return v.tolist()
    if isinstance(v, Mapping):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


# ---------------------------------------------------------------------------- task code
def _module_name(py: Path, lib: Path | None) -> str:
    # lm-eval names installed task modules lm_eval.tasks.<folder>.<file> (so their own
    # `from lm_eval.tasks.x.utils import ...` reuse the same module) and others by full path.
    if lib is not None and lib in py.parents:
        return "lm_eval.tasks." + ".".join(py.relative_to(lib).with_suffix("").parts)
    return str(py.with_suffix(""))


def _load_module(py: Path, lib: Path | None):
    name = _module_name(py, lib)
    mtime = py.stat().st_mtime_ns
    mod = sys.modules.get(name)
    if mod is not None and getattr(mod, "__mtime__", None) == mtime:
        return mod
    spec = importlib.util.spec_from_file_location(name, py)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {py}")
    mod = importlib.util.module_from_spec(spec)
    mod.__mtime__ = mtime
    spec.loader.exec_module(mod)
    sys.modules[name] = mod
    return mod


def resolve_function(ref: FunctionRef, code_roots: Sequence[Path]) -> Callable:
    """The callable `ref` names, loaded only from a trusted code root."""
    lib = installed_tasks_dir()
    src = ref.file.resolve() if ref.file else None
    root = next((r for r in code_roots if src is not None and (r in src.parents)), None)
    if root is None:
        raise TemplateError(f"{ref.where()}: `{ref}` is task code outside the trusted task folders",
                            "task code runs only from the installed lm-eval tasks folder or a folder named with "
                            "--include-path")
    mod_path, _, fn_name = ref.name.rpartition(".")
    if not mod_path:
        raise TemplateError(f"{ref.where()}: `{ref}` names no module", "write !function module.function_name")
    py = (src.parent / (mod_path.replace(".", "/") + ".py")).resolve()
    try:
        if py.is_file():
            if root not in py.parents:
                raise TemplateError(f"{ref.where()}: `{ref}` resolves to {py}, outside the trusted task folder",
                                    "keep the module next to the task YAML")
            try:
                mod = _load_module(py, lib)
            except ImportError as e:
                from workbench.core.lmeval_compat import provide

                if not provide(getattr(e, "name", None)):  # a module lm-eval's code needs, gone from this
                    raise                                   # environment, that we provide (lmeval_compat.py)
                mod = _load_module(py, lib)
        elif mod_path.split(".")[0] == "lm_eval":
            mod = importlib.import_module(mod_path)  # lm-eval's own code, as trusted as lm-eval
        else:
            raise TemplateError(f"{ref.where()}: `{ref}`: no module {mod_path}.py next to the task file",
                                "put the module next to the YAML that names it")
        fn = getattr(mod, fn_name)
    except TemplateError:
        raise
    except AttributeError as e:
        raise TemplateError(f"{ref.where()}: `{ref}`: the module has no {fn_name!r}", "check the function name") from e
    except ImportError as e:
        missing = getattr(e, "name", None)
        if "load_metric" in str(e) and missing == "datasets":
            hint = ("the task's code calls datasets.load_metric, which datasets 3 removed (and which fetches the "
                    "metric from the hub); run it with lm_eval where datasets<3 is installed")
        else:
            hint = f"install what it needs (pip install {missing})" if missing else "install the packages the task needs"
        raise TemplateError(f"{ref.where()}: the task code `{ref}` could not be imported: {e}", hint) from e
    except (Exception, SystemExit) as e:  # noqa: BLE001 - foreign code (some call sys.exit on import)
        import re

        hub = re.search(r"module script at \S*?([\w-]+)\.py", str(e))
        hint = (f"the task's code loads the Hugging Face `evaluate` metric {hub.group(1)!r} from the hub when it is "
                "imported: with network access (HF_EVALUATE_OFFLINE unset) it loads, or run it with lm_eval"
                if hub else "the task's module fails to import on this machine")
        raise TemplateError(f"{ref.where()}: importing the task code `{ref}` failed: {type(e).__name__}: {e}",
                            hint) from e
    return fn


# ---------------------------------------------------------------------------- template
@dataclass
class LmEvalTemplate(PromptTemplate):
    """A PromptTemplate whose doc_to_text / doc_to_target / doc_to_choice may be lm-eval task
    functions. Jinja fields render on the same plain dict the functions receive."""
    functions: dict = field(default_factory=dict, compare=False, repr=False,
                            metadata={"help": "lm-eval field -> trusted task function (not serialised)."})
    function_names: dict = field(default_factory=dict, compare=False,
                                 metadata={"help": "lm-eval field -> '!function module.name' text."})
    code_hash: str = field(default="", metadata={"help": "sha256 of the task code's source files."})
    demo_template: Any = field(default=None, compare=False, repr=False, metadata={
        "help": "How demonstrations are written when fewshot_config overrides doc_to_text / doc_to_target / "
                "doc_to_choice / delimiters / gen_prefix (lm-eval's FewshotConfig); None = like the eval doc."})
    gen_prefix: str | None = field(default=None, metadata={
        "help": "lm-eval's gen_prefix: the start of the model's answer, written after the input (a column name "
                "or Jinja); demonstrations carry it before their answer (core/lmeval_prefix.py)."})

    def build_context(self, row: Mapping, demos: Sequence[Mapping] = ()) -> str:
        dt = self.demo_template
        if (dt is None or not demos) and not self._any_prefix():
            return super().build_context(row, demos)
        # description (+ delimiter), then each demo in the few-shot format, then the input
        head, inp = super().build_context(row, ()), self.render_input(row)
        parts = [head[: len(head) - len(inp)]]
        for d in demos:
            parts.append((dt or self).lm_demo(d))
        return "".join(parts) + self.lm_eval_turn(inp, row)

    def _any_prefix(self) -> bool:
        return bool(self.gen_prefix) or bool(self.demo_template is not None and self.demo_template.gen_prefix)

    def prefix_for(self, row: Mapping) -> str | None:
        """The row's gen_prefix as lm-eval resolves it: the column of that name, else Jinja."""
        if not self.gen_prefix:
            return None
        doc = to_doc(row)
        if self.gen_prefix in doc:
            v = doc[self.gen_prefix]
            return None if v is None else str(v)
        return self._render("gen_prefix", self.gen_prefix, row)

    def lm_demo(self, row: Mapping) -> str:
        """One demonstration with what follows it, as lm-eval's build_qa_turn writes it."""
        from workbench.core.lmeval_prefix import qa_turn

        return qa_turn(self.render_input(row), self._answer_text(row), self.prefix_for(row),
                       self.target_delimiter, self.fewshot_delimiter)

    def lm_eval_turn(self, inp: str, row: Mapping, *, target_delimiter: str | None = None) -> str:
        """The eval doc's turn: its input, then the gen_prefix (delimited as lm-eval does)."""
        from workbench.core.lmeval_prefix import qa_turn

        tgt = self.target_delimiter if target_delimiter is None else target_delimiter
        return qa_turn(inp, None, self.prefix_for(row), tgt, "")

    def _render(self, what: str, source: str, row: Mapping) -> str:
        return super()._render(what, source, to_doc(row))

    def _call(self, key: str, row: Mapping) -> Any:
        try:
            return self.functions[key](to_doc(row))
        except TemplateError:
            raise
        except (Exception, SystemExit) as e:  # noqa: BLE001 - foreign code on a data row
            raise TemplateError(f"task '{self.name}': {self.function_names.get(key, key)} failed on a row: "
                                f"{type(e).__name__}: {e}", "check that the data has the task's columns") from e

    def render_input(self, row: Mapping) -> str:
        if "doc_to_text" not in self.functions:
            return super().render_input(row)
        v = self._call("doc_to_text", row)
        if isinstance(v, int) and not isinstance(v, bool):
            # A multiple-input task (winogrande): the text is the choice at that index, as
            # lm-eval writes a demonstration; an eval doc gets one context per choice
            # (multi_contexts).
            return self._row_choices(row)[v]
        return str(v)

    def is_multiple_input(self, row: Mapping) -> bool:
        """lm-eval's test on a doc: doc_to_text gives a choice index."""
        if "doc_to_text" not in self.functions or self.task != "classification":
            return False
        v = self._call("doc_to_text", row)
        return isinstance(v, int) and not isinstance(v, bool)

    def multi_contexts(self, row: Mapping, demos: Sequence[Mapping] = ()) -> list[str]:
        """A multiple-input doc's contexts: description and demonstrations, then each choice
        as the input (lm-eval's multiple_input_context, plain text)."""
        full, inp = self.build_context(row, demos), self.render_input(row)
        head = full[: len(full) - len(self.lm_eval_turn(inp, row))]
        # each choice is the input of its own turn, with no target delimiter before the prefix
        return [head + self.lm_eval_turn(c, row, target_delimiter="") for c in self._row_choices(row)]

    def _row_choices(self, row: Mapping) -> list[str]:
        if "doc_to_choice" not in self.functions:
            return super()._row_choices(row)
        v = self._call("doc_to_choice", row)
        if isinstance(v, Mapping):
            v = list(v.values())
        return [str(c) for c in v]

    def gold(self, row: Mapping) -> str:
        if "doc_to_target" not in self.functions:
            return super().gold(row)
        v = self._call("doc_to_target", row)
        if isinstance(v, list):  # lm-eval multiple targets: any is right; we score the first
            v = v[0] if v else ""
        if self.task == "generation":
            return str(v)
        choices = [c for c, _ in self.choices_for(row)]
        if isinstance(v, bool) or not isinstance(v, (int, str)):
            v = str(v)
        if isinstance(v, str) and v.strip().isdigit() and v not in choices:
            v = int(v.strip())
        if isinstance(v, int):
            if not 0 <= v < len(choices):
                raise TemplateError(f"task '{self.name}': gold index {v} is out of range for {len(choices)} choices",
                                    "check the data against the task")
            return choices[v]
        return v

    def _function_fields(self) -> set[str]:
        return {_FN_FIELDS[k] for k in self.functions if k in _FN_FIELDS}

    def variables(self) -> set[str]:
        return {v for v in super().variables() if not v.startswith("__lmeval_")}

    def validate(self, columns=None, labels=None, tokenizer=None, sample_row=None):
        fn_fields = self._function_fields()
        probs = super().validate(columns=columns, labels=None, tokenizer=tokenizer, sample_row=sample_row)
        return [p for p in probs if not (p.field in fn_fields and "__lmeval_" in p.message)]

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(PromptTemplate)}
        d = dataclasses.asdict(PromptTemplate(**d))
        d["metadata"] = {**d.get("metadata", {}), "functions": dict(self.function_names), "code_hash": self.code_hash}
        if self.gen_prefix:
            d["metadata"]["gen_prefix"] = self.gen_prefix
        return d

    def _compact_dict(self) -> dict:
        base = PromptTemplate(**{f.name: getattr(self, f.name) for f in dataclasses.fields(PromptTemplate)})
        d = base._compact_dict()
        if self.function_names:
            d["metadata"] = {**d.get("metadata", {}), "functions": dict(self.function_names), "code_hash": self.code_hash}
        if self.gen_prefix:
            # shown to the user; a plain template has no such field, so the prefix is not re-imported
            d["metadata"] = {**d.get("metadata", {}), "gen_prefix": self.gen_prefix}
        return d

    def content_hash(self) -> str:
        h = super().content_hash()
        if not self.function_names and self.demo_template is None and not self.gen_prefix:
            return h
        demo = self.demo_template.content_hash() if self.demo_template is not None else None
        extra = json.dumps([self.function_names, self.code_hash, demo] + ([self.gen_prefix] if self.gen_prefix else []),
                           sort_keys=True)
        return hashlib.sha256((h + extra).encode()).hexdigest()


# ---------------------------------------------------------------------------- tasks
@dataclass
class LmEvalTask:
    name: str
    path: Path | None
    config: dict                      # includes merged; FunctionRefs resolved when trusted
    template: PromptTemplate
    process_docs: Callable | None = None
    process_results: Callable | None = None
    code: dict = field(default_factory=dict, repr=False)   # config with trusted !functions as callables

    @property
    def output_type(self) -> str:
        return str(self.config.get("output_type", "generate_until"))

    @property
    def repeats(self) -> int:
        return int(self.config.get("repeats") or 1)

    @property
    def target_delimiter(self) -> str:
        v = self.config.get("target_delimiter", " ")
        return " " if v is None else str(v)

    @property
    def generation_kwargs(self) -> dict:
        """lm-eval's defaults: until the fewshot delimiter, greedy."""
        gk = self.config.get("generation_kwargs")
        if gk is None:
            fd = self.config.get("fewshot_delimiter", "\n\n")
            return {"until": None if fd is None else [fd], "do_sample": False, "temperature": 0}
        return dict(gk)

    def doc_target(self, row: Mapping) -> Any:
        """lm-eval's doc_to_target value (an int, a list for multiple targets, else text)."""
        spec = self.config.get("doc_to_target")
        doc = to_doc(row)
        if "doc_to_target" in getattr(self.template, "functions", {}):
            return self.template._call("doc_to_target", row)
        if isinstance(spec, (int, list)) and not isinstance(spec, bool):
            return spec
        if isinstance(spec, str) and spec in doc:
            return doc[spec]
        if spec is None:
            return ""
        from workbench.core.templates import lm_field_to_jinja

        # the task's own doc_to_target, not the template's (which maps indices to choice texts)
        text = self.template._render("target", lm_field_to_jinja(spec), row)
        if text.isdigit() and self.config.get("doc_to_choice") is not None:
            return int(text)
        if len(text) >= 2 and text[0] == "[" and text[-1] == "]":
            import ast
            try:
                return ast.literal_eval(text)
            except (SyntaxError, ValueError):
                return text
        return text

    def doc_choices(self, row: Mapping) -> list[str]:
        return self.template._row_choices(row) if self.config.get("doc_to_choice") is not None else []

    @property
    def num_fewshot(self) -> int:
        return int(self.config.get("num_fewshot") or 0)

    @property
    def fewshot_config(self) -> dict:
        fc = self.config.get("fewshot_config") or {}
        return dict(fc) if isinstance(fc, Mapping) else {}

    @property
    def sampler(self) -> str:
        return str(self.fewshot_config.get("sampler") or "default")

    @property
    def eval_split(self) -> str | None:
        return self.config.get("test_split") or self.config.get("validation_split")

    @property
    def fewshot_split(self) -> str | None:
        """lm-eval's fewshot_docs: fewshot_split, else training, else validation, else test."""
        c = self.config
        return (self.fewshot_config.get("split") or c.get("fewshot_split") or c.get("training_split")
                or c.get("validation_split") or c.get("test_split"))

    def metric_names(self) -> list[str]:
        ml = self.config.get("metric_list")
        if not ml:
            return ["acc", "acc_norm"] if self.template.task == "classification" else ["exact_match"]
        return [str(m.get("metric")) for m in ml if isinstance(m, Mapping) and isinstance(m.get("metric"), str)]


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
        raise TemplateError(f"{where}: lm-eval task {name!r} is a Python Task class ({cfg['class']})",
                            "class-based lm-eval tasks are code, not a prompt; run them with lm_eval itself")
    out_type = cfg.get("output_type", "generate_until")
    if out_type not in SUPPORTED_OUTPUT_TYPES:
        raise TemplateError(f"{where}: lm-eval task {name!r}: output_type {out_type!r} is not an lm-eval output type",
                            f"use one of {', '.join(SUPPORTED_OUTPUT_TYPES)}")
    # Everything the workbench cannot reproduce is refused here, when the task is resolved,
    # before any data or model loads (lmeval_refusals.py says why and what would work).
    from workbench.core.lmeval_refusals import refusal

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
            t_cfg[key] = _PLACEHOLDER.format(key) if key != "doc_to_text" else "{{ %s }}" % _PLACEHOLDER.format(key)
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
    base = _from_lm_eval(clean, None)
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


# ---------------------------------------------------------------------------- the library
@dataclass
class Entry:
    name: str
    kind: str                          # "task" | "group" | "tag" | "python"
    path: Path | None
    members: list = field(default_factory=list)    # group: names or inline dicts; tag: task names
    aggregate: list = field(default_factory=list)  # group: aggregate_metric_list


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


# ---------------------------------------------------------------------------- data
@dataclass
class TaskData:
    eval: Any            # workbench.core.data.Dataset: the rows lm-eval scores, in its order
    fewshot: Any | None  # the few-shot pool (None when num_fewshot is 0 and nothing else needs it)
    eval_split: str
    fewshot_split: str | None
    source: str


def _frame(docs: list[dict]):
    """Docs as a DataFrame of object columns: every cell keeps the exact Python value
    (ints stay ints, lists stay lists), so functions and Jinja see lm-eval's docs."""
    import pandas as pd

    cols: list[str] = []
    for d in docs:
        for k in d:
            if k not in cols:
                cols.append(k)
    return pd.DataFrame({c: pd.Series([d.get(c) for d in docs], dtype=object) for c in cols})


def _split_files(folder: Path) -> dict[str, Path]:
    out = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in (".jsonl", ".json", ".csv", ".parquet") and p.is_file():
            out.setdefault(p.stem.split(".")[0].split("-")[0], p)
    return out


def _builder(p: Path) -> str:
    return {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}.get(p.suffix.lower(), "json")


def _load_splits(task: LmEvalTask, data: str | Path | None, need: list[str]):
    """{split: datasets.Dataset} for the splits in `need`."""
    import datasets

    c = task.config
    if data is not None:
        p = Path(data).expanduser()
        if not p.exists():
            raise DataError(f"--data {p}: not found", "give a file (the task's eval split) or a folder of <split>.jsonl files")
        if p.is_dir() and (p / "dataset_dict.json").is_file():
            dd = datasets.load_from_disk(str(p))
            return {s: dd[s] for s in need if s in dd}, str(p)
        if p.is_dir():
            files = _split_files(p)
            if not files:
                raise DataError(f"--data {p}: no .jsonl/.json/.csv/.parquet files", "name the files after the splits, e.g. test.jsonl")
            use = {s: files[s] for s in need if s in files}
            if not use:
                raise DataError(f"--data {p}: none of the task's splits ({', '.join(need)}) is there (found: {', '.join(files)})",
                                f"name the files after the splits, e.g. {need[0]}.jsonl")
            out = {}
            for s, f in use.items():
                out[s] = datasets.load_dataset(_builder(f), data_files={s: str(f)}, split=s)
            return out, str(p)
        # One file: it is the eval split (and, failing any other, the few-shot pool).
        d = datasets.load_dataset(_builder(p), data_files={"x": str(p)}, split="x")
        return {s: d for s in need}, str(p)
    path = c.get("dataset_path")
    if not path:
        raise DataError(f"task {task.name!r} names no dataset_path", "give the rows with --data FILE")
    kwargs = dict(c.get("dataset_kwargs") or {})
    # A dataset *script* is hub code, not lm-eval's: --trust-task-code never covers it.
    kwargs.pop("trust_remote_code", None)
    name = c.get("dataset_name")
    try:
        local = Path(str(path)).expanduser()
        if local.is_dir() and (local / "dataset_dict.json").is_file():
            dd = datasets.load_from_disk(str(local))
        else:
            dd = datasets.load_dataset(str(path), name, **kwargs)
    except Exception as e:  # noqa: BLE001 - offline, missing, gated: one clear message
        raise DataError(f"could not load the dataset of task {task.name!r} ({path}{'/' + name if name else ''}): "
                        f"{type(e).__name__}: {str(e)[:300]}",
                        f"offline or not cached: give a local copy with --data FILE (the {task.eval_split} split) or "
                        "--data FOLDER (one <split>.jsonl per split)") from e
    missing = [s for s in need if s not in dd]
    if missing:
        raise DataError(f"dataset {path} has no split(s) {', '.join(missing)} (has {', '.join(dd)})", "check the task's splits")
    return {s: dd[s] for s in need}, f"{path}{'/' + name if name else ''}"


def task_data(task: LmEvalTask, data: str | Path | None = None, *, num_fewshot: int | None = None,
              limit: int | None = None):
    """The task's eval rows (lm-eval's test split, else validation) and few-shot pool, with
    process_docs applied as lm-eval applies it."""
    from workbench.core.data import Dataset

    k = task.num_fewshot if num_fewshot is None else num_fewshot
    ev = task.eval_split
    if not ev:
        raise DataError(f"task {task.name!r} has neither test_split nor validation_split", "check the task YAML")
    samples = task.fewshot_config.get("samples")
    fs = task.fewshot_split if k > 0 and not (isinstance(samples, list) and not task.fewshot_config.get("split")
                                              and not task.config.get("fewshot_split")) else None
    need = [ev] + ([fs] if fs and fs != ev else [])
    splits, source = _load_splits(task, data, need)
    if data is not None and fs and fs not in splits:
        splits[fs] = splits[ev]  # a local copy without that split: its eval rows are the pool

    def docs(split: str) -> list[dict]:
        d = splits[split]
        if task.process_docs is not None:
            try:
                d = task.process_docs(d)
            except (Exception, SystemExit) as e:  # noqa: BLE001 - the task's own code on these rows
                raise DataError(f"task {task.name!r}: process_docs failed on the {split} rows: {type(e).__name__}: {e}",
                                "check that --data has the columns of the task's dataset") from e
        return [dict(x) for x in d]

    eval_docs = docs(ev)
    if limit:
        eval_docs = eval_docs[: int(limit)]
    if not eval_docs:
        raise DataError(f"the {ev} split of task {task.name!r} is empty", "check --data")
    eval_ds = Dataset(name=task.name, df=_frame(eval_docs), text_column=None, label_column=None, source=source,
                      meta={"lm_eval_task": task.name, "split": ev})
    fs_ds = None
    if k > 0:
        if isinstance(samples, list) and fs is None:
            pool = [dict(s) for s in samples]
        else:
            pool = docs(fs)
        fs_ds = Dataset(name=f"{task.name}:fewshot", df=_frame(pool), text_column=None, label_column=None,
                        source=source, meta={"split": fs})
    return TaskData(eval=eval_ds, fewshot=fs_ds, eval_split=ev, fewshot_split=fs if k > 0 else None, source=source)


# ---------------------------------------------------------------------------- few-shot
class FewshotPicker:
    """lm-eval's few-shot draw for each eval doc, in doc order.

    first_n: the pool's first n docs (minus the eval doc itself when the pool is the eval
    split). default: random.Random(seed).sample(pool, n) per doc, one generator for the
    whole run (lm-eval seeds it with 1234), n+1 drawn and the eval doc removed when the pool
    is the eval split."""

    def __init__(self, task: LmEvalTask, data: TaskData, n: int, seed: int = 1234):
        self.n = n
        self.sampler = task.sampler
        if self.sampler not in ("default", "first_n"):
            raise TemplateError(f"task {task.name!r}: few-shot sampler {self.sampler!r} is not supported",
                                "lm-eval's samplers here: first_n, default")
        self.pool_df = data.fewshot.df if data.fewshot is not None else None
        self.pool = [r for _, r in self.pool_df.iterrows()] if self.pool_df is not None else []
        self.pool_docs = [to_doc(r) for r in self.pool]
        # lm-eval removes the eval doc from its draw when fewshot_config.split == test_split
        self.same_split = (task.fewshot_config.get("split") or task.config.get("fewshot_split")) == task.config.get("test_split")
        self.rnd = random.Random(seed)
        self._cache: dict[Any, list] = {}

    def for_row(self, idx, row) -> list:
        if self.n <= 0:
            return []
        if idx in self._cache:
            return self._cache[idx]
        doc = to_doc(row)
        ex = doc if self.same_split else None
        if self.sampler == "first_n":
            items = [(r, d) for r, d in zip(self.pool, self.pool_docs) if ex is None or d != ex]
            if self.n > len(items):
                raise DataError(f"{self.n} few-shot examples requested, the pool has {len(items)}", "lower --num-fewshot")
            out = [r for r, _ in items[: self.n]]
        else:
            idxs = list(range(len(self.pool)))
            if ex is None:
                pick = self.rnd.sample(idxs, self.n)
            else:
                pick = [i for i in self.rnd.sample(idxs, self.n + 1) if self.pool_docs[i] != ex][: self.n]
                if len(pick) < self.n:
                    pick = self.rnd.sample([i for i in idxs if self.pool_docs[i] != ex], self.n)
            out = [self.pool[i] for i in pick]
        self._cache[idx] = out
        return out
