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
    args = ap.parse_args()

    from workbench.core.data import load_dataset
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


if __name__ == "__main__":
    main()
