"""`workbench runs`: the run registry (every eval, comparison, training run and export)."""
from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("runs", help="list or show runs from the registry", description=__doc__)
    p.add_argument("action", nargs="?", default="list", choices=["list", "show"])
    p.add_argument("run_id", nargs="?")
    p.add_argument("--kind", default=None, choices=["eval", "compare", "train", "export", "search"])
    p.add_argument("--search", default=None, help="substring of the name, model or data")
    p.add_argument("--limit", type=int, default=30)
    p.set_defaults(func=run)


def run(args) -> int:
    from workbench.storage.runs import RunRegistry

    reg = RunRegistry()
    if args.action == "show":
        rec = reg.get(args.run_id)
        print(json.dumps(rec.to_dict(), indent=1, default=str))
        return 0
    if args.kind in (None, "train"):
        from workbench.jobs.run_folder import sweep_interrupted

        sweep_interrupted()   # a training run whose process died is listed as interrupted at once
    rows = reg.list(kind=args.kind, limit=args.limit, search=args.search)
    if not rows:
        print(f"no runs yet in {reg.path}")
    for r in rows:
        m = r.metrics or {}
        score = m.get("accuracy", m.get("exact_match", m.get("test_winner_accuracy")))
        score = f"{score:.3f}" if isinstance(score, (int, float)) else "-"
        print(f"{r.id}  {r.kind:<8} {r.created_at[:19]}  {r.name[:32]:<32} {(r.data_name or '-')[:14]:<14} {score:>6}  "
              f"{(r.adapter or '')[-30:]}" + (f"  [{r.status}]" if r.status and r.status != "done" else ""))
    return 0
