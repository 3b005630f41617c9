"""Judge templates: a rubric in Jinja, its verdict words, and how their log-probs become scores.

    j = load_judge("templates_library/judges/helpfulness_yesno.yaml")
    ctx = j.render(input="Where is my order?", output="It ships today.")      # what the judge model reads
    reqs = j.requests(ctx)                         # [(ctx, " yes"), (ctx, " no")]: one context per row
    s = j.pointwise_score([ll.logprob for ll in session.loglikelihood(reqs)])
    s["score"], s["dist"]                          # expected score, {value: probability}

A judge reads the probabilities of its verdict words after the rubric, as the workbench reads a
verbalizer after a classification prompt: no sampling, one forward pass per row (the verdict
words are continuations of one shared context, so the prefix tree reads the rubric once).

Two modes:
  pointwise  `scores` maps each verdict word to a value (yes: 1, no: 0; or "1".."5" -> 1..5). Several
             words may share a value (yes / Yes); a value's probability is the sum of its words'.
             The score of a row is the expected value under the words' renormalised probabilities.
  pairwise   `choices` are the two words meaning "the first shown is better" and "the second is
             better". Each pair is asked in both orders; the preference for X over Y is the mean of
             P(first | X first) and P(second | Y first), so a constant pull towards one position
             cancels, and its size is reported as the position bias (core/judge_checks.py).

Calibration (`calibration: contextual`) divides the verdict probabilities by those the judge gives
to a content-free output ("N/A") for the same input, as contextual calibration does for
classification (Zhao et al. 2021).

Pure: rendering goes through the one budgeted sandbox (core/render.py); no model, no I/O but reading
a YAML file in `load_judge`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from workbench.errors import TemplateError

MODES = ("pointwise", "pairwise")
CALIBRATIONS = ("none", "contextual")
CONTENT_FREE = "N/A"
# Names the rubric sees besides the row's columns.
POINTWISE_VARS = ("input", "output", "reference")
PAIRWISE_VARS = ("input", "output_a", "output_b", "reference")


@dataclass
class JudgeTemplate:
    name: str = field(metadata={"help": "Unique name of the judge."})
    rubric: str = field(metadata={"help": "Jinja for the judge's prompt. Variables: input, output (pointwise) or "
                                          "output_a/output_b (pairwise), reference, and the row's columns."})
    mode: str = field(default="pointwise", metadata={"help": "'pointwise' (a score per output) or 'pairwise' "
                                                             "(which of two outputs is better, asked in both orders)."})
    scores: dict[str, float] = field(default_factory=dict, metadata={
        "help": "Pointwise: verdict word -> value, e.g. {yes: 1, no: 0} or {'1': 1, ..., '5': 5}."})
    choices: list[str] = field(default_factory=list, metadata={
        "help": "Pairwise: the words for 'the first is better' and 'the second is better', e.g. [A, B]."})
    delimiter: str = field(default=" ", metadata={"help": "Placed between the rubric and the verdict word."})
    chat: bool = field(default=False, metadata={"help": "Wrap the rubric in the judge model's chat template."})
    calibration: str = field(default="none", metadata={
        "help": "'contextual': divide the verdict probabilities by those for a content-free output ('N/A')."})
    description: str = field(default="", metadata={"help": "Free text for people; not part of the hash."})

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_dict(cls, d: Mapping) -> "JudgeTemplate":
        if not isinstance(d, Mapping):
            raise TemplateError(f"a judge must be a YAML mapping, got {type(d).__name__}",
                                "start the file with `name:`, `mode:` and `rubric:`")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(k) for k in d if k not in known)
        if unknown:
            raise TemplateError(f"judge {d.get('name', '?')!r}: unknown field(s) {', '.join(unknown)}",
                                f"known fields: {', '.join(sorted(known))}")
        for req in ("name", "rubric"):
            if not d.get(req):
                raise TemplateError(f"judge {d.get('name', '?')!r}: missing required field '{req}'",
                                    "a judge needs `name` and `rubric` (Jinja over input and output)")
        kw = dict(d)
        kw["name"], kw["rubric"] = str(kw["name"]), str(kw["rubric"])
        sc = kw.get("scores") or {}
        if not isinstance(sc, Mapping):
            raise TemplateError(f"judge {kw['name']!r}: `scores` must map verdict words to numbers",
                                "e.g. scores: {yes: 1, no: 0}")
        try:
            kw["scores"] = {str(k): float(v) for k, v in sc.items()}
        except (TypeError, ValueError) as e:
            raise TemplateError(f"judge {kw['name']!r}: every value in `scores` must be a number ({e})",
                                "e.g. scores: {yes: 1, no: 0}") from e
        ch = kw.get("choices") or []
        if isinstance(ch, str) or not isinstance(ch, Sequence):
            raise TemplateError(f"judge {kw['name']!r}: `choices` must be a list of two words", "e.g. choices: [A, B]")
        kw["choices"] = [str(c) for c in ch]
        for s in ("mode", "delimiter", "calibration", "description"):
            if s in kw and kw[s] is not None:
                kw[s] = str(kw[s])
            elif s in kw:
                kw.pop(s)
        kw["chat"] = bool(kw.get("chat", False))
        j = cls(**kw)
        problems = j.validate()
        if problems:
            raise TemplateError(f"judge {j.name!r}: " + "; ".join(problems),
                                "see docs/JUDGE.md for the judge format")
        return j

    def validate(self, columns: Sequence[str] | None = None) -> list[str]:
        """Problems as sentences; [] when the judge is usable (on data with `columns`)."""
        out = []
        if self.mode not in MODES:
            out.append(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.calibration not in CALIBRATIONS:
            out.append(f"calibration must be one of {', '.join(CALIBRATIONS)}, not {self.calibration!r}")
        if self.mode == "pointwise":
            if len(self.scores) < 2:
                out.append("a pointwise judge needs at least two verdict words in `scores` (e.g. {yes: 1, no: 0})")
            elif len(set(self.scores.values())) < 2:
                out.append("the verdict words in `scores` all have the same value, so every score would be equal")
        if self.mode == "pairwise":
            if len(self.choices) != 2 or self.choices[0] == self.choices[1]:
                out.append("a pairwise judge needs `choices`: two different words, first-is-better then "
                           "second-is-better (e.g. [A, B])")
            if self.calibration != "none":
                out.append("calibration applies to pointwise judges; pairwise judges cancel position bias instead")
        if any(not w.strip() for w in self.words()):
            out.append("a verdict word is empty or only whitespace")
        try:
            from workbench.core.render import sandbox
            from workbench.core.templates import undeclared_names

            used = undeclared_names(sandbox().parse(self.rubric)) - set(sandbox().globals)
        except Exception as e:  # noqa: BLE001 - a syntax error is a problem to report, not a crash
            out.append(f"the rubric does not parse: {e}")
            return out
        need = ("output",) if self.mode == "pointwise" else ("output_a", "output_b")
        for v in need:
            if v not in used:
                out.append(f"the rubric never shows `{{{{ {v} }}}}`, so the judge cannot see what it judges")
        allowed = set(POINTWISE_VARS if self.mode == "pointwise" else PAIRWISE_VARS) | {"row"}
        if columns is not None:
            extra = sorted(used - allowed - set(map(str, columns)))
            if extra:
                out.append(f"the rubric uses {', '.join(extra)}, which is neither a judge variable "
                           f"({', '.join(sorted(allowed - {'row'}))}) nor a column of the data")
        return out

    def words(self) -> list[str]:
        return list(self.scores) if self.mode == "pointwise" else list(self.choices)

    # ------------------------------------------------------------------ identity
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        defaults = {f.name: (f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
                    for f in dataclasses.fields(self) if f.name not in ("name", "rubric")}
        return {k: v for k, v in d.items() if k in ("name", "rubric") or v != defaults.get(k)}

    def to_yaml(self) -> str:
        from workbench.core.templates import dump_yaml

        return dump_yaml(self.to_dict())

    def content_hash(self) -> str:
        """sha256 of what decides the judge's scores (name and description left out)."""
        d = self.to_dict()
        d.pop("name", None)
        d.pop("description", None)
        return hashlib.sha256(json.dumps(d, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    # ------------------------------------------------------------------ prompts
    def render(self, *, row: Mapping | None = None, **variables: Any) -> str:
        """The judge's prompt for one row (chat not applied: the judge job does that)."""
        from workbench.core.templates import render_string, with_row

        vs = with_row(dict(row or {}))
        vs.update({k: ("" if v is None else v) for k, v in variables.items()})
        vs.setdefault("reference", "")
        vs.setdefault("input", "")
        try:
            # a YAML `|` block ends the rubric with a newline; the verdict word follows the last line
            return render_string(self.rubric, vs).rstrip("\n")
        except TemplateError as e:
            raise TemplateError(f"judge {self.name!r}: {e.message}", e.hint) from e

    def requests(self, context: str) -> list[tuple[str, str]]:
        """(context, delimiter + word) for every verdict word, in `words()` order."""
        return [(context, self.delimiter + w) for w in self.words()]

    # ------------------------------------------------------------------ reading the verdict
    def value_dist(self, logprobs: Sequence[float], cf_logprobs: Sequence[float] | None = None) -> dict[float, float]:
        """{value: probability} over the verdict words' renormalised probabilities (calibrated
        by the content-free ones when given)."""
        words = self.words()
        p = _softmax(list(logprobs))
        if cf_logprobs is not None:
            q = _softmax(list(cf_logprobs))
            p = [pi / max(qi, 1e-12) for pi, qi in zip(p, q)]
            s = sum(p)
            p = [pi / s for pi in p]
        out: dict[float, float] = {}
        for w, pi in zip(words, p):
            v = self.scores[w] if self.mode == "pointwise" else float(words.index(w))
            out[v] = out.get(v, 0.0) + pi
        return out

    def pointwise_score(self, logprobs: Sequence[float], cf_logprobs: Sequence[float] | None = None) -> dict:
        """{"score": expected value, "dist": {value: p}, "verdict": the most likely value}."""
        dist = self.value_dist(logprobs, cf_logprobs)
        score = sum(v * p for v, p in dist.items())
        verdict = max(dist.items(), key=lambda kv: (kv[1], -kv[0]))[0]
        # string keys: the distribution is stored as JSON (results.json, the registry) and must read back equal
        return {"score": score, "dist": {str(_num(v)): p for v, p in sorted(dist.items())}, "verdict": _num(verdict)}

    def p_first(self, logprobs: Sequence[float]) -> float:
        """Pairwise: P(the output shown first is better), over the two choice words."""
        return _softmax(list(logprobs))[0]

    @property
    def score_range(self) -> tuple[float, float]:
        vals = list(self.scores.values()) or [0.0, 1.0]
        return min(vals), max(vals)


def pair_preference(p_first_xy: float, p_first_yx: float) -> dict:
    """Combine the two orders of one pair. `p_first_xy`: P(first better) with X shown first;
    `p_first_yx`: the same with Y shown first. Returns P(X better) per order, their mean (the
    position-debiased preference) and the pull towards the first position in this pair."""
    x_if_first = p_first_xy
    x_if_second = 1.0 - p_first_yx
    return {"p_x_first": x_if_first, "p_x_second": x_if_second, "pref_x": (x_if_first + x_if_second) / 2,
            "first_pull": (p_first_xy + p_first_yx) / 2 - 0.5,
            "consistent": (x_if_first > 0.5) == (x_if_second > 0.5)}


def load_judge(path_or_text: str | Path) -> JudgeTemplate:
    """A judge from a YAML file or YAML text."""
    from workbench.core.templates import yaml_load

    text, origin = str(path_or_text), "judge"
    p = Path(text) if "\n" not in text and len(text) < 1024 else None
    if p is not None and p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise TemplateError(f"judge file not found: {p}",
                                "give a judge YAML path, e.g. templates_library/judges/helpfulness_yesno.yaml")
        text, origin = p.read_text(encoding="utf-8"), f"judge {p.name}"
    return JudgeTemplate.from_dict(yaml_load(text, origin))


def library_judges(root: str | Path | None = None) -> list[Path]:
    """The rubric templates shipped under templates_library/judges/."""
    base = Path(root) if root else Path(__file__).resolve().parents[2] / "templates_library" / "judges"
    return sorted(base.glob("*.yaml")) if base.is_dir() else []


def _softmax(xs: list[float]) -> list[float]:
    m = max(xs)
    e = [math.exp(x - m) for x in xs]
    s = sum(e)
    return [v / s for v in e]


def _num(v: float):
    return int(v) if float(v).is_integer() else v
