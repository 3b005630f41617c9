"""Label words a reader should doubt (issue 28, item 5): stop-words ("the", "of") and words
with no visible tie to their class name ("other → Marketing", "billing → pays").

A searched verbalizer can win on dev rows with such words by chance or by a quirk of the
model; LM-BFF (Gao et al. 2021) pruned its automatic label words for the same reason. The
test for "related" is lexical and deliberately simple (same word, one contains the other, or a
shared 4-letter stem), so a true synonym is flagged too: it is a warning to read, not a verdict.
Pure: no I/O.
"""
from __future__ import annotations

from typing import Mapping, Sequence

# Common English function words (articles, pronouns, prepositions, auxiliaries, conjunctions).
STOP_WORDS = frozenset("""
a an the this that these those it its he she they them his her their we us our you your i me my
of in on at to for from by with about as into onto over under than then there here
and or but nor so if not no yes is am are was were be been being do does did have has had
will would can could shall should may might must just also very too only what which who whom
when where why how all any some each every more most other such own same s t one
""".split())


def _norm(w: str) -> str:
    return "".join(ch for ch in str(w).lower() if ch.isalnum())


def related(word: str, label: str) -> bool:
    """True when `word` visibly belongs to class `label` (see the module doc)."""
    w, lab = _norm(word), _norm(label)
    if not w or not lab:
        return False
    if w == lab or (len(w) >= 3 and w in lab) or (len(lab) >= 3 and lab in w):
        return True
    return len(w) >= 4 and len(lab) >= 4 and w[:4] == lab[:4]


def word_problems(answer_choices: Mapping[str, Sequence[str]]) -> list[dict]:
    """[{"label", "word", "why": "stop-word" | "unrelated"}] of the doubtful label words."""
    out = []
    for label, words in (answer_choices or {}).items():
        for word in words or []:
            if _norm(word) in STOP_WORDS:
                out.append({"label": str(label), "word": str(word), "why": "stop-word"})
            elif not related(word, label):
                out.append({"label": str(label), "word": str(word), "why": "unrelated"})
    return out


def plain_words(answer_choices: Mapping[str, Sequence[str]]) -> bool:
    """True when no label word is a stop-word or unrelated to its class (search's option)."""
    return not word_problems(answer_choices)
