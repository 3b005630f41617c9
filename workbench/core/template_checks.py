"""Field checks for template YAML: each field's type, the answer_choices mapping, and where in a
Jinja source a problem sits (line, column). Used by PromptTemplate.from_dict and validate.
Split out of core/templates.py (#23)."""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from workbench.errors import TemplateError


# What each YAML field may hold: "str" (a number is read as its text), "str?" (or null),
# "int", "float", "bool", "dict", "strlist" (a string or a list of strings).
FIELD_TYPES = {"name": "str", "input": "str", "task": "str", "kind": "str", "choices_expr": "str?", "target": "str?",
                "label_column": "str", "target_delimiter": "str", "fewshot_delimiter": "str", "instruction": "str",
                "instruction_delimiter": "str?", "demo_format": "str?", "chat": "bool", "choice_aggregate": "str",
                "description": "str", "metadata": "dict", "dataset": "str?",
                "metrics": "strlist"}
SUB_TYPES = {"fewshot": {"k": "int", "per_class": "bool", "balanced": "bool", "sampling": "str", "seed": "int"},
              "generation": {"max_new_tokens": "int", "stop": "strlist", "extract": "str?", "temperature": "float",
                             "top_p": "float"}}


def typed_value(key: str, v: Any, kind: str, name: Any) -> Any:
    """`v` as the type field `key` needs, or a TemplateError naming the field."""
    def bad(what: str) -> TemplateError:
        return TemplateError(f"template {name!r}: '{key}' must be {what}, not {type(v).__name__} {str(v)[:40]!r}",
                             f"fix the value of '{key}' (docs/TEMPLATES.md lists every field)")

    if kind in ("str", "str?"):
        if v is None and kind == "str?":
            return None
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise bad("a string")
        return str(v)
    if kind == "bool":
        if not isinstance(v, bool):
            raise bad("true or false")
        return v
    if kind == "int":
        if isinstance(v, bool) or not isinstance(v, int):
            raise bad("a whole number")
        return v
    if kind == "float":
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise bad("a number")
        return float(v)
    if kind == "dict":
        if not isinstance(v, Mapping):
            raise bad("a mapping")
        return dict(v)
    if kind == "strlist":
        items = [v] if isinstance(v, str) else v
        if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
            raise bad("a string or a list of strings")
        return list(items)
    raise AssertionError(kind)


def checked_choices(ac: Mapping, name: str) -> dict[str, list[str]]:
    """answer_choices with string labels and verbalizers; a null, an empty string or a nested
    list/mapping is refused naming its label (they used to become 'None' or "['x']")."""
    out: dict[str, list[str]] = {}
    for k, v in ac.items():
        if k is None or isinstance(k, (list, dict)):
            raise TemplateError(f"template {name!r}: answer_choices has a {'null' if k is None else 'non-scalar'} label {k!r}",
                                "labels are the data's label values, e.g. business: [business]")
        label = label_key(k)   # YAML reads `0:` / `yes:` keys as int / bool; labels are strings everywhere else.
        words = v if isinstance(v, (list, tuple)) else [v]
        if v is None or not words:
            raise TemplateError(f"template {name!r}: answer_choices label '{label}' has no verbalizer (the value is "
                                f"{'null' if v is None else 'empty'})", f"write e.g. {label}: [{label}]")
        for w in words:
            if w is None or isinstance(w, (list, tuple, dict)):
                raise TemplateError(f"template {name!r}: answer_choices label '{label}' has a "
                                    f"{'null' if w is None else type(w).__name__} verbalizer {w!r}",
                                    "each label maps to a flat list of strings, e.g. yes: [yes, sure]")
            if str(w) == "":
                raise TemplateError(f"template {name!r}: answer_choices label '{label}' has an empty verbalizer \"\"",
                                    "a verbalizer must contain some text; the continuation would be only the delimiter")
        out[label] = [label_key(w) for w in words]
    return out


def label_key(k: Any) -> str:
    if isinstance(k, bool):  # YAML 1.1 reads yes/no/true/false keys as booleans
        return "true" if k else "false"
    return str(k)


def guess_column(src: str, e, offset: int) -> int | None:
    """Best-effort 1-based column of a syntax error: Jinja reports only the line, so look for
    the token the message quotes on that line, else point at the first unclosed tag."""
    lines = src.splitlines() or [""]
    if not e.lineno or e.lineno > len(lines):
        return None
    line = lines[e.lineno - 1]
    for tok in re.findall(r"'([^']+)'", e.message or ""):
        i = line.rfind(tok)  # the offending token is usually the last one on the line
        if i >= 0:
            return max(1, i + 1 - offset)
    for opener, closer in (("{{", "}}"), ("{%", "%}")):
        i = line.rfind(opener)
        if i >= 0 and closer not in line[i:]:
            return max(1, i + 1 - offset)
    return None


def locate(src: str, var: str, offset: int) -> tuple[int | None, int | None]:
    for n, line in enumerate(src.splitlines(), 1):
        m = re.search(r"(?<![\w.])" + re.escape(var) + r"\b", line)
        if m:
            return n, max(1, m.start() + 1 - offset)
    return None, None
