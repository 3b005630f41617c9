"""The prompt-search space: candidates (a template plus the eval settings that decide its
scores), how each axis rewrites the incumbent, and the diff a person reads.

    cands = instruction_candidates(best, INSTRUCTIONS)
    c = Candidate.of(template, config, stage="instruction", change="instruction #2")
    c.key                 # stable id: template content hash + prediction settings
    template_diff(start.to_yaml(), c.template.to_yaml())

Axes (each can be switched off): verbalizer, format, instruction, demos, calibration. The
search itself (workbench.jobs.search) races the candidates of one axis at a time on dev and
keeps the winner as the incumbent for the next axis. Pure: no model.
"""
from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from workbench.errors import ConfigError

AXES = ("verbalizer", "format", "instruction", "demos", "calibration")

# Task-agnostic instructions; `{choices}` becomes the verbalizer words ("a, b or c"). Written
# for this project (APE-style proposals from the model are added by the search when asked).
INSTRUCTIONS = [
    "Classify the text into one of these categories: {choices}.",
    "Read the text and answer with the category that fits it best: {choices}.",
    "Which of the following describes the text: {choices}? Answer with one word.",
    "Assign each example one label from this list: {choices}.",
    "Decide what the text is about. Possible answers: {choices}.",
]

# Instructions for generation templates (no classes to list): task-agnostic ways of asking for a
# short, faithful answer. Written for this project.
GENERATION_INSTRUCTIONS = [
    "Answer briefly and precisely.",
    "Read the input carefully and write the answer in one short sentence.",
    "You are a helpful assistant. Reply to the input below clearly and concisely.",
    "Write only the answer, with no explanation.",
]

# The EvalConfig fields that decide a candidate's predictions (the rest are speed or rows).
PREDICTION_FIELDS = ("shots", "per_class", "balanced", "sampling", "seed", "method", "calibration", "content_free")


def choices_phrase(answer_choices: Mapping[str, Sequence[str]]) -> str:
    """'business, sport or tech' from each class's first verbalizer word."""
    words = [str(ws[0]) for ws in answer_choices.values() if ws]
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " or " + words[-1]


def fill_instruction(text: str, answer_choices: Mapping[str, Sequence[str]]) -> str:
    """An instruction with {choices} filled in, safe to put into a Jinja field."""
    out = text.replace("{choices}", choices_phrase(answer_choices))
    # Literal braces would open a Jinja tag: keep them as text.
    return out.replace("{{", "{{ '{{' }}").replace("{%", "{{ '{%' }}")


def prediction_settings(config) -> dict:
    d = {k: getattr(config, k) for k in PREDICTION_FIELDS}
    d["content_free"] = list(d["content_free"])
    return d


@dataclass
class Candidate:
    """One point of the search space: a full template and the settings it is scored with."""

    template: object                      # PromptTemplate
    config: object                        # EvalConfig (split/limit are set by the search)
    stage: str = "start"                  # the axis that produced it
    change: str = "start"                 # what differs from the incumbent it came from
    changes: dict = field(default_factory=dict)   # axis -> description, accumulated from the start

    @property
    def key(self) -> str:
        blob = json.dumps([self.template.content_hash(), prediction_settings(self.config)], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def derive(self, stage: str, change: str, template=None, **config_changes) -> Candidate:
        cfg = replace(self.config, **config_changes) if config_changes else self.config
        return Candidate(template=template if template is not None else self.template, config=cfg, stage=stage,
                         change=change, changes={**self.changes, stage: change})

    def describe(self) -> str:
        return "; ".join(f"{k}: {v}" for k, v in self.changes.items()) or "start"


# ---------------------------------------------------------------------------- axes
def verbalizer_candidates(best: Candidate, verbalizers: Sequence[Mapping[str, Sequence[str]]],
                          origin: Sequence[str] | None = None) -> list[Candidate]:
    """The incumbent with each verbalizer in turn (labels must match the incumbent's)."""
    out = []
    labels = set(best.template.answer_choices)
    for i, v in enumerate(verbalizers):
        if set(v) != labels:
            raise ConfigError(f"verbalizer {dict(v)} does not cover the labels {sorted(labels)}",
                              "give one word list per label")
        ac = {lab: [str(w) for w in v[lab]] for lab in best.template.answer_choices}
        if ac == best.template.answer_choices:
            continue
        desc = ", ".join(f"{lab}→{'/'.join(ws)}" for lab, ws in ac.items())
        if origin:
            desc = f"{origin[i]}: {desc}"
        out.append(best.derive("verbalizer", desc, template=replace(best.template, answer_choices=ac)))
    return out


def format_candidates(best: Candidate, variants: Sequence) -> list[Candidate]:
    """The incumbent in each FormatSpread variant (from core.formats.format_variants). The
    verbalizer-synonym axis of that grammar is the verbalizer stage's job, so variants that
    only change answer_choices are dropped."""
    out = []
    for v in variants:
        t = replace(v, name=best.template.name, answer_choices=best.template.answer_choices,
                    metadata=dict(best.template.metadata or {}))
        if t.content_hash() == best.template.content_hash():
            continue
        out.append(best.derive("format", (v.metadata or {}).get("format_variant", v.name), template=t))
    return out


def instruction_candidates(best: Candidate, instructions: Sequence[str], origin: str = "library") -> list[Candidate]:
    out = []
    for i, text in enumerate(instructions):
        filled = fill_instruction(text, best.template.answer_choices)
        if filled == best.template.instruction:
            continue
        out.append(best.derive("instruction", f"{origin} #{i + 1}: {filled}",
                               template=replace(best.template, instruction=filled)))
    if best.template.instruction:
        out.append(best.derive("instruction", "no instruction", template=replace(best.template, instruction="")))
    return out


def demo_candidates(best: Candidate, shots: Sequence[int], seeds: Sequence[int], selections: Sequence[str]) -> list[Candidate]:
    """k demonstrations, drawn at random (one fixed set per seed: a different set in a different
    order) or by similarity to each input ('similar': nearest last). k = 0 is zero-shot."""
    out = []
    for k in shots:
        k = int(k)
        if k == 0:
            opts = [("fixed", 0)]
        else:
            opts = [("fixed", int(s)) for s in seeds if "random" in selections]
            opts += [("similar", 0)] if "similar" in selections else []
        for sampling, seed in opts:
            fs = replace(best.template.fewshot, k=k, sampling=sampling, seed=seed)
            if k == best.config.shots and (k == 0 or (sampling == best.config.sampling and seed == best.config.seed)):
                continue
            desc = ("zero-shot" if k == 0 else
                    f"{k} most similar demos" if sampling == "similar" else f"{k} random demos (seed {seed})")
            out.append(best.derive("demos", desc, template=replace(best.template, fewshot=fs),
                                   shots=k, sampling=sampling, seed=seed))
    return out


def calibration_candidates(best: Candidate, calibrations: Sequence[str]) -> list[Candidate]:
    return [best.derive("calibration", f"calibration {c}", calibration=c)
            for c in calibrations if c != best.config.calibration]


# ---------------------------------------------------------------------------- diff
def _strip_meta(yaml_text: str) -> str:
    from workbench.core.templates import PromptTemplate

    t = PromptTemplate.from_yaml(yaml_text)
    return replace(t, metadata={}, name="template", description="").to_yaml()


def template_diff(start_yaml: str, other_yaml: str, extra: Mapping | None = None) -> str:
    """A unified diff of two templates (names and metadata aside), plus changed eval settings."""
    a = _strip_meta(start_yaml).splitlines()
    b = _strip_meta(other_yaml).splitlines()
    lines = [ln for ln in difflib.unified_diff(a, b, "start", "candidate", lineterm="", n=0)
             if not ln.startswith(("---", "+++", "@@"))]
    for k, v in (extra or {}).items():
        lines.append(f"+{k}: {v}")
    return "\n".join(lines) or "(same as start)"
