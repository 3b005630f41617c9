"""Pure metric functions over gold and predicted answers.

    m = classification_metrics(gold, pred)          # accuracy, macro-F1, per class, confusion
    print(format_table(m))
    g = generation_metrics(gold_aliases, outputs)   # exact match, token F1, contains

Classification numbers come from scikit-learn, with `zero_division=0` so that a class the model
never predicts scores 0 instead of warning. Generation numbers follow the SQuAD v1.1 evaluation
script's normalization (lowercase, drop punctuation and the articles a/an/the, squeeze spaces),
so they are comparable with the numbers papers report.
"""
from __future__ import annotations

import re
import string
from collections import Counter
from typing import Sequence

import numpy as np

from workbench.errors import DataError


def _check_lengths(gold: Sequence, pred: Sequence) -> None:
    if len(gold) != len(pred):
        raise DataError(
            f"gold has {len(gold)} answers but pred has {len(pred)}",
            "pass one prediction per gold answer, in the same order",
        )


def _confusion(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]):
    """Counts [len(labels), len(labels)]: row = gold, column = prediction; pairs with a label
    outside `labels` are not counted (scikit-learn's confusion_matrix convention)."""
    pos = {lab: i for i, lab in enumerate(labels)}
    cm = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for g, p in zip(gold, pred):
        if g in pos and p in pos:
            cm[pos[g], pos[p]] += 1
    return cm


def classification_metrics(
    gold: Sequence[str], pred: Sequence[str], labels: Sequence[str] | None = None
) -> dict:
    """Accuracy, macro/weighted F1, per-class P/R/F1/support and the confusion matrix.

    `labels` fixes the class order (and keeps classes with no gold and no prediction in the
    table); by default it is the sorted union of gold and predicted labels. Confusion rows are
    gold, columns are predictions. A prediction outside `labels` counts as wrong for accuracy
    and lands in no confusion cell.
    """
    _check_lengths(gold, pred)
    gold = [str(g) for g in gold]
    pred = [str(p) for p in pred]
    labels = sorted(set(gold) | set(pred)) if labels is None else [str(x) for x in labels]
    n = len(gold)
    if n == 0:
        return {
            "n": 0, "accuracy": 0.0, "macro_f1": 0.0, "weighted_f1": 0.0,
            "majority_baseline": 0.0,
            "per_class": {lab: {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
                          for lab in labels},
            "confusion": {"labels": list(labels), "matrix": [[0] * len(labels) for _ in labels]},
        }
    # Accuracy over all examples, not only those whose prediction is a known label: an
    # unparseable generation is a wrong answer, not a skipped one.
    accuracy = sum(g == p for g, p in zip(gold, pred)) / n
    cm = _confusion(gold, pred, labels)                                   # [L, L], gold x pred
    # counted from the lists, not from `cm`: a pair whose other side is outside `labels` still
    # counts for the label it has (as in scikit-learn's precision_recall_fscore_support)
    n_gold, n_pred = Counter(gold), Counter(pred)
    tp = np.array([float(cm[i, i]) for i in range(len(labels))])
    s = np.array([n_gold[lab] for lab in labels], dtype=np.int64)          # support
    predicted = np.array([n_pred[lab] for lab in labels], dtype=float)
    # zero where undefined (no predictions / no gold), as scikit-learn's zero_division=0
    p = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    r = np.divide(tp, s, out=np.zeros_like(tp), where=s > 0)
    f = np.divide(2 * tp, s + predicted, out=np.zeros_like(tp), where=(s + predicted) > 0)
    total_support = int(s.sum())
    macro_f1 = float(f.mean()) if len(labels) else 0.0
    weighted_f1 = float((f * s).sum() / total_support) if total_support else 0.0
    majority = Counter(gold).most_common(1)[0][1] / n
    return {
        "n": n,
        "accuracy": float(accuracy),
        "macro_f1": macro_f1,
        "weighted_f1": weighted_f1,
        "majority_baseline": float(majority),
        "per_class": {
            lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                  "support": int(s[i])}
            for i, lab in enumerate(labels)
        },
        "confusion": {"labels": list(labels), "matrix": [[int(x) for x in row] for row in cm]},
    }


# --- generation -------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize_answer(s: str) -> str:
    """SQuAD-style: lowercase, remove punctuation, remove articles, collapse whitespace."""
    s = str(s).lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def token_f1(pred: str, gold: str) -> float:
    """Bag-of-tokens F1 between normalized answers (SQuAD definition).

    Two empty answers agree (1.0); one empty answer against a non-empty one scores 0.
    """
    p_toks = normalize_answer(pred).split()
    g_toks = normalize_answer(gold).split()
    if not p_toks or not g_toks:
        return float(p_toks == g_toks)
    common = Counter(p_toks) & Counter(g_toks)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(p_toks)
    recall = same / len(g_toks)
    return 2 * precision * recall / (precision + recall)


def _aliases(g: str | list[str]) -> list[str]:
    if isinstance(g, (list, tuple)):
        return [str(x) for x in g] or [""]
    return [str(g)]


def generation_metrics(gold: Sequence[str | list[str]], pred: Sequence[str]) -> dict:
    """Exact match, token F1 and "contains", each the best over a gold's aliases.

    `contains` is lenient: it credits a verbose answer ("It is Paris, France") whose
    normalized text contains a normalized gold alias. Per-example lists are returned too so
    the UI can show which examples failed.
    """
    _check_lengths(gold, pred)
    em, f1, contains = [], [], []
    for g, p in zip(gold, pred):
        aliases = _aliases(g)
        np_ = normalize_answer(p)
        norm_aliases = [normalize_answer(a) for a in aliases]
        em.append(float(any(np_ == a for a in norm_aliases)))
        f1.append(max(token_f1(p, a) for a in aliases))
        # An empty normalized gold would be "contained" in everything; only count it
        # when the prediction is empty too.
        contains.append(float(any((a in np_) if a else not np_ for a in norm_aliases)))
    n = len(em)

    def mean(xs: list[float]) -> float:
        return sum(xs) / n if n else 0.0

    return {
        "n": n,
        "exact_match": mean(em),
        "token_f1": mean(f1),
        "contains": mean(contains),
        "per_example": {"exact_match": em, "token_f1": f1, "contains": contains},
    }


# --- text table --------------------------------------------------------------------------

def format_table(metrics: dict) -> str:
    """A plain-text summary for the CLI: headline numbers, then one line per class.

    Accepts the dict of `classification_metrics` or of `generation_metrics`.
    """
    if "per_class" not in metrics:  # generation
        lines = [f"n = {metrics.get('n', 0)}"]
        for key in ("exact_match", "token_f1", "contains"):
            if key in metrics:
                lines.append(f"{key:<12} {metrics[key]:.4f}")
        return "\n".join(lines)
    lines = [
        f"n = {metrics['n']}",
        f"accuracy     {metrics['accuracy']:.4f}   (majority baseline "
        f"{metrics['majority_baseline']:.4f})",
        f"macro-F1     {metrics['macro_f1']:.4f}",
        f"weighted-F1  {metrics['weighted_f1']:.4f}",
        "",
    ]
    per = metrics["per_class"]
    width = max([len("class")] + [len(str(lab)) for lab in per])
    lines.append(f"{'class':<{width}}  precision  recall      f1  support")
    lines.append("-" * (width + 36))
    for lab, row in per.items():
        lines.append(
            f"{str(lab):<{width}}  {row['precision']:9.4f}  {row['recall']:6.4f}  "
            f"{row['f1']:6.4f}  {row['support']:7d}"
        )
    return "\n".join(lines)
