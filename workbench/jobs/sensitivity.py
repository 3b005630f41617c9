"""Format-spread job: score a template and its meaning-preserving format variants
(`workbench.core.formats`) on identical rows and demos, and report the spread.

    res = format_spread(template, ds, get_session("default"), EvalConfig(limit=200))
    res.accuracy["spread"], res.accuracy["std"]
"""
from __future__ import annotations

import time
from collections.abc import Callable

from workbench.core.formats import SpreadResult, format_variants


def format_spread(
    template,
    dataset,
    session,
    config=None,
    *,
    n_variants: int = 8,
    seed: int = 0,
    registry=None,
    store: bool = True,
    progress: Callable[..., None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> SpreadResult:
    """Score the original and up to `n_variants` format variants on identical rows and demos."""
    from workbench.core import stats
    from workbench.jobs.compare import (
        _provenance,
        _resolve_registry,
        _stage_progress,
        _store,
        evaluate_or_reuse,
        spread_stats,
    )
    from workbench.jobs.inference import EvalConfig, eval_rows

    config = config or EvalConfig()
    config.validate()
    rows, pool = eval_rows(dataset, config)
    sample = rows.iloc[0].to_dict()
    variants = format_variants(template, n_variants, seed, columns=list(dataset.df.columns),
                               labels=dataset.labels or None, sample_row=sample)
    reg = _resolve_registry(registry, store)
    todo = [template] + variants
    out, results = [], []
    for i, t in enumerate(todo):
        res, run_id, reused = evaluate_or_reuse(t, dataset, session, config, rows=rows, pool=pool, registry=reg,
                                                progress=_stage_progress(progress, i, len(todo), t.name), cancel=cancel)
        k = sum(bool(r["correct"]) for r in res.records)
        lo, hi = stats.wilson_interval(k, len(res.records))
        out.append({"name": t.name, "change": (t.metadata or {}).get("format_variant", "original") if i else "original",
                    "yaml": t.to_yaml(), "hash": t.content_hash(), "accuracy": k / len(res.records),
                    "ci_low": lo, "ci_high": hi, "macro_f1": res.metrics.get("macro_f1"),
                    "example_prompt": res.records[0].get("prompt", "")[-400:],
                    "eval_run_id": run_id, "reused": reused})
        results.append(res)
    best = max(range(len(out)), key=lambda i: out[i]["accuracy"])
    worst = min(range(len(out)), key=lambda i: out[i]["accuracy"])
    bw = {}
    if best != worst:
        ca = [r["correct"] for r in results[worst].records]
        cb = [r["correct"] for r in results[best].records]
        b = sum(1 for x, y in zip(ca, cb) if x and not y)
        c = sum(1 for x, y in zip(ca, cb) if y and not x)
        p = stats.mcnemar_exact(b, c)
        n = len(ca)
        delta = (c - b) / n
        ones = ["1"] * n
        boot = stats.paired_bootstrap(ones, ["1" if x else "0" for x in ca], ["1" if x else "0" for x in cb],
                                      ["0", "1"], seed=seed)
        exact = stats.mcnemar_interval(b, c, n, 0.95)   # the verdict's interval: consistent with its p
        bw = {"best": out[best]["name"], "worst": out[worst]["name"], "only_worst": b, "only_best": c,
              "p_mcnemar": p, "delta_acc": delta, "delta_acc_ci": list(exact),
              "delta_acc_ci_bootstrap": [boot["ci_low"], boot["ci_high"]],
              # best/worst are picked after looking, so this p is optimistic; it still tells
              # whether even the extreme pair is within noise.
              "text": stats.verdict(out[worst]["name"], out[best]["name"], n, delta, exact, p,
                                    p_disagree=(b + c) / n or None)}
    res = SpreadResult(template={"name": template.name, "hash": template.content_hash(), "yaml": template.to_yaml()},
                       n=len(rows), variants=out, accuracy=spread_stats([v["accuracy"] for v in out]),
                       macro_f1=spread_stats([v["macro_f1"] for v in out if v["macro_f1"] is not None]),
                       best_vs_worst=bw, seed=seed, provenance=_provenance(dataset, session, config))
    res.provenance["created_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if reg is not None:
        res.run_id = _store(reg, res.to_dict(), f"format spread: {template.name}", dataset, session, config,
                            metrics={"n": res.n, "spread": res.accuracy["spread"], "std": res.accuracy["std"],
                                     "templates": [v["name"] for v in out]})
    return res
