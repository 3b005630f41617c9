"""What a prompt search maximises, per dev row: accuracy for a classification template, one
reference metric for a generation template (issue 26).

    obj = objective_for(template, metric=None)    # generation: the template's first `metrics:` entry
    obj.label                                      # "chrF" (reports name it instead of "accuracy")
    u = obj.utilities(preds, golds)                # per-row values in [0, 1], higher is better
    obj.show(u.mean())                             # "41.3" (chrF), "62.5%" (accuracy, exact match)

Why a utility in [0, 1]: racing compares candidates on their mean per-row score, and the
sequential racing rule (core/racing_seq.py) needs bounded paired differences. Metrics on a 0-100
scale (chrF, BLEU) are divided by 100; TER (lower is better, unbounded) becomes 1 - TER/100,
clipped to [0, 1]. Row values are sentence-level (sacrebleu's sentence scores, rouge-score's
F-measure), averaged over rows: the objective is the per-row mean, not sacrebleu's corpus
statistic (which is reported beside it in Compare).

The final test check gives the paired verdict of the objective's metric, as Compare does
(core/gen_verdicts.metric_verdict): McNemar for binary metrics (exact match, regex), a paired
bootstrap for continuous ones.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from workbench.errors import ConfigError

# The axes that make sense per task: label words and calibration only exist for classification.
CLASSIFICATION_AXES = ("verbalizer", "format", "instruction", "demos", "calibration")
GENERATION_AXES = ("format", "instruction", "demos")

_HUNDRED = frozenset({"chrf", "bleu", "ter"})   # sacrebleu's 0-100 scale


@dataclass(frozen=True)
class Objective:
    metric: str               # "accuracy" or a template metric entry ("chrf", "regex:^Dear")
    name: str                 # the refmetrics name ("accuracy" for classification)
    label: str                # what reports call it
    binary: bool              # per-row 0/1: McNemar on test; else a paired bootstrap
    task: str                 # classification | generation

    @property
    def is_accuracy(self) -> bool:
        return self.metric == "accuracy"

    @property
    def axes(self) -> tuple[str, ...]:
        return CLASSIFICATION_AXES if self.task == "classification" else GENERATION_AXES

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "Objective":
        # searches stored before issue 26 have no objective: they were accuracy searches
        return cls(**d) if d else ACCURACY

    def utilities(self, preds: Sequence[str], golds: Sequence) -> np.ndarray:
        """Per-row utilities in [0, 1] (higher is better) of generated `preds` against `golds`."""
        from workbench.core.gen_verdicts import metric_rows

        raw = metric_rows([self.metric], [str(p) for p in preds], list(golds))[self.metric]
        return self.utility(raw)

    def utility(self, raw) -> np.ndarray:
        raw = np.asarray(raw, dtype=float)
        if self.name == "ter":
            return np.clip(1.0 - raw / 100.0, 0.0, 1.0)
        if self.name in _HUNDRED:
            return np.clip(raw / 100.0, 0.0, 1.0)
        return np.clip(raw, 0.0, 1.0)

    def show(self, u: float | None) -> str:
        """A mean utility as a person reads it: percent for 0/1 scores, the metric's scale otherwise."""
        if u is None:
            return "-"
        if self.binary:
            return f"{u * 100:.1f}%"
        return f"{u * 100:.1f}"

    def change_text(self, before: float, after: float, what: str = "the winner", where: str = "from dev to test") -> str:
        """A change in words whose sign agrees with the numbers ("gained" for a gain, never a
        "drop of -10"); accuracy keeps the wording of core.stats.change_text."""
        if self.is_accuracy:
            from workbench.core.stats import change_text

            return change_text(before, after, what, where)
        d = (after - before) * 100
        verb = "gained" if d > 0 else "lost" if d < 0 else "kept its score"
        amount = f" {abs(d):.1f} pts of {self.label}" if d else ""
        return f"{what} {verb}{amount} {where} ({self.show(before)} → {self.show(after)})"


ACCURACY = Objective(metric="accuracy", name="accuracy", label="accuracy", binary=True, task="classification")


# how reports write each metric (the same names Compare's verdicts use)
PRETTY = {"exact_match": "exact match", "token_f1": "token F1", "chrf": "chrF", "bleu": "BLEU", "ter": "TER",
          "rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L", "regex": "regex"}


def _label(entry: str, name: str) -> str:
    pretty = PRETTY.get(name, name)
    if name == "ter":
        return "1 − TER/100"
    return pretty if ":" not in entry else entry


def objective_for(template, metric: str | None = None) -> Objective:
    """The search objective of `template`: accuracy for classification; for generation the metric
    the user names, else the template's first `metrics:` entry (a clear error when neither)."""
    from workbench.core import refmetrics
    from workbench.core.gen_verdicts import parse_metric

    if template.task == "classification":
        if metric not in (None, "", "accuracy"):
            raise ConfigError(f"a classification search maximises accuracy; metric {metric!r} is for generation templates",
                              "leave the metric empty (or 'accuracy')")
        if not template.answer_choices:
            raise ConfigError(f"prompt search needs a classification template with answer_choices; {template.name!r} has none",
                              "give each label its verbalizer words (answer_choices)")
        return ACCURACY
    if template.task != "generation":
        raise ConfigError(f"prompt search works on classification and generation templates; {template.name!r} is "
                          f"a {template.task!r} template", "start from a classification or generation template")
    entry = (metric or "").strip() or (template.metrics[0] if template.metrics else "")
    if not entry or entry == "accuracy":
        raise ConfigError(f"the generation template {template.name!r} lists no reference metric to search on",
                          "add e.g. `metrics: [chrf]` to the template, or name one (--metric chrf)")
    name, _ = parse_metric(entry)          # a clear error for an unknown metric
    return Objective(metric=entry, name=name, label=_label(entry, name), binary=refmetrics.is_binary(name),
                     task="generation")
