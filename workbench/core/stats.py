"""Paired statistics for deciding whether one template beats another on the same examples.

    lo, hi = wilson_interval(k_correct, n)                 # CI of one accuracy
    b, c = discordant_counts(gold, pred_a, pred_b)[1:3]    # a-only right, b-only right
    p = mcnemar_exact(b, c)                                # paired test on accuracy
    r = paired_bootstrap(gold, pred_a, pred_b, labels, metric="macro_f1")
    print(verdict("A", "B", n, r["delta"], (r["ci_low"], r["ci_high"]), p, p_disagree=(b+c)/n))

Why paired: two templates scored on the *same* examples share most of their noise (an easy
example is easy for both), so tests on the discordant pairs (McNemar) or on resampled example
indices shared by both systems (paired bootstrap) are far more sensitive than comparing two
independent confidence intervals.

All bootstraps are vectorized: one (n_boot x n) matrix of example indices, and for macro-F1 the
per-replicate confusion counts come from a single `np.bincount`, so 2,000 replicates over 1,000
examples take a few tens of milliseconds. Every bootstrap takes a `seed` and is reproducible.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from workbench.errors import ConfigError, DataError

# Cap on index-matrix cells per chunk (about 32 MB of int64), so large n stays in memory.
_CHUNK_CELLS = 4_000_000


def _z(confidence: float) -> float:
    from scipy.stats import norm

    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be between 0 and 1, got {confidence}",
                          "use e.g. 0.95 for a 95% interval")
    return float(norm.ppf(0.5 + confidence / 2))


# --- single proportions ------------------------------------------------------------------

def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials (Wilson 1927).

    Preferred over the normal ("Wald") interval because it stays inside [0, 1] and keeps its
    coverage near 0 and 1, where prompt accuracies often sit. n == 0 gives (0, 1): no data,
    no information.
    """
    if n < 0 or k < 0 or k > n:
        raise DataError(f"wilson_interval needs 0 <= k <= n, got k={k}, n={n}",
                        "k is the number of correct answers out of n examples")
    if n == 0:
        return (0.0, 1.0)
    z = _z(confidence)
    p = k / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (max(0.0, center - half), min(1.0, center + half))


# --- McNemar -----------------------------------------------------------------------------

def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: binomial test of b vs c discordant pairs at 1/2.

    b = examples only A got right, c = examples only B got right. p = min(1, 2 P(X <= min(b,c)))
    with X ~ Binomial(b + c, 1/2). No discordant pairs means no evidence: p = 1.
    """
    from scipy.stats import binom

    b, c = int(b), int(c)
    if b < 0 or c < 0:
        raise DataError(f"discordant counts must be >= 0, got b={b}, c={c}")
    if b + c == 0:
        return 1.0
    return float(min(1.0, 2 * binom.cdf(min(b, c), b + c, 0.5)))


def mcnemar_midp(b: int, c: int) -> float:
    """Mid-p McNemar test (Fagerland, Lydersen & Laake 2013, BMC Med Res Methodol 13:91).

    The exact p minus the probability of the observed table: 2 P(X <= m) - P(X = m), m =
    min(b, c). Less conservative than the exact test, with type-I error close to nominal.
    """
    from scipy.stats import binom

    b, c = int(b), int(c)
    if b < 0 or c < 0:
        raise DataError(f"discordant counts must be >= 0, got b={b}, c={c}")
    if b + c == 0:
        return 1.0
    m = min(b, c)
    p = 2 * binom.cdf(m, b + c, 0.5) - binom.pmf(m, b + c, 0.5)
    return float(min(1.0, max(0.0, p)))


def mcnemar_interval(b: int, c: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact interval for the accuracy difference B - A = (c - b) / n that agrees with `mcnemar_exact`.

    Conditional on the b + c discordant pairs, c ~ Binomial(b + c, theta) and the difference is
    (b + c) / n * (2 theta - 1); the Clopper-Pearson interval of theta (Clopper & Pearson 1934)
    mapped through that line gives the interval. Its two tails are the exact test's tails, so the
    interval excludes 0 exactly when `mcnemar_exact(b, c) < 1 - confidence`: the interval and the
    p-value of one verdict never disagree (a bootstrap interval beside an exact p can).
    """
    from scipy.stats import beta

    b, c, n = int(b), int(c), int(n)
    if b < 0 or c < 0 or n < b + c:
        raise DataError(f"mcnemar_interval needs 0 <= b, c and b + c <= n, got b={b}, c={c}, n={n}")
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be between 0 and 1, got {confidence}", "use e.g. 0.95")
    k = b + c
    if k == 0:
        return (0.0, 0.0) if n else (-1.0, 1.0)
    a = 1 - confidence
    lo = 0.0 if c == 0 else float(beta.ppf(a / 2, c, k - c + 1))
    hi = 1.0 if c == k else float(beta.ppf(1 - a / 2, c + 1, k - c))
    scale = k / n
    return (scale * (2 * lo - 1), scale * (2 * hi - 1))


def change_text(before: float, after: float, what: str = "the winner", where: str = "from dev to test") -> str:
    """A change between two accuracies in words whose sign agrees with the numbers:
    "the winner lost 10.0 pts from dev to test (80.0% -> 70.0%)" or "... gained ..."; never
    "a drop of -10" for a gain."""
    d = (after - before) * 100
    verb = "gained" if d > 0 else "lost" if d < 0 else "kept its accuracy"
    amount = f" {abs(d):.1f} pts" if d else ""
    return f"{what} {verb}{amount} {where} ({before * 100:.1f}% → {after * 100:.1f}%)"


def discordant_counts(gold: Sequence, pred_a: Sequence, pred_b: Sequence) -> tuple[int, int, int, int]:
    """(both right, only A right, only B right, both wrong) over paired examples."""
    g, a, b = (np.asarray([str(x) for x in v], dtype=object) for v in (gold, pred_a, pred_b))
    if not len(g) == len(a) == len(b):
        raise DataError(f"paired predictions differ in length: gold {len(g)}, "
                        f"A {len(a)}, B {len(b)}",
                        "compare two runs on the same examples (same data fingerprint and split)")
    ra, rb = a == g, b == g
    return (int((ra & rb).sum()), int((ra & ~rb).sum()), int((~ra & rb).sum()),
            int((~ra & ~rb).sum()))


# --- multiple comparisons ----------------------------------------------------------------

def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni step-down adjusted p-values, in the original order.

    Sorted ascending, the i-th (0-based) of m is multiplied by (m - i); a running maximum keeps
    the adjusted values monotone, and each is capped at 1.
    """
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    scaled = p[order] * (m - np.arange(m))
    adj_sorted = np.minimum(1.0, np.maximum.accumulate(scaled))
    out = np.empty(m)
    out[order] = adj_sorted
    return [float(x) for x in out]


# --- bootstrap ---------------------------------------------------------------------------

def _index_chunks(n: int, n_boot: int, seed: int):
    """Yield (rows x n) index matrices that together make n_boot bootstrap resamples."""
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_CELLS // max(n, 1))
    done = 0
    while done < n_boot:
        k = min(rows, n_boot - done)
        yield rng.integers(0, n, size=(k, n))
        done += k


def _percentile_ci(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = 1 - confidence
    lo, hi = np.quantile(samples, [alpha / 2, 1 - alpha / 2])
    return (float(lo), float(hi))


def bootstrap_ci(
    values: Sequence[float],
    *,
    statistic: Callable[[np.ndarray], np.ndarray] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap CI for a statistic of per-example values (default: the mean).

    `values` are per-example scores (0/1 correctness, token F1, ...). `statistic`, if given,
    maps a (replicates x n) matrix of resampled values to one number per replicate (row).
    """
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        raise DataError("bootstrap_ci got no values", "evaluate at least one example")
    stat = statistic or (lambda m: m.mean(axis=1))
    reps = np.concatenate([np.asarray(stat(v[idx]), dtype=float)
                           for idx in _index_chunks(len(v), n_boot, seed)])
    return _percentile_ci(reps, confidence)


def _encode(gold, preds: list, labels: Sequence[str] | None):
    """Map labels to 0..L-1; anything outside `labels` goes to an extra 'other' id L."""
    gold = [str(x) for x in gold]
    preds = [[str(x) for x in p] for p in preds]
    for name, p in zip("AB", preds):
        if len(p) != len(gold):
            raise DataError(f"predictions {name} have {len(p)} rows but gold has {len(gold)}",
                            "compare runs on the same examples")
    if labels is None:
        labels = sorted(set(gold).union(*[set(p) for p in preds]))
    labels = [str(x) for x in labels]
    ids = {lab: i for i, lab in enumerate(labels)}
    other = len(labels)
    enc = lambda xs: np.fromiter((ids.get(x, other) for x in xs), dtype=np.int64, count=len(xs))
    return enc(gold), [enc(p) for p in preds], len(labels)


def _macro_f1_reps(g: np.ndarray, p: np.ndarray, idx: np.ndarray, n_labels: int) -> np.ndarray:
    """Macro-F1 of each replicate (row of idx), averaged over the first n_labels classes.

    Per class F1 = 2 TP / (gold count + predicted count), which equals sklearn's F1 with
    zero_division=0 (a class absent from both gold and predictions scores 0).
    """
    k = n_labels + 1                       # + the 'other' bucket for unknown predictions
    reps = idx.shape[0]
    gi, pi = g[idx], p[idx]                # (reps, n)
    cell = (np.arange(reps)[:, None] * k + gi) * k + pi
    cm = np.bincount(cell.ravel(), minlength=reps * k * k).reshape(reps, k, k)
    tp = np.diagonal(cm, axis1=1, axis2=2)[:, :n_labels]
    gold_n = cm.sum(axis=2)[:, :n_labels]
    pred_n = cm.sum(axis=1)[:, :n_labels]
    denom = gold_n + pred_n
    f1 = np.divide(2 * tp, denom, out=np.zeros(tp.shape, dtype=float), where=denom > 0)
    return f1.mean(axis=1)


def _metric_reps(metric: str, g, p, idx, n_labels) -> np.ndarray:
    if metric == "accuracy":
        return (g[idx] == p[idx]).mean(axis=1)
    if metric == "macro_f1":
        return _macro_f1_reps(g, p, idx, n_labels)
    raise ConfigError(f"unknown metric {metric!r}", "use 'accuracy' or 'macro_f1'")


def paired_bootstrap(
    gold: Sequence[str],
    pred_a: Sequence[str],
    pred_b: Sequence[str],
    labels: Sequence[str] | None = None,
    *,
    metric: str = "accuracy",
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict:
    """Paired bootstrap of metric(B) - metric(A), resampling the same examples for both.

    Returns {"metric", "a", "b", "delta", "ci_low", "ci_high", "p", "n", "n_boot"}. The CI is
    the percentile interval of the replicate deltas. The two-sided p-value uses the
    shifted-null bootstrap (Berg-Kirkpatrick et al. 2012; Efron & Tibshirani 1993, 16.4):
    the share of replicates whose delta strays from the observed delta by at least |delta|,
    with a +1 correction so it is never exactly 0.
    """
    g, (a, b), n_labels = _encode(gold, [pred_a, pred_b], labels)
    n = len(g)
    if n == 0:
        raise DataError("paired_bootstrap got no examples", "evaluate at least one example")
    full = np.arange(n)[None, :]
    score_a = float(_metric_reps(metric, g, a, full, n_labels)[0])
    score_b = float(_metric_reps(metric, g, b, full, n_labels)[0])
    delta = score_b - score_a
    deltas = np.concatenate([
        _metric_reps(metric, g, b, idx, n_labels) - _metric_reps(metric, g, a, idx, n_labels)
        for idx in _index_chunks(n, n_boot, seed)
    ])
    lo, hi = _percentile_ci(deltas, confidence)
    # Tolerance: identical systems give deltas that are exactly 0 but float sums may not be.
    extreme = np.abs(deltas - delta) >= abs(delta) - 1e-12
    p = (1 + int(extreme.sum())) / (len(deltas) + 1)
    return {"metric": metric, "a": score_a, "b": score_b, "delta": delta,
            "ci_low": lo, "ci_high": hi, "p": float(min(1.0, p)), "n": n, "n_boot": len(deltas)}


def f1_bootstrap_ci(
    gold: Sequence[str],
    pred: Sequence[str],
    labels: Sequence[str] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap CI of macro-F1 (no closed form exists, unlike accuracy's Wilson)."""
    g, (p,), n_labels = _encode(gold, [pred], labels)
    if len(g) == 0:
        raise DataError("f1_bootstrap_ci got no examples", "evaluate at least one example")
    reps = np.concatenate([_macro_f1_reps(g, p, idx, n_labels)
                           for idx in _index_chunks(len(g), n_boot, seed)])
    return _percentile_ci(reps, confidence)


# --- planning and wording ----------------------------------------------------------------

def required_n(p_disagree: float, delta: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Approximate examples needed for McNemar's test to detect an accuracy difference.

    Connor (1987), "Sample size for testing differences in proportions for the paired-sample
    design", Biometrics 43:207-211:

        n = ( z_{1-alpha/2} sqrt(psi) + z_{power} sqrt(psi - delta^2) )^2 / delta^2

    where psi = p_disagree is the share of examples on which the two templates disagree in
    correctness (b + c) / n, and delta = the accuracy difference (b - c) / n. Since
    |delta| <= psi always holds, a delta larger than psi is impossible and is refused.
    """
    from scipy.stats import norm

    delta = abs(float(delta))
    psi = float(p_disagree)
    if delta <= 0:
        raise ConfigError("required_n needs a non-zero delta",
                          "give the smallest accuracy difference you care about, e.g. 0.03")
    if not 0 < psi <= 1 or delta > psi:
        raise ConfigError(
            f"p_disagree={psi} cannot produce an accuracy difference of {delta}",
            "p_disagree (share of discordant examples) must be in (0, 1] and >= |delta|")
    za = norm.ppf(1 - alpha / 2)
    zb = norm.ppf(power)
    n = (za * math.sqrt(psi) + zb * math.sqrt(psi - delta * delta)) ** 2 / (delta * delta)
    return int(math.ceil(n))


def _about(n: int) -> int:
    """Round to two significant figures: 'about n=930' reads better than 'n=927'."""
    if n < 100:
        return n
    mag = 10 ** (len(str(n)) - 2)
    return int(math.ceil(n / mag) * mag)


def _fmt_p(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def verdict(
    name_a: str,
    name_b: str,
    n: int,
    delta_acc: float,
    ci: tuple[float, float],
    p: float,
    alpha: float = 0.05,
    *,
    p_disagree: float | None = None,
    min_effect: float = 0.03,
    confidence: float = 0.95,
) -> str:
    """One plain-language sentence about B versus A, worded so that the words and the sign agree.

    `delta_acc` and `ci` are fractions (0.06 = 6 points), B minus A. A significant difference
    names the winner first and gives its lead as a positive number ("B beats A by 6.0 pts
    (95% CI [+2.1, +9.8], p=0.003)"); otherwise the sentence says which way the difference
    is measured ("B − A: +1.0 pts"). When the difference is not significant and `p_disagree` is
    known, it adds roughly how many examples would be needed to detect the larger of the
    observed difference and `min_effect`.
    """
    pts = lambda x: f"{x * 100:+.1f}"
    conf = f"{round(confidence * 100, 1):g}% CI"
    if p < alpha and delta_acc != 0:
        if delta_acc > 0:
            better, worse, d, lo, hi = name_b, name_a, delta_acc, ci[0], ci[1]
        else:   # flip to A - B, so the lead and its interval read as positive numbers
            better, worse, d, lo, hi = name_a, name_b, -delta_acc, -ci[1], -ci[0]
        return f"{better} beats {worse} by {d * 100:.1f} pts accuracy ({conf} [{pts(lo)}, {pts(hi)}], {_fmt_p(p)})"
    detail = f"{name_b} − {name_a}: {pts(delta_acc)} pts, {conf} [{pts(ci[0])}, {pts(ci[1])}], {_fmt_p(p)}"
    text = f"no detectable difference between {name_a} and {name_b} at n={n} ({detail})"
    if p_disagree:
        target = max(abs(delta_acc), min_effect)
        if target <= p_disagree:
            need = _about(required_n(p_disagree, target, alpha=alpha))
            text += (f"; you would need about n={need} to detect {target * 100:.3g} points")
    return text
