"""`workbench export`: write a bundle (template, adapter, metrics with CIs, model card, lm-eval
and PromptSource files, manifest with checksums) that `workbench predict` and `load_bundle` use.

    workbench export --data bbc --template templates_library/bbc_headline_topic.yaml --limit 200 --out out/best
    workbench export --data bbc --winner --out out/best            # the latest marked comparison winner
    workbench export --data bbc --train-run ~/.cache/prompt-workbench/train/RUN --out out/best [--merge]

The metrics are measured now on the chosen split (or, for --train-run, read from the run's
adapter_results.json). See docs/EXPORT.md.
"""
from __future__ import annotations

import argparse
import sys

from workbench.commands.progress import CliProgress
from workbench.commands.common import (check_out_path, add_config_args, add_data_args, add_model_args, config_overrides,
                                       dataset_from_args, model_refs, session_for)


def register(sub) -> None:
    p = sub.add_parser("export", help="export a template (+ adapter) as a bundle", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    add_data_args(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--template", help="a template YAML (ours, lm-eval task or PromptSource)")
    src.add_argument("--winner", nargs="?", const="", metavar="RUN_ID",
                     help="the marked winner of a comparison (default: the latest marked one)")
    src.add_argument("--train-run", help="a LoRA training run folder (its adapter, template and test results)")
    p.add_argument("--template-name", default=None, help="pick one template from a PromptSource file")
    p.add_argument("--out", default=None, help="bundle folder to write (default: $WORKBENCH_HOME/exports/<template>)")
    p.add_argument("--merge", action="store_true", help="merge the adapter into the base weights (model/ folder)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle")
    p.add_argument("--no-data", action="store_true", help="leave out data/*.jsonl (no lm-eval task then)")
    p.add_argument("--zip", action="store_true", help="also write <out>.zip (the export is recorded once both exist)")
    p.add_argument("--force", action="store_true",
                   help="export a training run that did not finish (interrupted, failed); the model card says so")
    from workbench.core.config import EvalConfig

    add_config_args(p, EvalConfig, title="evaluation (EvalConfig) of the exported template")
    p.set_defaults(func=run)


def spec_from_args(args):
    """The RunSpec of this export (the Export tab builds the same one); returns (spec, dataset)."""
    from workbench.core.config import EvalConfig
    from workbench.core.spec import build_spec
    from workbench.core.templates import load_template

    check_out_path(args.out)   # before any work: an export must not score everything, then fail to save
    dataset = dataset_from_args(args)
    opts = {"out": args.out, "merge": args.merge, "overwrite": args.overwrite, "no_data": args.no_data,
            "zip": args.zip, "force": args.force}
    from workbench.jobs.export_source import export_source

    template = None if (args.train_run or args.winner is not None) else \
        (load_template(args.template, name=args.template_name), args.template)
    templates, source = export_source(template, train_run=args.train_run,
                                      winner=(args.winner or True) if args.winner is not None else None)
    opts.update(source)
    return build_spec("export", templates=templates, data=dataset, model=model_refs(args),
                      eval=config_overrides(args, EvalConfig), options=opts), dataset


def run(args) -> int:
    from workbench.jobs.runner import execute

    spec, dataset = spec_from_args(args)
    session = session_for(spec.model) if not spec.options.train_run else None
    bar = CliProgress("export")
    try:
        path = execute(spec, session, dataset=dataset, progress=bar).result
    finally:
        bar.close()
    print(path)
    if args.zip:
        print(path.parent / f"{path.name}.zip")
    import json
    m = json.loads((path / "metrics.json").read_text())["test"]
    a, f = m["accuracy"], m["macro_f1"]
    print(f"accuracy {a['value']:.3f} [{a['ci_low']:.3f}, {a['ci_high']:.3f}]  macro-F1 {f['value']:.3f}  "
          f"n={m['n']}", file=sys.stderr)
    return 0
