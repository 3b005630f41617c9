"""Paired verdicts on an lm-eval task's metrics, from per-row items of two runs on the same rows.

    v = metric_verdict(spec, items_a, items_b, n_boot=1000, seed=0, alpha=0.05)
    v["test"], v["delta"], v["ci_low"], v["ci_high"], v["p_value"], v["words"]

One metric, one test (DESIGN.md: the words, the interval and the p-value come from it):
  * a binary per-row metric aggregated by its mean (acc, acc_norm, exact_match, ...):
    exact McNemar on the discordant rows; the interval is the percentile bootstrap of the
    mean difference over the same rows;
  * sacrebleu's corpus metrics (bleu, chrf, chrf++, ter): refmetrics.paired_bootstrap, the
    corpus statistic recomputed on each resample as sacrebleu's paired test does;
  * every other metric (ROUGE and other means of continuous scores, perplexities, bits per
    byte, F1/MCC aggregations): the same paired bootstrap of the *aggregated* statistic
    (each resample recomputes the task's aggregation on the resampled rows) with
    sacrebleu's p-value.
Pure: no I/O.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from workbench.core import lmeval_scoring as S
from workbench.core import refmetrics
from workbench.core.stats import mcnemar_exact
from workbench.errors import DataError


def _is_binary(items: Sequence) -> bool:
    try:
        arr = np.asarray(items, dtype=float)
    except (TypeError, ValueError):
        return False
    return arr.ndim == 1 and bool(np.all((arr == 0) | (arr == 1)))


def _bootstrap_stat(spec, items_a, items_b, n_boot: int, seed: int, confidence: float) -> dict:
    n = len(items_a)
    idx = refmetrics._resample_indices(n, n_boot, seed)        # the draw sacrebleu's test makes
    a, b = S.aggregate(spec, items_a), S.aggregate(spec, items_b)
    reps_a = np.array([S.aggregate(spec, [items_a[i] for i in row]) for row in idx], dtype=float)
    reps_b = np.array([S.aggregate(spec, [items_b[i] for i in row]) for row in idx], dtype=float)
    deltas = reps_b - reps_a
    alpha = 1 - confidence
    lo, hi = np.nanquantile(deltas, [alpha / 2, 1 - alpha / 2])
    observed, sample = abs(b - a), np.abs(deltas)
    if observed == 0 and not np.nansum(sample):
        p = 1.0
    else:
        centred = sample - np.nanmean(sample)
        p = (int(np.nansum(centred > observed)) + 1) / (len(deltas) + 1)
    return {"a": float(a), "b": float(b), "delta": float(b - a), "ci_low": float(lo), "ci_high": float(hi),
            "p_value": float(p)}


def metric_verdict(spec: S.MetricSpec, items_a: Sequence, items_b: Sequence, *, n_boot: int = 1000, seed: int = 0,
                   alpha: float = 0.05, confidence: float = 0.95, name_a: str = "A", name_b: str = "B") -> dict:
    if len(items_a) != len(items_b):
        raise DataError(f"{spec.name}: {len(items_a)} rows against {len(items_b)}", "compare runs on the same rows")
    if not items_a:
        raise DataError(f"{spec.name}: no rows", "evaluate at least one row")
    agg = spec.aggregation
    if agg in S.CORPUS_AGGREGATIONS and not callable(agg):
        metric, kw = S._REFMETRIC[agg]
        refs = [r for r, _ in items_a]
        r = refmetrics.paired_bootstrap(metric, [str(p) for _, p in items_a], [str(p) for _, p in items_b], refs,
                                        n_boot=n_boot, seed=seed, confidence=confidence, **kw)
        out = {k: r[k] for k in ("a", "b", "delta", "ci_low", "ci_high", "p_value")}
        out["test"] = "paired bootstrap (corpus statistic, sacrebleu)"
    elif agg == "mean" and _is_binary(items_a) and _is_binary(items_b):
        a, b = np.asarray(items_a, dtype=float), np.asarray(items_b, dtype=float)
        n_ab = int(np.sum((a == 1) & (b == 0)))     # A right, B wrong
        n_ba = int(np.sum((a == 0) & (b == 1)))
        idx = refmetrics._resample_indices(len(a), n_boot, seed)
        d = (b[idx] - a[idx]).mean(axis=1)
        lo, hi = np.quantile(d, [(1 - confidence) / 2, 1 - (1 - confidence) / 2])
        out = {"a": float(a.mean()), "b": float(b.mean()), "delta": float(b.mean() - a.mean()), "ci_low": float(lo),
               "ci_high": float(hi), "p_value": float(mcnemar_exact(n_ab, n_ba)), "test": "McNemar (exact)",
               "discordant": [n_ab, n_ba]}
    else:
        out = _bootstrap_stat(spec, list(items_a), list(items_b), n_boot, seed, confidence)
        out["test"] = "paired bootstrap (aggregated statistic)"
    better_b = out["delta"] > 0 if spec.higher_is_better else out["delta"] < 0
    if out["p_value"] < alpha and out["delta"] != 0:
        win, lose = (name_b, name_a) if better_b else (name_a, name_b)
        words = f"{win} is better than {lose} on {spec.name} (p={out['p_value']:.3g})"
    else:
        words = f"no significant difference on {spec.name} (p={out['p_value']:.3g})"
    out.update(metric=spec.name, higher_is_better=spec.higher_is_better, n=len(items_a), words=words)
    return out


def verdicts(specs: Sequence[S.MetricSpec], records_a: Sequence[dict], records_b: Sequence[dict], keys: Sequence[str],
             **kw) -> dict[str, Any]:
    """{metric key ("exact_match,strict-match"): verdict} for every key both runs scored."""
    out = {}
    by_name = {s.name: s for s in specs}
    for key in keys:
        name = key.split(",")[0]
        spec = by_name.get(name, S.MetricSpec(name))
        ia = [r["items"].get(key) for r in records_a]
        ib = [r["items"].get(key) for r in records_b]
        if any(x is None for x in ia + ib):
            continue
        ia = [tuple(x) if isinstance(x, list) and spec.aggregation in S.CORPUS_AGGREGATIONS + ("weighted_perplexity", "bits_per_byte") else x for x in ia]
        ib = [tuple(x) if isinstance(x, list) and spec.aggregation in S.CORPUS_AGGREGATIONS + ("weighted_perplexity", "bits_per_byte") else x for x in ib]
        out[key] = metric_verdict(spec, ia, ib, **kw)
    return out
