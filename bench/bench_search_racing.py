"""Search racing: successive halving against the sequential rule (issue 27), side by side.

    PYTHONPATH=. python bench/bench_search_racing.py --threads 1 --max-dev-rows 128 --first-rows 16 --orders 200

One real search on bbc (SmolLM2, the weak start of bench/bench_search.py, axes verbalizer, format,
instruction, zero-shot) scores EVERY candidate of every stage on every dev row (halving with
keep=0.999 keeps the whole field: the "full" race). Its per-row correctness is then the ground
truth on which both racing rules are replayed exactly, stage by stage, on the same candidates:
  * halving     core.racing.race, keep 0.5 per rung (the search's default);
  * sequential  core.racing_seq.race_sequential at --alpha (drop once settled worse).
A rule's cost is the (candidate, row) pairs it asks for (a survivor scores only its new rows);
its error is whether its winner is the full race's winner on all dev rows, and the regret (the
winner's shortfall in dev accuracy, points). Replaying over --orders random orders of the dev
rows (order 0 is the search's own) gives rates, not one anecdote. The replay is exact because
a candidate's per-row prediction does not depend on when the row is scored.

Prints a markdown table for BENCHMARKS.md and writes JSON (--out).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def stage_races(payload: dict) -> list[tuple[str, list[str]]]:
    """[(stage, race keys with the incumbent first)] as the search raced them."""
    inc = payload["start"]["key"]
    out = []
    for st in payload["stages"]:
        keys = [inc] + [k for k, c in payload["candidates"].items() if c["stage"] == st["stage"] and k != inc]
        out.append((st["stage"], keys))
        if st["changed"]:
            inc = st["winner"]
    return out


def replay(keys: list[str], table: dict[str, np.ndarray], order: np.ndarray, sizes: list[int], rule: str,
           alpha: float, keep: float = 0.5) -> dict:
    """One race of `keys` on rows in `order`: winner, (candidate, row) pairs scored, drops."""
    from workbench.core.racing import race
    from workbench.core.racing_seq import race_sequential

    seen: dict[str, int] = {}

    def rows(c, n):
        seen[c] = max(seen.get(c, 0), n)
        return table[c][order[:n]]

    def score(c, n):
        return float(rows(c, n).mean())

    if rule == "halving":
        res = race(keys, score, sizes, keep=keep, prefer=keys[0])
    else:   # "sequential" (what the search runs: the dev rows as the population) or "sequential-iid"
        pop = sizes[-1] if rule == "sequential" else None
        res = race_sequential(keys, rows, sizes, alpha=alpha, prefer=keys[0], population=pop)
    winner = res.winner if res.winner_n == sizes[-1] else None
    return {"winner": winner, "pairs": sum(seen.values()), "rungs": len(res.rungs)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--axes", default="verbalizer,format,instruction")
    ap.add_argument("--max-dev-rows", type=int, default=128)
    ap.add_argument("--first-rows", type=int, default=16)
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--orders", type=int, default=200, help="random dev-row orders replayed (order 0: the search's)")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch's default)")
    ap.add_argument("--save", default=None, help="write the full race's per-row table here (JSON)")
    ap.add_argument("--replay", default=None, help="replay a saved table instead of running the model")
    ap.add_argument("--live", action="store_true",
                    help="also run the search end to end with each rule (halving, sequential), same settings: "
                         "wall time, tokens, rows scored, the winner")
    ap.add_argument("--out", default=str(ROOT / "artifacts" / "bench_search_racing.json"))
    args = ap.parse_args()
    from workbench.core.racing import rung_sizes

    t0 = time.perf_counter()
    if args.replay and not args.live:
        saved = json.loads(Path(args.replay).read_text())
    else:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        if "WORKBENCH_HOME" not in os.environ:
            os.environ.setdefault("WORKBENCH_CACHE", str(Path.home() / ".cache" / "prompt-workbench"))
            os.environ["WORKBENCH_HOME"] = tempfile.mkdtemp(prefix="wb-bench-racing-")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        from dataclasses import replace

        from bench_search import weak_start

        from workbench.storage.data_load import load_dataset
        from workbench.engine.session import get_session
        from workbench.jobs.inference import EvalConfig
        from workbench.jobs.search import SearchConfig, search

        session = get_session("default")
        session.load()
        ds = load_dataset("bbc")
        cfg = SearchConfig(axes=[a.strip() for a in args.axes.split(",") if a.strip()], budget_tokens=None,
                           budget_seconds=None, first_rows=args.first_rows, max_dev_rows=args.max_dev_rows,
                           keep=0.999, shots=[0], evaluate_test=False, save_winner=False, alpha=args.alpha)

        def progress(done, total, msg=""):
            print(f"  [{time.perf_counter() - t0:6.0f}s] {msg}", file=sys.stderr, flush=True)

        if args.live:
            live = {}
            for rule in ("halving", "sequential"):
                t1 = time.perf_counter()
                r = search(weak_start(), ds, session, replace(cfg, keep=0.5, racing=rule), EvalConfig(), store=False,
                           progress=progress)
                p = r.payload
                live[rule] = {"s": round(time.perf_counter() - t1, 1), "tokens": p["tokens"],
                              "rows": sum(len(v) for v in p["cache"].values()), "winner": r.winner["describe"],
                              "winner_dev": r.winner["dev_accuracy"], "start_dev": p["start"]["dev_accuracy"],
                              "stages": [(st["stage"], st["winner"] and p["candidates"][st["winner"]]["change"],
                                          st["changed"]) for st in p["stages"]]}
            print("\n| rule (live search, same settings) | wall s | tokens | (candidate, row) pairs | winner dev acc | winner |")
            print("|---|---|---|---|---|---|")
            for rule, v in live.items():
                print(f"| {rule} | {v['s']:.0f} | {v['tokens']:,} | {v['rows']:,} | {v['winner_dev'] * 100:.1f} | "
                      f"{v['winner']} |")
            Path(args.out).with_suffix(".live.json").write_text(json.dumps(live, indent=1))
            if args.replay:
                return 0

        t1 = time.perf_counter()
        res = search(weak_start(), ds, session, cfg, EvalConfig(), store=False, progress=progress)
        p = res.payload
        races = stage_races(p)
        dev_index = [k for k in next(iter(p["cache"].values()))]   # the search's dev order
        table = {k: [bool(p["cache"][k][i][1]) for i in dev_index] for _, keys in races for k in keys}
        saved = {"races": races, "table": table, "n": len(dev_index), "full_s": round(time.perf_counter() - t1, 1),
                 "tokens": p["tokens"], "changes": {k: p["candidates"][k]["change"] for k in table}}
        if args.save:
            Path(args.save).write_text(json.dumps(saved))

    n = saved["n"]
    table = {k: np.asarray(v, dtype=float) for k, v in saved["table"].items()}
    sizes = rung_sizes(n, args.first_rows, 2.0)
    rng = np.random.default_rng(0)
    orders = [np.arange(n)] + [rng.permutation(n) for _ in range(args.orders - 1)]
    rules = ("halving", "sequential", "sequential-iid")
    rows_out, totals = [], {"full": 0, **{r: 0.0 for r in rules}}
    for stage, keys in saved["races"]:
        acc = {k: table[k].mean() for k in keys}
        best = max(acc.values())
        truth = sorted(keys, key=lambda k: (-acc[k], k != keys[0], keys.index(k)))[0]
        r = {"stage": stage, "candidates": len(keys), "full_pairs": len(keys) * n, "best_dev": best,
             "spread": best - min(acc.values()), "truth": truth}
        totals["full"] += len(keys) * n
        for rule in rules:
            outs = [replay(keys, table, o, sizes, rule, args.alpha) for o in orders]
            pairs = np.array([o["pairs"] for o in outs], float)
            regret = np.array([best - acc[o["winner"]] if o["winner"] else best for o in outs])
            r[rule] = {"pairs_mean": float(pairs.mean()), "pairs_order0": int(pairs[0]),
                       "winner_order0": outs[0]["winner"], "miss_rate": float(np.mean(regret > 0)),
                       "mean_regret_pts": float(regret.mean() * 100), "max_regret_pts": float(regret.max() * 100)}
            totals[rule] += float(pairs.mean())
        rows_out.append(r)
    out = {"settings": vars(args), "n_dev": n, "sizes": sizes, "stages": rows_out, "totals": totals,
           "full_search_s": saved.get("full_s"), "tokens": saved.get("tokens"), "replay_s": round(time.perf_counter() - t0, 1),
           "load_average": os.getloadavg()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))

    print(f"\ndev rows {n}, looks {sizes}, alpha {args.alpha}, {len(orders)} row orders replayed")
    print("\n(rows = (candidate, dev row) pairs scored, mean over the orders; miss = the winner is not the full "
          "race's; regret = the full-race best's dev accuracy minus the winner's, points)")
    print("\n| stage | candidates | accuracy spread (pts) | full race rows | " +
          " | ".join(f"{r} rows | {r} miss | {r} mean regret" for r in rules) + " |")
    print("|---|---|---|---|" + "---|---|---|" * len(rules))
    for r in rows_out:
        cells = " | ".join(f"{r[x]['pairs_mean']:,.0f} | {r[x]['miss_rate']:.0%} | {r[x]['mean_regret_pts']:.2f}"
                           for x in rules)
        print(f"| {r['stage']} | {r['candidates']} | {r['spread'] * 100:.1f} | {r['full_pairs']:,} | {cells} |")
    print(f"| **all** | | | {totals['full']:,} | " + " | ".join(f"**{totals[x]:,.0f}** | | " for x in rules) + "|")
    if saved.get("full_s"):
        print(f"\nfull race (every candidate on every dev row): {saved['full_s']:.0f} s, {saved['tokens']:,} tokens; "
              f"load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
