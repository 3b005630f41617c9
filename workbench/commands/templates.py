"""`workbench templates`: list the library, validate a template against data, or render prompts."""
from __future__ import annotations

import sys

from workbench.commands.common import add_data_args


def register(sub) -> None:
    p = sub.add_parser("templates", help="list, validate or render templates", description=__doc__)
    p.add_argument("action", choices=["list", "validate", "render"])
    p.add_argument("template", nargs="?", help="template YAML path (validate/render)")
    add_data_args(p, required=False)
    p.add_argument("--rows", type=int, default=2, help="render: how many rows")
    p.add_argument("--shots", type=int, default=0, help="render: few-shot demonstrations")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args) -> int:
    from workbench.core.templates import load_template
    from workbench.storage.library import list_library

    if args.action == "list":
        for t in list_library():
            print(f"{t['name']:<34} {t.get('dataset') or '-':<12} {t.get('task', ''):<15} {t['source']:<8} {t['path']}")
        return 0
    if not args.template:
        print("pass a template path", file=sys.stderr)
        return 2
    tpl = load_template(args.template)
    ds = None
    if args.data:
        from workbench.commands.common import dataset_from_args
        ds = dataset_from_args(args)
    if args.action == "validate":
        problems = tpl.validate(columns=list(ds.df.columns) if ds else None, labels=ds.labels if ds else None,
                                sample_row=ds.df.iloc[0].to_dict() if ds is not None and len(ds.df) else None)
        for pr in problems:
            where = f" (line {pr.line}, col {pr.column})" if pr.line else ""
            print(f"{pr.severity}: {pr.field}{where}: {pr.message}")
        if not problems:
            print("ok: no problems found")
        return 1 if any(p.severity == "error" for p in problems) else 0
    if ds is None:
        print("render needs --data", file=sys.stderr)
        return 2
    from workbench.jobs.inference import EvalConfig, build_prompts, eval_rows

    cfg = EvalConfig(shots=args.shots, seed=args.seed, limit=args.rows)
    rows, pool = eval_rows(ds, cfg)
    for p in build_prompts(tpl, rows, pool, cfg, session=None if not tpl.chat else _session()):
        print(p)
        print("-" * 60)
    return 0


def _session():
    from workbench.engine.session import get_session
    return get_session("default")
