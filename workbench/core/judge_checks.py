"""Checks a user can read before trusting a judge: agreement with people, biases, a flat judge.

    rep = agreement(judge_scores, human_ratings, judge_verdicts=verdicts, groups=question_ids)
    rep["spearman"]         # {"value", "ci_low", "ci_high"}: rank correlation with the people's labels
    rep["kappa"]            # Cohen's kappa (weighted when the labels are ordinal) on the verdicts
    rep["pairwise_accuracy"]# share of row pairs the people order whose order the judge agrees with
    length_bias(scores, outputs)      # rank correlation of the score with output length
    flat_judge(scores, score_range)   # a warning when the scores barely vary

All intervals are percentile bootstraps over rows (or over groups when `groups` is given, so the
rows of one question resample together), seeded, in numpy. Pure: no I/O, no model.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

N_BOOT = 1000
FLAT_STD = 0.05        # a judge whose scores' std is under 5% of its score range barely varies


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank), as scipy.stats.rankdata."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ranks = np.empty(len(x))
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and xs[j + 1] == xs[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    ra, rb = _ranks(a), _ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def cohen_kappa(a: Sequence, b: Sequence, weights: str | None = None, labels: Sequence | None = None) -> float:
    """Cohen's kappa of two raters; `weights` 'linear' or 'quadratic' for ordinal labels (numbers).
    Same definition as scikit-learn's cohen_kappa_score."""
    labels = sorted(set(a) | set(b)) if labels is None else list(labels)
    k = len(labels)
    pos = {lab: i for i, lab in enumerate(labels)}
    cm = np.zeros((k, k))
    for x, y in zip(a, b):
        cm[pos[x], pos[y]] += 1
    n = cm.sum()
    if n == 0 or k < 2:
        return 0.0
    expected = np.outer(cm.sum(1), cm.sum(0)) / n
    if weights is None:
        w = 1 - np.eye(k)
    else:
        idx = np.arange(k)
        d = np.abs(idx[:, None] - idx[None, :]).astype(float)
        w = d if weights == "linear" else d ** 2
    denom = (w * expected).sum()
    return float(1 - (w * cm).sum() / denom) if denom else 0.0


def pairwise_accuracy(judge: Sequence[float], human: Sequence[float], groups: Sequence | None = None) -> float:
    """Of the row pairs the people rate differently (within a group, when given), the share the
    judge orders the same way; a judge tie counts half."""
    j, h = np.asarray(judge, float), np.asarray(human, float)
    g = np.asarray(groups) if groups is not None else np.zeros(len(j))
    same_group = g[:, None] == g[None, :]
    dh = np.sign(h[:, None] - h[None, :])
    dj = np.sign(j[:, None] - j[None, :])
    mask = same_group & (dh > 0)
    if not mask.any():
        return float("nan")
    agree = np.where(dj == dh, 1.0, np.where(dj == 0, 0.5, 0.0))
    return float(agree[mask].mean())


def bootstrap(stat: Callable[[np.ndarray], float], n: int, groups: Sequence | None = None,
              n_boot: int = N_BOOT, seed: int = 0, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile interval of `stat(row_indices)` over resamples of rows (or of whole groups)."""
    rng = np.random.default_rng(seed)
    if groups is None:
        units = [np.array([i]) for i in range(n)]
    else:
        g = np.asarray(groups)
        units = [np.flatnonzero(g == u) for u in dict.fromkeys(g.tolist())]
    vals = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(units), len(units))
        v = stat(np.concatenate([units[i] for i in pick]))
        if not np.isnan(v):
            vals.append(v)
    if not vals:
        return float("nan"), float("nan")
    alpha = 1 - confidence
    lo, hi = np.quantile(vals, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def _with_ci(stat, n, groups, n_boot, seed) -> dict:
    value = stat(np.arange(n))
    lo, hi = bootstrap(stat, n, groups, n_boot=n_boot, seed=seed)
    return {"value": value, "ci_low": lo, "ci_high": hi}


def agreement(scores: Sequence[float], human: Sequence[float], *, judge_verdicts: Sequence[float] | None = None,
              threshold: float | None = None, groups: Sequence | None = None,
              n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """The judge against people's labels (numbers: ratings, or 0/1 preferences).

    spearman          rank correlation of the expected score with the labels;
    kappa             Cohen's kappa of the judge's verdicts with the labels: quadratic-weighted
                      when both use the same several values (1-5 with 1-5), plain on two classes
                      otherwise, the labels cut at `threshold` (default: the middle of their range),
                      as a yes/no judge against 1-5 ratings needs;
    pairwise_accuracy pairs the people order (within `groups`), ordered the same by the judge.
    Every value has a bootstrap interval (resampling `groups` whole when given)."""
    s, h = np.asarray(scores, float), np.asarray(human, float)
    n = len(s)
    out: dict = {"n": n}
    out["spearman"] = _with_ci(lambda i: spearman(s[i], h[i]), n, groups, n_boot, seed)
    gsub = (lambda i: None if groups is None else np.asarray(groups)[i])
    out["pairwise_accuracy"] = _with_ci(lambda i: pairwise_accuracy(s[i], h[i], gsub(i)), n, groups, n_boot, seed)
    if judge_verdicts is not None:
        v = np.asarray(judge_verdicts, float)
        hv, vv = set(h.tolist()), set(v.tolist())
        if len(hv) > 2 and hv <= vv | hv and vv <= hv:
            out["kappa"] = _with_ci(lambda i: cohen_kappa(v[i].tolist(), h[i].tolist(), "quadratic",
                                                          labels=sorted(hv | vv)), n, groups, n_boot, seed)
            out["kappa"]["kind"] = "quadratic-weighted"
        else:
            cut = threshold if threshold is not None else (h.min() + h.max()) / 2
            vcut = (min(vv) + max(vv)) / 2 if len(vv) > 1 else cut
            hb, vb = (h > cut).astype(int), (v > vcut).astype(int)
            out["kappa"] = _with_ci(lambda i: cohen_kappa(vb[i].tolist(), hb[i].tolist(), labels=[0, 1]),
                                    n, groups, n_boot, seed)
            out["kappa"]["kind"] = f"Cohen's, labels > {cut:g} as positive"
    return out


def length_bias(scores: Sequence[float], outputs: Sequence[str] | None = None, *,
                lengths: Sequence[float] | None = None, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Rank correlation of the judge's score with the output's length in characters (or with
    `lengths` given directly, e.g. the length difference of a pair)."""
    s = np.asarray(scores, float)
    L = np.asarray(lengths, float) if lengths is not None else np.array([len(str(o)) for o in outputs], float)
    return _with_ci(lambda i: spearman(s[i], L[i]), len(s), None, n_boot, seed)


def flat_judge(scores: Sequence[float], score_range: tuple[float, float], verdicts: Sequence | None = None) -> str | None:
    """A warning when the judge barely discriminates: its scores' spread is under FLAT_STD of its
    range, or (with verdicts) one verdict covers 95% of the rows or more."""
    s = np.asarray(scores, float)
    width = max(1e-12, score_range[1] - score_range[0])
    if len(s) > 1 and s.std() < FLAT_STD * width:
        return (f"the judge's scores barely vary (std {s.std():.3g} on a {width:g}-wide scale): it does not tell "
                "these outputs apart; try a clearer criterion, other verdict words, calibration or a larger judge model")
    if verdicts is not None and len(verdicts):
        vals, counts = np.unique(np.asarray(verdicts, float), return_counts=True)
        if counts.max() / len(verdicts) >= 0.95 and len(verdicts) >= 10:
            return (f"the judge gives the verdict {vals[counts.argmax()]:g} to {counts.max()} of {len(verdicts)} rows: "
                    "its verdicts barely vary (its expected scores may still rank the rows)")
    return None


def position_bias(first_pulls: Sequence[float], n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Mean pull towards the first-shown output (P(first better) averaged over both orders, minus
    0.5), with a bootstrap interval; 0 is no bias, +0.5 always picks the first."""
    x = np.asarray(first_pulls, float)
    return _with_ci(lambda i: float(x[i].mean()), len(x), None, n_boot, seed)
