"""`workbench predict`: label new rows with a bundle (base model + adapter + template).

    workbench predict --bundle out/best --input new.csv --out preds.csv
    workbench predict --bundle out/best --input new.jsonl --text-column body --out preds.csv

The input is CSV, TSV, JSON(L) or Parquet. Columns must be named like the template's
variables; for a one-variable template, --text-column names the column that fills it. The
output is the input plus `pred` and one `score_<label>` column per label (plus `gold` and
`correct` when the input has the label column).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("predict", help="label new rows with an exported bundle", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", required=True, help="a bundle folder or .zip from `workbench export`")
    p.add_argument("--input", required=True, help="rows to label: .csv, .tsv, .jsonl, .json or .parquet")
    p.add_argument("--out", default="predictions.csv", help="where to write (.csv, .tsv, .jsonl or .parquet)")
    p.add_argument("--text-column", default=None, help="the input column that fills the template's one variable")
    p.add_argument("--model", default=None, help="base model (default: the bundle's)")
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default=None)
    p.add_argument("--force", action="store_true", help="accept a different base model or tokenizer")
    p.add_argument("--batch-size", type=int, default=64, help="rows per scoring batch")
    p.set_defaults(func=run)


def read_table(path: str):
    import pandas as pd

    from workbench.errors import DataError

    p = Path(path)
    if not p.is_file():
        raise DataError(f"Input file not found: {p}", hint="Check the path.")
    suf = p.suffix.lower()
    try:
        if suf == ".csv":
            return pd.read_csv(p)
        if suf == ".tsv":
            return pd.read_csv(p, sep="\t")
        if suf == ".jsonl":
            return pd.read_json(p, lines=True)
        if suf == ".json":
            return pd.read_json(p)
        if suf == ".parquet":
            return pd.read_parquet(p)
    except (ValueError, OSError) as e:
        raise DataError(f"Could not read {p}: {e}", hint="Check the file format.") from e
    raise DataError(f"Unknown input format '{suf}' ({p}).", hint="Use .csv, .tsv, .jsonl, .json or .parquet.")


def write_table(df, path: str) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    suf = p.suffix.lower()
    if suf not in (".jsonl", ".parquet"):
        from workbench.core.csv_safe import spreadsheet_safe

        df = spreadsheet_safe(df)   # formula cells escaped in files people open (JSONL / Parquet stay exact)
    if suf == ".tsv":
        df.to_csv(tmp, sep="\t", index=False)
    elif suf == ".jsonl":
        df.to_json(tmp, orient="records", lines=True, force_ascii=False)
    elif suf == ".parquet":
        df.to_parquet(tmp, index=False)
    else:
        df.to_csv(tmp, index=False)
    tmp.replace(p)


def run(args) -> int:
    from workbench.errors import DataError
    from workbench.jobs.export import load_bundle
    from workbench.commands.progress import CliProgress

    clf = load_bundle(args.bundle, model=args.model, force=args.force, device=args.device, dtype=args.dtype)
    with clf:   # a .zip bundle's temp folder is removed however this ends
        df = read_table(args.input)
        if args.text_column:
            if args.text_column not in df.columns:
                raise DataError(f"{args.input} has no column '{args.text_column}' (columns: "
                                f"{', '.join(map(str, df.columns))}).", hint="Pass one of those to --text-column.")
            df = df.rename(columns={args.text_column: clf.input_column()})
        bar = CliProgress("predict")
        try:
            out = clf.predict_frame(df, batch_size=args.batch_size, progress=bar)
        finally:
            bar.close()
    write_table(out, args.out)
    counts = out["pred"].value_counts().to_dict()
    print(f"{len(out)} rows → {args.out}  ({', '.join(f'{k}: {v}' for k, v in counts.items())})", file=sys.stderr)
    if "correct" in out.columns:
        print(f"accuracy on the labelled input: {out['correct'].mean():.3f}", file=sys.stderr)
    return 0
