"""Generation templates scored and compared like classification: reference metrics per row,
judge scores per row, and one paired verdict per metric.

    scores = metric_rows(["chrf", "rougeL"], preds, golds)      # {metric: per-row array}
    v = metric_verdict("chrf", "A", "B", preds_a, preds_b, golds)
    v["text"]   # 'B beats A by 4.1 chrF (95% CI [+1.2, +7.0], p=0.004, paired bootstrap)'
    v = score_verdict("judge", "A", "B", judge_a, judge_b)      # any paired per-row score

One verdict, one method: the words, the interval and the p-value come from the same test.
  binary metrics (exact_match, regex)  McNemar's exact test on the discordant rows; the interval
                                       is the paired bootstrap's on the difference in means;
  continuous metrics                   refmetrics.paired_bootstrap: resampled rows, the CORPUS
                                       statistic recomputed per resample for BLEU/chrF/TER, as
                                       sacrebleu's paired test does; p is its p-value;
  judge scores                         the same paired bootstrap on the mean per-row difference,
                                       with Cohen's d_z (mean difference / sd of differences) as
                                       the effect size.

A template's `metrics:` entries are metric names (workbench.core.refmetrics.METRICS), or
`regex:PATTERN` for a fixed pattern (plain `regex` uses each row's reference as the pattern).
Pure: numpy, no model, no I/O.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from workbench.errors import ConfigError

N_BOOT = 1000


def parse_metric(entry: str) -> tuple[str, dict]:
    """'chrf' -> ('chrf', {}); 'regex:^Dear' -> ('regex', {'pattern': '^Dear'})."""
    from workbench.core.refmetrics import METRICS

    entry = str(entry).strip()
    name, _, arg = entry.partition(":")
    if name not in METRICS:
        import difflib

        close = difflib.get_close_matches(name, METRICS, n=1)
        raise ConfigError(f"unknown metric {name!r} in the template's `metrics`"
                          + (f" (did you mean {close[0]!r}?)" if close else ""),
                          f"use any of: {', '.join(METRICS)}; regex:PATTERN for a fixed pattern")
    if arg and name != "regex":
        raise ConfigError(f"metric {entry!r}: only regex takes an argument (regex:PATTERN)",
                          f"write just {name!r}")
    return name, ({"pattern": arg} if arg else {})


def metric_label(entry: str) -> str:
    return str(entry).strip()


def metric_rows(entries: Sequence[str], preds: Sequence[str], refs: Sequence) -> dict[str, np.ndarray]:
    """{entry: per-row scores} for the template's metrics (refmetrics' scales)."""
    from workbench.core.refmetrics import row_scores

    out = {}
    for e in entries:
        name, kw = parse_metric(e)
        out[metric_label(e)] = row_scores(name, [str(p) for p in preds], list(refs), **kw)
    return out


def metric_corpus(entries: Sequence[str], preds: Sequence[str], refs: Sequence) -> dict[str, float]:
    """{entry: corpus value}: sacrebleu's corpus statistic for bleu/chrf/ter, else the row mean."""
    from workbench.core.refmetrics import corpus_score

    out = {}
    for e in entries:
        name, kw = parse_metric(e)
        out[metric_label(e)] = corpus_score(name, [str(p) for p in preds], list(refs), **kw)
    return out


def _pretty(metric: str) -> str:
    return {"exact_match": "exact match", "token_f1": "token F1", "chrf": "chrF", "bleu": "BLEU", "ter": "TER",
            "rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L"}.get(metric, metric)


def _fmt_p(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


MIN_BOOT_N = 10   # below this a bootstrap cannot support a verdict (2 rows give 3 possible means)


def significant(delta: float, lo: float, hi: float, p: float, n: int, method: str, alpha: float = 0.05) -> bool:
    """A difference is called only when the test's p is under alpha AND its interval excludes 0
    (sacrebleu's p-value and the percentile interval can disagree near the edge; the words must
    agree with both), and a bootstrap has at least MIN_BOOT_N rows."""
    if "bootstrap" in method and n < MIN_BOOT_N:
        return False
    return bool(p < alpha and delta != 0 and (lo > 0 or hi < 0))


def words(what: str, a: str, b: str, delta: float, lo: float, hi: float, p: float, method: str, *,
          higher_is_better: bool = True, alpha: float = 0.05, scale: float = 1.0, unit: str = "",
          n: int | None = None, sig: bool | None = None) -> str:
    """One sentence, words and sign agreeing: the winner first with a positive lead when the
    difference is `significant`, else 'no detectable difference' with B - A. `delta`, `lo`, `hi`
    are B - A."""
    f = lambda x: f"{x * scale:+.3g}{unit}"  # noqa: E731
    better_b = (delta > 0) == higher_is_better
    if n is not None and "bootstrap" in method and n < MIN_BOOT_N:
        return (f"too few rows for a verdict in {what} between {a} and {b} (n={n} < {MIN_BOOT_N} for a bootstrap; "
                f"{b} − {a}: {f(delta)})")
    if sig is None:
        sig = significant(delta, lo, hi, p, n if n is not None else MIN_BOOT_N, method, alpha)
    if sig:
        if better_b:
            win, lose, d, l, h = b, a, delta, lo, hi
        else:
            win, lose, d, l, h = a, b, -delta, -hi, -lo
        if not higher_is_better:   # lower is better: the lead is how much lower the winner is
            d, l, h = -d, -h, -l
        return f"{win} beats {lose} by {abs(d) * scale:.3g}{unit} {what} (95% CI [{f(l)}, {f(h)}], {_fmt_p(p)}, {method})"
    return (f"no detectable difference in {what} between {a} and {b} ({b} − {a}: {f(delta)}, "
            f"95% CI [{f(lo)}, {f(hi)}], {_fmt_p(p)}, {method})")


def metric_verdict(entry: str, name_a: str, name_b: str, preds_a: Sequence[str], preds_b: Sequence[str],
                   refs: Sequence, *, n_boot: int = N_BOOT, seed: int = 0, alpha: float = 0.05) -> dict:
    """B versus A on one reference metric (see the module doc for the test each kind gets)."""
    from workbench.core import refmetrics
    from workbench.core.stats import mcnemar_exact

    name, kw = parse_metric(entry)
    boot = refmetrics.paired_bootstrap(name, [str(p) for p in preds_a], [str(p) for p in preds_b], list(refs),
                                       n_boot=n_boot, seed=seed, **kw)
    v = {"metric": metric_label(entry), "a": name_a, "b": name_b, "n": boot["n"], "value_a": boot["a"],
         "value_b": boot["b"], "delta": boot["delta"], "ci": [boot["ci_low"], boot["ci_high"]],
         "higher_is_better": boot["higher_is_better"]}
    if refmetrics.is_binary(name):
        ra = refmetrics.row_scores(name, [str(p) for p in preds_a], list(refs), **kw)
        rb = refmetrics.row_scores(name, [str(p) for p in preds_b], list(refs), **kw)
        only_a, only_b = int(((ra > 0) & (rb == 0)).sum()), int(((rb > 0) & (ra == 0)).sum())
        v.update(method="McNemar exact", p=mcnemar_exact(only_a, only_b), only_a=only_a, only_b=only_b)
    else:
        v.update(method="paired bootstrap" + (" of the corpus score" if name in refmetrics.CORPUS_METRICS else ""),
                 p=boot["p_value"])
    scale, unit = (100.0, " pts") if name in ("exact_match", "regex", "token_f1", "rouge1", "rouge2", "rougeL") else (1.0, "")
    if v["method"] == "McNemar exact":   # an exact test: its p decides; the interval is the bootstrap's
        v["significant"] = bool(v["p"] < alpha and v["delta"] != 0)
    else:
        v["significant"] = significant(v["delta"], *v["ci"], v["p"], v["n"], v["method"], alpha)
    v["text"] = words(_pretty(name) if not kw else metric_label(entry), name_a, name_b, v["delta"], v["ci"][0],
                      v["ci"][1], v["p"], v["method"], higher_is_better=v["higher_is_better"], alpha=alpha,
                      scale=scale, unit=unit, n=v["n"], sig=v["significant"])
    return v


def paired_mean_bootstrap(a: Sequence[float], b: Sequence[float], *, n_boot: int = N_BOOT, seed: int = 0,
                          confidence: float = 0.95) -> dict:
    """Paired bootstrap of mean(b) - mean(a): the same resampling and p-value convention as
    refmetrics.paired_bootstrap (sacrebleu's: centred |replicate deltas| above the observed one)."""
    x, y = np.asarray(a, float), np.asarray(b, float)
    if len(x) != len(y) or len(x) == 0:
        raise ConfigError(f"paired scores need the same, non-zero number of rows ({len(x)} vs {len(y)})",
                          "score both templates on the same rows")
    idx = np.random.default_rng(seed).choice(len(x), size=(n_boot, len(x)), replace=True)
    d = y - x
    reps = d[idx].mean(axis=1)
    alpha = 1 - confidence
    lo, hi = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    obs = abs(float(d.mean()))
    sample = np.abs(reps)
    p = 1.0 if obs == 0 and not sample.any() else (int(np.sum(sample - sample.mean() > obs)) + 1) / (n_boot + 1)
    sd = float(d.std(ddof=1)) if len(d) > 1 else 0.0
    return {"delta": float(d.mean()), "ci_low": float(lo), "ci_high": float(hi), "p_value": float(p),
            "effect_size": float(d.mean() / sd) if sd > 0 else 0.0, "n": len(d)}


def score_verdict(what: str, name_a: str, name_b: str, scores_a: Sequence[float], scores_b: Sequence[float], *,
                  n_boot: int = N_BOOT, seed: int = 0, alpha: float = 0.05) -> dict:
    """B versus A on a per-row score such as a judge's expected score."""
    r = paired_mean_bootstrap(scores_a, scores_b, n_boot=n_boot, seed=seed)
    v = {"metric": what, "a": name_a, "b": name_b, "n": r["n"], "value_a": float(np.mean(scores_a)),
         "value_b": float(np.mean(scores_b)), "delta": r["delta"], "ci": [r["ci_low"], r["ci_high"]],
         "p": r["p_value"], "effect_size": r["effect_size"], "method": "paired bootstrap",
         "higher_is_better": True}
    v["significant"] = significant(v["delta"], *v["ci"], v["p"], v["n"], v["method"], alpha)
    v["text"] = words(what, name_a, name_b, v["delta"], v["ci"][0], v["ci"][1], v["p"], v["method"], alpha=alpha,
                      n=v["n"]) + f"; effect size d_z {r['effect_size']:+.2f}"
    return v


def pairwise_verdict(what: str, name_a: str, name_b: str, pref_b: Sequence[float], *, n_boot: int = N_BOOT,
                     seed: int = 0, alpha: float = 0.05) -> dict:
    """B versus A from a pairwise judge: `pref_b` is P(B's output better) per row, already averaged
    over both orders. The win rate's excess over 0.5 is bootstrapped like a paired difference."""
    p = np.asarray(pref_b, float)
    r = paired_mean_bootstrap(np.full(len(p), 0.5), p, n_boot=n_boot, seed=seed)
    v = {"metric": what, "a": name_a, "b": name_b, "n": len(p), "win_rate_b": float(p.mean()),
         "delta": r["delta"], "ci": [r["ci_low"], r["ci_high"]], "p": r["p_value"], "method": "pairwise judge, "
         "both orders, paired bootstrap", "higher_is_better": True}
    v["significant"] = significant(v["delta"], *v["ci"], v["p"], v["n"], v["method"], alpha)
    v["text"] = words(what + " preference (P(better) − 0.5)", name_a, name_b, v["delta"], v["ci"][0], v["ci"][1],
                      v["p"], v["method"], alpha=alpha, n=v["n"]) + f"; {name_b} preferred with mean probability {p.mean():.2f}"
    return v


def generation_verdicts(names: Sequence[str], dicts: Sequence[dict], reference: str, *, n_boot: int = N_BOOT,
                        seed: int = 0, alpha: float = 0.05) -> dict:
    """The generation part of a comparison: for every template other than `reference`, one paired
    verdict per reference metric any template lists, and one on the judge's score when every
    result was judged (records[i]["judge"]["score"]). Holm's adjustment is left to the reader:
    these are reported beside the accuracy verdict, each with its own test named."""
    from workbench.core.stats import holm

    entries: list[str] = []
    for d in dicts:
        yaml_metrics = _template_metrics(d)
        for m in yaml_metrics:
            if m not in entries:
                entries.append(m)
    recs = {nm: d["records"] for nm, d in zip(names, dicts)}
    refs = [r["gold"] for r in recs[reference]]
    out: dict = {"metrics": entries, "metric_verdicts": [], "judge_verdicts": [],
                 "corpus": {nm: metric_corpus(entries, [r["pred"] for r in recs[nm]], refs) for nm in names}
                 if entries else {}}
    for nm in names:
        if nm == reference:
            continue
        for m in entries:
            out["metric_verdicts"].append(metric_verdict(m, reference, nm, [r["pred"] for r in recs[reference]],
                                                         [r["pred"] for r in recs[nm]], refs, n_boot=n_boot,
                                                         seed=seed, alpha=alpha))
        if all(r.get("judge") for rs in (recs[reference], recs[nm]) for r in rs):
            jname = (dicts[0].get("provenance", {}).get("judge") or {}).get("name", "judge")
            out["judge_verdicts"].append(score_verdict(f"{jname} score", reference, nm,
                                                       [r["judge"]["score"] for r in recs[reference]],
                                                       [r["judge"]["score"] for r in recs[nm]],
                                                       n_boot=n_boot, seed=seed, alpha=alpha))
    vs = out["metric_verdicts"] + out["judge_verdicts"]
    if len(vs) > 1:
        for v, p in zip(vs, holm([v["p"] for v in vs])):
            v["p_holm"] = p
    return out


def _template_metrics(d: dict) -> list[str]:
    """The `metrics:` a result's template listed (from its stored YAML)."""
    import yaml

    text = (d.get("provenance", {}).get("template") or {}).get("yaml") or ""
    try:
        m = (yaml.safe_load(text) or {}).get("metrics") or []
    except yaml.YAMLError:
        return []
    return [m] if isinstance(m, str) else [str(x) for x in m]


def format_generation(g: dict) -> str:
    """A comparison's generation part as text: corpus values, then one verdict per line."""
    lines = []
    if g.get("corpus"):
        lines.append("Reference metrics (corpus: sacrebleu for BLEU/chrF/TER, else the row mean):")
        for nm, vals in g["corpus"].items():
            lines.append(f"  {nm}: " + ", ".join(f"{m} {v:.4g}" for m, v in vals.items()))
    if g.get("metric_verdicts"):
        lines.append("Per-metric verdicts:")
        lines += [f"  - {v['text']}" for v in g["metric_verdicts"]]
    j = g.get("judge")
    if j:
        lines.append(f"Judge {j['name']} ({j['mode']}, {j['hash'][:12]}):")
        for nm, sm in (j.get("summaries") or {}).items():
            lb = sm.get("length_bias") or {}
            extra = f"; length bias (Spearman with length) {lb['value']:+.2f}" if lb else ""
            ag = sm.get("agreement")
            if ag:
                sp = ag["spearman"]
                extra += (f"; agreement with {ag.get('labels', 'labels')}: Spearman {sp['value']:.2f} "
                          f"[{sp['ci_low']:.2f}, {sp['ci_high']:.2f}]")
            lines.append(f"  {nm}: mean score {sm['mean']:.3f}{extra}" + (f"; WARNING {sm['flat']}" if sm.get("flat") else ""))
    if g.get("judge_verdicts"):
        lines += [f"  - {v['text']}" for v in g["judge_verdicts"]]
    return "\n".join(lines)
