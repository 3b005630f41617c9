"""Prompt-search benchmark: from a deliberately weak start on bbc headlines to a winner, proven
once on held-out test rows.

    python bench/bench_search.py --threads 1 --max-dev-rows 64 --first-rows 8 --test-limit 200 --shots 0,2,4 --budget-seconds 420

Start: "Text: {{ title }}\\nLabel:" with opaque verbalizers A-E (business, entertainment,
politics, sports, tech), zero-shot. The search (all five axes unless --axes says otherwise)
sees the train and dev splits only (split_seed 0). At the end the start, the winner and every
hand-written library template for bbc (templates_library/bbc_*.yaml, as written, zero-shot) are
scored on the same first --test-limit rows of the test split; the paired verdicts (exact
McNemar, paired bootstrap CI) compare the winner with the start and with the best library
template. Note: the best library template is picked *on test*, which flatters it.

Writes the numbers as JSON (--out) and prints a markdown table for BENCHMARKS.md. Runs in a
fresh WORKBENCH_HOME (a temp folder) unless one is set, so earlier evals are not reused.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LABELS = ["business", "entertainment", "politics", "sports", "tech"]


def weak_start():
    from workbench.core.templates import PromptTemplate

    return PromptTemplate(name="bbc_weak_start", dataset="bbc", input="Text: {{ title }}\nLabel:",
                          answer_choices={lab: [ch] for lab, ch in zip(LABELS, "ABCDE")},
                          description="A deliberately weak start: opaque verbalizers, plain format.")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--axes", default="verbalizer,format,instruction,demos,calibration")
    ap.add_argument("--budget-seconds", type=float, default=420)
    ap.add_argument("--budget-tokens", type=int, default=0, help="0 = no token limit")
    ap.add_argument("--max-dev-rows", type=int, default=96)
    ap.add_argument("--first-rows", type=int, default=12)
    ap.add_argument("--test-limit", type=int, default=200)
    ap.add_argument("--shots", default="0,2,4")
    ap.add_argument("--propose-instructions", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0,
                    help="torch intra-op threads (0 = torch's default). On a machine shared by many processes, "
                         "1 thread avoids the spin-waiting of oversubscribed thread pools")
    ap.add_argument("--out", default=str(ROOT / "artifacts" / "bench_search.json"))
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    if "WORKBENCH_HOME" not in os.environ:
        os.environ.setdefault("WORKBENCH_CACHE", str(Path.home() / ".cache" / "prompt-workbench"))
        os.environ["WORKBENCH_HOME"] = tempfile.mkdtemp(prefix="wb-bench-search-")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

    from dataclasses import replace

    from workbench.core.data import split_dataset
    from workbench.storage.data_load import load_dataset
    from workbench.core.templates import load_template
    from workbench.engine.session import get_session
    from workbench.jobs.compare import compare_results, evaluate_or_reuse
    from workbench.jobs.inference import EvalConfig
    from workbench.jobs.search import SearchConfig, search
    from workbench.storage.runs import RunRegistry

    t0 = time.perf_counter()
    session = get_session("default")
    session.load()
    t_load = time.perf_counter() - t0
    ds = load_dataset("bbc")
    reg = RunRegistry()
    cfg = SearchConfig(axes=[a.strip() for a in args.axes.split(",") if a.strip()],
                       budget_tokens=args.budget_tokens or None, budget_seconds=args.budget_seconds,
                       first_rows=args.first_rows, max_dev_rows=args.max_dev_rows,
                       shots=[int(x) for x in args.shots.split(",")], propose_instructions=args.propose_instructions,
                       test_limit=args.test_limit, save_winner=True)

    def progress(done, total, msg=""):
        print(f"  [{time.perf_counter() - t0:6.0f}s] {msg}", file=sys.stderr, flush=True)

    t1 = time.perf_counter()
    res = search(weak_start(), ds, session, cfg, registry=reg, progress=progress)
    t_search = time.perf_counter() - t1
    print(res.summary(), file=sys.stderr)

    # The library templates, as written, on the very same test rows.
    sp = split_dataset(ds, seed=0, dev=0.1, test=0.2)
    rows = sp.test.iloc[: args.test_limit]
    t2 = time.perf_counter()
    lib = []
    for path in sorted((ROOT / "templates_library").glob("bbc_*.yaml")):
        t = load_template(path)
        ev = EvalConfig(shots=t.fewshot.k, sampling=t.fewshot.sampling, seed=t.fewshot.seed, split="test",
                        limit=args.test_limit)
        r, _, _ = evaluate_or_reuse(t, ds, session, ev, rows=rows, pool=sp.train, registry=reg)
        lib.append((t.name, r))
    t_lib = time.perf_counter() - t2
    acc = lambda r: sum(x["correct"] for x in r.records) / len(r.records)
    best_name, best_res = max(lib, key=lambda x: acc(x[1]))
    # The winner's test eval is in the registry (the search recorded it): reuse it.
    w = res.payload["winner"]
    win_t = res.winner_template()
    win_cfg = replace(EvalConfig(), **w["config"], split="test", limit=args.test_limit)
    win_res, _, reused = evaluate_or_reuse(win_t, ds, session, win_cfg, rows=rows, pool=sp.train, registry=reg)
    vs_lib = compare_results([(f"library: {best_name}", best_res), (f"winner: {w['name']}", win_res)],
                             baseline=f"library: {best_name}")
    test = res.test
    out = {
        "settings": {"search": res.payload["settings"], "test_limit": args.test_limit},
        "start_test": test["start_accuracy"], "winner_test": test["winner_accuracy"],
        "start_dev": test["start_dev_accuracy"], "winner_dev": test["winner_dev_accuracy"],
        "dev_to_test_drop": test["dev_to_test_drop"], "verdict_vs_start": test["verdict"],
        "library": {n: acc(r) for n, r in lib}, "best_library": best_name,
        "verdict_vs_library": {k: vs_lib.verdicts[0][k] for k in ("text", "significant", "p_mcnemar", "delta_acc")},
        "winner": {"name": w["name"], "changes": w["changes"], "yaml": w["yaml"], "config": w["config"]},
        "label_words": {c: [x["word"] for x in ws] for c, ws in (res.payload.get("label_words") or {}).items()},
        "tokens": res.payload["tokens"], "search_s": round(t_search, 1), "load_s": round(t_load, 1),
        "library_eval_s": round(t_lib, 1), "candidates": len(res.payload["candidates"]),
        "budget_exhausted": bool(res.payload.get("budget_exhausted")), "run_id": res.run_id,
        "winner_test_eval_reused": reused, "load_average": os.getloadavg(), "threads": args.threads,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    pct = lambda x: f"{x * 100:.1f}"
    print("\n| template | dev acc | test acc (n=%d) |" % test["n"])
    print("|---|---|---|")
    print(f"| start (`Text:`/`Label:`, verbalizers A–E) | {pct(test['start_dev_accuracy'])} | {pct(test['start_accuracy'])} |")
    print(f"| **search winner** | {pct(test['winner_dev_accuracy'])} | **{pct(test['winner_accuracy'])}** |")
    for n, r in lib:
        print(f"| library `{n}` | – | {pct(acc(r))} |")
    print(f"\nwinner vs start: {test['verdict']['text']}")
    print(f"winner vs best library ({best_name}): {vs_lib.verdicts[0]['text']}")
    print(f"winner: {w['changes']}")
    print(f"tokens {res.payload['tokens']:,} · search {t_search:.0f} s (budget {args.budget_seconds:.0f} s) · "
          f"{len(res.payload['candidates'])} candidates · model load {t_load:.0f} s · library evals {t_lib:.0f} s · "
          f"load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
