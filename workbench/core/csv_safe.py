"""CSV for people: cells that a spreadsheet would run as a formula are escaped.

    df = spreadsheet_safe(df)      # before df.to_csv(...) of any CSV/TSV meant to be opened

A data cell such as `=cmd|' /C calc'!A0`, `+1+1` or `@SUM(A1)` is text to the workbench, but
Excel and LibreOffice evaluate it when the CSV is opened (CSV / formula injection). As OWASP
advises, a text cell (and column name) that starts with `=`, `+`, `-`, `@`, a tab or a carriage
return gets a leading `'`, which spreadsheets show as text. Only text is touched: numbers keep
their values, and JSON / JSONL / Parquet outputs stay exact (issue 29, item 9). Pure.
"""
from __future__ import annotations

from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def escape_cell(v: Any) -> Any:
    if isinstance(v, str) and v.startswith(FORMULA_STARTS):
        return "'" + v
    return v


def spreadsheet_safe(df):
    """A copy of DataFrame `df` with every text cell and column name escaped (see above)."""
    out = df.copy()
    out.columns = [escape_cell(c) for c in out.columns]
    for c in out.columns:
        if out[c].dtype == object or str(out[c].dtype) in ("string", "str"):
            out[c] = out[c].map(escape_cell)
    return out
