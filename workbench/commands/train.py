"""`workbench train`: LoRA fine-tune a template (prompt-based fine-tuning) and compare with the base.

    workbench train --model default --data bbc --template T.yaml --shots-per-class 16 --steps 60 --seed 1 --out runs/x

Every TrainConfig setting is an option (`--lora-r`, `--lr`, `--eval-every`, ...; see --help).
Progress goes to a bar on stderr and to <out>/log.jsonl; at the end the base-vs-adapter test
metrics and the adapter folder are printed. Ctrl-C stops the run and keeps the best adapter.
"""
from __future__ import annotations

import argparse
import sys
from workbench.commands.progress import CliProgress
from workbench.commands.common import add_config_args, add_data_args, config_overrides, dataset_from_args

# Short forms for the settings people type most.
_ALIASES = {"max_steps": ["--steps"], "shots_per_class": ["--k"]}
# Set by the model group, not repeated from TrainConfig.
_SKIP = {"device"}


def register(sub) -> None:
    p = sub.add_parser("train", help="LoRA fine-tune a template and compare base vs adapter",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("model")
    g.add_argument("--model", default="default", help="'default' (SmolLM2-135M-Instruct), a hub id, a folder or a .gguf")
    g.add_argument("--device", default=None, help="cuda | mps | cpu (default: auto; bf16 autocast on a GPU that supports it)")
    add_data_args(p)
    p.add_argument("--template", required=True, help="a template YAML (ours, lm-eval task or PromptSource)")
    p.add_argument("--template-name", default=None, help="pick one template from a PromptSource file")
    p.add_argument("--config", default=None, help="a train_config.json to start from (options override it)")
    p.add_argument("--out", default=None, help="run folder (default: $WORKBENCH_HOME/train/<time>-<template>)")
    p.add_argument("--no-registry", action="store_true", help="do not record the run in the run registry")
    from workbench.core.config import TrainConfig

    add_config_args(p, TrainConfig, title="training (TrainConfig)", skip=_SKIP, aliases=_ALIASES)
    p.set_defaults(func=run)


def config_from_args(args) -> dict:
    """The TrainConfig choices of this command line: --config's file, then the flags given."""
    from pathlib import Path

    from workbench.core.config import TrainConfig

    base = {}
    if args.config:
        import json
        base = json.loads(Path(args.config).read_text())
        for extra in ("step", "base_model", "labels"):   # what an adapter's train_config.json adds
            base.pop(extra, None)
        base = TrainConfig.from_dict(base).__dict__
    over = config_overrides(args, TrainConfig, skip=_SKIP)
    return {**base, **over, "device": args.device or base.get("device")}


def spec_from_args(args):
    """The RunSpec of this training run (the Train tab builds the same one)."""
    from workbench.core.spec import ModelRef, build_spec
    from workbench.core.templates import load_template

    template = load_template(args.template, name=args.template_name)
    dataset = dataset_from_args(args)
    return build_spec("train", templates=[(template, args.template)], data=dataset,
                      model=ModelRef(model=args.model, device=args.device), train=config_from_args(args),
                      options={"out": args.out}), dataset


def run(args) -> int:
    from workbench.jobs.runner import execute

    spec, dataset = spec_from_args(args)
    cfg = spec.train
    print(f"training {spec.template.name} on {dataset.name}: mode {cfg.mode}, LoRA r={cfg.lora_r}", file=sys.stderr)
    bar = CliProgress("train", unit="step")
    try:
        # Ctrl-C inside counts as cancel (best adapter kept)
        result = execute(spec, None, dataset=dataset, progress=bar, record=not args.no_registry,
                         on_run=lambda run_dir: print(f"run folder: {run_dir}", file=sys.stderr)).result
    finally:
        bar.close()
    _print_result(result)
    return 0 if result.status == "done" else 130


def _print_result(result) -> None:
    print(f"status: {result.status} ({result.stop_reason}) after {result.steps} steps; "
          f"best dev at step {result.best_step}")
    if result.base_metrics and result.adapter_metrics:
        b, a = result.base_metrics, result.adapter_metrics
        print(f"\ntest ({b['n']} rows)      base   base+adapter")
        print(f"accuracy            {b['accuracy']:.4f}   {a['accuracy']:.4f}")
        print(f"macro-F1            {b['macro_f1']:.4f}   {a['macro_f1']:.4f}")
        print("\nper-class F1")
        for lab in a["per_class"]:
            print(f"  {lab:<18}{b['per_class'].get(lab, {}).get('f1', 0):.4f}   {a['per_class'][lab]['f1']:.4f}")
    print(f"\nadapter: {result.adapter_dir}")
    print(f"results: {result.run_dir}/result.json")
    if result.registry_id:
        print(f"run id:  {result.registry_id}")
