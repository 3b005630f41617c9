"""Sensitivity studies of one template on one model: how much its accuracy moves with the format
(`format_spread`: meaning-preserving format variants from `workbench.core.formats`) and with the
demonstrations (`seed_variance`: one run per demo seed), on identical rows.

    res = format_spread(template, ds, get_session("default"), EvalConfig(limit=200))
    res.accuracy["spread"], res.accuracy["std"]
    res = seed_variance(template, ds, session, EvalConfig(shots=4), seeds=[0, 1, 2, 3, 4])

Both run as RunSpec kinds ("format_spread", "seed_variance"; jobs/runner.py), so the Compare tab,
`workbench compare --spread N / --seeds S` and Python run the same job.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from workbench.core.formats import SpreadResult, format_variants
from workbench.errors import ConfigError

if TYPE_CHECKING:
    from workbench.jobs.compare import SeedVariance


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
    from workbench.jobs.compare import spread_stats
    from workbench.jobs.compare_common import evaluate_or_reuse, resolve_registry as _resolve_registry
    from workbench.jobs.compare_common import run_provenance as _provenance, stage_progress as _stage_progress
    from workbench.jobs.compare_common import store_comparison as _store
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


def seed_variance(
    template,
    dataset,
    session,
    config=None,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    *,
    registry=None,
    store: bool = True,
    progress: Callable[..., None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> "SeedVariance":
    """Score `template` once per demo seed on the same rows; report mean ± std, min, max.

    Only the demonstrations change between seeds (the test rows depend on `split_seed`, not on
    `seed`), so the spread is the few-shot sensitivity of Zhao et al. 2021 / Lu et al. 2022."""
    from workbench.core.config import EvalConfig
    from workbench.jobs.compare import SeedVariance, spread_stats
    from workbench.jobs.compare_common import demo_indices, evaluate_or_reuse, resolve_registry as _resolve_registry
    from workbench.jobs.compare_common import run_provenance as _provenance, stage_progress as _stage_progress
    from workbench.jobs.compare_common import store_comparison as _store
    from workbench.jobs.inference import eval_rows

    config = config or EvalConfig()
    config.validate()
    seeds = [int(s) for s in seeds]
    if config.shots <= 0:
        raise ConfigError("seed variance needs few-shot demonstrations: with shots=0 every seed gives the same prompts",
                          "set shots to 1 or more")
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise ConfigError(f"seed variance needs at least two distinct seeds, got {seeds}", "e.g. seeds 0,1,2,3,4")
    reg = _resolve_registry(registry, store)
    rows, pool = eval_rows(dataset, config)
    per_seed = []
    for i, s in enumerate(seeds):
        cfg = replace(config, seed=s)
        res, run_id, reused = evaluate_or_reuse(template, dataset, session, cfg, rows=rows, pool=pool, registry=reg,
                                                progress=_stage_progress(progress, i, len(seeds), f"seed {s}"),
                                                cancel=cancel)
        per_seed.append({"seed": s, "accuracy": res.metrics.get("accuracy", _acc(res)),
                         "macro_f1": res.metrics.get("macro_f1"),
                         "demo_indices": demo_indices(template, rows, pool, cfg),
                         "eval_run_id": run_id, "reused": reused})
    f1s = [p["macro_f1"] for p in per_seed if p["macro_f1"] is not None]
    out = SeedVariance(template={"name": template.name, "hash": template.content_hash(), "yaml": template.to_yaml()},
                       n=len(rows), seeds=seeds, per_seed=per_seed,
                       accuracy=spread_stats([p["accuracy"] for p in per_seed]), macro_f1=spread_stats(f1s),
                       provenance=_provenance(dataset, session, config))
    if reg is not None:
        out.run_id = _store(reg, out.to_dict(), f"seed variance: {template.name}", dataset, session, config,
                            metrics={"n": out.n, "mean_accuracy": out.accuracy["mean"],
                                     "std_accuracy": out.accuracy["std"], "templates": [template.name]})
    return out


def _acc(res) -> float:
    return sum(bool(r["correct"]) for r in res.records) / max(1, len(res.records))
