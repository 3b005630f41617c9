"""Prompt-format sensitivity: how much accuracy moves under meaning-preserving rewrites.

    variants = format_variants(template, n_variants=8, seed=0, columns=ds.df.columns, labels=ds.labels)
    res = format_spread(template, ds, get_session("default"), EvalConfig(limit=200))
    res.accuracy["spread"], res.accuracy["std"]     # max - min and std over original + variants
    print(res.summary())

Sclar et al. 2023 ("Quantifying Language Models' Sensitivity to Spurious Features in Prompt
Design", ICLR 2024; their tool is FormatSpread) showed that formats which mean the same to a
person ("Passage: x" vs "PASSAGE:: x", a newline vs a space between fields) can move few-shot
accuracy by tens of points. Their recipe: describe a format by a small grammar (the field
descriptor and its casing, the separator after it, the spacing between fields), sample
formats from it, score each on the same examples, and report the spread. We follow it for
our templates, with one more axis the workbench has: which verbalizer word names each class.

The variations, applied only to the literal text of `input` / `demo_format` (never inside
Jinja tags, so a variant reads the same columns):
  descriptor casing     "Headline:" -> "HEADLINE:" / "headline:"
  descriptor synonyms   "Headline:" -> "Title:", "Topic:" -> "Category:" (a small fixed table)
  separator             "Headline:" -> "Headline -" / "Headline ::" / "Headline =" ...
  spacing after it      "Headline: x" -> "Headline:  x" / "Headline:\\tx" / "Headline:\\nx"
  field joiner          the newline between fields -> " " / "\\n\\n" / " || " / "; "
  verbalizer synonym    with several words per label (business: [business, economy, ...]),
                        score one word per label instead of all of them
Every variant is validated (`PromptTemplate.validate` with the data's columns and labels) and
rendered on a sample row; variants that render the same as the original or as each other are
dropped, so the spread is over genuinely different prompts.
"""
from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace

from workbench.errors import ConfigError, TemplateError

SCHEMA_VERSION = 1

# Jinja spans are left untouched: changing them would change what a variant reads.
_JINJA = re.compile(r"{{.*?}}|{%.*?%}|{#.*?#}", re.DOTALL)
# A field descriptor: at a line start, 1-4 words of letters, then optional blanks and ':'.
_DESCRIPTOR = re.compile(r"(?m)^([ \t]*)([A-Za-z][A-Za-z']*(?: [A-Za-z][A-Za-z']*){0,3})([ \t]*):([ \t]*)")

SEPARATORS = [":", " -", " ::", " =", " |", " >"]
SPACINGS = [" ", "  ", "\t", "\n"]
JOINERS = ["\n", " ", "\n\n", " || ", "; "]
CASINGS = ["keep", "upper", "lower", "title"]
# Field-label synonyms people actually use for the same field; keys are lower case.
SYNONYMS: dict[str, list[str]] = {
    "headline": ["title"], "title": ["headline"],
    "topic": ["category", "subject"], "category": ["topic", "class"], "subject": ["topic"],
    "section": ["category"], "label": ["category"], "class": ["category"],
    "text": ["passage", "input"], "passage": ["text"], "input": ["text"],
    "article": ["story", "news"], "story": ["article"], "news": ["article"],
    "question": ["query"], "query": ["question"], "answer": ["response"], "response": ["answer"],
    "sentence": ["text"], "review": ["comment"], "comment": ["review"],
    "utterance": ["request"], "request": ["utterance"], "intent": ["goal"],
    "context": ["background"], "summary": ["synopsis"], "sentiment": ["feeling"],
}


# ---------------------------------------------------------------------------- text edits
def _outside_jinja(text: str, pattern: re.Pattern, repl: Callable[[re.Match], str]) -> str:
    """re.sub restricted to matches that do not overlap a Jinja tag."""
    spans = [m.span() for m in _JINJA.finditer(text)]
    out, last = [], 0
    for m in pattern.finditer(text):
        s, e = m.span()
        if any(s < je and e > js for js, je in spans) or (s == e):
            continue
        out.append(text[last:s])
        out.append(repl(m))
        last = e
    out.append(text[last:])
    return "".join(out)


def _case(word: str, how: str) -> str:
    if how == "upper":
        return word.upper()
    if how == "lower":
        return word.lower()
    if how == "title":
        return word.title()
    return word


def _match_case(new: str, like: str) -> str:
    """Give a synonym the casing of the word it replaces (Headline -> Title, TOPIC -> CATEGORY)."""
    if like.isupper() and len(like) > 1:
        return new.upper()
    if like[:1].isupper():
        return new[:1].upper() + new[1:]
    return new.lower()


@dataclass(frozen=True)
class FormatChoice:
    """One point of the format grammar; the all-default point is the original template."""

    casing: str = "keep"
    synonym: bool = False
    separator: str | None = None       # None = keep the original ":"
    spacing: str | None = None         # None = keep what follows the separator
    joiner: str | None = None          # None = keep the newlines between fields
    verbalizer: int | None = None      # None = all words; j = the j-th word of each label

    def describe(self) -> str:
        parts = []
        if self.casing != "keep":
            parts.append(f"{self.casing}case labels")
        if self.synonym:
            parts.append("synonym labels")
        if self.separator is not None:
            parts.append(f"separator {self.separator.strip()!r}")
        if self.spacing is not None:
            parts.append(f"spacing {self.spacing!r}")
        if self.joiner is not None:
            parts.append(f"joiner {self.joiner!r}")
        if self.verbalizer is not None:
            parts.append(f"verbalizer word #{self.verbalizer + 1}")
        return ", ".join(parts) or "original"


def _edit_text(text: str, ch: FormatChoice) -> str:
    if not text:
        return text

    def descriptor(m: re.Match) -> str:
        lead, words, blank, after = m.groups()
        if ch.synonym:
            key = words.lower()
            if key in SYNONYMS:
                words = _match_case(SYNONYMS[key][0], words)
        words = _case(words, ch.casing)
        sep = blank + ":" if ch.separator is None else ch.separator
        # Spacing only where text follows on the same line; "Topic:" at the end of the input
        # is followed by the target delimiter, which a variant must not double.
        end = m.end()
        follows = end < len(text) and text[end] not in "\n"
        space = after if (ch.spacing is None or not follows or not after) else ch.spacing
        # A newline put here by `spacing` is not a field boundary: hide it from the joiner.
        return lead + words + sep + space.replace("\n", "\0")

    text = _outside_jinja(text, _DESCRIPTOR, descriptor)
    if ch.joiner is not None:
        text = _outside_jinja(text, re.compile(r"[ \t]*\n[ \t]*"), lambda m: ch.joiner)
    return text.replace("\0", "\n")


def _effective(template, ch: FormatChoice) -> FormatChoice:
    """`ch` without the axes that change nothing on this template (title-casing a label that
    is already title case, spacing after a label that ends the input), so a variant's
    description lists only what really differs."""
    base = _signature(template)
    keep = {}
    for f in fields(FormatChoice):
        v = getattr(ch, f.name)
        if v == getattr(FormatChoice(), f.name):
            continue
        if _signature(_apply(template, FormatChoice(**{f.name: v}))) != base:
            keep[f.name] = v
    # An axis may only matter together with another (e.g. casing of a synonym): keep the
    # full choice's effect, and describe at least the axes that work alone.
    return FormatChoice(**keep) if _signature(_apply(template, FormatChoice(**keep))) == _signature(
        _apply(template, ch)) else ch


def _apply(template, ch: FormatChoice):
    kw = {"input": _edit_text(template.input, ch)}
    if template.demo_format:
        kw["demo_format"] = _edit_text(template.demo_format, ch)
    if ch.verbalizer is not None and template.answer_choices:
        kw["answer_choices"] = {lab: [words[min(ch.verbalizer, len(words) - 1)]]
                                for lab, words in template.answer_choices.items()}
    return replace(template, **kw)


def apply_format(template, ch: FormatChoice, name: str | None = None):
    """The template rewritten at grammar point `ch` (the original's fields otherwise)."""
    ch = _effective(template, ch)
    meta = dict(template.metadata or {})
    meta["format_variant_of"] = template.name
    meta["format_variant"] = ch.describe()
    return replace(_apply(template, ch), name=name or f"{template.name}~{ch.describe()}", metadata=meta)


def _axes(template) -> dict[str, list]:
    """The options each grammar axis offers for this template (first = original)."""
    sources = [template.input] + ([template.demo_format] if template.demo_format else [])
    has_desc = any(_outside_jinja(s, _DESCRIPTOR, lambda m: "\0") != s for s in sources)
    has_syn = any(_outside_jinja(s, _DESCRIPTOR, lambda m: "\0" if m.group(2).lower() in SYNONYMS else m.group(0)) != s
                  for s in sources)
    has_nl = any(_outside_jinja(s, re.compile(r"\n"), lambda m: "\0") != s for s in sources)
    most_words = max((len(w) for w in template.answer_choices.values()), default=1)
    return {
        "casing": CASINGS if has_desc else ["keep"],
        "synonym": [False, True] if has_syn else [False],
        "separator": [None] + SEPARATORS[1:] if has_desc else [None],
        "spacing": [None] + SPACINGS[1:] if has_desc else [None],
        "joiner": [None] + JOINERS[1:] if has_nl else [None],
        "verbalizer": [None] + list(range(most_words)) if most_words > 1 else [None],
    }


def _signature(t) -> tuple:
    """What decides the prompts and scores of a variant (names and metadata aside)."""
    return (t.input, t.demo_format, tuple((k, tuple(v)) for k, v in t.answer_choices.items()))


def format_variants(template, n_variants: int = 8, seed: int = 0, *, columns: Sequence[str] | None = None,
                    labels: Sequence[str] | None = None, sample_row: Mapping | None = None,
                    generation: bool = False) -> list:
    """Up to `n_variants` distinct, valid, meaning-preserving variants of `template`.

    Grammar points are drawn at random (seeded) with each axis changed with probability 1/2,
    as FormatSpread samples formats; a draw that is invalid, renders like the original or
    repeats an earlier variant is skipped. Fewer variants come back when the template offers
    fewer (e.g. an input with no field labels and no newlines)."""
    # prompt search also varies generation templates' formats (`generation=True`); the spread job
    # reports accuracy over classes, so it keeps to classification
    if template.task != "classification" and not (generation and template.task == "generation"):
        raise ConfigError(f"format spread scores classification templates; {template.name!r} is {template.task}",
                          "use a classification template")
    if n_variants < 1:
        raise ConfigError(f"n_variants must be >= 1, got {n_variants}", "e.g. 8")
    axes = _axes(template)
    if all(len(v) == 1 for v in axes.values()):
        raise TemplateError(f"template {template.name!r} has no format to vary: no 'Label:' fields, no newlines "
                            "outside Jinja tags and one verbalizer per label",
                            "add a field label such as 'Text:' or several verbalizers per label")
    rng = random.Random(seed)
    seen = {_signature(template)}
    out = []
    for _ in range(60 * n_variants):
        if len(out) >= n_variants:
            break
        pick = {k: (rng.choice(opts[1:]) if len(opts) > 1 and rng.random() < 0.5 else opts[0]) for k, opts in axes.items()}
        ch = FormatChoice(**pick)
        if ch == FormatChoice():
            continue
        var = apply_format(template, ch, name=f"{template.name}~v{len(out) + 1}")
        sig = _signature(var)
        if sig in seen:
            continue
        if any(p.severity == "error" for p in var.validate(columns=columns, labels=labels, sample_row=sample_row)):
            continue
        if sample_row is not None and var.render_input(sample_row) == template.render_input(sample_row) \
                and var.answer_choices == template.answer_choices:
            continue
        seen.add(sig)
        out.append(var)
    return out


# ---------------------------------------------------------------------------- spread run
@dataclass
class SpreadResult:
    """Scores of a template and its format variants on identical examples."""

    template: dict = field(metadata={"help": "The original: name, hash, yaml."})
    n: int = field(metadata={"help": "Examples each variant was scored on (the same rows)."})
    variants: list[dict] = field(metadata={"help": "Original first: name, change, yaml, hash, accuracy, CI, macro_f1, eval_run_id, reused."})
    accuracy: dict = field(metadata={"help": "mean, std (ddof=1), min, max, spread (max - min) over all formats."})
    macro_f1: dict = field(metadata={"help": "Same for macro-F1."})
    best_vs_worst: dict = field(metadata={"help": "Exact McNemar between the best and worst format: is the spread beyond noise?"})
    seed: int = field(default=0, metadata={"help": "Seed of the variant draw."})
    provenance: dict = field(default_factory=dict)
    run_id: str | None = None
    winner: str | None = None
    type: str = "format_spread"
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SpreadResult:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def summary(self) -> str:
        a = self.accuracy
        bw = self.best_vs_worst
        lines = [(f"{self.template['name']}: {len(self.variants)} formats (original + {len(self.variants) - 1} "
                  f"variants) on the same {self.n} examples"),
                 (f"accuracy spread {a['spread'] * 100:.1f} pts (min {a['min'] * 100:.1f}, max {a['max'] * 100:.1f}, "
                  f"mean {a['mean'] * 100:.1f} ± {a['std'] * 100:.1f})")]
        if bw:
            lines.append(f"best vs worst: {bw['text']}")
        for v in sorted(self.variants, key=lambda v: -v["accuracy"]):
            lines.append(f"  {v['accuracy'] * 100:5.1f}  {v['name']}  ({v['change']})")
        return "\n".join(lines)
