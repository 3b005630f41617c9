"""`workbench data`: inspect a dataset (columns, labels, splits) or fetch BIG-bench task files."""
from __future__ import annotations

from workbench.commands.common import add_data_args


def register(sub) -> None:
    p = sub.add_parser("data", help="show a dataset's columns, class balance and splits", description=__doc__)
    add_data_args(p, required=False)
    p.add_argument("action", nargs="?", default="info", choices=["info", "list", "fetch-bigbench"])
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args) -> int:
    from workbench.core.data import split_dataset
    from workbench.storage.data_builtins import builtin_datasets

    if args.action == "list":
        for d in builtin_datasets():
            mark = "" if d.get("available", True) else "  (not installed)"
            print(f"{d['name']:<14} {d.get('description', '')}{mark}")
        return 0
    if args.action == "fetch-bigbench":
        from workbench.storage.fetch import fetch_bigbench

        print(fetch_bigbench())
        return 0
    from workbench.commands.common import dataset_from_args

    if not args.data:
        print("pass --data (see `workbench data list`)")
        return 2
    ds = dataset_from_args(args)
    print(f"{ds.name}: {len(ds.df)} rows, columns {list(ds.df.columns)}")
    print(f"text column: {ds.text_column}   label column: {ds.label_column}   fingerprint: {ds.fingerprint()}")
    if ds.label_column:
        counts = ds.df[ds.label_column].value_counts().sort_index()
        for lab, n in counts.items():
            print(f"  {lab:<28} {n:>6}")
        sp = split_dataset(ds, seed=args.seed)
        print(f"splits (seed {sp.seed}): {sp.sizes()}")
    return 0
