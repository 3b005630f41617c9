"""Task code: the Python that an lm-eval task YAML names with `!function module.name`, imported
only from a trusted folder and only when the user asked (--trust-task-code). This is the one
place the workbench imports task code (core/ stays pure, #23).

    fn = resolve_function(ref, code_roots)       # doc_to_text, process_results, filters ...
    cls = resolve_task_class(ref, code_roots, where, name)   # `class: !function task.Name`

The module is loaded as lm-eval loads it (the `.py` next to the YAML that names it, under
lm-eval's module name), so the task's functions behave as in lm-eval. A class task is
lm-eval's ConfigurableTask subclass; it is refused here, when the task is resolved, when it is
multimodal or when its code fetches a metric or file from the Hugging Face hub outside the
data download that the workbench replaces with --data (hub_calls)."""
from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from workbench.core.lmeval_yaml import FunctionRef, installed_tasks_dir
from workbench.errors import TemplateError

RUN_WITH_LM_EVAL = "run it with lm_eval itself"


def _module_name(py: Path, lib: Path | None) -> str:
    # lm-eval names installed task modules lm_eval.tasks.<folder>.<file> (so their own
    # `from lm_eval.tasks.x.utils import ...` reuse the same module) and others by full path.
    if lib is not None and lib in py.parents:
        return "lm_eval.tasks." + ".".join(py.relative_to(lib).with_suffix("").parts)
    return str(py.with_suffix(""))


def load_module(py: Path, lib: Path | None):
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
                mod = load_module(py, lib)
            except ImportError as e:
                from workbench.core.lmeval_compat import provide

                if not provide(getattr(e, "name", None)):  # a module lm-eval's code needs, gone from this
                    raise                                   # environment, that we provide (lmeval_compat.py)
                mod = load_module(py, lib)
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


        hub = re.search(r"module script at \S*?([\w-]+)\.py", str(e))
        hint = (f"the task's code loads the Hugging Face `evaluate` metric {hub.group(1)!r} from the hub when it is "
                "imported: with network access (HF_EVALUATE_OFFLINE unset) it loads, or run it with lm_eval"
                if hub else "the task's module fails to import on this machine")
        raise TemplateError(f"{ref.where()}: importing the task code `{ref}` failed: {type(e).__name__}: {e}",
                            hint) from e
    return fn



# ---------------------------------------------------------------------------- class tasks
# Calls that reach the Hugging Face hub from task code: an `evaluate` metric script, a hub file.
_HUB_CALLS = {("evaluate", "load"): "loads the Hugging Face `evaluate` metric {arg} from the hub",
              ("huggingface_hub", "hf_hub_download"): "downloads {arg} from the Hugging Face hub"}
# Methods whose hub use the workbench replaces: a class task's data comes from --data instead.
_REPLACED = {"download"}


def hub_calls(module) -> list[tuple[int, str]]:
    """(line, what) for each call in `module`'s source, outside its `download` methods, that
    fetches a metric or file from the hub: `evaluate.load(...)`, `load(...)` imported from
    evaluate, `hf_hub_download(...)`. Read from the source (nothing runs)."""
    try:
        tree = ast.parse(inspect.getsource(module))
    except (OSError, TypeError, SyntaxError):
        return []
    alias: dict[str, tuple[str, str]] = {}    # local name -> (module, function)
    mods: dict[str, str] = {}                 # local name -> module
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                alias[a.asname or a.name] = (node.module.split(".")[0], a.name)
        elif isinstance(node, ast.Import):
            for a in node.names:
                mods[a.asname or a.name.split(".")[0]] = a.name.split(".")[0]
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in _REPLACED:
            skip.update(id(n) for n in ast.walk(node))
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or id(node) in skip:
            continue
        f = node.func
        key = None
        if isinstance(f, ast.Name) and f.id in alias:
            key = alias[f.id]
        elif isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id in mods:
            key = (mods[f.value.id], f.attr)
        if key in _HUB_CALLS:
            kw = {k.arg: ast.unparse(k.value) for k in node.keywords if k.arg}
            arg = (ast.unparse(node.args[0]) if node.args else
                   " ".join(kw[k] for k in ("repo_id", "filename") if k in kw) or "a file")
            out.append((node.lineno, _HUB_CALLS[key].format(arg=arg)))
    return sorted(out)


def resolve_task_class(ref: FunctionRef, code_roots: Sequence[Path], where: str, name: str):
    """The Task class a `class: !function module.Name` line names, imported under trust, or a
    refusal that says why it cannot run here and what would make it work."""
    cls = resolve_function(ref, code_roots)
    try:
        from lm_eval.api.task import ConfigurableTask
    except ImportError as e:     # pragma: no cover - the library is lm-eval's own folder
        raise TemplateError(f"{where}: lm-eval task {name!r} is a Python class; lm_eval is not installed",
                            "pip install lm-eval") from e
    if not (inspect.isclass(cls) and issubclass(cls, ConfigurableTask)):
        raise TemplateError(f"{where}: lm-eval task {name!r}: `class: {ref}` is not an lm-eval ConfigurableTask class",
                            "name a subclass of lm_eval.api.task.ConfigurableTask, or " + RUN_WITH_LM_EVAL)
    if getattr(cls, "MULTIMODAL", False):
        raise TemplateError(f"{where}: lm-eval task {name!r}: multimodal input (Python class {cls.__name__} reads "
                            "images) is not supported", "the workbench scores text-only models; " + RUN_WITH_LM_EVAL)
    mod = sys.modules.get(cls.__module__)
    hub = hub_calls(mod) if mod is not None else []
    if hub:
        line, what = hub[0]
        more = f" (and {len(hub) - 1} more)" if len(hub) > 1 else ""
        raise TemplateError(f"{where}: lm-eval task {name!r}: hub metric: its Python class {cls.__name__}'s code "
                            f"{what} ({Path(inspect.getfile(mod)).name}, line {line}){more}",
                            "the workbench runs class tasks on local data without the hub; with network access, "
                            + RUN_WITH_LM_EVAL)
    return cls
