"""Scoring speed: `workbench eval` against `lm_eval --model hf`, side by side, same task.

    python bench/bench_scoring.py                              # every case, 200 rows
    python bench/bench_scoring.py --cases phrases,sentences --limit 50 --reps 1

Cases (the rows are the bbc test split, first `--limit`):
  single     zero-shot, single-token choices (templates_library/bbc_headline_topic.yaml)
  phrases    zero-shot, multi-token phrase choices, 3-4 tokens (bbc_headline_phrase_topic.yaml)
  sentences  a HellaSwag-like task built from bbc articles: the context is the headline and the
             first sentence; the 4 choices are the true next sentence and the next sentences of
             3 other articles, each cut to 16 words (~20 tokens); see `sentence_task`
  8shot      bbc_headline_topic with 8 fixed demonstrations

For each case it writes the very same rows (and the same demonstrations, in order) as an
lm-evaluation-harness task (JSONL files + the template exported with `to_lm_eval_yaml`), runs
both tools as separate processes on the same safetensors folder, same dtype (float32), and
compares whole-process wall time and the per-example predictions. Ours runs twice: as users
get it (the built-in Llama decoder, verified against transformers for this model, see
workbench/engine/fastpath.py) and with `--no-native` (scoring through transformers), so the
table shows what each part contributes. It prints the work efficiency of our runs
(tokens_minimal / tokens_forwarded from results.json) and then measures, in this process,
(a) prefix-cache vs full-prompt log-probs, and (b) the scoring loop's achieved FLOP/s as a
fraction of a large fp32 `torch.matmul` on the same machine.

Exits non-zero if any predictions differ.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _run(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-6000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"command failed: {' '.join(cmd)}")
    return wall


CASES = {   # name -> (template, data, shots); "sentences" is written by sentence_task()
    "single": ("bbc_headline_topic.yaml", "bbc", 0),
    "phrases": ("bbc_headline_phrase_topic.yaml", "bbc", 0),
    "sentences": (None, None, 0),
    "8shot": ("bbc_headline_topic.yaml", "bbc", 8),
}

SENTENCE_TEMPLATE = """name: bbc_next_sentence
description: HellaSwag-like - pick the article's true next sentence among 4 (3 from other articles).
input: "{{ ctx }}"
target: "{{ label }}"
choices_expr: "[ending0, ending1, ending2, ending3]"
label_column: label
"""


def sentence_task(work: Path, n: int = 600, words: int = 16, seed: int = 0) -> tuple[str, str]:
    """Write the HellaSwag-like task's CSV and template; return (template path, data path)."""
    import random
    import re

    import pandas as pd

    from workbench.storage.data_load import load_dataset

    def sentences(text: str) -> list[str]:
        return [x for x in re.split(r"(?<=[.!?])\s+", " ".join(str(text).split())) if len(x.split()) >= 6]

    df = load_dataset("bbc").df
    firsts = [sentences(t) for t in df["text"]]
    ok = [i for i, ss in enumerate(firsts) if len(ss) >= 2]
    rng = random.Random(seed)
    picked = sorted(rng.sample(ok, min(n, len(ok))))
    cut = lambda s: " ".join(s.split()[:words])   # noqa: E731
    rows = []
    for i in picked:
        others = rng.sample([j for j in ok if j != i], 3)
        endings = [cut(firsts[j][1]) for j in others]
        gold = rng.randrange(4)
        endings.insert(gold, cut(firsts[i][1]))
        rows.append({"id": df["id"].iloc[i], "ctx": f"{df['title'].iloc[i]}. {firsts[i][0]}",
                     **{f"ending{k}": e for k, e in enumerate(endings)}, "label": str(gold)})
    work.mkdir(parents=True, exist_ok=True)
    data = work / "bbc_next_sentence.csv"
    pd.DataFrame(rows).to_csv(data, index=False)
    tpl = work / "bbc_next_sentence.yaml"
    tpl.write_text(SENTENCE_TEMPLATE)
    return str(tpl), str(data)


def case_inputs(name: str, work: Path) -> tuple[str, str, int]:
    """(template path, data spec, shots) of a case."""
    template, data, shots = CASES[name]
    if name == "sentences":
        template, data = sentence_task(work / "data")
    else:
        template = str(ROOT / "templates_library" / template)
    return template, data, shots


def prepare(template_path: str, data: str, limit: int, shots: int, seed: int, work: Path):
    """Write the rows and demos our eval will use, and the equivalent lm-eval task."""
    from workbench.storage.data_load import load_dataset
    from workbench.jobs.inference import EvalConfig, demos_for, eval_rows
    from workbench.core.templates import load_template, to_lm_eval_yaml

    tpl = load_template(template_path)
    ds = load_dataset(data)
    cfg = EvalConfig(shots=shots, seed=seed, limit=limit)
    rows, pool = eval_rows(ds, cfg)
    demos = demos_for(tpl, pool, cfg, None, tpl.label_column)
    work.mkdir(parents=True, exist_ok=True)
    cols = list(ds.df.columns)
    with open(work / "test.jsonl", "w") as f:
        for _, r in rows.iterrows():
            f.write(json.dumps({c: r[c] for c in cols}) + "\n")
    files = {"test": str(work / "test.jsonl")}
    if shots:
        with open(work / "fewshot.jsonl", "w") as f:
            for r in demos:
                f.write(json.dumps({c: r[c] for c in cols}) + "\n")
        files["fewshot"] = str(work / "fewshot.jsonl")
    tpl.fewshot.k = shots
    slug = re.sub(r"\W+", "_", tpl.name)
    task = f"wb_bench_{slug}_{shots}shot"
    (work / f"{task}.yaml").write_text(to_lm_eval_yaml(tpl, dataset_path="json", data_files=files,
                                                       fewshot_split="fewshot" if shots else None, task_name=task))
    return tpl, task, rows


def choice_lists(tpl, rows) -> list[list[str]]:
    """Each row's choices in lm-eval's order (the labels, or the row's own choices)."""
    return [[label for label, _ in tpl.choices_for(row)] for _, row in rows.iterrows()]


def lmeval_predictions(out_dir: Path, task: str) -> tuple[list[int], list[list[float]]]:
    files = glob.glob(str(out_dir / "**" / f"samples_{task}_*.jsonl"), recursive=True)
    if not files:
        raise SystemExit(f"no lm-eval samples found under {out_dir}")
    samples = [json.loads(line) for line in open(sorted(files)[-1])]
    samples.sort(key=lambda s: s["doc_id"])
    lls = [[float(r[0]) for r in s["filtered_resps"]] for s in samples]
    preds = [max(range(len(x)), key=lambda i: (x[i], -i)) for x in lls]   # first of ties, like numpy
    return preds, lls


def matmul_peak(n: int = 2048, reps: int = 10) -> float:
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)
    t0 = time.perf_counter()
    for _ in range(reps):
        torch.matmul(a, b)
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def flops_fraction(template_path: str, data: str, limit: int, shots: int, seed: int) -> dict:
    """Achieved model FLOP/s of the scoring loop / large-matmul FLOP/s, in this process."""
    from workbench.storage.data_load import load_dataset
    from workbench.jobs.inference import EvalConfig, evaluate
    from workbench.engine.session import get_session
    from workbench.core.templates import load_template

    s = get_session("default")
    tpl = load_template(template_path)
    ds = load_dataset(data)
    cfg = EvalConfig(shots=shots, seed=seed, limit=limit)
    evaluate(tpl, ds, s, EvalConfig(shots=shots, seed=seed, limit=4))      # warm-up
    s.stats.update(tokens=0, padded=0, head_positions=0, forward_s=0.0, tokens_forwarded=0, tokens_minimal=0)
    res_cached = evaluate(tpl, ds, s, cfg)
    st = dict(s.stats)
    cfgm = s.model.config
    n_embed = cfgm.vocab_size * cfgm.hidden_size
    body = sum(p.numel() for p in s.model.parameters()) - n_embed      # tied head: embeddings counted once
    # 2 FLOPs per weight per token in the decoder body, plus the LM head at the needed positions.
    flops = 2 * body * st["padded"] + 2 * n_embed * st["head_positions"]
    achieved = flops / st["forward_s"]
    peak = matmul_peak()
    out = {"tokens": st["tokens"], "padded_tokens": st["padded"], "forward_s": round(st["forward_s"], 2),
           "tokens_per_s": round(st["tokens"] / st["forward_s"], 1), "achieved_gflops": round(achieved / 1e9, 1),
           "matmul_gflops": round(peak / 1e9, 1), "fraction_of_matmul": round(achieved / peak, 3),
           "work_efficiency": round(st["tokens_minimal"] / max(1, st["tokens_forwarded"]), 3)}
    if shots:
        res_full = evaluate(tpl, ds, s, EvalConfig(shots=shots, seed=seed, limit=limit, prefix_cache=False))
        diffs = [abs(a["logprobs"][k] - b["logprobs"][k]) for a, b in zip(res_cached.records, res_full.records)
                 for k in a["logprobs"]]
        out["prefix_cache_max_abs_diff"] = max(diffs)
        out["prefix_cache_same_preds"] = [r["pred"] for r in res_cached.records] == [r["pred"] for r in res_full.records]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}")
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--lmeval-batch", default="32", help="lm-eval --batch_size (a number, or 'auto')")
    ap.add_argument("--work", default="/tmp/wb_bench")
    ap.add_argument("--reps", type=int, default=3, help="runs of each tool, alternated; the median wall time is reported")
    ap.add_argument("--no-flops", action="store_true", help="skip the in-process FLOP/s measurement")
    ap.add_argument("--no-tf", action="store_true", help="skip the `--no-native` (transformers) runs of ours")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--bf16", action="store_true", help="also time `workbench eval --dtype bfloat16` and report "
                                                       "its accuracy change and prediction agreement with fp32")
    args = ap.parse_args()
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        raise SystemExit(f"unknown case(s) {unknown}; choose from {', '.join(CASES)}")

    from workbench.engine.models import resolve_model

    model_path = resolve_model("default").path
    from workbench.engine.session import get_session

    # Load once here so the fast-path check has run (it runs on a model's first load) and the
    # timed runs below all see the same, warm state.
    if args.bf16:
        print(f"bf16 scoring backend: {get_session('default', dtype='bfloat16').backend}")
    backend = get_session("default").backend
    print(f"workbench scoring backend for the default model: {backend}")
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               TRANSFORMERS_VERBOSITY="error")
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    results, inputs, ok = [], {}, True
    for case in cases:
        template, data, shots = inputs[case] = case_inputs(case, work)
        w = work / case
        tpl, task, rows = prepare(template, data, args.limit, shots, args.seed, w)
        ours_json = w / "ours.json"

        def ours_cmd_for(out: Path, *extra: str) -> list[str]:
            return [str(BIN / "workbench"), "eval", "--model", "default", "--data", data, "--template", template,
                    "--limit", str(args.limit), "--shots", str(shots), "--seed", str(args.seed),
                    "--out", str(out), "--no-registry", *extra]

        ours_cmd = ours_cmd_for(ours_json)
        theirs_cmd = [str(BIN / "lm_eval"), "--model", "hf", "--model_args", f"pretrained={model_path},dtype=float32",
                      "--tasks", task, "--include_path", str(w), "--batch_size", args.lmeval_batch, "--device", "cpu",
                      "--log_samples", "--output_path", str(w / "lmeval")]
        hf_json = w / "ours_transformers.json"
        ours_hf_cmd = ours_cmd_for(hf_json, "--no-native")
        # Alternate the tools so slow drifts of the machine hit all alike; report medians.
        t_ours_all, t_hf_all, t_theirs_all = [], [], []
        for _ in range(args.reps):
            t_ours_all.append(_run(ours_cmd, env))
            if not args.no_tf:
                t_hf_all.append(_run(ours_hf_cmd, env))
            shutil.rmtree(w / "lmeval", ignore_errors=True)
            t_theirs_all.append(_run(theirs_cmd, env))
        t_ours, t_theirs = statistics.median(t_ours_all), statistics.median(t_theirs_all)
        t_hf = statistics.median(t_hf_all) if t_hf_all else float("nan")
        ours = json.loads(ours_json.read_text())
        ours_hf = json.loads(hf_json.read_text()) if t_hf_all else ours
        choices = choice_lists(tpl, rows)
        our_preds = [c.index(r["pred"]) for c, r in zip(choices, ours["records"])]
        their_preds, their_lls = lmeval_predictions(w / "lmeval", task)
        same = our_preds == their_preds == [c.index(r["pred"]) for c, r in zip(choices, ours_hf["records"])]
        ll_diff = max(abs(ours["records"][i]["logprobs"][lab] - their_lls[i][j])
                      for i in range(len(their_lls)) for j, lab in enumerate(choices[i]))
        ok &= same
        tm = ours["timings"]
        row = {"case": case, "shots": shots, "n": len(rows), "backend": ours["provenance"]["model"].get("backend"),
               "ours_s": round(t_ours, 1), "ours_transformers_s": round(t_hf, 1), "lm_eval_s": round(t_theirs, 1),
               "ours_runs_s": [round(x, 1) for x in t_ours_all], "ours_transformers_runs_s": [round(x, 1) for x in t_hf_all],
               "lm_eval_runs_s": [round(x, 1) for x in t_theirs_all],
               "speedup": round(t_theirs / t_ours, 2), "speedup_transformers": round(t_theirs / t_hf, 2),
               "identical_predictions": same, "max_abs_logprob_diff": float(f"{ll_diff:.2e}"),
               "ours_acc": round(ours["metrics"]["accuracy"], 4),
               "tokens_forwarded": tm.get("tokens_forwarded"), "tokens_minimal": tm.get("tokens_minimal"),
               "work_efficiency": round(tm["tokens_minimal"] / max(1, tm["tokens_forwarded"]), 3)
               if tm.get("tokens_forwarded") else None}
        if args.bf16:
            bf_json = w / "ours_bf16.json"
            t_bf = _run(ours_cmd_for(bf_json, "--dtype", "bfloat16"), env)
            bf = json.loads(bf_json.read_text())
            agree = sum(a["pred"] == b["pred"] for a, b in zip(ours["records"], bf["records"])) / len(bf["records"])
            row.update(bf16_s=round(t_bf, 1), bf16_speedup_vs_fp32=round(t_ours / t_bf, 2),
                       bf16_acc=round(bf["metrics"]["accuracy"], 4), bf16_agreement=round(agree, 4))
        results.append(row)
        print(json.dumps(row), flush=True)
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, load average {os.getloadavg()[0]:.1f} at the end")
    print(f"wall time: median of {args.reps} alternated runs per tool (whole process: imports, model load, data, scoring)")
    print("ours = `workbench eval` as shipped; ours-tf = the same with --no-native (transformers scores)")
    print("work = tokens_minimal / tokens_forwarded of our run (1.0 = each distinct (prefix, token) read once)")
    print(f"{'case':>10} {'n':>4} {'ours (s)':>9} {'ours-tf (s)':>12} {'lm-eval (s)':>12} {'ratio':>7} {'ratio-tf':>9} "
          f"{'identical':>10} {'max|Δlogp|':>11} {'acc':>6} {'work':>6}")
    for r in results:
        print(f"{r['case']:>10} {r['n']:>4} {r['ours_s']:>9} {r['ours_transformers_s']:>12} {r['lm_eval_s']:>12} "
              f"{r['speedup']:>6}x {r['speedup_transformers']:>8}x {str(r['identical_predictions']):>10} "
              f"{r['max_abs_logprob_diff']:>11} {r['ours_acc']:>6} {r['work_efficiency']:>6}")
    for r in results:
        if "bf16_s" in r:
            print(f"bf16 ({r['case']}): {r['bf16_s']} s ({r['bf16_speedup_vs_fp32']}x fp32), accuracy "
                  f"{r['bf16_acc']} vs {r['ours_acc']} fp32, same prediction on {100 * r['bf16_agreement']:.1f}% of examples")
    fl = []
    if not args.no_flops:
        for case in cases:
            template, data, shots = inputs[case]
            f = flops_fraction(template, data, args.limit, shots, args.seed)
            f["case"] = case
            fl.append(f)
            if shots:
                ok &= f["prefix_cache_same_preds"] and f["prefix_cache_max_abs_diff"] <= 1e-4
        print(f"\n{'case':>10} {'tokens/s':>9} {'model GFLOP/s':>14} {'matmul GFLOP/s':>15} {'fraction':>9} {'work':>6} "
              f"{'prefix-cache max|Δlogp|':>24}")
        for f in fl:
            print(f"{f['case']:>10} {f['tokens_per_s']:>9} {f['achieved_gflops']:>14} {f['matmul_gflops']:>15} "
                  f"{f['fraction_of_matmul']:>9} {f['work_efficiency']:>6} {f.get('prefix_cache_max_abs_diff', '-'):>24}")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": results, "flops": fl}, indent=1))
    if not ok:
        print("\nFAIL: predictions differ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
