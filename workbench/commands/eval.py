"""`workbench eval`: score a template on a dataset split and write results.json."""
from __future__ import annotations

import sys

from workbench.commands.common import check_out_path, TqdmProgress, add_data_args, add_model_args, dataset_from_args, session_from_args


def register(sub) -> None:
    p = sub.add_parser("eval", help="zero-/few-shot evaluation of a template", description=__doc__)
    add_model_args(p)
    add_data_args(p)
    p.add_argument("--template", required=True, help="a template YAML (ours, lm-eval task or PromptSource)")
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
    from workbench.jobs.inference import EvalConfig, evaluate
    from workbench.core.metrics import format_table
    from workbench.core.templates import load_template

    check_out_path(args.out)   # before any work: a run must not score everything, then fail to save
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
    for w in result.provenance.get("warnings", []):
        print(f"warning: {w}", file=sys.stderr)
    t = result.timings
    print(f"\n{result.metrics['n']} examples in {t['total_s']:.1f}s ({t['examples_per_s']:.1f}/s on the model)  "
          f"→ {args.out}", file=sys.stderr)
    return 0
