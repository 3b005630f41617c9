"""`workbench eval`: score a template on a dataset split, or an lm-eval task by name, and write results.json.

    workbench eval --data bbc --template templates_library/bbc_headline_topic.yaml --shots 4 --limit 200
    workbench eval --task hellaswag --trust-task-code --data hs_copy/ --limit 100   # lm_eval --tasks hellaswag
    workbench eval --task mmlu --num-fewshot 5                                      # a group: every task + aggregate

Every EvalConfig setting is a flag (see --help). A setting you leave out takes the template's
default (its `fewshot:` block: k, per_class, balanced, sampling, seed), else the built-in one:
the same rule as the UI's (workbench.core.spec.build_spec).
"""
from __future__ import annotations

import argparse
import sys

from workbench.commands.progress import CliProgress
from workbench.core.options import FEWSHOT_SEED
from workbench.commands.common import (add_judge_args, judge_kwargs, check_out_path, add_config_args, add_data_args, add_model_args,
                                       config_overrides, dataset_from_args, model_refs, session_for)


def register(sub) -> None:
    from workbench.core.config import EvalConfig

    p = sub.add_parser("eval", help="zero-/few-shot evaluation of a template", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
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
    g.add_argument("--fewshot-seed", type=int, default=FEWSHOT_SEED, help="seed of lm-eval's default sampler (lm_eval --seed's fewshot part)")
    p.add_argument("--template-name", default=None, help="pick one template from a PromptSource file")
    add_config_args(p, EvalConfig, title="evaluation (EvalConfig)")
    add_judge_args(p)
    p.add_argument("--out", default="results.json")
    p.add_argument("--no-registry", action="store_true", help="do not record the run in the run registry")
    p.set_defaults(func=run)


def _checks(args) -> None:
    from workbench.errors import ConfigError

    if not args.template:
        raise ConfigError("eval needs --template FILE or --task NAME", "e.g. --task hellaswag, or --template t.yaml --data bbc")
    if args.trust_task_code or args.include_path:
        raise ConfigError("--trust-task-code and --include-path apply to lm-eval tasks run by name",
                          "put the task YAML in a folder and run: workbench eval --task NAME --include-path FOLDER "
                          "--trust-task-code")
    if not args.data:
        raise ConfigError("eval --template needs --data", "name a dataset: bbc, a CSV/JSONL/Parquet file or a datasets folder")


def spec_from_args(args):
    """The RunSpec this command line describes (the same one the Run tab builds); an lm-eval task by name
    with --task (task_spec_from_args)."""
    if getattr(args, "task", None):
        return task_spec_from_args(args)
    from workbench.core.config import EvalConfig
    from workbench.core.spec import build_spec
    from workbench.core.templates import load_template

    template = load_template(args.template, name=args.template_name)
    dataset = dataset_from_args(args)
    return build_spec("eval", templates=[(template, args.template)], data=dataset,
                      model=model_refs(args), eval=config_overrides(args, EvalConfig), **judge_kwargs(args)), dataset


def run(args) -> int:
    from workbench.core.metrics import format_table
    from workbench.jobs.runner import execute

    if args.list_tasks is not None:
        from workbench.storage.lmeval_library import TaskLibrary

        lib = TaskLibrary(include_paths=args.include_path)
        names = lib.search(args.list_tasks, limit=10**6) if args.list_tasks else lib.names()
        for n in names:
            print(f"{n}\t{lib.index[n].kind}")
        return 0
    check_out_path(args.out)   # before any work: a run must not score everything, then fail to save
    if args.task:
        return run_task(args)
    _checks(args)
    spec, dataset = spec_from_args(args)
    session = session_for(spec.model)
    bar = CliProgress(spec.template.name)
    try:
        result = execute(spec, session, dataset=dataset, progress=bar, record=not args.no_registry).result
    finally:
        bar.close()
    result.save(args.out)
    print(format_table(result.metrics))
    for w in result.provenance.get("warnings", []):
        print(f"warning: {w}", file=sys.stderr)
    if result.provenance.get("judge"):
        from workbench.jobs.judge import format_judge

        print(format_judge(result))
    t = result.timings
    print(f"\n{result.metrics['n']} examples in {t['total_s']:.1f}s ({t['examples_per_s']:.1f}/s on the model)  "
          f"→ {args.out}", file=sys.stderr)
    return 0


def task_spec_from_args(args):
    """The RunSpec of `workbench eval --task NAME ...` (jobs/task_eval.py; Python builds the same one)."""
    from workbench.errors import ConfigError
    from workbench.jobs.task_eval import task_eval_spec

    if args.template:
        raise ConfigError("give --task or --template, not both", "--task runs an lm-eval task by name")
    if args.split not in (None, "test"):
        raise ConfigError("--split does not apply to --task", "an lm-eval task scores its own eval split "
                          "(test_split, else validation_split); --data replaces that split's rows")
    return task_eval_spec(args.task, model=model_refs(args)[0], trust_code=args.trust_task_code,
                          include_paths=args.include_path, data=args.data, num_fewshot=args.num_fewshot,
                          limit=args.limit, method=args.method, fewshot_seed=args.fewshot_seed)


def run_task(args) -> int:
    """`--task NAME`: the lm-eval task (or every task of a group/tag) on its own rows, through execute."""
    import json
    from pathlib import Path

    from workbench.jobs.runner import execute

    spec = task_spec_from_args(args)   # refuses untrusted code before loading a model or any data
    run = execute(spec, None, record=not args.no_registry).result
    out = Path(args.out)
    many = len(run.order) > 1
    out.parent.mkdir(parents=True, exist_ok=True)
    for name in run.order:
        run.results[name].save(out.with_name(f"{out.stem}.{name}{out.suffix or '.json'}") if many else out)
    print(task_table(run))
    if many:
        summary = {"task": args.task, "tasks": {n: run.results[n].metrics for n in run.order}, "groups": run.groups}
        out.write_text(json.dumps(summary, indent=1, default=str))
    print(f"\n{len(run.order)} task(s) → {args.out}", file=sys.stderr)
    return 0


def task_table(run) -> str:
    """An lm-eval-style table: one line per task, then the group aggregates."""
    keys = [k for k in ("acc", "acc_norm", "exact_match", "token_f1") if any(k in r.metrics for r in run.results.values())]
    extra = sorted({k for r in run.results.values() for k, v in r.metrics.items()
                    if isinstance(v, float) and k not in keys and not k.endswith(",none")   # = the bare name
                    and k not in ("accuracy", "macro_f1", "weighted_f1",
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
