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
from pathlib import Path

from workbench.commands.common import check_out_path, TqdmProgress, add_data_args, add_model_args, dataset_from_args, session_from_args


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
    p.add_argument("--zip", action="store_true", help="also write <out>.zip")
    p.add_argument("--shots", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--method", default="acc", choices=["acc", "acc_norm", "acc_bytes"])
    p.add_argument("--calibration", default="none", choices=["none", "contextual", "pmi"])
    p.add_argument("--split", default="test", choices=["test", "dev", "train", "all"])
    p.add_argument("--limit", type=int, default=None)
    p.set_defaults(func=run)


def run(args) -> int:
    from workbench.errors import ConfigError
    from workbench.jobs.export import ExportConfig, export_bundle, export_train_run, zip_bundle
    from workbench.jobs.inference import EvalConfig
    from workbench.core.templates import load_template

    check_out_path(args.out)   # before any work: an export must not score everything, then fail to save
    dataset = dataset_from_args(args)
    session = session_from_args(args) if not args.adapter else None
    if args.train_run:
        name = Path(args.train_run).resolve().name
    elif args.winner is not None:
        from workbench.jobs.compare import get_winner_info

        info = get_winner_info(args.winner or None)
        if info is None:
            raise ConfigError("No comparison has a marked winner" + (f" (run {args.winner})" if args.winner else "") + ".",
                              hint="Mark one with the Compare tab, or pass --template.")
        template = load_template(info["yaml"])
        name = template.name
    else:
        template = load_template(args.template, name=args.template_name) if args.template_name else load_template(args.template)
        name = template.name
    out = Path(args.out) if args.out else None
    ex = ExportConfig(name=out.name if out else name, out_dir=str(out.parent) if out else None, merge=args.merge,
                      overwrite=args.overwrite, include_data=not args.no_data)
    bar = TqdmProgress("export")
    try:
        if args.train_run:
            path = export_train_run(args.train_run, dataset, model=args.model, export=ex, progress=bar)
        else:
            cfg = EvalConfig(shots=args.shots, seed=args.seed, method=args.method, calibration=args.calibration,
                             split=args.split, limit=args.limit)
            cfg.validate()
            if session is None:
                from workbench.engine.session import get_session
                session = get_session(args.model, device=args.device, dtype=args.dtype,
                                      trust_remote_code=args.trust_remote_code)
            path = export_bundle(template, dataset, session=session, config=cfg, adapter=args.adapter, export=ex,
                                 progress=bar)
    finally:
        bar.close()
    print(path)
    if args.zip:
        print(zip_bundle(path))
    import json
    m = json.loads((path / "metrics.json").read_text())["test"]
    a, f = m["accuracy"], m["macro_f1"]
    print(f"accuracy {a['value']:.3f} [{a['ci_low']:.3f}, {a['ci_high']:.3f}]  macro-F1 {f['value']:.3f}  "
          f"n={m['n']}", file=sys.stderr)
    return 0
