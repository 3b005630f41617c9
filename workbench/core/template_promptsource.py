"""PromptSource interop for templates: a `templates.yaml` read as PromptTemplates, and a template
written as one. Split out of core/templates.py (#23)."""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from workbench.core.template_jinja import is_template_form, jinja_str
from workbench.core.template_lmeval import lm_plain_column
from workbench.core.template_model import PromptTemplate
from workbench.core.template_yaml import PSMetadata, PSTemplate, dump_yaml
from workbench.errors import TemplateError


def _split_bars(s: str) -> list[str]:
    return [p.strip() for p in s.split("|||")]


def _ps_choice_expr(part: str) -> str:
    """A PromptSource answer choice (text with {{ }} inserts) as one Jinja expression."""
    if "{%" in part:
        raise TemplateError(f"PromptSource answer choice {part!r} uses a {{% %}} block", "only {{ }} inserts are supported in per-row answer_choices")
    pieces = []
    pos = 0
    for m in re.finditer(r"\{\{(.*?)\}\}", part, flags=re.S):
        if m.start() > pos:
            pieces.append(jinja_str(part[pos:m.start()]))
        pieces.append("((" + m.group(1).strip() + ") | string)")
        pos = m.end()
    if pos < len(part):
        pieces.append(jinja_str(part[pos:]))
    return " ~ ".join(pieces) or '""'


_ANSWER_CHOICES = re.compile(r"(?<![\w.])answer_choices\b")
_PS_GOLD = re.compile(r"^\{\{\s*answer_choices\s*\[\s*([A-Za-z_]\w*)\s*\]\s*\}\}$")


def from_promptsource(data: Mapping) -> list[PromptTemplate]:
    ds = data.get("dataset")
    sub = data.get("subset")
    out = []
    for tid, tp in (data.get("templates") or {}).items():
        if not isinstance(tp, Mapping) or "jinja" not in tp:
            raise TemplateError(f"PromptSource template {tid}: missing `jinja`", "each template needs `jinja: input ||| target`")
        name = str(tp.get("name") or tid)
        parts = str(tp["jinja"]).split("|||")
        if len(parts) > 2:
            raise TemplateError(f"PromptSource template {name!r}: jinja has {len(parts) - 1} '|||' separators", "use exactly one: input ||| target")
        # PromptSource strips both rendered parts; we strip the source, which matches unless
        # a value itself starts or ends with whitespace.
        inp = parts[0].strip()
        tgt = parts[1].strip() if len(parts) == 2 else None
        meta = dict(tp.get("metadata") or {})
        kw: dict[str, Any] = {"name": name, "input": inp, "dataset": None,
                              "metadata": {"source": "promptsource", "id": str(tp.get("id", tid)),
                                           **({"hf_dataset": ds} if ds else {}), **({"subset": sub} if sub else {}),
                                           **({k: v for k, v in meta.items() if k in ("metrics", "original_task", "choices_in_prompt", "languages")})}}
        if tp.get("reference"):
            kw["description"] = str(tp["reference"])
        ac = tp.get("answer_choices")
        m = _PS_GOLD.match(tgt or "")
        if not ac:
            kw["task"] = "generation"
            kw["target"] = tgt
        else:
            choices = _split_bars(str(ac))
            per_row = any(is_template_form(c) for c in choices)
            if per_row:
                kw["choices_expr"] = "[" + ", ".join(_ps_choice_expr(c) for c in choices) + "]"
                if m:
                    kw["label_column"] = m.group(1)
                    kw["target"] = "{{ %s }}" % m.group(1)  # digits -> index into the row's choices
                else:
                    kw["target"] = _ANSWER_CHOICES.sub("(" + kw["choices_expr"] + ")", tgt or "")
            elif m:
                # The common case: integer dataset labels index the fixed list, so the keys are
                # the label values "0", "1", ... and the label column is the indexing variable.
                kw["label_column"] = m.group(1)
                kw["answer_choices"] = {str(i): [c] for i, c in enumerate(choices)}
            else:
                # Any other target: `answer_choices` becomes the literal list, so the target
                # renders the choice text, which is the key.
                kw["answer_choices"] = {c: [c] for c in choices}
                kw["target"] = _ANSWER_CHOICES.sub("[" + ", ".join(jinja_str(c) for c in choices) + "]", tgt or "")
        if tgt is None:
            raise TemplateError(f"PromptSource template {name!r}: jinja has no '|||' target part", "write jinja as: input ||| target")
        out.append(PromptTemplate(**kw))
    if not out:
        raise TemplateError("PromptSource file holds no templates", "add entries under `templates:`")
    return out


def to_promptsource_yaml(template: PromptTemplate, dataset: str | None = None, template_id: str | None = None) -> str:
    """PromptSource `templates.yaml` text (with !Template tags) holding this template."""
    import uuid

    t = template
    tid = template_id or str(uuid.uuid5(uuid.NAMESPACE_URL, "prompt-workbench:" + t.content_hash()))
    entry: dict[str, Any] = {}
    if t.task == "classification" and t.choices_expr:
        raise TemplateError(f"template '{t.name}' uses choices_expr, which has no PromptSource equivalent here",
                            "export to lm-eval YAML instead")
    if t.task == "classification":
        labels = list(t.answer_choices)
        entry["answer_choices"] = " ||| ".join(t.answer_choices[k][0] for k in labels)
        src = t._target_source()
        if labels == [str(i) for i in range(len(labels))] and lm_plain_column(src):
            gold = "{{ answer_choices[%s] }}" % lm_plain_column(src)
        else:
            index = "{" + ", ".join(f"{jinja_str(k)}: {i}" for i, k in enumerate(labels)) + "}"
            gold = "{% set t %}" + src + "{% endset %}{{ answer_choices[" + index + "[t]] }}"
    else:
        entry["answer_choices"] = None
        gold = t._target_source()
    entry["id"] = tid
    entry["jinja"] = t.input + " ||| " + gold
    entry["metadata"] = PSMetadata({"choices_in_prompt": False, "languages": ["en"],
                                     "metrics": ["Accuracy"] if t.task == "classification" else ["Other"],
                                     "original_task": True})
    entry["name"] = t.name
    entry["reference"] = t.description
    return dump_yaml({"dataset": dataset or t.dataset or "unknown", "templates": {tid: PSTemplate(entry)}})
