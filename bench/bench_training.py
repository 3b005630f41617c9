"""Training benchmarks: speed and memory against transformers.Trainer + peft, and the benefit of
LoRA over zero-shot and in-context prompting.

    python bench/bench_training.py                      # (a) speed + (b) memory, ~3 min on 2 CPU cores
    python bench/bench_training.py --steps 30 --batch 8 --reps 2
    python bench/bench_training.py --benefit --seeds 1 2 3   # (c) benefit, many minutes on CPU

(a) Speed. Both loops train the very same peft model (built by `training.prepare`: same LoRA
    config, same initial weights), on the same tokenized rows (bbc headlines, 16 per class,
    template bbc_headline_topic), batch size, learning rate, schedule and clipping. Steps/s is
    measured from step 3 to the last step (the first steps warm up allocators and caches). Each
    variant runs in its own child process, alternated ours/Trainer `--reps` times, so they share
    the machine's conditions and each peak-memory figure belongs to one loop only.
(b) Memory. Peak RSS (ru_maxrss) of each child, and CUDA max allocated on a GPU.
(c) Benefit. Test split of bbc (split_seed 0, 20% = 445 rows), template bbc_headline_topic, for
    each seed: zero-shot; in-context with the same 16-per-class rows as demonstrations (k=4 and
    k=16 per class); LoRA trained on those 16-per-class rows (dev: 80 rows, the size of the
    training set, as in LM-BFF's few-shot protocol). Mean ± std over seeds.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TEMPLATE = ROOT / "templates_library" / "bbc_headline_topic.yaml"


def _peak() -> dict:
    import resource

    import torch

    out = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if torch.cuda.is_available():
        out["cuda_max_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def _plan(args, run_dir: Path):
    from workbench.storage.data_load import load_dataset
    from workbench.core.templates import load_template
    from workbench.jobs.training import TrainConfig, prepare

    cfg = TrainConfig(shots_per_class=16, max_steps=args.steps, batch_size=args.batch, lr=5e-4, seed=1,
                      eval_every=0, final_eval=False, max_length=128, warmup_ratio=0.1)
    return prepare(args.model, load_template(TEMPLATE), load_dataset("bbc"), cfg, run_dir, registry=False)


def child_ours(args) -> dict:
    from workbench.jobs.training import read_log, run_training

    run_dir = Path(args.tmp) / f"ours-{os.getpid()}"
    plan = _plan(args, run_dir)
    rss_loaded = _peak()["peak_rss_mb"]
    run_training(plan)
    ts = [r["t"] for r in read_log(run_dir) if r["event"] == "train"]
    return {"steps_per_s": (len(ts) - 2) / (ts[-1] - ts[1]), "rss_after_load_mb": rss_loaded,
            "n_train": len(plan.examples), **_peak()}


def child_trainer(args) -> dict:
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from workbench.core.train_data import collate

    run_dir = Path(args.tmp) / f"trainer-{os.getpid()}"
    plan = _plan(args, run_dir)
    rss_loaded = _peak()["peak_rss_mb"]
    cfg = plan.config
    rows = [{"input_ids": e.input_ids, "labels": e.labels} for e in plan.examples]
    pad = plan.tokenizer.pad_token_id

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return len(rows)

        def __getitem__(self, i):
            return rows[i]

    def collator(batch):
        # the same right padding and -100 labels as our loop
        from workbench.core.train_data import TrainExample
        exs = [TrainExample(None, "", 0, b["input_ids"], b["labels"], 1) for b in batch]
        c = collate(exs, pad)
        return {"input_ids": c["input_ids"], "attention_mask": c["attention_mask"], "labels": c["labels"]}

    stamps: list[float] = []

    class Stamp(TrainerCallback):
        def on_step_end(self, *a, **k):
            stamps.append(time.time())

    targs = TrainingArguments(
        output_dir=str(run_dir / "hf"), max_steps=cfg.max_steps, per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum, learning_rate=cfg.lr, weight_decay=cfg.weight_decay,
        lr_scheduler_type="linear", warmup_steps=int(cfg.max_steps * cfg.warmup_ratio + 0.999),
        max_grad_norm=cfg.max_grad_norm, logging_steps=1, save_strategy="no", report_to="none", seed=cfg.seed,
        dataloader_num_workers=0, optim="adamw_torch", bf16=plan.amp_dtype is not None,
        use_cpu=plan.device == "cpu", disable_tqdm=True)
    plan.model.train()
    Trainer(model=plan.model, args=targs, train_dataset=Rows(), data_collator=collator,
            callbacks=[Stamp()]).train()
    return {"steps_per_s": (len(stamps) - 2) / (stamps[-1] - stamps[1]), "rss_after_load_mb": rss_loaded,
            "n_train": len(rows), **_peak()}


def speed_and_memory(args) -> dict:
    import tempfile

    results: dict[str, list[dict]] = {"ours": [], "trainer": []}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for variant in ("ours", "trainer"):
                cmd = [sys.executable, __file__, "--child", variant, "--tmp", tmp, "--steps", str(args.steps),
                       "--batch", str(args.batch), "--model", args.model]
                out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ,
                                     "TRANSFORMERS_VERBOSITY": "error"})
                if out.returncode:
                    sys.exit(f"{variant} failed:\n{out.stderr[-3000:]}")
                row = json.loads(out.stdout.strip().splitlines()[-1])
                results[variant].append(row)
                print(f"  rep {rep + 1} {variant:<8} {row['steps_per_s']:.3f} steps/s  peak RSS {row['peak_rss_mb']:.0f} MB",
                      file=sys.stderr)
    import torch

    med = {v: statistics.median(r["steps_per_s"] for r in rs) for v, rs in results.items()}
    print(f"\n(a) speed: {args.steps} steps, batch {args.batch}, {results['ours'][0]['n_train']} rows, "
          f"model {args.model}, {'cuda' if torch.cuda.is_available() else 'cpu'} "
          f"({torch.get_num_threads()} threads), median of {args.reps} alternated runs")
    print(f"{'loop':<28}{'steps/s':>10}{'peak RSS MB':>14}{'RSS after load':>16}{'CUDA max MB':>13}")
    for v, label in (("ours", "workbench.jobs.training"), ("trainer", "transformers.Trainer + peft")):
        r = results[v][-1]
        print(f"{label:<28}{med[v]:>10.3f}{max(x['peak_rss_mb'] for x in results[v]):>14.0f}"
              f"{r['rss_after_load_mb']:>16.0f}{r.get('cuda_max_allocated_mb', float('nan')):>13.0f}")
    print(f"ratio ours / Trainer: {med['ours'] / med['trainer']:.2f}x")
    return {"runs": results, "median_steps_per_s": med, "ratio": med["ours"] / med["trainer"]}


def benefit(args) -> dict:
    import tempfile

    from workbench.core.data import split_dataset
    from workbench.storage.data_load import load_dataset
    from workbench.jobs.inference import EvalConfig, evaluate
    from workbench.engine.session import get_session
    from workbench.core.templates import load_template
    from workbench.core.train_data import select_train_rows
    from workbench.jobs.training import TrainConfig, train

    template = load_template(TEMPLATE)
    ds = load_dataset("bbc")
    sp = split_dataset(ds, seed=0, dev=0.1, test=0.2)
    session = get_session(args.model)
    rows: dict[str, list[float]] = {}

    def add(name, m):
        rows.setdefault(name, []).append(m["accuracy"])
        rows.setdefault(name + " (macro-F1)", []).append(m["macro_f1"])
        print(f"  {name:<22} acc {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}", file=sys.stderr, flush=True)

    zero = evaluate(template, ds, session, EvalConfig(split="test"), rows=sp.test, pool=sp.train)
    for seed in args.seeds:
        print(f"seed {seed}", file=sys.stderr, flush=True)
        add("zero-shot", zero.metrics)
        pool = select_train_rows(template, sp.train, 16, seed)
        for k in (4, 16):
            icl = evaluate(template, ds, session, EvalConfig(shots=k, per_class=True, seed=seed), rows=sp.test, pool=pool)
            add(f"ICL {k}/class", icl.metrics)
        cfg = TrainConfig(shots_per_class=16, seed=seed, lr=args.lr, max_steps=args.lora_steps, batch_size=8,
                          eval_every=10, patience=4, dev_limit=80, max_length=128)
        t0 = time.time()
        with tempfile.TemporaryDirectory() as tmp:
            res = train(args.model, template, ds, cfg, Path(tmp) / "run", registry=False)
        add("LoRA 16/class", res.adapter_metrics)
        print(f"  (LoRA: {res.steps} steps, best step {res.best_step}, {time.time() - t0:.0f}s)", file=sys.stderr)
    print(f"\n(c) benefit: bbc test split (split_seed 0, n={len(sp.test)}), template {template.name}, "
          f"model {args.model}, seeds {args.seeds}")
    print(f"{'method':<34}{'mean':>8}{'std':>8}   per seed")
    for name, vals in rows.items():
        sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
        print(f"{name:<34}{statistics.mean(vals):>8.4f}{sd:>8.4f}   {' '.join(f'{v:.4f}' for v in vals)}")
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="default")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--benefit", action="store_true", help="run (c) instead of (a)+(b)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lora-steps", type=int, default=60)
    p.add_argument("--json", default=None, help="also write the numbers to this file")
    p.add_argument("--child", choices=["ours", "trainer"], help=argparse.SUPPRESS)
    p.add_argument("--tmp", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        import logging
        logging.disable(logging.WARNING)
        out = child_ours(args) if args.child == "ours" else child_trainer(args)
        print(json.dumps(out))
        return
    data = benefit(args) if args.benefit else speed_and_memory(args)
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=1))


if __name__ == "__main__":
    main()
