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

`race` (the batch loop) and `finish` (the result) are shared with the sequential models x templates
grid (jobs/sequential_grid.py): its columns are template @ model, each model held while its columns
score a batch; here every column is a template on the one session (`OneSession`).
"""
from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

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


@dataclass
class Column:
    """One column of a sequential comparison: a template scored by one model (`model`: the grid's
    label of that model; "" on a comparison of templates on one session)."""
    name: str
    template: object
    model: str = ""


class OneSession:
    """The models of a comparison on one session: the session, held by the caller all along."""

    def __init__(self, session):
        self.session = session
        self.labels = [""]
        self.report: dict = {}

    def hold(self, label: str):
        return contextlib.nullcontext(self.session)


@dataclass
class Race:
    """What the batch loop leaves: every column's records, each pair's sequence, the drops, the looks."""
    columns: list
    budget: int
    order: np.ndarray
    sizes: list
    level: float
    css: dict
    active: list
    dropped: dict
    records: dict
    last: dict
    looks: list
    spent: dict
    col_spent: dict
    pos: int = 0
    stop_reason: str = "budget"


def _leader(names, active, records) -> str | None:
    """The active column with the most rows right so far (all active columns scored the same rows)."""
    if not active:
        return None
    return max(active, key=lambda ci: (sum(bool(r["correct"]) for r in records[names[ci]]), -ci))


def race(columns: Sequence[Column], dataset, config, opts: SequentialOptions, rows, pool, models, *,
         progress: Callable[..., None] | None = None, cancel: Callable[[], bool] | None = None) -> Race:
    """Score the columns batch by batch on rows in a seeded random order until the verdict is settled
    (the module doc's rule). `models.labels` is the order of the models, `models.hold(label)` a context
    manager giving that model's session (OneSession: the one session). Within a batch every active
    column of one model is scored while that model is held; the model order alternates from batch to
    batch (A B | B A | A B ...), so the model scored last in a batch is still loaded when the next batch
    starts: switching models costs one load per batch with two models, not two."""
    from workbench.core.sequential import PairedCS, batch_sizes
    from workbench.jobs import usage
    from workbench.jobs.inference import evaluate, jsonable

    names = [c.name for c in columns]
    budget = len(rows)
    pairs = list(itertools.combinations(range(len(names)), 2))
    level = opts.alpha / len(pairs)        # Bonferroni over every pair: valid whoever leads when
    # The target is the accuracy difference on the task the rows are drawn from (what McNemar tests),
    # not on these very rows: a random order of an i.i.d. sample is i.i.d., so the i.i.d. sequence
    # holds at every row count up to the budget and, unlike the finite-population form
    # (population=budget), never calls a winner from the last rows' certainty about this sample alone.
    zero = {"tokens_forwarded": 0, "tokens_generated": 0, "requests": 0, "wall_s": 0.0}
    st = Race(columns=list(columns), budget=budget, order=np.random.default_rng(opts.order_seed).permutation(budget),
              sizes=batch_sizes(budget, opts.first_batch, opts.growth), level=level,
              css={p: PairedCS(alpha=level) for p in pairs}, active=list(range(len(names))), dropped={},
              records={nm: [] for nm in names}, last={}, looks=[], spent=dict(zero),
              col_spent={nm: dict(zero) for nm in names})
    t0 = time.perf_counter()
    for bi, size in enumerate(st.sizes):
        pos = st.pos
        batch = rows.iloc[st.order[pos:pos + size]]
        correct = {}
        labels = models.labels if bi % 2 == 0 else models.labels[::-1]
        lead = names[_leader(names, st.active, st.records)] if st.looks else None
        for ml in labels:
            mine = [ci for ci in st.active if columns[ci].model == ml]
            if not mine:
                continue
            with models.hold(ml) as session:
                for ci in mine:
                    if cancel is not None and cancel():
                        raise Cancelled()
                    nm = names[ci]
                    if progress is not None:
                        now = ""
                        # the leader's pair first (a grid has many pairs; the leader's are the ones that drop columns)
                        last = list(st.looks[-1]["pairs"].items()) if st.looks else []
                        shown = ([kv for kv in last if lead in kv[0].split("|", 1)] or last)[:1]
                        for pair, (lo, hi) in shown:   # the interval so far: the progress line shows it narrowing
                            a, b = pair.split("|", 1)
                            now = f" · {b} − {a} in [{lo * 100:+.1f}, {hi * 100:+.1f}] pts"
                        left = f" · {len(st.active)} of {len(names)} columns left" if len(st.active) < len(names) else ""
                        progress(pos, budget, f"rows {pos + 1}-{pos + size} of {budget} · {nm}{now}{left}")
                    u0 = usage.snapshot(session)
                    res = evaluate(columns[ci].template, dataset, session, config, rows=batch, pool=pool, cancel=cancel)
                    u = usage.since(u0, session)
                    tf = res.timings.get("tokens_forwarded")
                    if res.timings.get("tokens_approx") or not u["tokens_forwarded"]:
                        u["tokens_forwarded"] = int(tf or 0)
                    st.col_spent[nm] = {k: st.col_spent[nm][k] + u[k] for k in zero}
                    got = [r["index"] for r in res.records]
                    if got != [jsonable(i) for i in batch.index]:
                        raise DataError(f"column {nm!r} was scored on other rows than planned",
                                        "this is a bug: please report it with the comparison settings")
                    st.records[nm] += res.records
                    st.last[nm] = res
                    correct[ci] = np.array([float(bool(r["correct"])) for r in res.records])
        st.pos = pos = pos + size
        for (i, j), cs in st.css.items():
            if i in correct and j in correct:
                cs.update(correct[j] - correct[i])
        # drop every column some other active column is settled better than (the leader or any other:
        # a column settled worse than any column cannot be the best one)
        leader = _leader(names, st.active, st.records)
        for (i, j), cs in st.css.items():
            if i in st.active and j in st.active and cs.n == pos:
                dec = cs.decision(opts.margin)
                loser, winner = (j, i) if dec == "A" else (i, j) if dec == "B" else (None, None)
                if loser is not None and names[loser] not in st.dropped:
                    st.dropped[names[loser]] = {"after_rows": pos, "worse_than": names[winner],
                                                "leader": names[leader]}
        st.active = [ci for ci in st.active if names[ci] not in st.dropped]
        st.looks.append({"rows": pos, "active": [names[c] for c in st.active],
                         "pairs": {f"{names[i]}|{names[j]}": list(cs.interval()) for (i, j), cs in st.css.items()
                                   if cs.n == pos}})
        if len(st.active) == 1:
            st.stop_reason = "winner"
            break
        if opts.margin > 0 and all(st.css[(i, j)].decision(opts.margin) == "equivalent"
                                   for i, j in itertools.combinations(st.active, 2)):
            st.stop_reason = "equivalent"
            break
    for nm in names:
        for k in zero:
            st.spent[k] += st.col_spent[nm][k]
    st.spent["wall_s"] = round(time.perf_counter() - t0, 3)
    if progress is not None:
        progress(budget, budget, "statistics")
    return st


def finish(st: Race, dataset, rows, config, opts: SequentialOptions, *, baseline: str | None,
           models_report: dict | None = None):
    """The ComparisonResult of a race: fixed-n statistics on the rows every column scored (descriptive:
    after optional stopping their p-values are not valid), with the sequential verdicts in their place
    and `settings["sequential"]`: the rule, every look, when and why each column stopped, the spend
    against the full run's."""
    from workbench.jobs import usage
    from workbench.jobs.compare_common import row_texts
    from workbench.jobs.compare_result import compare_results

    names = [c.name for c in st.columns]
    templates = [c.template for c in st.columns]
    budget = st.budget
    # every column scored a prefix of the same row order, so the shortest prefix is shared by all
    n_common = min(len(st.records[nm]) for nm in names)
    results = []
    for nm in names:
        d = st.last[nm].to_dict()
        d["records"] = st.records[nm][:n_common]
        results.append((nm, d))
    texts_rows = rows.iloc[st.order[:n_common]]
    cmp = compare_results(results, baseline=baseline if baseline in names else None,
                          texts=row_texts(dataset, texts_rows, templates), alpha=opts.alpha, n_boot=200)
    conf = f"{round((1 - opts.alpha) * 100, 1):g}%"
    seq_pairs = []
    for (i, j), cs in st.css.items():
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

    # What it spent, and what scoring every row with every column would have spent: each column at its
    # own rate (in a grid the models' rates differ), plus one load per model where loads were timed.
    cols_rows = sum(len(st.records[nm]) for nm in names)
    full = {k: 0.0 for k in st.spent}
    for nm in names:
        scale = budget / max(1, len(st.records[nm]))
        for k in full:
            full[k] += st.col_spent[nm][k] * scale
    full["wall_s"] += sum((models_report or {}).get("first_load_s", {}).values())
    full = {k: (round(v, 3) if k == "wall_s" else int(round(v))) for k, v in full.items()}
    why = {"winner": f"{names[st.active[0]]} settled best" if st.active else "settled",
           "equivalent": f"all columns left settled equivalent within ±{opts.margin * 100:g} pts",
           "budget": "the row budget was spent before the verdict settled"}[st.stop_reason]
    cols = {}
    for ci, c in enumerate(st.columns):
        d = st.dropped.get(c.name)
        if d is not None:
            stop = f"dropped after {d['after_rows']} rows: settled worse than {d['worse_than']}"
        elif st.stop_reason == "winner":
            stop = f"settled best after {st.pos} rows"
        elif st.stop_reason == "equivalent":
            stop = f"settled equivalent to the columns left after {st.pos} rows"
        else:
            stop = f"still in when the budget of {budget} rows was spent"
        cols[c.name] = {"model": c.model or None, "rows": len(st.records[c.name]), "stopped": stop,
                        "spent": st.col_spent[c.name],
                        "cost": usage.cost(st.col_spent[c.name], opts.price_per_mtok)}
    seq = {**asdict(opts), "method": "betting confidence sequence (Waudby-Smith & Ramdas 2024, aGRAPA), "
           "Bonferroni over pairs", "alpha_per_pair": st.level,
           "budget_rows": budget, "rows_scored": st.pos, "column_rows": cols_rows, "full_column_rows": budget * len(names),
           "batches": st.sizes[:len(st.looks)], "stop_reason": st.stop_reason,
           "stopped": f"stopped after {st.pos} of {budget} rows: {why}",
           "dropped": st.dropped, "columns": cols, "looks": st.looks, "pairs": seq_pairs,
           "spent": st.spent, "full_run_estimate": full,
           "cost": usage.cost(st.spent, opts.price_per_mtok),
           "full_run_cost": usage.cost(full, opts.price_per_mtok)}
    if models_report:
        seq["models"] = models_report
    cmp.settings.update({"alpha": opts.alpha, "holm": False, "sequential": seq})
    cmp.inputs = {"identical": True, "n": n_common, "order_seed": opts.order_seed, "budget_rows": budget,
                  "row_indices_hash": cmp.inputs.get("row_indices_hash"),
                  "shots": config.shots, "sampling": config.sampling, "seed": config.seed}
    for t_info, c in zip(cmp.templates, st.columns):
        t_info.update(hash=c.template.content_hash(), yaml=c.template.to_yaml())
    return cmp


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
    from workbench.jobs.compare_common import paired_setup, run_provenance, store_comparison

    opts = opts or SequentialOptions()
    opts.validate()
    config, names, reg, rows, pool, demos = paired_setup(templates, dataset, config, baseline, registry, store)
    columns = [Column(nm, t) for nm, t in zip(names, templates)]
    st = race(columns, dataset, config, opts, rows, pool, OneSession(session), progress=progress, cancel=cancel)
    cmp = finish(st, dataset, rows, config, opts, baseline=baseline)
    cmp.inputs["demo_indices"] = demos[names[0]]
    cmp.provenance = run_provenance(dataset, session, config)
    if reg is not None:
        cmp.run_id = store_comparison(reg, cmp.to_dict(), name or "sequential compare: " + " vs ".join(names),
                                      dataset, session, config,
                                      metrics={"n": cmp.n, "reference": cmp.reference, "best": cmp.leaderboard[0]["name"],
                                               "best_accuracy": cmp.leaderboard[0]["accuracy"], "templates": names,
                                               "sequential": True, "rows_scored": st.pos, "budget_rows": st.budget})
    return cmp


def format_sequential(seq: dict) -> str:
    """The stop, the drops and the spend of a sequential comparison, as plain lines."""
    lines = [f"sequential: {seq['stopped']} (alpha {seq['alpha']:g}"
             + (f", margin ±{seq['margin'] * 100:g} pts" if seq.get("margin") else "") + ")"]
    cols = seq.get("columns")
    if cols:   # when and why each column stopped, on how many rows
        for nm, c in cols.items():
            lines.append(f"  {nm}: {c['rows']} of {seq['budget_rows']} rows, {c['stopped']}")
    else:      # a run stored before per-column reports
        for nm, d in (seq.get("dropped") or {}).items():
            lines.append(f"  dropped {nm} after {d['after_rows']} rows: settled worse than {d['worse_than']}")
    s, f = seq["spent"], seq["full_run_estimate"]
    cost = ""
    if seq.get("cost") is not None:
        cost = f", cost {seq['cost']:.4g} (full run about {seq['full_run_cost']:.4g})"
    if seq.get("column_rows") and seq.get("full_column_rows"):
        lines.append(f"  scored {seq['column_rows']:,} of {seq['full_column_rows']:,} column-rows "
                     f"({seq['column_rows'] / seq['full_column_rows']:.0%} of the full-data run)")
    lines.append(f"  spent {s['tokens_forwarded']:,} tokens forwarded, {s['tokens_generated']:,} generated, "
                 f"{s['requests']} requests, {s['wall_s']:.1f} s{cost}; every row would have taken about "
                 f"{f['tokens_forwarded']:,} tokens forwarded and {f['wall_s']:.1f} s")
    m = seq.get("models")
    if m:
        lines.append(f"  models {m['mode']} ({m['why']}): {m['switches']} model switches, "
                     f"{m['hold_s']:.1f} s opening models")
    return "\n".join(lines)
