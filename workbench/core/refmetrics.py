"""Reference metrics for generated text: per-row scores, corpus scores and paired tests.

    from workbench.core import refmetrics
    rows = refmetrics.row_scores("chrf", preds, refs)          # one float per row
    corpus = refmetrics.corpus_score("bleu", preds, refs)      # sacrebleu's corpus BLEU
    test = refmetrics.paired_bootstrap("bleu", preds_a, preds_b, refs)

The numbers come from the libraries lm-eval uses, so they agree with lm-eval's:
sacrebleu for BLEU, chrF and TER (corpus statistics, sacrebleu's defaults and scale 0-100),
rouge-score for ROUGE (F-measure, scale 0-1). exact_match follows lm-eval's `exact_match`
(Hugging Face evaluate's definition, with regexes_to_ignore / ignore_case /
ignore_punctuation / ignore_numbers). A reference may be a list of alternatives: row
metrics take the best alternative; sacrebleu's corpus metrics use them as multiple
references, as sacrebleu itself does.

Pure: no I/O. sacrebleu and rouge-score are computation libraries; they are imported on
first use so that importing this module stays cheap.
"""
from __future__ import annotations

import re
import string
from functools import lru_cache
from typing import Sequence

import numpy as np

from workbench.core.metrics import token_f1
from workbench.errors import ConfigError, DataError

METRICS: tuple[str, ...] = ("exact_match", "token_f1", "chrf", "bleu", "ter",
                            "rouge1", "rouge2", "rougeL", "regex")
# Metrics whose corpus value is NOT the mean of the rows: sacrebleu sums sufficient
# statistics over the corpus first (so corpus BLEU != mean sentence BLEU).
CORPUS_METRICS = frozenset({"bleu", "chrf", "ter"})
_BINARY = frozenset({"exact_match", "regex"})
_LOWER_IS_BETTER = frozenset({"ter"})
_ROUGE = ("rouge1", "rouge2", "rougeL")

References = Sequence["str | Sequence[str]"]


def _check(metric: str) -> None:
    if metric not in METRICS:
        raise ConfigError(f"unknown reference metric {metric!r}",
                          f"use one of: {', '.join(METRICS)}")


def is_binary(metric: str) -> bool:
    """True when every row scores 0 or 1 (paired verdict: McNemar, not bootstrap)."""
    _check(metric)
    return metric in _BINARY


def higher_is_better(metric: str) -> bool:
    _check(metric)
    return metric not in _LOWER_IS_BETTER


def _alts(ref) -> list[str]:
    """A row's reference alternatives as a non-empty list of strings."""
    if isinstance(ref, (list, tuple)):
        return [str(r) for r in ref] or [""]
    return [str(ref)]


def _check_rows(predictions: Sequence[str], references: References) -> None:
    if len(predictions) != len(references):
        raise DataError(f"{len(predictions)} predictions but {len(references)} references",
                        "give one reference (or list of references) per prediction")


# --- exact match (lm-eval's exact_match kwargs) --------------------------------------------

_PUNCT_TABLE = str.maketrans("", "", string.punctuation)
_DIGIT_TABLE = str.maketrans("", "", string.digits)


def _em_normalize(s: str, regexes_to_ignore=None, ignore_case=False,
                  ignore_punctuation=False, ignore_numbers=False) -> str:
    # Same order as lm-eval's exact_match: regexes removed first, then case, punctuation, digits.
    for pattern in regexes_to_ignore or ():
        s = re.sub(pattern, "", s)
    if ignore_case:
        s = s.lower()
    if ignore_punctuation:
        s = s.translate(_PUNCT_TABLE)
    if ignore_numbers:
        s = s.translate(_DIGIT_TABLE)
    # numpy's fixed-width strings (which lm-eval compares) drop trailing NULs; match that.
    return s.rstrip("\x00")


def _exact_match_rows(preds, refs, **kw) -> np.ndarray:
    allowed = {"regexes_to_ignore", "ignore_case", "ignore_punctuation", "ignore_numbers"}
    bad = set(kw) - allowed
    if bad:
        raise ConfigError(f"exact_match got unknown options {sorted(bad)}",
                          f"use only {sorted(allowed)}")
    out = np.empty(len(preds))
    for i, (p, r) in enumerate(zip(preds, refs)):
        np_ = _em_normalize(str(p), **kw)
        out[i] = float(any(np_ == _em_normalize(a, **kw) for a in _alts(r)))
    return out


# --- regex -----------------------------------------------------------------------------

def _regex_rows(preds, refs, pattern: str | None = None, ignore_case: bool = False) -> np.ndarray:
    """1.0 when the pattern is found in the prediction. Without `pattern`, each reference
    alternative is itself the pattern (a row scores 1 if any of them is found)."""
    flags = re.IGNORECASE if ignore_case else 0
    try:
        fixed = re.compile(pattern, flags) if pattern is not None else None
        out = np.empty(len(preds))
        for i, (p, r) in enumerate(zip(preds, refs)):
            pats = [fixed] if fixed is not None else [re.compile(a, flags) for a in _alts(r)]
            out[i] = float(any(x.search(str(p)) for x in pats))
    except re.error as e:
        raise ConfigError(f"regex metric: bad pattern ({e})",
                          "give a valid Python regular expression") from e
    return out


# --- ROUGE (rouge-score) ----------------------------------------------------------------

@lru_cache(maxsize=8)
def _rouge_scorer(kind: str, use_stemmer: bool):
    from rouge_score import rouge_scorer
    return rouge_scorer.RougeScorer([kind], use_stemmer=use_stemmer)


def _rouge_rows(kind: str, preds, refs, use_stemmer: bool = False) -> np.ndarray:
    scorer = _rouge_scorer(kind, bool(use_stemmer))
    out = np.empty(len(preds))
    for i, (p, r) in enumerate(zip(preds, refs)):
        alts = _alts(r)
        # rouge-score's score(target, prediction); score_multi keeps the best F-measure.
        s = scorer.score(alts[0], str(p)) if len(alts) == 1 else scorer.score_multi(alts, str(p))
        out[i] = s[kind].fmeasure
    return out


# --- sacrebleu ----------------------------------------------------------------------------

def _sacre_metric(metric: str, sentence: bool, **kw):
    from sacrebleu.metrics import BLEU, CHRF, TER
    cls = {"bleu": BLEU, "chrf": CHRF, "ter": TER}[metric]
    if metric == "bleu" and sentence:
        # sacrebleu's own advice for sentence BLEU: skip n-gram orders with no matches.
        kw = {"effective_order": True, **kw}
    try:
        return cls(**kw)
    except TypeError as e:
        raise ConfigError(f"{metric}: {e}", "use the keyword arguments sacrebleu's "
                          f"{cls.__name__} takes") from e


def _ref_streams(refs: References) -> list[list[str | None]]:
    """Rows of alternatives -> sacrebleu's reference streams (one stream per alternative
    index), padded with None where a row has fewer alternatives, which sacrebleu skips."""
    rows = [_alts(r) for r in refs]
    k = max((len(r) for r in rows), default=1)
    return [[r[j] if j < len(r) else None for r in rows] for j in range(k)]


def _sacre_rows(metric: str, preds, refs, **kw) -> np.ndarray:
    m = _sacre_metric(metric, sentence=True, **kw)
    return np.array([m.sentence_score(str(p), _alts(r)).score for p, r in zip(preds, refs)],
                    dtype=np.float64)


# --- public API --------------------------------------------------------------------------

def row_scores(metric: str, predictions: Sequence[str], references: References,
               **kwargs) -> np.ndarray:
    """Per-row scores (float64, one per row) on the metric's own scale."""
    _check(metric)
    _check_rows(predictions, references)
    if metric == "exact_match":
        return _exact_match_rows(predictions, references, **kwargs)
    if metric == "token_f1":
        return np.array([max(token_f1(str(p), a) for a in _alts(r))
                         for p, r in zip(predictions, references)], dtype=np.float64)
    if metric == "regex":
        return _regex_rows(predictions, references, **kwargs)
    if metric in _ROUGE:
        return _rouge_rows(metric, predictions, references, **kwargs)
    return _sacre_rows(metric, predictions, references, **kwargs)


def corpus_score(metric: str, predictions: Sequence[str], references: References,
                 **kwargs) -> float:
    """The corpus value: sacrebleu's corpus_score for bleu/chrf/ter, else the mean row."""
    _check(metric)
    _check_rows(predictions, references)
    if not len(predictions):
        raise DataError("no rows to score", "evaluate at least one row")
    if metric in CORPUS_METRICS:
        m = _sacre_metric(metric, sentence=False, **kwargs)
        return float(m.corpus_score([str(p) for p in predictions], _ref_streams(references)).score)
    return float(row_scores(metric, predictions, references, **kwargs).mean())


def _resample_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    # The same draw as sacrebleu's paired bootstrap (default_rng(seed).choice), so a run
    # with sacrebleu's seed resamples exactly the rows sacrebleu's own test resamples.
    return np.random.default_rng(seed).choice(n, size=(n_boot, n), replace=True)


def _corpus_replicates(metric: str, preds, refs, idx: np.ndarray, **kw) -> tuple[float, np.ndarray]:
    """(full-corpus score, score of each resample) from sacrebleu's per-row statistics."""
    m = _sacre_metric(metric, sentence=False, **kw)
    stats = m._extract_corpus_statistics([str(p) for p in preds], _ref_streams(refs))
    full = float(m._aggregate_and_compute(stats).score)
    # float32 sums as sacrebleu's significance module does (same replicate scores).
    st = np.array(stats, dtype="float32")                   # (n, n_stats)
    reps = np.array([m._compute_score_from_stats(st[row].sum(0)).score for row in idx])
    return full, reps


def paired_bootstrap(metric: str, preds_a: Sequence[str], preds_b: Sequence[str],
                     references: References, n_boot: int = 1000, seed: int = 0,
                     confidence: float = 0.95, **kwargs) -> dict:
    """Paired bootstrap of metric(B) - metric(A) over rows, as sacrebleu's paired test.

    Each replicate resamples the same rows for A and B and recomputes the CORPUS statistic
    (for BLEU/chrF/TER: from summed sentence statistics, not a mean of sentence scores).
    p_value is sacrebleu's (Moses' bootstrap-hypothesis-difference-significance): the
    replicate |B - A| differences centred on their mean, and the share of them above the
    observed |B - A|, with +1 smoothing. Identical systems get p = 1 (sacrebleu would give
    1/(n_boot+1) there, calling a zero difference significant).

    Returns {"metric", "a", "b", "delta", "ci_low", "ci_high", "p_value", "n", "n_boot",
    "higher_is_better"}; the CI is the percentile interval of the replicate deltas.
    """
    _check(metric)
    _check_rows(preds_a, references)
    _check_rows(preds_b, references)
    n = len(references)
    if n == 0:
        raise DataError("paired_bootstrap got no rows", "evaluate at least one row")
    if n_boot < 1:
        raise ConfigError(f"n_boot must be >= 1, got {n_boot}", "use e.g. 1000")
    idx = _resample_indices(n, n_boot, seed)                 # (n_boot, n)
    if metric in CORPUS_METRICS:
        a, reps_a = _corpus_replicates(metric, preds_a, references, idx, **kwargs)
        b, reps_b = _corpus_replicates(metric, preds_b, references, idx, **kwargs)
    else:
        ra = row_scores(metric, preds_a, references, **kwargs)
        rb = row_scores(metric, preds_b, references, **kwargs)
        a, b = float(ra.mean()), float(rb.mean())
        reps_a, reps_b = ra[idx].mean(axis=1), rb[idx].mean(axis=1)
    deltas = reps_b - reps_a
    alpha = 1 - confidence
    lo, hi = np.quantile(deltas, [alpha / 2, 1 - alpha / 2])
    observed = abs(b - a)
    sample = np.abs(deltas)
    if observed == 0 and not sample.any():
        p = 1.0
    else:
        centred = sample - sample.mean()
        p = (int(np.sum(centred > observed)) + 1) / (len(deltas) + 1)
    return {"metric": metric, "a": a, "b": b, "delta": b - a, "ci_low": float(lo),
            "ci_high": float(hi), "p_value": float(p), "n": n, "n_boot": int(n_boot),
            "higher_is_better": higher_is_better(metric)}
