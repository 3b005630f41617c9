"""Label-word (verbalizer) ranking from the model's own next-token log-probabilities.

    logp = next_token_logprobs(session, contexts)          # [N, V], one forward pass per row
    ranked = rank_label_words(logp, row_labels, classes, allowed_ids, words_per_class=3)
    ranked["sports"][0]   # LabelWord(token_id=..., word="football", ratio=2.31, in_class=-4.2)

The recipe follows LM-BFF (Gao et al. 2021, "Making pre-trained language models better
few-shot learners", automatic label-word search) and PETAL (Schick et al. 2020, "Automatically
identifying words that can serve as labels for few-shot text classification"):

1. For every training row x of class c, the model reads the prompt φ(x) (no answer) and gives a
   distribution over the next token. One forward pass per row.
2. For class c and vocabulary token v:
       in_class(c, v)  = mean over rows of class c of log p(v | φ(x))
       others(c, v)    = mean over the *other* classes c' of in_class(c', v)   (class-balanced)
       ratio(c, v)     = in_class(c, v) - others(c, v)
   `ratio` is the log of a likelihood ratio (geometric means): how much more the model expects
   v after prompts of class c than after prompts of other classes.
3. As LM-BFF prunes by likelihood before its search, only the `prefilter` tokens with the highest
   in_class(c, ·) are eligible for class c, so a rare token with a large ratio but a negligible
   probability is not picked; among those, tokens are ranked by ratio.
4. A word names one class only: each token goes to the class where its ratio is highest, and
   words that differ only in case count as the same word.

Pure numpy; `allowed` restricts the vocabulary to whole words (decided by the caller, who has
the tokenizer: see `workbench.engine.next_token.whole_word_tokens`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from workbench.errors import ConfigError, DataError


@dataclass(frozen=True)
class LabelWord:
    token_id: int
    word: str
    ratio: float       # in_class - others (natural log)
    in_class: float    # mean log-prob of the token after this class's prompts


def class_means(logp, row_labels: Sequence[str], classes: Sequence[str]):
    """[C, V] array: mean log-prob of each token over the rows of each class."""
    import numpy as np

    logp = np.asarray(logp, dtype=np.float64)
    if logp.ndim != 2 or logp.shape[0] != len(row_labels):
        raise DataError(f"log-probs have shape {logp.shape}, expected [{len(row_labels)}, vocab]",
                        "pass one row of next-token log-probs per labelled row")
    labels = [str(x) for x in row_labels]
    out = np.zeros((len(classes), logp.shape[1]))
    for i, c in enumerate(classes):
        mask = np.array([lab == str(c) for lab in labels])
        if not mask.any():
            raise DataError(f"class {c!r} has no training rows for label-word search",
                            "give the search more training rows, or drop the class")
        out[i] = logp[mask].mean(axis=0)
    return out


def likelihood_ratios(means):
    """[C, V] ratio(c, v) = means[c, v] - mean over c' != c of means[c', v]."""

    C = means.shape[0]
    if C < 2:
        raise ConfigError("label-word search needs at least two classes", "check the label column")
    others = (means.sum(axis=0, keepdims=True) - means) / (C - 1)
    return means - others


def rank_label_words(logp, row_labels: Sequence[str], classes: Sequence[str], allowed: Mapping[int, str],
                     words_per_class: int = 3, prefilter: int = 100) -> dict[str, list[LabelWord]]:
    """Up to `words_per_class` LabelWords per class, best first (see the module docstring).

    `allowed` maps token id -> the word it spells (whole-word tokens only)."""
    import numpy as np

    if not allowed:
        raise ConfigError("no whole-word tokens to choose label words from", "check the tokenizer")
    means = class_means(logp, row_labels, classes)
    ratios = likelihood_ratios(means)
    ids = np.array(sorted(allowed), dtype=np.int64)
    # Pass 1: each class's eligible tokens (top `prefilter` by in-class likelihood).
    eligible: dict[int, set[int]] = {}
    for ci in range(len(classes)):
        sub = means[ci, ids]
        top = ids[np.argsort(-sub, kind="stable")[:prefilter]]
        eligible[ci] = set(int(t) for t in top)
    # Pass 2: a token belongs to the eligible class where its ratio is highest.
    owner: dict[int, int] = {}
    for ci, toks in eligible.items():
        for t in toks:
            if t not in owner or ratios[ci, t] > ratios[owner[t], t]:
                owner[t] = ci
    out: dict[str, list[LabelWord]] = {}
    taken: set[str] = set()
    # Classes pick in turn (round-robin, best ratio first) so a case-variant of a word cannot
    # be claimed by two classes.
    per_class = {ci: sorted((t for t, o in owner.items() if o == ci), key=lambda t: (-ratios[ci, t], t))
                 for ci in range(len(classes))}
    for ci in range(len(classes)):
        out[str(classes[ci])] = []
    for rank in range(max((len(v) for v in per_class.values()), default=0)):
        for ci, c in enumerate(classes):
            lst = out[str(c)]
            if len(lst) >= words_per_class:
                continue
            for t in per_class[ci]:
                w = allowed[t]
                if w.lower() in taken or any(x.token_id == t for x in lst):
                    continue
                lst.append(LabelWord(int(t), w, float(ratios[ci, t]), float(means[ci, t])))
                taken.add(w.lower())
                break
        if all(len(v) >= words_per_class for v in out.values()):
            break
    for c, lst in out.items():
        if not lst:
            raise DataError(f"no label word found for class {c!r}", "raise `prefilter` or use more training rows")
    return out


def verbalizer_combinations(ranked: Mapping[str, Sequence[LabelWord]], n: int) -> list[dict[str, list[str]]]:
    """Up to `n` distinct verbalizers from ranked words: every class's top word, then every
    class's 2nd (3rd, ...) word, then one class at a time swapped to its next word, then the
    top two words together (a multi-word verbalizer, scored as the max over its words)."""
    classes = list(ranked)
    depth = max(len(v) for v in ranked.values())
    pick = lambda c, r: ranked[c][min(r, len(ranked[c]) - 1)].word
    out: list[dict[str, list[str]]] = []

    def add(v):
        if v not in out and len(out) < n:
            out.append(v)

    add({c: [pick(c, 0)] for c in classes})
    for r in range(1, depth):
        add({c: [pick(c, r)] for c in classes})
    for r in range(1, depth):
        for c in classes:
            if len(ranked[c]) > r:
                add({d: [pick(d, r if d == c else 0)] for d in classes})
    add({c: [w.word for w in ranked[c][:2]] for c in classes})
    return out
