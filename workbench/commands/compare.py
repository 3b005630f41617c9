"""`workbench compare`: score 2-8 templates on identical examples and print a paired verdict.

    workbench compare --data bbc --template A.yaml --template B.yaml --limit 300 --seed 1 --out cmp.json
    workbench compare --data bbc --template A.yaml --template B.yaml --template C.yaml --baseline A
    workbench compare --data bbc --template A.yaml --spread 8        # format sensitivity of A
    workbench compare --data bbc --template A.yaml --shots 4 --seeds 0,1,2,3,4   # few-shot variance
    workbench compare --data bbc --model default --model openai:http://127.0.0.1:8000/v1 \
        --template A.yaml --template B.yaml            # models x templates grid, paired verdicts
    workbench compare --data bbc --template A.yaml --template B.yaml --sequential --margin 0.01
        # stop when settled (anytime-valid); with several --model, the grid drops columns settled worse

Evals already in the run registry with the same template, model, data and settings are
reused, not rescored; the comparison itself is recorded there too (unless --no-registry).
"""
from __future__ import annotations

import sys

from workbench.commands.progress import CliProgress
from workbench.core.options import ALPHA, N_BOOT, TASK_N_BOOT
from workbench.commands.common import (add_judge_args, judge_kwargs, check_out_path, add_config_args, add_data_args, add_model_args, config_overrides,
                                       dataset_from_args, model_refs, session_for)


def register(sub) -> None:
    p = sub.add_parser("compare", help="A/B-test templates with paired significance tests", description=__doc__,
                       formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    add_model_args(p, multi=True)
    add_data_args(p, required=False)
    p.add_argument("--template", action="append", default=[],
                   help="a template YAML; repeat for each template (2-8; one with --spread/--seeds; with --task: "
                        "scored against the task's own prompt on its rows)")
    g = p.add_argument_group("lm-eval task (compare models / templates on a task's rows)")
    g.add_argument("--task", default=None, help="an lm-eval task name: its rows, filters and metrics, a paired "
                   "verdict per metric (McNemar for binary per-row metrics, paired bootstrap otherwise)")
    g.add_argument("--trust-task-code", action="store_true", help="allow the task's `!function` code")
    g.add_argument("--include-path", action="append", default=[], metavar="DIR", help="a folder of task YAMLs")
    g.add_argument("--num-fewshot", type=int, default=None, help="override the task's num_fewshot")
    p.add_argument("--baseline", default=None, help="template name every other is compared with (default: the best)")
    from workbench.core.config import EvalConfig

    add_config_args(p, EvalConfig, title="evaluation (EvalConfig; the same for every template)")
    add_judge_args(p)
    p.add_argument("--n-boot", type=int, default=None,
                   help=f"bootstrap replicates for the CIs (default {N_BOOT}; {TASK_N_BOOT} with --task)")
    p.add_argument("--alpha", type=float, default=ALPHA, help="significance level of the verdicts")
    p.add_argument("--spread", type=int, default=None, metavar="N",
                   help="instead of comparing: format sensitivity of one template over N variants")
    p.add_argument("--seeds", default=None, metavar="S1,S2,...",
                   help="instead of comparing: few-shot variance of one template over these demo seeds")
    g = p.add_argument_group("stopping early (anytime-valid; docs/COMPARE.md)")
    g.add_argument("--sequential", action="store_true",
                   help="score rows in a seeded random order in growing batches and stop as soon as the "
                        "verdict is settled at --alpha (or at the row budget, --limit)")
    g.add_argument("--margin", type=float, default=None,
                   help="with --sequential: stop as 'equivalent' once the difference is settled within "
                        "+-margin (a fraction: 0.01 = 1 point)")
    g.add_argument("--first-batch", type=int, default=None, help="with --sequential: rows in the first batch (32)")
    g.add_argument("--growth", type=float, default=None, help="with --sequential: batch growth factor (1.5)")
    g.add_argument("--order-seed", type=int, default=None, help="with --sequential: seed of the row order (0)")
    g.add_argument("--price-per-mtok", type=float, default=None,
                   help="the model's price per million tokens, to report what the comparison cost")
    p.add_argument("--name", default=None, help="name of the run in the registry")
    p.add_argument("--out", default=None, help="write every statistic and per-example prediction as JSON")
    p.add_argument("--no-registry", action="store_true", help="neither reuse nor record runs")
    p.set_defaults(func=run)


def spec_from_args(args):
    """The RunSpec of a side-by-side comparison (the Compare tab builds the same one)."""
    from workbench.core.config import EvalConfig
    from workbench.core.spec import build_spec
    from workbench.core.templates import load_template

    templates = [(load_template(path), path) for path in args.template]
    if args.spread is not None or args.seeds is not None:
        # a sensitivity study of one template: its own kind (jobs/sensitivity.py), not a comparison
        from workbench.errors import ConfigError

        if args.spread is not None and args.seeds is not None:
            raise ConfigError("--spread and --seeds are separate studies", "run them one at a time")
        kind, opts = (("format_spread", {"spread": args.spread}) if args.spread is not None
                      else ("seed_variance", {"seeds": args.seeds}))
        dataset = dataset_from_args(args)
        return build_spec(kind, templates=templates, data=dataset, model=model_refs(args),
                          eval=config_overrides(args, EvalConfig), options={**opts, "out": args.out}), dataset
    # (build_spec leaves out the defaults, N_BOOT and ALPHA: core/options.py)
    opts = {"baseline": args.baseline, "name": args.name, "out": args.out, "n_boot": args.n_boot, "alpha": args.alpha}
    rule = {k: getattr(args, k) for k in ("margin", "first_batch", "growth", "order_seed", "price_per_mtok")}
    if not args.sequential and any(v is not None for v in rule.values()):
        from workbench.errors import ConfigError

        given = ", ".join("--" + k.replace("_", "-") for k, v in rule.items() if v is not None)
        raise ConfigError(f"{given} only apply to a sequential comparison", "add --sequential, or drop them")
    if args.sequential:
        opts.update(sequential=True, **rule)
    dataset = dataset_from_args(args)
    return build_spec("compare", templates=templates, data=dataset, model=model_refs(args),
                      eval=config_overrides(args, EvalConfig), options=opts, **judge_kwargs(args)), dataset


def run(args) -> int:
    from workbench.errors import ConfigError

    check_out_path(args.out)   # before any work: a run must not score everything, then fail to save
    if args.task:
        return _run_task_compare(args)
    if not args.template:
        raise ConfigError("compare needs --template (2-8 of them) or --task NAME", "e.g. --template A.yaml --template B.yaml")
    if not args.data:
        raise ConfigError("compare --template needs --data", "name a dataset: bbc, a CSV/JSONL/Parquet file or a folder")
    spec, dataset = spec_from_args(args)
    # a model comparison opens (and holds) each model in turn itself
    session = session_for(spec.model) if len(spec.models) == 1 else None
    bar = CliProgress("compare")
    try:
        from workbench.jobs.runner import execute
        res = execute(spec, session, dataset=dataset, progress=bar, record=not args.no_registry).result
    finally:
        bar.close()
    print(res.summary())
    if "sequential" in (res.settings if hasattr(res, "settings") else {}):
        from workbench.jobs.sequential import format_sequential
        print(format_sequential(res.settings["sequential"]))
    if "pairs" in (res.settings if hasattr(res, "settings") else {}):
        from workbench.jobs.compare_models import format_pairs
        print(format_pairs(res.settings["pairs"]))
    if args.out:
        from workbench.jobs.compare_result import save_json as _save_json
        _save_json(res.to_dict(), args.out)
    where = f"  → {args.out}" if args.out else ""
    rid = f"run {res.run_id}" if res.run_id else "not recorded"
    print(f"\n{rid}{where}", file=sys.stderr)
    return 0


def _run_task_compare(args) -> int:
    """`--task T`: models x (the task's prompt + --template files) on the task's rows."""
    from workbench.core.templates import load_template
    from workbench.errors import ConfigError
    from workbench.jobs.runner import execute
    from workbench.jobs.task_compare import task_compare_spec

    if args.spread is not None or args.seeds is not None:
        raise ConfigError("--spread and --seeds do not apply to --task", "leave them out")
    models = [m.model for m in model_refs(args)]
    if len(models) < 2 and not args.template:
        raise ConfigError("compare --task needs two models (--model A --model B) or a --template to compare "
                          "with the task's own prompt", "add a second --model or a --template")
    # the task is resolved (and anything unsupported refused) before data or a model loads
    spec = task_compare_spec(args.task, models=models, templates=[(load_template(p), p) for p in args.template],
                             trust_code=args.trust_task_code, include_paths=args.include_path, data=args.data,
                             num_fewshot=args.num_fewshot, limit=args.limit, n_boot=args.n_boot or TASK_N_BOOT,
                             alpha=args.alpha, name=args.name)
    bar = CliProgress("compare")
    try:
        res = execute(spec, None, progress=bar, record=not args.no_registry).result
    finally:
        bar.close()
    print(res.summary())
    if args.out:
        from workbench.jobs.compare_result import save_json as _save_json
        _save_json(res.to_dict(), args.out)
    print(f"\n{len(res.arms)} arms on task {res.task}" + (f"  → {args.out}" if args.out else ""), file=sys.stderr)
    return 0
