"""Self-Ask generation with and without the shared-prefix cache (engine/prefix_generate.py).

    python bench/bench_generate.py                 # 8 StrategyQA questions, 3 alternated runs each
    python bench/bench_generate.py --rows 16 --reps 5

Runs the library's Self-Ask template (templates_library/strategyqa_selfask.yaml: an instruction
and worked decompositions, then the question) through `run_selfask_records` on the default
model, in one process, alternating `prefix_reuse=False` / `True`, and prints the median wall
times, their ratio and the prefix tokens computed / saved. Exits non-zero if the two ever give
different chains (greedy decoding: they must be the same text).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--budget", type=int, default=48, help="tokens generated per chain at most")
    ap.add_argument("--step", type=int, default=16, help="tokens per Self-Ask round")
    args = ap.parse_args()

    from workbench.storage.data_load import load_dataset
    from workbench.core.templates import load_template
    from workbench.engine.session import get_session
    from workbench.jobs.selfask import SelfAskConfig, run_selfask_records
    from workbench.paths import library_dir

    session = get_session("default")
    t = load_template(str(library_dir() / "strategyqa_selfask.yaml"))
    rows = load_dataset("strategyqa").df.iloc[:args.rows].reset_index(drop=True)
    prompts = [t.build_context(r) for _, r in rows.iterrows()]
    cfg = SelfAskConfig(token_budget=args.budget, max_hops=3, step_tokens=args.step)
    plain_generate = session.generate

    def run(reuse: bool):
        session._gen_prefix.clear()
        session.generate = lambda *a, **kw: plain_generate(*a, prefix_reuse=reuse, **kw)
        try:
            t0 = time.perf_counter()
            recs = run_selfask_records(t, rows, prompts, session, None, None, selfask=cfg)
            return time.perf_counter() - t0, [r["trace"]["steps"] for r in recs]
        finally:
            session.generate = plain_generate

    run(True)                                   # warm-up: imports, first generate
    times = {False: [], True: []}
    ok = True
    before = dict(session.stats)
    for _ in range(args.reps):
        outs = {}
        for reuse in (False, True):
            dt, outs[reuse] = run(reuse)
            times[reuse].append(dt)
        ok &= outs[False] == outs[True]
    computed = session.stats.get("gen_prefix_tokens", 0) - before.get("gen_prefix_tokens", 0)
    saved = session.stats.get("gen_prefix_saved", 0) - before.get("gen_prefix_saved", 0)
    off, on = statistics.median(times[False]), statistics.median(times[True])
    print(f"Self-Ask, {args.rows} StrategyQA rows, budget {args.budget}, {args.step} tokens per round; "
          f"median of {args.reps} alternated runs")
    print(f"  without prefix cache: {off:.2f} s  {[round(x, 2) for x in times[False]]}")
    print(f"  with prefix cache:    {on:.2f} s  {[round(x, 2) for x in times[True]]}")
    print(f"  speed-up {off / on:.2f}x; prefix tokens computed {computed // args.reps} and not recomputed "
          f"{saved // args.reps} per run; identical chains: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
