"""lm-eval's per-doc results and metric aggregation for all four output types, pure.

    specs = metric_specs(task.config, "generate_until", has_process_results=False)
    items = doc_items("loglikelihood_rolling", specs, ll=-12.3, target="some text")
    value = aggregate(spec, [items[spec.name] for items in per_doc])

What a doc contributes to each metric (its "item") and how the items become one number
follow lm-eval (api/task.py process_results, api/metrics.py aggregations):
  * loglikelihood: perplexity = the continuation's log-likelihood (aggregated as
    exp(-mean)); acc = is_greedy;
  * loglikelihood_rolling: (log-likelihood, words) or (log-likelihood, UTF-8 bytes):
    word_perplexity / byte_perplexity = exp(-sum ll / sum n), bits_per_byte =
    -sum ll / sum bytes / ln 2; the whole text is scored over rolling token windows
    (`rolling_windows`, the same windows as lm-eval's get_rolling_token_windows with
    context_len 1, made disjoint);
  * multiple_choice: acc, acc_norm (per character), acc_bytes, acc_mutual_info,
    exact_match (the gold choice is greedy), f1 / mcc (gold, pred), brier_score;
  * generate_until: exact_match with its kwargs, bleu / chrf / chrf++ / ter as sacrebleu
    corpus scores over (reference, prediction) items (core/refmetrics.py).
Every item is kept per doc, so paired verdicts can resample docs.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench.errors import TemplateError

OUTPUT_TYPES = ("multiple_choice", "loglikelihood", "loglikelihood_rolling", "generate_until")
DEFAULT_METRICS = {"loglikelihood": ["perplexity", "acc"],
                   "loglikelihood_rolling": ["word_perplexity", "byte_perplexity", "bits_per_byte"],
                   "multiple_choice": ["acc", "acc_norm"], "generate_until": ["exact_match"]}
# metric -> (default aggregation, higher_is_better, output types that compute it)
BUILTIN = {
    "acc": ("mean", True, ("loglikelihood", "multiple_choice")),
    "acc_norm": ("mean", True, ("multiple_choice",)),
    "acc_bytes": ("mean", True, ("multiple_choice",)),
    "acc_mutual_info": ("mean", True, ("multiple_choice",)),
    "exact_match": ("mean", True, ("multiple_choice", "generate_until")),
    "f1": ("f1", True, ("multiple_choice",)),
    "mcc": ("matthews_corrcoef", True, ("multiple_choice",)),
    "brier_score": ("brier_score", False, ("multiple_choice",)),
    "likelihood": ("mean", True, ("multiple_choice",)),
    "perplexity": ("perplexity", False, ("loglikelihood",)),
    "word_perplexity": ("weighted_perplexity", False, ("loglikelihood_rolling",)),
    "byte_perplexity": ("weighted_perplexity", False, ("loglikelihood_rolling",)),
    "bits_per_byte": ("bits_per_byte", False, ("loglikelihood_rolling",)),
    "bleu": ("bleu", True, ("generate_until",)),
    "chrf": ("chrf", True, ("generate_until",)),
    "chrf++": ("chrf++", True, ("generate_until",)),
    "ter": ("ter", False, ("generate_until",)),
}
CORPUS_AGGREGATIONS = ("bleu", "chrf", "chrf++", "ter")
_REFMETRIC = {"bleu": ("bleu", {}), "chrf": ("chrf", {}), "chrf++": ("chrf", {"word_order": 2}), "ter": ("ter", {})}


# ------------------------------------------------------------------------- counting
def count_words(text: str) -> int:
    return len(re.split(r"\s+", text))


def count_bytes(text: str) -> int:
    return len(text.encode("utf-8"))


def rolling_windows(tokens: Sequence[int], prefix_token: int, max_len: int) -> list[tuple[list[int], list[int]]]:
    """(context, continuation) token windows that score every token of `tokens` once.

    The first window predicts up to max_len tokens from the prefix token; each later one
    predicts the next up to max_len tokens with the tokens before them as context (context
    + continuation = max_len + 1 tokens, the last one only predicted). Equal to lm-eval's
    get_rolling_token_windows(context_len=1) followed by make_disjoint_window."""
    if max_len < 1:
        raise ValueError("max_len must be >= 1")
    toks = list(tokens)
    out: list[tuple[list[int], list[int]]] = []
    if not toks:
        return out
    first = min(max_len, len(toks))
    out.append(([prefix_token], toks[:first]))          # [prefix] + toks[:first-1], made disjoint
    done = first
    while done < len(toks):
        n = min(len(toks) - done, max_len)
        end = done + n
        ctx = toks[max(0, end - max_len - 1): end - 1]
        out.append((ctx[: len(ctx) - (n - 1)], toks[end - n: end]))
        done = end
    return out


# ---------------------------------------------------------------------------- metrics
@dataclass
class MetricSpec:
    name: str
    kwargs: dict = field(default_factory=dict)
    aggregation: str | Callable = "mean"
    higher_is_better: bool = True
    fn: Callable | None = None        # a task's own metric function (trusted task code)

    @property
    def aggregation_name(self) -> str:
        return self.aggregation if isinstance(self.aggregation, str) else getattr(self.aggregation, "__name__", "task")


AGGREGATIONS = ("mean", "median", "nanmean", "perplexity", "weighted_perplexity", "bits_per_byte", "f1",
                "matthews_corrcoef", "brier_score", "bleu", "chrf", "chrf++", "ter")


def metric_problems(config: Mapping, output_type: str, *, has_process_results: bool) -> list[str]:
    """Why the task's metric_list cannot be computed here (empty: it can). Metric names
    that lm-eval would fetch from Hugging Face `evaluate` (network) are refused unless the
    task's process_results produces them."""
    probs = []
    for m in config.get("metric_list") or []:
        if not isinstance(m, Mapping) or "metric" not in m:
            probs.append("a metric_list entry has no `metric`")
            continue
        name, agg = m["metric"], m.get("aggregation")
        if not isinstance(name, str):
            if output_type != "generate_until":
                probs.append(f"a task function as metric is only computed for generate_until tasks")
            continue              # task code: the trust check names it
        custom_agg = agg is not None and not isinstance(agg, str)
        if isinstance(agg, str) and agg not in AGGREGATIONS and agg != "bypass":
            probs.append(f"metric {name!r}: unknown aggregation {agg!r}")
        if has_process_results:
            continue
        if output_type != "generate_until":
            # lm-eval's own process_results makes these items; a metric function (hf_evaluate
            # or registered) is never called for them
            if name not in BUILTIN or output_type not in BUILTIN[name][2]:
                probs.append(f"metric {name!r} is not computed for output_type {output_type}")
            continue
        if m.get("hf_evaluate") or name not in BUILTIN:
            probs.append(f"metric {name!r} is not one of lm-eval's built-in metrics (lm-eval would fetch it "
                         "from Hugging Face evaluate)")
        elif name != "exact_match" and name not in CORPUS_AGGREGATIONS and not custom_agg:
            probs.append(f"metric {name!r} on generate_until needs an aggregation function (lm-eval passes "
                         "(reference, prediction) pairs)")
    return probs


def metric_specs(config: Mapping, output_type: str) -> list[MetricSpec]:
    ml = config.get("metric_list")
    if not ml:
        return [MetricSpec(n, {}, BUILTIN[n][0], BUILTIN[n][1]) for n in DEFAULT_METRICS[output_type]]
    out = []
    for m in ml:
        fn = m["metric"] if callable(m["metric"]) else None
        name = getattr(fn, "__name__", "metric") if fn is not None else str(m["metric"])
        kw = {k: v for k, v in m.items() if k not in ("metric", "aggregation", "higher_is_better", "hf_evaluate")}
        default_agg, default_hib = BUILTIN.get(name, ("mean", True, ()))[:2]
        out.append(MetricSpec(name, kw, m.get("aggregation", default_agg), bool(m.get("higher_is_better", default_hib)),
                              fn))
    return out


# ------------------------------------------------------------------------- per doc
def _exact_match(pred: str, gold: str, kwargs: Mapping) -> float:
    from workbench.core import refmetrics
    return float(refmetrics.row_scores("exact_match", [pred], [gold], **kwargs)[0])


def mc_items(specs: Sequence[MetricSpec], lls: Sequence[float], greedy: Sequence[bool], choices: Sequence[str],
             gold: Any, lls_unconditional: Sequence[float] | None = None) -> dict:
    """lm-eval's multiple_choice process_results. `gold`: an index, a choice text or a list of
    indices (multiple targets); out of range -> no choice is right."""
    lls_a = np.asarray(lls, dtype=float)
    chars = np.array([float(len(c)) for c in choices])
    nbytes = np.array([float(len(c.encode("utf-8"))) for c in choices])
    pred, pred_norm, pred_byte = (int(np.argmax(lls_a)), int(np.argmax(lls_a / chars)), int(np.argmax(lls_a / nbytes)))
    if isinstance(gold, list):
        golds = [g if g < len(choices) else -100 for g in gold]
    elif isinstance(gold, str):
        golds = [list(choices).index(gold) if gold in choices else -100]
    else:
        golds = [gold if gold < len(choices) else -100]
    multi = isinstance(gold, list)
    hit = (lambda p: float(p in golds)) if multi else (lambda p: float(p == golds[0]))
    names = {s.name for s in specs}
    out: dict[str, Any] = {}
    if "acc" in names:
        out["acc"] = hit(pred)
    if "acc_norm" in names:
        out["acc_norm"] = hit(pred_norm)
    if "acc_bytes" in names:
        out["acc_bytes"] = hit(pred_byte)
    if "exact_match" in names:
        out["exact_match"] = (int(any(greedy[g] if g != -100 else 0 for g in golds)) if multi
                              else (int(greedy[golds[0]]) if golds[0] != -100 else 0))
    g0 = gold if multi else golds[0]
    if "f1" in names:
        out["f1"] = (g0, pred)
    if "mcc" in names:
        out["mcc"] = (g0, pred)
    if "brier_score" in names:
        e = np.exp(lls_a - lls_a.max())
        out["brier_score"] = (g0, e / e.sum())
    if "likelihood" in names:
        out["likelihood"] = (g0, list(lls))
    if "acc_mutual_info" in names and lls_unconditional is not None:
        mi = [c - u for c, u in zip(lls, lls_unconditional, strict=True)]
        out["acc_mutual_info"] = float(int(np.argmax(mi)) == golds[0])
    out["_pred"] = pred
    return out


def loglikelihood_items(specs, ll: float, greedy: bool) -> dict:
    names = {s.name for s in specs}
    return {**({"perplexity": ll} if "perplexity" in names else {}), **({"acc": int(greedy)} if "acc" in names else {})}


def rolling_items(specs, ll: float, target: str) -> dict:
    names = {s.name for s in specs}
    w, b = count_words(target), count_bytes(target)
    return {**({"word_perplexity": (ll, w)} if "word_perplexity" in names else {}),
            **({"byte_perplexity": (ll, b)} if "byte_perplexity" in names else {}),
            **({"bits_per_byte": (ll, b)} if "bits_per_byte" in names else {})}


def generate_items(specs, result: Any, gold: Any, choices: Sequence[str] | None = None) -> dict:
    """lm-eval's generate_until process_results for its built-in metrics. `gold` is the raw
    doc_to_target (an index when the task has doc_to_choice, a list for multiple targets)."""
    if choices is not None:
        gold = choices[gold]
    multi = isinstance(gold, list) and choices is None
    out: dict[str, Any] = {}
    for s in specs:
        if s.name == "exact_match":
            if multi:
                golds = gold if gold else []
                out[s.name] = 1.0 if any(_exact_match(str(result), str(g), s.kwargs) for g in golds) else 0.0
            else:
                g = gold if isinstance(result, list) or type(gold) is type(result) else type(result)(gold)
                out[s.name] = _exact_match(result, g, s.kwargs)
        elif s.name in _REFMETRIC:
            # lm-eval's passthrough: the (reference, prediction) pair, scored over the corpus
            out[s.name] = (gold, result)
        elif s.name in BUILTIN:
            # any other registered passthrough metric: lm-eval hands its aggregation [gold, result]
            out[s.name] = [gold, result]
    return out


# ------------------------------------------------------------------------- aggregation
def _weighted_mean(items) -> float:
    a, b = zip(*items)
    return sum(a) / sum(b)


def _f1(items) -> float:
    g = np.array([x[0] for x in items])
    p = np.array([x[1] for x in items])
    labels = set(np.unique(np.concatenate([g, p])).tolist())
    if not labels <= {0, 1}:
        raise TemplateError("the f1 aggregation is binary F1 (labels 0/1), as lm-eval's (sklearn's default)",
                            "use it on two-choice tasks")
    tp = int(np.sum((g == 1) & (p == 1)))
    denom = int(np.sum(g == 1) + np.sum(p == 1))
    return 2 * tp / denom if denom else 0.0


def _mcc(items) -> float:
    """Matthews correlation (the multi-class form sklearn uses; binary = the usual one)."""
    g = np.array([x[0] for x in items])
    p = np.array([x[1] for x in items])
    labels = np.unique(np.concatenate([g, p]))
    idx = {v: i for i, v in enumerate(labels.tolist())}
    k = len(labels)
    cm = np.zeros((k, k))
    for a, b in zip(g.tolist(), p.tolist()):
        cm[idx[a], idx[b]] += 1
    t, pk = cm.sum(axis=1), cm.sum(axis=0)
    c, s = np.trace(cm), cm.sum()
    cov_yp = c * s - t @ pk
    cov_pp = s * s - pk @ pk
    cov_yy = s * s - t @ t
    if cov_pp * cov_yy == 0:
        return 0.0
    return float(cov_yp / math.sqrt(cov_yy * cov_pp))


def _brier(items) -> float:
    gold = [x[0] for x in items]
    probs = np.array([x[1] for x in items])
    onehot = np.eye(probs.shape[1])[gold]
    return float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))


def _corpus(name: str, items) -> float:
    from workbench.core import refmetrics
    metric, kw = _REFMETRIC[name]
    refs = [r for r, _ in items]
    preds = [p[0] if isinstance(p, list) and len(p) == 1 else p for _, p in items]
    return refmetrics.corpus_score(metric, [str(p) for p in preds], refs, **kw)


def aggregate(spec: MetricSpec, items: Sequence) -> float:
    agg = spec.aggregation
    if callable(agg):
        return agg(list(items))
    items = list(items)
    if agg == "mean":
        return sum(items) / len(items)
    if agg == "median":
        return sorted(items)[len(items) // 2]
    if agg == "nanmean":
        arr = np.asarray(items, dtype=float)
        return float("nan") if arr.size == 0 or np.all(np.isnan(arr)) else float(np.nanmean(arr))
    if agg == "perplexity":
        return math.exp(-sum(items) / len(items))
    if agg == "weighted_perplexity":
        return math.exp(-_weighted_mean(items))
    if agg == "bits_per_byte":
        return -_weighted_mean(items) / math.log(2)
    if agg == "f1":
        return _f1(items)
    if agg == "matthews_corrcoef":
        return _mcc(items)
    if agg == "brier_score":
        return _brier(items)
    if agg in CORPUS_AGGREGATIONS:
        return _corpus(agg, items)
    if agg == "bypass":
        return 999
    raise TemplateError(f"unknown aggregation {agg!r} for metric {spec.name!r}", f"use one of {', '.join(AGGREGATIONS)}")


def row_value(spec: MetricSpec, item: Any) -> float:
    """A per-row number for a metric's item (what the UI lists and a McNemar test pairs):
    the item itself for means, the log-likelihood per unit for weighted ones, the sentence
    score for sacrebleu's corpus metrics."""
    if isinstance(item, (int, float, bool, np.floating, np.integer)):
        return float(item)
    agg = spec.aggregation
    if agg in ("weighted_perplexity", "bits_per_byte") and isinstance(item, tuple):
        return float(item[0]) / float(item[1]) if item[1] else float("nan")
    if agg in CORPUS_AGGREGATIONS and isinstance(item, tuple):
        from workbench.core import refmetrics
        metric, kw = _REFMETRIC[agg]
        return float(refmetrics.row_scores(metric, [str(item[1])], [item[0]], **kw)[0])
    return float("nan")
