"""A comparison that stops when it is settled: rows in a seeded random order, growing batches, an
anytime-valid verdict after every batch (core/sequential.py), columns dropped once settled worse.

    opts = SequentialOptions(alpha=0.05, margin=0.01)
    res = compare_sequential([t_a, t_b], dataset, session, EvalConfig(limit=1000), opts)
    res.settings["sequential"]["stopped"]     # "A settled better than B after 96 of 1000 rows"
    res.verdicts[0]["text"]                   # the confidence sequence's verdict

The row budget is the rows a fixed-n comparison would score (the split, cut by `limit`). Rows
are scored in an order drawn from `order_seed`; each row gets exactly the prompt (and demos) the
full run gives it, so a row's prediction does not depend on when it was scored. Every two columns
get a confidence sequence for their accuracy difference at alpha / (number of pairs) (Bonferroni:
valid whatever column leads at any moment). After each batch:
  * a column is dropped when some other column is settled better than it (the grid of models x
    templates sheds its losers as soon as they are settled);
  * the comparison stops when one column is left, when all columns left are settled equivalent
    within the margin, or when the budget is spent (then the verdict says "not settled").
Asking for all rows (a fixed-n comparison, `sequential` off) keeps the full-data McNemar verdict.
"""
from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict

import numpy as np

from workbench.core.sequential import SequentialOptions
from workbench.errors import Cancelled, DataError


def pair_text(a: str, b: str, cs, margin: float, conf: str, budget: int) -> tuple[str, bool]:
    """(sentence, settled as a winner) for B against A from their confidence sequence."""
    lo, hi = cs.interval()
    dec = cs.decision(margin)
    e = f"e={cs.e_value:.3g}" if cs.e_value < 1e6 else "e>1e6"
    where = f"after {cs.n} of {budget} rows"
    if dec in ("A", "B"):
        win, lose = (b, a) if dec == "B" else (a, b)
        d_lo, d_hi = (lo, hi) if dec == "B" else (-hi, -lo)
        est = cs.estimate if dec == "B" else -cs.estimate
        return (f"{win} beats {lose} by {est * 100:.1f} pts accuracy ({conf} confidence sequence "
                f"[{d_lo * 100:+.1f}, {d_hi * 100:+.1f}] {where}, always-valid p={cs.p_value:.3g}, {e})"), True
    detail = (f"{b} − {a}: {cs.estimate * 100:+.1f} pts, {conf} confidence sequence [{lo * 100:+.1f}, "
              f"{hi * 100:+.1f}] {where}, always-valid p={cs.p_value:.3g}")
    if dec == "equivalent":
        return f"{a} and {b} are equivalent within ±{margin * 100:g} pts ({detail})", False
    return f"not settled between {a} and {b} ({detail})", False


def compare_sequential(
    templates: Sequence,
    dataset,
    session,
    config=None,
    opts: SequentialOptions | None = None,
    *,
    baseline: str | None = None,
    registry=None,
    store: bool = True,
    name: str | None = None,
    progress: Callable[..., None] | None = None,
    cancel: Callable[[], bool] | None = None,
):
    """Score the templates batch by batch on identical rows until the verdict is settled (module doc).
    Returns a ComparisonResult over the rows scored; `settings["sequential"]` holds the rule, every
    look (each pair's interval), the drops, why it stopped, and what it spent against the full run."""
    from workbench.core.sequential import PairedCS, batch_sizes
    from workbench.jobs import usage
    from workbench.jobs.compare import _provenance, _row_texts, _store, compare_results, paired_setup
    from workbench.jobs.inference import EvalResult, evaluate, jsonable

    opts = opts or SequentialOptions()
    opts.validate()
    config, names, reg, rows, pool, demos = paired_setup(templates, dataset, config, baseline, registry, store)
    budget = len(rows)
    order = np.random.default_rng(opts.order_seed).permutation(budget)
    pairs = list(itertools.combinations(range(len(names)), 2))
    level = opts.alpha / len(pairs)        # Bonferroni over every pair: valid whoever leads when
    # The target is the accuracy difference on the task the rows are drawn from (what McNemar tests),
    # not on these very rows: a random order of an i.i.d. sample is i.i.d., so the i.i.d. sequence
    # holds at every row count up to the budget and, unlike the finite-population form
    # (population=budget), never calls a winner from the last rows' certainty about this sample alone.
    css = {p: PairedCS(alpha=level) for p in pairs}
    active = list(range(len(names)))
    dropped: dict[str, dict] = {}
    records: dict[str, list] = {nm: [] for nm in names}
    last: dict[str, EvalResult] = {}
    looks: list[dict] = []
    spent = {"tokens_forwarded": 0, "tokens_generated": 0, "requests": 0, "wall_s": 0.0}
    per_col_row = []                        # usage per (column, row), to price the full run
    stop_reason = "budget"
    t0 = time.perf_counter()
    pos = 0
    sizes = batch_sizes(budget, opts.first_batch, opts.growth)
    for bi, size in enumerate(sizes):
        batch = rows.iloc[order[pos:pos + size]]
        correct = {}
        for ci in active:
            if cancel is not None and cancel():
                raise Cancelled()
            nm = names[ci]
            if progress is not None:
                now = ""
                shown = list(looks[-1]["pairs"].items())[:1] if looks else []
                for pair, (lo, hi) in shown:   # the interval so far: the progress line shows it narrowing
                    a, b = pair.split("|", 1)
                    now = f" · {b} − {a} in [{lo * 100:+.1f}, {hi * 100:+.1f}] pts"
                progress(pos, budget, f"rows {pos + 1}-{pos + size} of {budget} · {nm}{now}")
            u0 = usage.snapshot(session)
            res = evaluate(templates[ci], dataset, session, config, rows=batch, pool=pool, cancel=cancel)
            u = usage.since(u0, session)
            tf = res.timings.get("tokens_forwarded")
            if res.timings.get("tokens_approx") or not u["tokens_forwarded"]:
                u["tokens_forwarded"] = int(tf or 0)
            spent = {k: spent[k] + u[k] for k in spent}
            per_col_row.append(u["tokens_forwarded"] + u["tokens_generated"])
            got = [r["index"] for r in res.records]
            if got != [jsonable(i) for i in batch.index]:
                raise DataError(f"template {nm!r} was scored on other rows than planned",
                                "this is a bug: please report it with the comparison settings")
            records[nm] += res.records
            last[nm] = res
            correct[ci] = np.array([float(bool(r["correct"])) for r in res.records])
        pos += size
        for (i, j), cs in css.items():
            if i in correct and j in correct:
                cs.update(correct[j] - correct[i])
        # drop every column some other active column is settled better than
        for (i, j), cs in css.items():
            if i in active and j in active and cs.n == pos:
                dec = cs.decision(opts.margin)
                loser, winner = (j, i) if dec == "A" else (i, j) if dec == "B" else (None, None)
                if loser is not None and names[loser] not in dropped:
                    dropped[names[loser]] = {"after_rows": pos, "worse_than": names[winner]}
        active = [ci for ci in active if names[ci] not in dropped]
        looks.append({"rows": pos, "active": [names[c] for c in active],
                      "pairs": {f"{names[i]}|{names[j]}": list(cs.interval()) for (i, j), cs in css.items()
                                if cs.n == pos}})
        if len(active) == 1:
            stop_reason = "winner"
            break
        if opts.margin > 0 and all(css[(i, j)].decision(opts.margin) == "equivalent"
                                   for i, j in itertools.combinations(active, 2)):
            stop_reason = "equivalent"
            break
    spent["wall_s"] = round(time.perf_counter() - t0, 3)
    if progress is not None:
        progress(budget, budget, "statistics")

    # Fixed-n statistics on the rows scored by every column still in at the end (descriptive: after
    # optional stopping their p-values are not valid), then the sequential verdicts replace the words.
    # every column scored a prefix of the same row order, so the shortest prefix is shared by all
    n_common = min(len(records[nm]) for nm in names)
    kept = names
    results = []
    for nm in kept:
        d = last[nm].to_dict()
        d["records"] = records[nm][:n_common]
        results.append((nm, d))
    texts_rows = rows.iloc[order[:n_common]]
    cmp = compare_results(results, baseline=baseline if baseline in kept else None,
                          texts=_row_texts(dataset, texts_rows, templates), alpha=opts.alpha, n_boot=200)
    conf = f"{round((1 - opts.alpha) * 100, 1):g}%"
    seq_pairs = []
    for (i, j), cs in css.items():
        text, won = pair_text(names[i], names[j], cs, opts.margin, conf, budget)
        lo, hi = cs.interval()
        seq_pairs.append({"a": names[i], "b": names[j], "n": cs.n, "decision": cs.decision(opts.margin),
                          "delta_acc": cs.estimate, "cs": [lo, hi], "e_value": cs.e_value, "p_always": cs.p_value,
                          "significant": won, "text": text, "history": cs.history})
    by_pair = {frozenset((p["a"], p["b"])): p for p in seq_pairs}
    for v in cmp.verdicts:
        p = by_pair[frozenset((v["a"], v["b"]))]
        v["p_mcnemar_descriptive"] = v.pop("p_mcnemar")
        v.update({"p_used": p["p_always"], "significant": p["significant"], "text": p["text"],
                  "delta_acc_ci": p["cs"], "decision": p["decision"], "p_holm": None, "sequential": True})
        if p["a"] != v["a"]:   # the pair was measured the other way round
            v["delta_acc_ci"] = [-p["cs"][1], -p["cs"][0]]
    for r in cmp.leaderboard:
        r["p"] = next((v["p_used"] for v in cmp.verdicts if v["b"] == r["name"]), None)

    # What it spent, and what scoring every row with every column would have spent (same rate).
    cols_rows = sum(len(records[nm]) for nm in names)
    full_rows = budget * len(names)
    scale = full_rows / max(1, cols_rows)
    full = {k: (round(spent[k] * scale, 3) if k == "wall_s" else int(round(spent[k] * scale))) for k in spent}
    why = {"winner": f"{names[active[0]]} settled best" if active else "settled",
           "equivalent": f"all columns left settled equivalent within ±{opts.margin * 100:g} pts",
           "budget": "the row budget was spent before the verdict settled"}[stop_reason]
    cmp.settings.update({
        "alpha": opts.alpha, "holm": False,
        "sequential": {**asdict(opts), "method": "betting confidence sequence (Waudby-Smith & Ramdas 2024, aGRAPA), "
                       "Bonferroni over pairs", "alpha_per_pair": level,
                       "budget_rows": budget, "rows_scored": pos, "column_rows": cols_rows,
                       "batches": sizes[:len(looks)], "stop_reason": stop_reason,
                       "stopped": f"stopped after {pos} of {budget} rows: {why}",
                       "dropped": dropped, "looks": looks, "pairs": seq_pairs,
                       "spent": spent, "full_run_estimate": full,
                       "cost": usage.cost(spent, opts.price_per_mtok),
                       "full_run_cost": usage.cost(full, opts.price_per_mtok)}})
    cmp.inputs = {"identical": True, "n": n_common, "order_seed": opts.order_seed, "budget_rows": budget,
                  "row_indices_hash": cmp.inputs.get("row_indices_hash"), "demo_indices": demos[names[0]],
                  "shots": config.shots, "sampling": config.sampling, "seed": config.seed}
    for t_info, nm in zip(cmp.templates, kept):
        t = templates[names.index(nm)]
        t_info.update(hash=t.content_hash(), yaml=t.to_yaml())
    cmp.provenance = _provenance(dataset, session, config)
    if reg is not None:
        cmp.run_id = _store(reg, cmp.to_dict(), name or "sequential compare: " + " vs ".join(names), dataset,
                            session, config, metrics={"n": cmp.n, "reference": cmp.reference,
                                                      "best": cmp.leaderboard[0]["name"],
                                                      "best_accuracy": cmp.leaderboard[0]["accuracy"],
                                                      "templates": names, "sequential": True,
                                                      "rows_scored": pos, "budget_rows": budget})
    return cmp


def format_sequential(seq: dict) -> str:
    """The stop, the drops and the spend of a sequential comparison, as plain lines."""
    lines = [f"sequential: {seq['stopped']} (alpha {seq['alpha']:g}"
             + (f", margin ±{seq['margin'] * 100:g} pts" if seq.get("margin") else "") + ")"]
    for nm, d in (seq.get("dropped") or {}).items():
        lines.append(f"  dropped {nm} after {d['after_rows']} rows: settled worse than {d['worse_than']}")
    s, f = seq["spent"], seq["full_run_estimate"]
    cost = ""
    if seq.get("cost") is not None:
        cost = f", cost {seq['cost']:.4g} (full run about {seq['full_run_cost']:.4g})"
    lines.append(f"  spent {s['tokens_forwarded']:,} tokens forwarded, {s['tokens_generated']:,} generated, "
                 f"{s['requests']} requests, {s['wall_s']:.1f} s{cost}; every row would have taken about "
                 f"{f['tokens_forwarded']:,} tokens forwarded and {f['wall_s']:.1f} s")
    return "\n".join(lines)
