"""lm-evaluation-harness interop for templates: a task YAML read as a PromptTemplate, and a
template written as a task YAML whose prompts equal build_context. Split out of
core/templates.py (#23)."""
from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workbench.core.template_jinja import IDENT, is_template_form, jinja_str
from workbench.core.template_model import FewShotConfig, GenerationConfig, PromptTemplate
from workbench.core.template_yaml import dump_yaml, yaml_load
from workbench.errors import TemplateError

# ---- lm-eval ----------------------------------------------------------------------------------


def lm_field_to_jinja(v: Any) -> str:
    """lm-eval evaluates a bare column name as that column, anything else as Jinja. We cannot
    see the dataset's columns, so an identifier-only string is taken as a column name."""
    s = str(v)
    return "{{ %s }}" % s if IDENT.match(s) else s


def lm_plain_column(s: str) -> str | None:
    if IDENT.match(s):
        return s
    m = re.fullmatch(r"\{\{\s*([A-Za-z_]\w*)\s*\}\}", s)
    return m.group(1) if m else None


def _resolve_include(data: dict, path: Path | None, roots=None) -> dict:
    """Merge the `include:` chain, confined to trusted roots (workbench.core.lmeval_yaml)."""
    from workbench.core.lmeval_yaml import IncludeRoots, resolve_includes

    if roots is None and path is not None:
        roots = IncludeRoots.for_file(path)
    return resolve_includes(data, path, roots, lambda text, origin, _p: yaml_load(text, origin))


def _lm_str(data: Mapping, key: str, default: str, name: str) -> str:
    v = data.get(key, default)
    if v is None or isinstance(v, (list, dict)):
        raise TemplateError(f"lm-eval task {name!r}: '{key}' is {'null' if v is None else 'not a string'}",
                            f"give '{key}' a string (write \"\" for none), or leave it out for the default {default!r}")
    return str(v)


def from_lm_eval(data: Mapping, path: Path | None, roots=None) -> PromptTemplate:
    data = _resolve_include(dict(data), path, roots)
    name = str(data.get("task") or (path.stem if path else "lm_eval_task"))
    if isinstance(data.get("task"), list):
        raise TemplateError(f"{name}: this is an lm-eval group, not a task", "load one of the task YAML files it lists")
    out_type = data.get("output_type", "generate_until")
    if out_type not in ("multiple_choice", "generate_until"):
        raise TemplateError(f"lm-eval task {name!r}: output_type {out_type!r} is not supported",
                            "only multiple_choice (classification) and generate_until (generation) map to a prompt template")
    if "doc_to_text" not in data:
        raise TemplateError(f"lm-eval task {name!r} has no doc_to_text", "add doc_to_text (a Jinja string or a column name)")
    if data.get("gen_prefix"):
        # a plain template has no answer prefix: importing it would silently change the prompt
        raise TemplateError(f"lm-eval task {name!r} uses gen_prefix, which a plain template cannot hold",
                            f"run it as an lm-eval task: workbench eval --task {name} (with --include-path for your folder)")
    kw: dict[str, Any] = {
        "name": name,
        "input": lm_field_to_jinja(data["doc_to_text"]),
        "target_delimiter": _lm_str(data, "target_delimiter", " ", name),
        "fewshot_delimiter": _lm_str(data, "fewshot_delimiter", "\n\n", name),
        "metadata": {"source": "lm-eval", **({"dataset_path": data["dataset_path"]} if data.get("dataset_path") else {})},
    }
    desc = data.get("description") or ""
    if desc:
        # lm-eval joins the description to the first demo with nothing in between.
        fd = kw["fewshot_delimiter"]
        if fd and desc.endswith(fd):
            kw["instruction"] = desc[: -len(fd)]
        else:
            kw["instruction"], kw["instruction_delimiter"] = desc, ""
    if data.get("num_fewshot"):
        kw["fewshot"] = FewShotConfig(k=int(data["num_fewshot"]))
    tgt = data.get("doc_to_target")
    if out_type == "generate_until":
        kw["task"] = "generation"
        kw["target"] = lm_field_to_jinja(tgt) if tgt is not None else None
        gk = data.get("generation_kwargs") or {}
        until = gk.get("until", ["\n\n"])
        g = GenerationConfig(stop=[until] if isinstance(until, str) else list(until))
        if "max_gen_toks" in gk:
            g.max_new_tokens = int(gk["max_gen_toks"])
        if "temperature" in gk:
            g.temperature = float(gk["temperature"])
        if "top_p" in gk:
            g.top_p = float(gk["top_p"])
        kw["generation"] = g
        return PromptTemplate(**kw)

    choice = data.get("doc_to_choice")
    if choice is None:
        raise TemplateError(f"lm-eval task {name!r}: multiple_choice needs doc_to_choice", "add doc_to_choice (a list, column or Jinja)")
    if isinstance(choice, Mapping):
        choice = list(choice.values())
    if isinstance(choice, list):
        choices = [str(c) for c in choice]
        # Keys are the choice texts; `target` reproduces lm-eval's gold rule (digits -> index
        # into the list, otherwise the text itself), so both integer and text label columns
        # line up with the keys.
        kw["answer_choices"] = {c: [c] for c in choices}
        lit = "[" + ", ".join(jinja_str(c) for c in choices) + "]"
        if tgt is None:
            raise TemplateError(f"lm-eval task {name!r} has no doc_to_target", "add doc_to_target (index, column or Jinja)")
        if isinstance(tgt, bool) or not isinstance(tgt, (int, str)):
            raise TemplateError(f"lm-eval task {name!r}: doc_to_target {tgt!r} is not supported", "use an int, a column name or a Jinja string")
        if isinstance(tgt, int):
            kw["target"] = "{{ %s }}" % jinja_str(choices[tgt])
        else:
            src = lm_field_to_jinja(tgt)
            col = lm_plain_column(src)
            if col:
                kw["label_column"] = col
            kw["target"] = ("{% set t %}" + src + "{% endset %}"
                            "{{ " + lit + "[t | int] if t.strip().isdigit() else t }}")
    else:
        c = str(choice)
        kw["choices_expr"] = c  # a column name is a valid Jinja expression; templates stay templates
        kw["target"] = lm_field_to_jinja(tgt) if not isinstance(tgt, int) else str(tgt)
        col = lm_plain_column(kw["target"])
        if col:
            kw["label_column"] = col
    return PromptTemplate(**kw)


def to_lm_eval_yaml(template: PromptTemplate, dataset_path: str = "json", data_files: Mapping[str, str] | str | None = None,
                    test_split: str = "test", fewshot_split: str | None = None, task_name: str | None = None) -> str:
    """An lm-eval 0.4.x task YAML whose prompts equal `template.build_context`.

    Demonstrations: lm-eval draws its own; with `fewshot_split` the `first_n` sampler takes
    that split's rows in order, so writing our demos there reproduces the same context.
    Only the first verbalizer of each label can be exported (lm-eval scores one string per
    choice)."""
    t = template
    if t.demo_format:
        raise TemplateError(f"template '{t.name}' uses demo_format, which lm-eval cannot express",
                            "remove demo_format (demos are input + target_delimiter + answer) before exporting")
    d: dict[str, Any] = {"task": task_name or re.sub(r"\W+", "_", t.name), "dataset_path": dataset_path}
    if data_files is not None:
        d["dataset_kwargs"] = {"data_files": dict(data_files) if isinstance(data_files, Mapping) else {test_split: data_files}}
    d["test_split"] = test_split
    if fewshot_split:
        d["fewshot_split"] = fewshot_split
        d["fewshot_config"] = {"sampler": "first_n"}
    d["output_type"] = "multiple_choice" if t.task == "classification" else "generate_until"
    if t.instruction:
        delim = t.fewshot_delimiter if t.instruction_delimiter is None else t.instruction_delimiter
        d["description"] = t.instruction + delim
    d["doc_to_text"] = t.input
    comments = [f"# Exported from prompt-workbench template '{t.name}' (content {t.content_hash()[:12]})."]
    if t.task == "classification":
        if t.choices_expr:
            expr = t.choices_expr
            d["doc_to_choice"] = expr if (is_template_form(expr) or IDENT.match(expr)) else "{{ (" + expr + ") | list }}"
            d["doc_to_target"] = t._target_source()
        else:
            labels = list(t.answer_choices)
            d["doc_to_choice"] = [t.answer_choices[k][0] for k in labels]
            index = "{" + ", ".join(f"{jinja_str(k)}: {i}" for i, k in enumerate(labels)) + "}"
            src = t._target_source()
            d["doc_to_target"] = "{% set t %}" + src + "{% endset %}{{ " + index + "[t] }}"
            if any(len(w) > 1 for w in t.answer_choices.values()):
                comments.append("# Only the first verbalizer of each label is exported (lm-eval scores one string per choice).")
        d["metric_list"] = [{"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                            {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True}]
    else:
        d["doc_to_target"] = t._target_source()
        g = t.generation
        d["generation_kwargs"] = {"until": list(g.stop), "max_gen_toks": g.max_new_tokens,
                                  "do_sample": g.temperature > 0, "temperature": g.temperature}
        d["metric_list"] = [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}]
    d["target_delimiter"] = t.target_delimiter
    d["fewshot_delimiter"] = t.fewshot_delimiter
    d["num_fewshot"] = t.fewshot.k
    if t.chat:
        comments.append("# This template is chat-style: run lm-eval with --apply_chat_template.")
    return "\n".join(comments) + "\n" + dump_yaml(d)
