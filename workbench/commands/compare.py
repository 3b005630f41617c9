"""`workbench compare`: score 2-8 templates on identical examples and print a paired verdict.

    workbench compare --data bbc --template A.yaml --template B.yaml --limit 300 --seed 1 --out cmp.json
    workbench compare --data bbc --template A.yaml --template B.yaml --template C.yaml --baseline A
    workbench compare --data bbc --template A.yaml --spread 8        # format sensitivity of A
    workbench compare --data bbc --template A.yaml --shots 4 --seeds 0,1,2,3,4   # few-shot variance
    workbench compare --data bbc --model default --model openai:http://127.0.0.1:8000/v1 \
        --template A.yaml --template B.yaml            # models x templates grid, paired verdicts

Evals already in the run registry with the same template, model, data and settings are
reused, not rescored; the comparison itself is recorded there too (unless --no-registry).
"""
from __future__ import annotations

import sys

from workbench.commands.common import (add_judge_args, judge_kwargs, check_out_path, add_config_args, add_data_args, add_model_args, config_overrides,
                                       dataset_from_args, model_refs, session_for)


def register(sub) -> None:
    p = sub.add_parser("compare", help="A/B-test templates with paired significance tests", description=__doc__,
                       formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    add_model_args(p, multi=True)
    add_data_args(p)
    p.add_argument("--template", action="append", required=True,
                   help="a template YAML; repeat for each template (2-8; one with --spread/--seeds)")
    p.add_argument("--baseline", default=None, help="template name every other is compared with (default: the best)")
    from workbench.core.config import EvalConfig

    add_config_args(p, EvalConfig, title="evaluation (EvalConfig; the same for every template)")
    add_judge_args(p)
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap replicates for the CIs")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level of the verdicts")
    p.add_argument("--spread", type=int, default=None, metavar="N",
                   help="instead of comparing: format sensitivity of one template over N variants")
    p.add_argument("--seeds", default=None, metavar="S1,S2,...",
                   help="instead of comparing: few-shot variance of one template over these demo seeds")
    p.add_argument("--name", default=None, help="name of the run in the registry")
    p.add_argument("--out", default=None, help="write every statistic and per-example prediction as JSON")
    p.add_argument("--no-registry", action="store_true", help="neither reuse nor record runs")
    p.set_defaults(func=run)


class _Bar:
    """progress(done, total, message) drawn as one tqdm bar on stderr."""

    def __init__(self):
        self.bar = None

    def __call__(self, done: int, total: int, message: str = "") -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total, file=sys.stderr, dynamic_ncols=True, bar_format="{l_bar}{bar}| {elapsed}<{remaining}")
        if total != self.bar.total:   # reused templates are left out of the count
            self.bar.total = total
        if message:   # "topic (2/3) · scoring 40/100 rows": the stage's real counts
            self.bar.set_description(message[:60])
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def spec_from_args(args):
    """The RunSpec of a side-by-side comparison (the Compare tab builds the same one)."""
    from workbench.core.config import EvalConfig
    from workbench.core.spec import build_spec
    from workbench.core.templates import load_template

    templates = [(load_template(path), path) for path in args.template]
    opts = {"baseline": args.baseline, "name": args.name, "out": args.out}
    if args.n_boot != 2000:
        opts["n_boot"] = args.n_boot
    if args.alpha != 0.05:
        opts["alpha"] = args.alpha
    dataset = dataset_from_args(args)
    return build_spec("compare", templates=templates, data=dataset, model=model_refs(args),
                      eval=config_overrides(args, EvalConfig), options=opts, **judge_kwargs(args)), dataset


def run(args) -> int:
    from workbench.errors import ConfigError

    check_out_path(args.out)   # before any work: a run must not score everything, then fail to save
    single = args.spread is not None or args.seeds is not None
    if single and len(args.template) != 1:
        raise ConfigError("--spread and --seeds study one template; got "
                          f"{len(args.template)}", "pass exactly one --template")
    if args.spread is not None and args.seeds is not None:
        raise ConfigError("--spread and --seeds are separate studies", "run them one at a time")
    if single and len(args.model or []) > 1:
        raise ConfigError("--spread and --seeds study one model", "pass one --model")
    if single:
        from workbench.core.config import EvalConfig
        from workbench.core.spec import resolve_eval
        from workbench.core.templates import load_template

        templates = [load_template(args.template[0])]
        cfg = resolve_eval(config_overrides(args, EvalConfig), templates[0])
        dataset = dataset_from_args(args)
        session = session_for(model_refs(args)[0])
    else:
        spec, dataset = spec_from_args(args)
        # a model comparison opens (and holds) each model in turn itself
        session = session_for(spec.model) if len(spec.models) == 1 else None
    registry = None
    if not args.no_registry:
        from workbench.storage.runs import RunRegistry
        registry = RunRegistry()
    common = {"registry": registry, "store": not args.no_registry}
    bar = _Bar()
    try:
        if args.spread is not None:
            from workbench.jobs.sensitivity import format_spread
            res = format_spread(templates[0], dataset, session, cfg, n_variants=args.spread, seed=cfg.seed,
                                progress=bar, **common)
        elif args.seeds is not None:
            from workbench.jobs.compare import seed_variance
            try:
                seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
            except ValueError as e:
                raise ConfigError(f"--seeds must be comma-separated integers, got {args.seeds!r}", "e.g. 0,1,2,3,4") from e
            res = seed_variance(templates[0], dataset, session, cfg, seeds=seeds, progress=bar, **common)
        else:
            from workbench.jobs.runner import execute
            res = execute(spec, session, dataset=dataset, progress=bar, record=not args.no_registry).result
    finally:
        bar.close()
    print(res.summary())
    if "pairs" in (res.settings if hasattr(res, "settings") else {}):
        from workbench.jobs.compare_models import format_pairs
        print(format_pairs(res.settings["pairs"]))
    if args.out:
        from workbench.jobs.compare import _save_json
        _save_json(res.to_dict(), args.out)
    where = f"  → {args.out}" if args.out else ""
    rid = f"run {res.run_id}" if res.run_id else "not recorded"
    print(f"\n{rid}{where}", file=sys.stderr)
    return 0
