"""Sequential (anytime-valid) comparison against fixed-n, on the real default model.

    PYTHONPATH=. python bench/bench_sequential.py [--limit 200] [--pairs topic:phrase,question:topic]

For each pair of library templates on bbc: the sequential comparison (`compare --sequential`,
alpha 0.05, first batch 16, growth 1.5) and the fixed-n comparison (every row, exact McNemar) on
the same row budget, side by side in one process (sequential first, so no cache favours it).
Prints rows scored, wall time, and both verdicts; the decisions must agree wherever the full-data
McNemar is significant. Sizes are kept small for a shared 2-core box (~500 tokens/s).
"""
from __future__ import annotations

import argparse
import time

LIB = "templates_library"
SHORT = {"topic": "bbc_headline_topic", "question": "bbc_headline_question", "phrase": "bbc_headline_phrase_topic",
         "first": "bbc_first_sentence", "chat": "bbc_chat_topic"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=200, help="row budget of every comparison")
    ap.add_argument("--pairs", default="topic:phrase,question:topic", help="A:B pairs of " + ", ".join(SHORT))
    ap.add_argument("--first-batch", type=int, default=16)
    ap.add_argument("--replay", metavar="CORRECT.json", default=None,
                    help="no model: replay the stopping rule on saved per-row correctness of every template "
                         "({template: [true, false, ...]} on the first --limit rows, as --save writes)")
    ap.add_argument("--save", metavar="CORRECT.json", default=None,
                    help="evaluate every library template on --limit rows and save their per-row correctness")
    args = ap.parse_args()
    if args.save:
        return save_correct(args.limit, args.save)
    if args.replay:
        return replay(args.replay, args.limit, args.first_batch)

    from workbench.storage.data_load import load_dataset
    from workbench.core.sequential import SequentialOptions
    from workbench.core.templates import load_template
    from workbench.engine.session import get_session
    from workbench.jobs.compare import compare_templates
    from workbench.jobs.inference import EvalConfig
    from workbench.jobs.sequential import compare_sequential

    s = get_session("default").load()
    ds = load_dataset("bbc")
    cfg = EvalConfig(limit=args.limit)
    rows = []
    for pair in args.pairs.split(","):
        a, b = (load_template(f"{LIB}/{SHORT[x]}.yaml") for x in pair.split(":"))
        t0 = time.perf_counter()
        seq = compare_sequential([a, b], ds, s, cfg, SequentialOptions(alpha=0.05, first_batch=args.first_batch),
                                 store=False)
        t_seq = time.perf_counter() - t0
        t0 = time.perf_counter()
        fix = compare_templates([a, b], ds, s, cfg, store=False, registry=None, n_boot=200)
        t_fix = time.perf_counter() - t0
        info = seq.settings["sequential"]
        sv, fv = info["pairs"][0], fix.verdicts[0]
        seq_win = {"A": sv["a"], "B": sv["b"]}.get(sv["decision"], "-")
        fix_win = (fix.reference if fv["delta_acc"] < 0 else fv["b"]) if fv["significant"] else "-"
        agree = "yes" if fix_win == "-" or seq_win in ("-", fix_win) else "NO"
        rows.append((pair, info["rows_scored"], args.limit, t_seq, t_fix, seq_win, fix_win, fv["p_mcnemar"],
                     fv["delta_acc"], agree))
        print(f"{pair}: {info['stopped']}\n  sequential: {sv['text']}\n  fixed-n:    {fv['text']}", flush=True)
    print("\n| pair (A:B) | rows scored, sequential | rows, fixed-n | fewer rows | wall s, sequential | wall s, fixed-n "
          "| sequential decision | full-data McNemar decision (p, Δ B−A) | agree |")
    print("|---|---|---|---|---|---|---|---|---|")
    for pair, n_seq, n_fix, t_seq, t_fix, sw, fw, p, d, agree in rows:
        print(f"| {pair} | {n_seq} | {n_fix} | {n_fix / n_seq:.1f}x | {t_seq:.0f} | {t_fix:.0f} | {sw} | "
              f"{fw} (p={p:.3g}, {d * 100:+.1f} pts) | {agree} |")


def save_correct(limit: int, path: str) -> None:
    import json

    from workbench.storage.data_load import load_dataset
    from workbench.core.templates import load_template
    from workbench.engine.session import get_session
    from workbench.jobs.inference import EvalConfig, evaluate

    s, ds = get_session("default"), load_dataset("bbc")
    out = {}
    for name in SHORT.values():
        t0 = time.perf_counter()
        r = evaluate(load_template(f"{LIB}/{name}.yaml"), ds, s, EvalConfig(limit=limit))
        out[name] = [bool(x["correct"]) for x in r.records]
        print(f"{name}: accuracy {sum(out[name]) / limit:.3f}, {time.perf_counter() - t0:.0f} s", flush=True)
    with open(path, "w") as f:
        json.dump(out, f)


def replay(path: str, limit: int, first_batch: int) -> None:
    """The sequential rule of jobs/sequential.py (same row order, batches and sequence) on saved rows."""
    import itertools
    import json

    import numpy as np

    from workbench.core import stats
    from workbench.core.sequential import PairedCS, SequentialOptions, batch_sizes

    correct = {k: np.array(v[:limit], dtype=float) for k, v in json.load(open(path)).items()}
    opts = SequentialOptions(first_batch=first_batch)
    order = np.random.default_rng(opts.order_seed).permutation(limit)
    print("| A | B | acc A | acc B | rows to decision | fewer rows | sequential decision "
          "| full-data McNemar (p) | agree |\n|---|---|---|---|---|---|---|---|---|")
    for a, b in itertools.combinations(correct, 2):
        ca, cb = correct[a][order], correct[b][order]
        cs, pos = PairedCS(alpha=opts.alpha), 0
        for size in batch_sizes(limit, opts.first_batch, opts.growth):
            cs.update(cb[pos:pos + size] - ca[pos:pos + size])
            pos += size
            if cs.decision() != "not yet":
                break
        only_a, only_b = int(((ca == 1) & (cb == 0)).sum()), int(((ca == 0) & (cb == 1)).sum())
        p = stats.mcnemar_exact(only_a, only_b)
        full = (a if only_a > only_b else b) if p < opts.alpha else "-"
        dec = {"A": a, "B": b}.get(cs.decision(), "-")
        agree = "yes" if full == "-" or dec in ("-", full) else "NO"
        print(f"| {a} | {b} | {ca.mean():.3f} | {cb.mean():.3f} | {pos} | {limit / pos:.1f}x | {dec} | "
              f"{full} ({p:.2g}) | {agree} |")


if __name__ == "__main__":
    main()
