"""`workbench models`: list converted models; `workbench models path NAME` prints a loadable folder."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("models", help="list cached models, or print a model's local folder", description=__doc__)
    p.add_argument("action", nargs="?", default="list", choices=["list", "path", "info"])
    p.add_argument("name", nargs="?", default="default")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..models import list_cached, resolve_model

    if args.action == "path":
        # Prints only the folder, so `lm_eval --model_args pretrained=$(workbench models path default)` works.
        print(resolve_model(args.name).path)
        return 0
    if args.action == "info":
        from ..session import ModelSession

        s = ModelSession(args.name).load()
        for k, v in s.info().items():
            print(f"{k:>14}: {v}")
        return 0
    rows = list_cached()
    if not rows:
        print("no cached models yet (the default model is converted on first use: `workbench models path default`)")
    for r in rows:
        print(f"{r['name']:<45} {r['size_mb']:>8.1f} MB  {r['path']}")
    return 0
