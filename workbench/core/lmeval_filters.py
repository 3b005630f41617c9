"""lm-eval's `filter_list`: named pipelines that turn a doc's raw responses into the value
its metrics score, with the same results as lm-eval's shipped filters.

    pipes = build_pipelines(task_config["filter_list"])      # [] in config -> [("none", take_first)]
    out = pipes[0].apply(resps, docs)    # resps: per doc, the list of its responses (repeats)

A pipeline takes, for every doc, the list of its responses (one per repeat) and passes the
whole list of lists through its steps in order, as lm-eval does; `take_first` turns each
doc's list into its first element, so later steps see single values. Each pipeline is
reported under its own name (lm-eval's "exact_match,strict-match").

Shipped filters written here (semantics from lm-eval's filter registry, our own code):
regex, regex_pos, remove_whitespace, multi_choice_regex, take_first, take_first_k,
majority_vote, lowercase, uppercase, map, format_span. `custom` (a `filter_fn`) and a task's
own filter class are task code: they run only when the task's code is trusted, and are given
to build_pipelines already resolved (callables). `decontaminate` is refused, as lm-eval
itself does not implement it.
"""
from __future__ import annotations

import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from workbench.errors import TemplateError

Step = Callable[[list, list], list]   # (responses per doc, docs) -> responses per doc

_GSM_PATTERN = r"#### (\-?[0-9\.\,]+)"   # lm-eval's default regex_pattern


# ------------------------------------------------------------------------- extraction
def _pick(found: list, group_select: int):
    """findall's `group_select`-th hit; for a pattern with groups, its first non-empty group
    (None when all groups are empty)."""
    hit = found[group_select]
    if isinstance(hit, tuple):
        hit = next((g for g in hit if g), None)
    return hit


def regex(regex_pattern: str = _GSM_PATTERN, group_select: int = 0, fallback: str = "[invalid]") -> Step:
    rx = re.compile(regex_pattern)

    def one(resp) -> str:
        found = rx.findall(resp if isinstance(resp, str) else "")
        if not found:
            return fallback
        hit = _pick(found, group_select)
        return fallback if hit is None else hit.strip()

    return lambda resps, docs: [[one(r) for r in inst] for inst in resps]


def regex_pos(regex_pattern: str = r"\['(.*?)'\]", group_select: int = 0, fallback=None) -> Step:
    # lm-eval's POS filter reads ('token', 'TAG') pairs out of the text; the pattern is unused.
    fb = ["invalid"] if fallback is None else fallback
    pair = re.compile(r"\('([^']*)', '([^']*)'\)")

    def one(resp):
        pairs = pair.findall(resp) if isinstance(resp, str) else list(resp)
        return [tag for _, tag in pairs] or fb

    return lambda resps, docs: [[one(r) for r in inst] for inst in resps]


def remove_whitespace() -> Step:
    return lambda resps, docs: [[r.strip() for r in inst] for inst in resps]


@lru_cache(maxsize=1)
def _unicode_punct_table() -> dict:
    return dict.fromkeys(i for i in range(sys.maxunicode) if unicodedata.category(chr(i)).startswith("P"))


def multi_choice_regex(regex_pattern: str = _GSM_PATTERN, group_select: int = 0, fallback: str = "[invalid]",
                       ignore_case: bool = False, ignore_punctuation: bool = False,
                       regexes_to_ignore: Sequence[str] | None = None) -> Step:
    """The pattern first; else a choice's own text found in the response -> "(A)".."; else
    ": X" with X a choice letter -> "(X)"; else the fallback. Needs doc["choices"]."""
    rx = re.compile(regex_pattern)

    def clean(s: str) -> str:
        for pat in regexes_to_ignore or ():
            s = re.sub(pat, "", s)
        if ignore_case:
            s = s.lower()
        if ignore_punctuation:
            s = s.translate(_unicode_punct_table())
        return s

    def find(pattern, text, convert: Mapping | None = None):
        found = pattern.findall(text if isinstance(text, str) else "")
        if not found:
            return found          # an empty list: falsy, as "no match"
        hit = _pick(found, group_select)
        if hit is None:
            return ""
        hit = hit.strip()
        return convert.get(hit, hit) if (convert and hit) else hit

    def per_doc(inst, doc):
        letters = [chr(ord("A") + i) for i in range(len(doc["choices"]))]
        texts = [clean(str(c).strip()) for c in doc["choices"]]
        to_letter = {t: f"({a})" for t, a in zip(texts, letters)}   # a repeated text keeps its last letter
        # longest first: a choice that is a prefix of another must not shadow it
        by_text = re.compile("|".join(sorted((re.escape(t) for t in texts), key=len, reverse=True)))
        by_letter = re.compile(r":[\s]*(" + "|".join(letters) + ")")
        out = []
        for resp in inst:
            m = find(rx, resp)
            if not m:
                m = find(by_text, clean(resp) if isinstance(resp, str) else "", to_letter)
                if not m:
                    m = find(by_letter, resp, {a: f"({a})" for a in letters})
            out.append(m if m else fallback)
        return out

    return lambda resps, docs: [per_doc(inst, doc) for inst, doc in zip(resps, docs, strict=True)]


# --------------------------------------------------------------------------- selection
def take_first() -> Step:
    return lambda resps, docs: [inst[0] for inst in resps]


def take_first_k(k: int) -> Step:
    def run(resps, docs):
        resps = list(resps)
        if resps and len(resps[0]) < k:
            raise TemplateError(f"take_first_k needs {k} responses per doc, got {len(resps[0])}",
                                "raise the task's `repeats` to at least k")
        return [inst[:k] for inst in resps]
    return run


def majority_vote() -> Step:
    # Counter.most_common keeps first-seen order among ties: the earliest repeat wins a tie.
    return lambda resps, docs: [[Counter(inst).most_common(1)[0][0]] for inst in resps]


# ---------------------------------------------------------------------- transformation
def lowercase() -> Step:
    return lambda resps, docs: [[r.lower() for r in inst] for inst in resps]


def uppercase() -> Step:
    return lambda resps, docs: [[r.upper() for r in inst] for inst in resps]


def map_(mapping_dict: Mapping | None = None, default_value: Any = None) -> Step:
    table = dict(mapping_dict or {})
    return lambda resps, docs: [[table.get(r, default_value) for r in inst] for inst in resps]


_NER_LABELS = {"person": "PER", "location": "LOC", "organization": "ORG", "counties": "LOC", "places": "LOC",
               "people": "PER", "persons": "PER", "company": "ORG", "country": "LOC", "continent": "LOC",
               "time": "DATE", "date": "DATE", "per": "PER", "loc": "LOC", "org": "ORG"}


def format_span() -> Step:
    """lm-eval's NER span formatter: labels normalised to PER/LOC/ORG/DATE, then
    'label: entity $ label: entity' without 'none' entities."""
    def labels(text: str) -> str:
        text = text.lower()
        for key, tag in _NER_LABELS.items():
            text = re.sub(rf"\b{re.escape(key)}\s*:", f"{tag}:", text)
        text = "$".join(text.split("$$"))
        return text.rstrip("$$")

    def entities(text: str) -> str:
        text = text.replace("\n", "$").strip()
        out = []
        for label, values in re.findall(r"\b(PER|LOC|ORG|DATE):\s*([^$]+)", text):
            out += [f"{label.lower()}: {v.strip()}" for v in values.split(",") if v.strip().lower() != "none"]
        return " $ ".join(out)

    return lambda resps, docs: [[entities(labels(r.lower())) for r in inst] for inst in resps]


SHIPPED: dict[str, Callable[..., Step]] = {
    "regex": regex, "regex_pos": regex_pos, "remove_whitespace": remove_whitespace,
    "multi_choice_regex": multi_choice_regex, "take_first": take_first, "take_first_k": take_first_k,
    "majority_vote": majority_vote, "lowercase": lowercase, "uppercase": uppercase, "map": map_,
    "format_span": format_span,
}
TASK_CODE_FILTERS = ("custom",)          # need a trusted filter_fn
REFUSED = {"decontaminate": "lm-eval's decontaminate filter is not implemented in lm-eval itself"}


# ---------------------------------------------------------------------------- pipelines
@dataclass
class Pipeline:
    name: str
    steps: list[Step] = field(default_factory=list)
    spec: list = field(default_factory=list)     # [(function name, kwargs)] as written, for provenance

    def apply(self, resps: Sequence[Sequence], docs: Sequence[Mapping]) -> list:
        out: Any = [list(r) for r in resps]
        for step in self.steps:
            out = list(step(out, list(docs)))
        return out


def default_pipelines() -> list[Pipeline]:
    return [Pipeline("none", [take_first()], [("take_first", {})])]


def _wrap_task_filter(fn: Callable, kwargs: dict, where: str) -> Step:
    """A task's own filter: a Filter subclass (instantiated with the kwargs, then .apply) or a
    function (resps, docs) -> resps (lm-eval's custom filter_fn)."""
    if isinstance(fn, type):
        try:
            inst = fn(**kwargs)
        except Exception as e:  # noqa: BLE001 - task code
            raise TemplateError(f"{where}: the task's filter {fn.__name__} failed to start: {e}",
                                "check its arguments in filter_list") from e
        return lambda resps, docs: list(inst.apply(resps, docs))
    return lambda resps, docs: list(fn(resps, docs))


def filter_problem(function: Any, trusted: bool) -> str | None:
    """Why a filter step cannot run (None: it can), for refusals before any data loads."""
    if callable(function):
        return None if trusted else "a task-defined filter (task code)"
    if function in SHIPPED:
        return None
    if function in TASK_CODE_FILTERS:
        return None if trusted else "the custom filter runs task code (filter_fn)"
    if function in REFUSED:
        return REFUSED[function]
    return f"unknown filter {function!r} (lm-eval's registry has {', '.join(sorted(SHIPPED))}, custom)"


def build_pipelines(filter_list: Sequence[Mapping] | None, *, where: str = "task") -> list[Pipeline]:
    """Pipelines from a task's filter_list (None: lm-eval's default "none" = take_first).
    Task code (custom filter_fn, filter classes) must already be resolved to callables."""
    if filter_list is None:
        return default_pipelines()
    out = []
    for i, cfg in enumerate(filter_list):
        if not isinstance(cfg, Mapping) or "name" not in cfg:
            raise TemplateError(f"{where}: filter_list entry {i} has no name", "give each pipeline a `name:`")
        steps, spec = [], []
        for step in cfg.get("filter") or []:
            fn = step.get("function") if isinstance(step, Mapping) else None
            kwargs = {k: v for k, v in step.items() if k != "function"} if isinstance(step, Mapping) else {}
            why = filter_problem(fn, trusted=True)
            if why:
                raise TemplateError(f"{where}: filter pipeline {cfg['name']!r}: {why}", "use lm-eval's shipped filters")
            if callable(fn):
                steps.append(_wrap_task_filter(fn, kwargs, where))
            elif fn == "custom":
                ffn = kwargs.get("filter_fn")
                if not callable(ffn):
                    raise TemplateError(f"{where}: the custom filter needs filter_fn: !function module.name",
                                        "name the function in the task YAML")
                steps.append(_wrap_task_filter(ffn, {}, where))
            else:
                try:
                    steps.append(SHIPPED[fn](**kwargs))
                except TypeError as e:
                    raise TemplateError(f"{where}: filter {fn!r} in pipeline {cfg['name']!r}: {e}",
                                        "check the filter's arguments") from e
            spec.append((fn if isinstance(fn, str) else getattr(fn, "__name__", "task filter"),
                         {k: v for k, v in kwargs.items() if not callable(v)}))
        out.append(Pipeline(str(cfg["name"]), steps, spec))
    return out
