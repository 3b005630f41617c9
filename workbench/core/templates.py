"""Prompt templates: the YAML format, sandboxed Jinja rendering, validation, and interop.

Usage:
    from workbench.core.templates import load_template
    t = load_template("templates_library/bbc_headline_topic.yaml")
    problems = t.validate(columns=["title", "text", "label"], labels=["business", "tech"])
    ctx = t.build_context(row, demos=[demo_row1, demo_row2])
    continuations = [t.target_delimiter + w for _, words in t.choices_for(row) for w in words]

A template is *data*, not code: every Jinja string is rendered in one shared
`SandboxedEnvironment` with `StrictUndefined`, and YAML is read with a `SafeLoader` subclass
that never instantiates Python objects. `load_template` also reads lm-evaluation-harness task
YAML and PromptSource `templates.yaml`; `to_lm_eval_yaml` / `to_promptsource_yaml` write them.
The prompt assembly reproduces lm-evaluation-harness 0.4.13 (see docs/TEMPLATES.md).

The module is the front door: it reads template files in any of the three formats; the model,
its Jinja, YAML and field checks and the two interop formats live in core/template_*.py, and
every public name is re-exported here (#23).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from workbench.core.template_checks import checked_choices, label_key, typed_value  # noqa: F401 - re-export
from workbench.core.template_jinja import (IDENT, ROW_VARIABLE, column_ref, eval_expression,  # noqa: F401 - re-export
                                           is_template_form, jinja_str, quoted_ref, render_string,
                                           undeclared_names, with_row, wrap_jinja_error)
from workbench.core.template_lmeval import from_lm_eval, lm_field_to_jinja, to_lm_eval_yaml  # noqa: F401 - re-export
from workbench.core.template_model import (AGGREGATES, KINDS, MANY_CLASSES, SAMPLINGS, TASKS,  # noqa: F401 - re-export
                                           FewShotConfig, GenerationConfig, Problem, PromptTemplate)
from workbench.core.template_promptsource import from_promptsource, to_promptsource_yaml  # noqa: F401 - re-export
from workbench.core.template_yaml import MAX_YAML_CHARS, MAX_YAML_NODES, dump_yaml, yaml_load  # noqa: F401 - re-export
from workbench.errors import TemplateError

# The old private name, for core/lmeval_tasks.py until #25's branch imports from_lm_eval (one stop).


# --------------------------------------------------------------------------------------------
# Loading: our format, lm-eval task YAML, PromptSource templates.yaml
# --------------------------------------------------------------------------------------------
_LM_EVAL_KEYS = {"doc_to_text", "doc_to_target", "doc_to_choice", "output_type", "dataset_path", "include"}


def _read(path_or_text: str | Path) -> tuple[str, Path | None]:
    if isinstance(path_or_text, Path):
        p = path_or_text
    elif "\n" not in path_or_text and len(path_or_text) < 4096 and (
            path_or_text.endswith((".yaml", ".yml")) or os.path.exists(path_or_text)):
        p = Path(path_or_text)
    else:
        return path_or_text, None
    if not p.is_file():
        raise TemplateError(f"template file not found: {p}", "check the path, or pass the YAML text itself")
    return read_utf8(p), p


def read_utf8(p: Path) -> str:
    """A template file's text; a file that is not UTF-8 is a TemplateError naming the bad byte."""
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise TemplateError(f"{p}: not valid UTF-8: byte 0x{raw[e.start]:02x} at offset {e.start} (line {line})",
                            "re-save the template as UTF-8 (templates are read as UTF-8 only)") from e
    return text[1:] if text.startswith("\ufeff") else text


def load_templates(path_or_text: str | Path, *, include_roots=None) -> list[PromptTemplate]:
    """Every template in a file: one for our format and lm-eval, all for PromptSource.

    `include_roots` (a workbench.core.lmeval_yaml.IncludeRoots) says where an lm-eval
    `include:` may read; default: the file's own folder and the installed lm-eval tasks."""
    text, path = _read(path_or_text)
    origin = str(path) if path else "template"
    data = yaml_load(text, origin)
    if not isinstance(data, Mapping):
        raise TemplateError(f"{origin}: expected a YAML mapping, got {type(data).__name__}",
                            "a template file is a mapping with `name:` and `input:` (or lm-eval / PromptSource YAML)")
    try:
        if "templates" in data and isinstance(data["templates"], Mapping):
            return from_promptsource(data)
        if "input" in data and "name" in data:
            return [PromptTemplate.from_dict(data)]
        if "group" in data and isinstance(data.get("task"), list):
            raise TemplateError(f"{origin}: this is the lm-eval group {data['group']!r}, not one task",
                                f"run its tasks by name: workbench eval --task {data['group']} (see docs/TEMPLATES.md)")
        if _LM_EVAL_KEYS & set(data):
            return [from_lm_eval(data, path, include_roots)]
    except TemplateError as e:
        if path and str(path) not in e.message:
            raise TemplateError(f"{path}: {e.message}", e.hint) from e
        raise
    raise TemplateError(f"{origin}: not a recognised template format (keys: {', '.join(map(str, data))})",
                        "our format needs `name` and `input`; lm-eval needs `doc_to_text`; PromptSource needs `templates`")


def load_template(path_or_text: str | Path, name: str | None = None, *, include_roots=None) -> PromptTemplate:
    ts = load_templates(path_or_text, include_roots=include_roots)
    if name is not None:
        for t in ts:
            if t.name == name:
                return t
        raise TemplateError(f"no template named {name!r} in {str(path_or_text)[:200]}",
                            f"available: {', '.join(t.name for t in ts)}")
    if len(ts) > 1:
        raise TemplateError(f"{str(path_or_text)[:200]} holds {len(ts)} templates",
                            f"pass name=... (one of: {', '.join(t.name for t in ts)}) or use load_templates")
    return ts[0]
