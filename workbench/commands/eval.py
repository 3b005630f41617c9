"""`workbench eval`: score a template on a dataset split and write results.json.

    workbench eval --data bbc --template templates_library/bbc_headline_topic.yaml --shots 4 --limit 200

Every EvalConfig setting is a flag (see --help). A setting you leave out takes the template's
default (its `fewshot:` block: k, per_class, balanced, sampling, seed), else the built-in one:
the same rule as the UI's (workbench.core.spec.build_spec).
"""
from __future__ import annotations

import argparse
import sys

from workbench.commands.common import (check_out_path, TqdmProgress, add_config_args, add_data_args, add_model_args,
                                       config_overrides, dataset_from_args, model_refs, session_for)


def register(sub) -> None:
    from workbench.core.config import EvalConfig

    p = sub.add_parser("eval", help="zero-/few-shot evaluation of a template", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    add_data_args(p)
    p.add_argument("--template", required=True, help="a template YAML (ours, lm-eval task or PromptSource)")
    p.add_argument("--template-name", default=None, help="pick one template from a PromptSource file")
    add_config_args(p, EvalConfig, title="evaluation (EvalConfig)")
    p.add_argument("--out", default="results.json")
    p.add_argument("--no-registry", action="store_true", help="do not record the run in the run registry")
    p.set_defaults(func=run)


def spec_from_args(args):
    """The RunSpec this command line describes (the same one the Run tab builds)."""
    from workbench.core.config import EvalConfig
    from workbench.core.spec import build_spec
    from workbench.core.templates import load_template

    template = load_template(args.template, name=args.template_name)
    dataset = dataset_from_args(args)
    return build_spec("eval", templates=[(template, args.template)], data=dataset,
                      model=model_refs(args), eval=config_overrides(args, EvalConfig)), dataset


def run(args) -> int:
    from workbench.core.metrics import format_table
    from workbench.jobs.runner import execute

    check_out_path(args.out)   # before any work: a run must not score everything, then fail to save
    spec, dataset = spec_from_args(args)
    session = session_for(spec.model)
    bar = TqdmProgress(spec.template.name)
    try:
        result = execute(spec, session, dataset=dataset, progress=bar, record=not args.no_registry).result
    finally:
        bar.close()
    result.save(args.out)
    print(format_table(result.metrics))
    for w in result.provenance.get("warnings", []):
        print(f"warning: {w}", file=sys.stderr)
    t = result.timings
    print(f"\n{result.metrics['n']} examples in {t['total_s']:.1f}s ({t['examples_per_s']:.1f}/s on the model)  "
          f"→ {args.out}", file=sys.stderr)
    return 0
