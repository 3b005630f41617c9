"""`workbench eval`: score a template on a dataset split, or an lm-eval task by name, and write results.json.

    workbench eval --template t.yaml --data bbc
    workbench eval --task hellaswag --trust-task-code --data hs_copy/ --limit 100   # lm_eval --tasks hellaswag
    workbench eval --task mmlu --num-fewshot 5                                      # a group: every task + aggregate
"""
from __future__ import annotations

import sys

from workbench.commands.common import TqdmProgress, add_data_args, add_model_args, dataset_from_args, session_from_args


def register(sub) -> None:
    p = sub.add_parser("eval", help="zero-/few-shot evaluation of a template", description=__doc__)
    add_model_args(p)
    add_data_args(p, required=False)
    p.add_argument("--template", default=None, help="a template YAML (ours, lm-eval task or PromptSource)")
    g = p.add_argument_group("lm-eval tasks (like lm_eval --tasks)")
    g.add_argument("--task", default=None, help="an lm-eval task, group or tag name from the installed library or "
                   "--include-path (instead of --template); without --data its own dataset is loaded")
    g.add_argument("--trust-task-code", action="store_true",
                   help="allow `!function` task code, only from the installed lm-eval tasks or --include-path folders")
    g.add_argument("--include-path", action="append", default=[], metavar="DIR",
                   help="a folder of your own lm-eval task YAMLs (lm_eval --include_path); repeatable")
    g.add_argument("--list-tasks", nargs="?", const="", default=None, metavar="WORD",
                   help="list task/group/tag names (containing WORD) and exit (lm_eval --tasks list)")
    g.add_argument("--num-fewshot", type=int, default=None, help="override the task's num_fewshot (lm_eval --num_fewshot)")
    g.add_argument("--fewshot-seed", type=int, default=1234, help="seed of lm-eval's default sampler (lm_eval --seed's fewshot part)")
    p.add_argument("--template-name", default=None, help="pick one template from a PromptSource file")
    p.add_argument("--shots", type=int, default=0)
    p.add_argument("--per-class", action="store_true", help="--shots counts demonstrations per class")
    p.add_argument("--balanced", action="store_true")
    p.add_argument("--sampling", default="fixed", choices=["fixed", "per_example"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--method", default="acc", choices=["acc", "acc_norm", "acc_bytes"])
    p.add_argument("--calibration", default="none", choices=["none", "contextual", "pmi"])
    p.add_argument("--split", default="test", choices=["test", "dev", "train", "all"])
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--no-prefix-cache", action="store_true", help="score full prompts (for checking the cache)")
    p.add_argument("--retriever", default=None, help="self-ask: corpus for BM25 retrieval (PATH or PATH:FIELD)")
    p.add_argument("--max-hops", type=int, default=None, help="self-ask: most follow-up questions per example")
    p.add_argument("--max-new-tokens", type=int, default=None, help="generation: override the template's limit")
    p.add_argument("--out", default="results.json")
    p.add_argument("--no-registry", action="store_true", help="do not record the run in the run registry")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.list_tasks is not None:
        from workbench.core.lmeval_tasks import TaskLibrary

        lib = TaskLibrary(include_paths=args.include_path)
        names = lib.search(args.list_tasks, limit=10**6) if args.list_tasks else lib.names()
        for n in names:
            print(f"{n}\t{lib.index[n].kind}")
        return 0
    if args.task:
        return run_task(args)
    if not args.template:
        from workbench.errors import ConfigError
        raise ConfigError("eval needs --template FILE or --task NAME", "e.g. --task hellaswag, or --template t.yaml --data bbc")
    if args.trust_task_code or args.include_path:
        from workbench.errors import ConfigError
        raise ConfigError("--trust-task-code and --include-path apply to lm-eval tasks run by name",
                          "put the task YAML in a folder and run: workbench eval --task NAME --include-path FOLDER "
                          "--trust-task-code")
    if not args.data:
        from workbench.errors import ConfigError
        raise ConfigError("eval --template needs --data", "name a dataset: bbc, a CSV/JSONL/Parquet file or a datasets folder")
    from workbench.jobs.inference import EvalConfig, evaluate
    from workbench.core.metrics import format_table
    from workbench.core.templates import load_template

    template = load_template(args.template, name=args.template_name) if args.template_name else load_template(args.template)
    dataset = dataset_from_args(args)
    cfg = EvalConfig(shots=args.shots, per_class=args.per_class, balanced=args.balanced, sampling=args.sampling,
                     seed=args.seed, method=args.method, calibration=args.calibration, split=args.split,
                     limit=args.limit, prefix_cache=not args.no_prefix_cache, retriever=args.retriever,
                     max_hops=args.max_hops, max_new_tokens=args.max_new_tokens)
    cfg.validate()
    session = session_from_args(args)
    bar = TqdmProgress(f"{template.name}")
    try:
        result = evaluate(template, dataset, session, cfg, progress=bar)
    finally:
        bar.close()
    result.save(args.out)
    if not args.no_registry:
        from workbench.storage.runs import record_eval
        record_eval(result)
    print(format_table(result.metrics))
    t = result.timings
    print(f"\n{result.metrics['n']} examples in {t['total_s']:.1f}s ({t['examples_per_s']:.1f}/s on the model)  "
          f"→ {args.out}", file=sys.stderr)
    return 0


def run_task(args) -> int:
    """`--task NAME`: the lm-eval task (or every task of a group/tag) on its own rows."""
    import json
    from pathlib import Path

    from workbench.core.lmeval_tasks import TaskLibrary
    from workbench.errors import ConfigError
    from workbench.jobs.lmeval_run import run_tasks

    if args.template:
        raise ConfigError("give --task or --template, not both", "--task runs an lm-eval task by name")
    if args.split != "test":
        raise ConfigError("--split does not apply to --task", "an lm-eval task scores its own eval split "
                          "(test_split, else validation_split); --data replaces that split's rows")
    lib = TaskLibrary(include_paths=args.include_path)
    members = [m for n in args.task.split(",") if n.strip() for m in lib.expand(n.strip())]
    # Refuse untrusted code before loading a model or any data.
    for m in members:
        lib.load(m, trust_code=args.trust_task_code)
    out = Path(args.out)
    many = len(members) > 1
    if many and args.data:
        raise ConfigError(f"--data replaces the rows of one task, and {args.task!r} has {len(members)} tasks",
                          "run the tasks one by one with --data, or let each load its own dataset")
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)

    def saved(name, result):
        path = out.with_name(f"{out.stem}.{name}{out.suffix or '.json'}") if many else out
        result.save(path)
        if not args.no_registry:
            from workbench.storage.runs import record_eval
            record_eval(result)

    run = run_tasks(lib, args.task, lambda: session_from_args(args), trust_code=args.trust_task_code, data=args.data,
                    num_fewshot=args.num_fewshot, limit=args.limit, method=args.method,
                    fewshot_seed=args.fewshot_seed, on_task=saved)
    print(task_table(run))
    if many:
        summary = {"task": args.task, "tasks": {n: run.results[n].metrics for n in run.order}, "groups": run.groups}
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(summary, indent=1, default=str))
    print(f"\n{len(run.order)} task(s) → {args.out}", file=sys.stderr)
    return 0


def task_table(run) -> str:
    """An lm-eval-style table: one line per task, then the group aggregates."""
    keys = [k for k in ("acc", "acc_norm", "exact_match", "token_f1") if any(k in r.metrics for r in run.results.values())]
    extra = sorted({k for r in run.results.values() for k, v in r.metrics.items()
                    if isinstance(v, float) and k not in keys and k not in ("accuracy", "macro_f1", "weighted_f1",
                                                                             "majority_baseline", "contains")})
    cols = keys + extra
    width = max([len("task")] + [len(n) for n in run.order] + [len(g) for g in run.groups])
    lines = [f"{'task':<{width}}  {'n':>6}  " + "  ".join(f"{c:>10}" for c in cols)]
    for n in run.order:
        m = run.results[n].metrics
        lines.append(f"{n:<{width}}  {m.get('n', 0):>6}  " + "  ".join(f"{m[c]:>10.4f}" if c in m else f"{'':>10}" for c in cols))
    for g, m in run.groups.items():
        lines.append(f"{g:<{width}}  {m.get('n', 0):>6}  " + "  ".join(f"{m[c]:>10.4f}" if c in m else f"{'':>10}" for c in cols)
                     + f"   (group of {m['tasks']} tasks)")
    return "\n".join(lines)
