"""`workbench models`: list converted models; `workbench models path NAME` prints a loadable folder;
`workbench models info NAME` loads it and prints what loaded; `workbench models check NAME` (re)runs
the side-by-side check of the built-in scoring path against transformers (docs/SCORING.md)."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("models", help="list cached models, or print a model's local folder", description=__doc__)
    p.add_argument("action", nargs="?", default="list", choices=["list", "path", "info", "check"])
    p.add_argument("--device", default=None, help="for check: cuda | mps | cpu (default: auto)")
    p.add_argument("--dtype", default=None, help="for check: float32 | bfloat16 | float16 (default: per device)")
    p.add_argument("name", nargs="?", default="default")
    p.set_defaults(func=run)


def run(args) -> int:
    from workbench.engine.models import list_cached, resolve_model

    if args.action == "path":
        # Prints only the folder, so `lm_eval --model_args pretrained=$(workbench models path default)` works.
        print(resolve_model(args.name).path)
        return 0
    if args.action == "info":
        from workbench.engine.session import ModelSession

        s = ModelSession(args.name).load()
        for k, v in s.info().items():
            print(f"{k:>14}: {v}")
        return 0
    if args.action == "check":
        from workbench.engine import fastpath
        from workbench.engine.session import ModelSession

        s = ModelSession(args.name, native=False, device=args.device, dtype=args.dtype).load()
        v = fastpath.verify(s.model, s.tokenizer, s.resolved.path, s._dtype_name(), s.device)
        if v["ok"]:
            print(f"built-in scoring path: verified for {args.name} ({v['dtype']}, {v['device']}); "
                  f"max |Δ log p| vs transformers {v['max_abs_logprob_diff']:.1e}")
        else:
            print(f"built-in scoring path: off for {args.name} ({v['dtype']}, {v['device']}): {v.get('reason')}\n"
                  "Scoring uses transformers for this model; results are unaffected, only start-up is slower.")
        return 0
    rows = list_cached()
    if not rows:
        print("no cached models yet (the default model is converted on first use: `workbench models path default`)")
    for r in rows:
        print(f"{r['name']:<45} {r['size_mb']:>8.1f} MB  {r['path']}")
    return 0
