"""Modules that lm-eval 0.4.13's task code imports but this environment no longer has.

    if provide(missing_name): retry the import

transformers 5 removed `transformers.data.metrics.squad_metrics`, which 45 installed task
files import at module level (xquad, coqa, super_glue/record, catalan/spanish/galician
bench, noreval/norquad) for three functions. They are the SQuAD 2.0 answer metrics, written
here from their published definition (the SQuAD 2.0 evaluation script): answers are
normalised (lower case, punctuation removed, the articles a/an/the removed, whitespace
collapsed); exact match compares the normalised strings; F1 is over the bag of normalised
tokens, and two answers that are both empty score 1. The module is registered only when
the real import fails, so a transformers that still has it is used as is.
"""
from __future__ import annotations

import re
import string
import sys
import types
from collections import Counter

_PUNCT = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(s: str) -> str:
    s = "".join(ch for ch in s.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", s).split())


def get_tokens(s: str) -> list[str]:
    return normalize_answer(s).split() if s else []


def compute_exact(a_gold: str, a_pred: str) -> int:
    return int(normalize_answer(a_gold) == normalize_answer(a_pred))


def compute_f1(a_gold: str, a_pred: str) -> float:
    gold, pred = get_tokens(a_gold), get_tokens(a_pred)
    if not gold or not pred:
        return int(gold == pred)       # both empty: 1; one empty: 0
    same = sum((Counter(gold) & Counter(pred)).values())
    if same == 0:
        return 0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


_SQUAD = "transformers.data.metrics.squad_metrics"


def provide(missing: str | None) -> bool:
    """Register a stand-in for the module `missing` (an ImportError's name) when we have one;
    True when the import is worth retrying."""
    if not missing or not _SQUAD.startswith(missing) or missing.count(".") < 2:
        return False
    if _SQUAD in sys.modules:
        return False
    # only sys.modules entries: `import a.b.c.d as m` and `from a.b.c import d` both find them
    # there (the real transformers.data is imported by the task code itself, not here)
    metrics = sys.modules.get("transformers.data.metrics") or types.ModuleType("transformers.data.metrics")
    squad = types.ModuleType(_SQUAD, "SQuAD 2.0 answer metrics (workbench stand-in; see workbench.core.lmeval_compat)")
    for fn in (normalize_answer, get_tokens, compute_exact, compute_f1):
        setattr(squad, fn.__name__, fn)
    metrics.squad_metrics = squad
    sys.modules.setdefault("transformers.data.metrics", metrics)
    sys.modules[_SQUAD] = squad
    return True
