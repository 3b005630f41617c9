"""Datasets: every source becomes one table, a `Dataset`; this module is the pure part.

    ds = load_dataset("bbc")                           # storage/data_load.py: every source (I/O lives there)
    sp = split_dataset(ds, seed=0, dev=0.1, test=0.2)  # stratified, seeded
    demos = sample_demos(sp.train, 4, label_column=ds.label_column, per_class=True, seed=1)

A loader in storage/ (files, `datasets` folders, the hub, BIG-bench, the built-ins) returns a
`RawTable`; `finish_table` resolves its text and label columns (named, the source's own, or
detected), normalises labels and cells, and makes the `Dataset`. No I/O here.

Row identity: `Dataset.df` has a fresh RangeIndex, and that index is the "example index" that
predictions refer to. `split_dataset` and `sample_demos` return DataFrames that keep this
original index as their index (never reset), so `split.test.index[i]` is a row of `ds.df`.
Split rows come in a seeded shuffled order, so the first N rows of a split are a random sample.

Labels are always strings (int labels 0/1 become "0"/"1") so verbalizer maps have one key type.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from workbench.core.split import shuffle_split
from workbench.errors import ConfigError, DataError

# Column names tried, in order, when the caller does not name the text / label column.
LABEL_NAMES = ("label", "labels", "class", "category", "target", "y")
TEXT_NAMES = ("text", "sentence", "input", "question", "content", "review", "title")
# Names that usually hold a class, tried (with few distinct values) when no LABEL_NAMES column exists.
TYPICAL_LABEL_NAMES = ("sentiment", "polarity", "emotion", "topic", "intent", "stance", "rating", "stars",
                       "score", "gold", "answer", "tag", "genre", "type", "verdict", "outcome")
MAX_GUESSED_CLASSES = 20


@dataclass
class Dataset:
    """One table plus which columns hold the text and the gold label."""

    name: str = field(metadata={"help": "Display name, e.g. 'bbc', 'bigbench:intent_recognition', 'my.csv'."})
    df: pd.DataFrame = field(metadata={"help": "The rows; a fresh RangeIndex, the label column as str."})
    text_column: str | None = field(metadata={"help": "Main text column (for display); may be None."})
    label_column: str | None = field(metadata={"help": "Gold label column; None when unlabelled."})
    source: str = field(metadata={"help": "Where it came from: a path, or the package that ships it."})
    description: str = field(default="", metadata={"help": "Free text shown in the UI."})
    meta: dict = field(default_factory=dict, metadata={
        "help": "Source-specific facts, e.g. BIG-bench task_prefix / example_output_prefix."})
    spec: str = field(default="", metadata={
        "help": "What was passed to load_dataset (a built-in name, bigbench:TASK, hf:ID or a path): "
                "a RunSpec names the data by it, so the equivalent CLI command loads the same rows."})

    def fingerprint(self) -> str:
        """sha256 (first 16 hex) of columns + rows in order; the same in every process."""
        h = hashlib.sha256()
        h.update(_canon(list(map(str, self.df.columns))).encode())
        for row in self.df.itertuples(index=False, name=None):
            h.update(b"\n")
            h.update(_canon(list(row)).encode())
        return h.hexdigest()[:16]

    @property
    def labels(self) -> list[str]:
        if not self.label_column or self.label_column not in self.df.columns:
            return []
        return sorted({str(v) for v in self.df[self.label_column]})

    def __len__(self) -> int:
        return len(self.df)


def _jsonable(v: Any) -> Any:
    if hasattr(v, "tolist"):  # numpy scalars and arrays (e.g. list cells from parquet)
        return v.tolist()
    if isinstance(v, (set, frozenset)):
        return sorted(map(str, v))
    return str(v)


def _canon(obj: Any) -> str:
    # sort_keys makes dict cells order-free; NaN serialises as NaN, which is stable.
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, default=_jsonable)


@dataclass
class RawTable:
    """What a loader returns before column resolution and validation."""

    name: str
    df: pd.DataFrame
    source: str
    text_column: str | None = None   # the source's own default (None: auto-detect)
    label_column: str | None = None
    auto_label: bool = True          # False: the source knows it has no label column
    description: str = ""
    meta: dict = field(default_factory=dict)


def _plain(v: Any) -> Any:
    """A cell as plain Python: numpy arrays (Parquet / Arrow list cells) become lists, nested
    through records, so a Parquet cell renders exactly as the same JSONL cell does."""
    if hasattr(v, "tolist") and getattr(v, "ndim", 0) > 0:
        return [_plain(x) for x in v.tolist()]
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if hasattr(v, "item") and type(v).__module__ == "numpy":
        return v.item()
    return v


def _plain_cells(df: pd.DataFrame) -> pd.DataFrame:
    for c in df.columns:
        col = df[c]
        if col.dtype == object and col.map(lambda v: isinstance(v, (list, tuple, dict)) or hasattr(v, "ndim")).any():
            df[c] = col.map(_plain).astype(object)
    return df


def finish_table(raw: RawTable, *, text_column, label_column, limit) -> Dataset:
    df = raw.df
    df.columns = [str(c) for c in df.columns]
    df = _plain_cells(df)
    if len(df) == 0:
        raise DataError(f"{raw.name} has no rows.", hint="Check that the file has data below its header.")
    cols = list(df.columns)

    def need(col: str, what: str, flag: str) -> str:
        if col not in df.columns:
            raise DataError(f"{what} column '{col}' not found in {raw.name}; available columns: "
                            f"{', '.join(cols)}.", hint=f"Pass one of these with {flag} (or label_column=/text_column=).")
        return col

    detection = None
    if label_column:
        label = need(label_column, "Label", "--label-column")
    elif raw.label_column:
        label = raw.label_column
    else:
        label = _detect(cols, LABEL_NAMES) if raw.auto_label else None
        if label is None and raw.auto_label:
            label, detection = guess_label_column(df, text_column)
        elif label is not None:
            detection = {"column": label, "sure": True, "how": "name",
                         "reason": f"the column is named '{label}'"}
    if text_column:
        text = need(text_column, "Text", "--text-column")
    else:
        text = raw.text_column or _detect([c for c in cols if c != label], TEXT_NAMES) or _longest_text(df, label)

    if label:
        df[label] = _normalize_labels(df[label], raw.name, label)
    if limit is not None and int(limit) < len(df):
        df = df.sample(n=int(limit), random_state=0).sort_index()
    df = df.reset_index(drop=True)
    meta = dict(raw.meta)
    if detection is not None:
        meta["label_detection"] = detection
    return Dataset(name=raw.name, df=df, text_column=text, label_column=label, source=raw.source,
                   description=raw.description, meta=meta)


def guess_label_column(df: pd.DataFrame, text_column: str | None = None) -> tuple[str | None, dict]:
    """A label column for a table without a column named like LABEL_NAMES: the column with a
    typical class name (`sentiment`, `topic`, ...) and few distinct values, else the column
    with the fewest distinct values (2..MAX_GUESSED_CLASSES, repeated values), flagged unsure.
    Returns (column or None, {"column", "sure", "how", "reason", "candidates"})."""
    n = len(df)
    cands = []
    for c in df.columns:
        if c == text_column:
            continue
        s = df[c].dropna()
        if len(s) == 0 or s.map(lambda v: isinstance(v, (list, dict))).any():
            continue
        k = int(s.astype(str).nunique())
        # A class column repeats its values: at most half as many distinct values as rows
        # (so a 2-row table has no guessable label column).
        if 2 <= k <= MAX_GUESSED_CLASSES and k <= n // 2:
            cands.append((c, k))
    names = [c for c, _ in cands]
    lower = {c.lower(): c for c in names}
    for typical in TYPICAL_LABEL_NAMES:
        if typical in lower:
            c = lower[typical]
            k = dict(cands)[c]
            return c, {"column": c, "sure": True, "how": "name+values", "candidates": names,
                       "reason": f"'{c}' is a typical label name and has {k} distinct values"}
    if cands:
        c, k = min(cands, key=lambda x: x[1])
        return c, {"column": c, "sure": False, "how": "values", "candidates": names,
                   "reason": f"'{c}' has only {k} distinct values in {n} rows"}
    return None, {"column": None, "sure": False, "how": "none", "candidates": [],
                  "reason": "no column has a label-like name or few repeated values"}


def _detect(cols: list[str], names: tuple[str, ...]) -> str | None:
    for n in names:  # exact names first, then case-insensitive ("Label", "TEXT")
        if n in cols:
            return n
    lower = {c.lower(): c for c in cols}
    for n in names:
        if n in lower:
            return lower[n]
    return None


def _longest_text(df: pd.DataFrame, label: str | None) -> str | None:
    best, best_len = None, 0.0
    for c in df.columns:
        if c == label:
            continue
        s = df[c].dropna()
        s = s[s.map(lambda v: isinstance(v, str))]
        if len(s) == 0:
            continue
        m = float(s.str.len().mean())
        if m > best_len:
            best, best_len = c, m
    return best


def _is_nested(v: Any) -> bool:
    return isinstance(v, (list, tuple, dict, set)) or (hasattr(v, "shape") and getattr(v, "ndim", 0) > 0)


def _normalize_labels(s: pd.Series, name: str, col: str) -> pd.Series:
    nested = s.map(_is_nested)
    if nested.any():
        rows = [int(i) for i in s.index[nested.to_numpy()]]
        shown = ", ".join(map(str, rows[:5])) + (f" … ({len(rows)} in all)" if len(rows) > 5 else "")
        first = s[rows[0]]
        raise DataError(f"Label column '{col}' of {name} holds lists or records (row(s) {shown}, e.g. "
                        f"{str(list(first) if hasattr(first, 'tolist') else first)[:80]}), not one label per row.",
                        hint="Multi-label rows are not supported: pick a column with one label per row "
                             "(--label-column), or write one row per label.")
    empty = s.isna() | s.map(lambda v: isinstance(v, str) and not v.strip())
    if empty.any():
        rows = [int(i) for i in s.index[empty.to_numpy()]]
        shown = ", ".join(map(str, rows[:5])) + (f" … ({len(rows)} in all)" if len(rows) > 5 else "")
        raise DataError(f"Label column '{col}' of {name} is empty in row(s) {shown} (0-based row numbers).",
                        hint="Fill in those labels or drop the rows; pass --label-column if the label "
                             "is in another column.")

    def to_str(v: Any) -> str:
        # 1.0 (an int column that pandas read as float) should become "1", not "1.0".
        if isinstance(v, float) and math.isfinite(v) and v.is_integer():
            return str(int(v))
        if hasattr(v, "item") and not isinstance(v, str):
            return to_str(v.item())
        return str(v)

    return s.map(to_str).astype(object)


def map_columns(ds: Dataset, text_column: str | None = None, label_column: str | None = None,
                rename: dict | None = None) -> Dataset:
    """A new Dataset with columns renamed (old → new) and/or other text / label columns chosen."""
    df = ds.df.copy()
    rename = dict(rename or {})
    missing = [c for c in rename if c not in df.columns]
    if missing:
        raise DataError(f"Cannot rename {', '.join(map(repr, missing))}: not a column of {ds.name}; "
                        f"available columns: {', '.join(map(str, df.columns))}.", hint="Check the column names.")
    df = df.rename(columns=rename)
    follow = lambda c: rename.get(c, c) if c else c  # noqa: E731 - keep the current choice through a rename
    raw = RawTable(ds.name, df, ds.source, text_column=follow(ds.text_column), label_column=follow(ds.label_column),
               auto_label=False, description=ds.description, meta=dict(ds.meta))
    return finish_table(raw, text_column=text_column, label_column=label_column, limit=None)


# ---------------------------------------------------------------------------- splits
@dataclass
class Splits:
    """train / dev / test DataFrames; each keeps the dataset's original row index."""

    train: pd.DataFrame
    dev: pd.DataFrame
    test: pd.DataFrame
    seed: int = field(metadata={"help": "Seed of the shuffle; the same seed gives the same split."})
    fractions: tuple[float, float, float] = field(metadata={"help": "(train, dev, test) fractions asked for."})
    stratified: bool = field(default=True, metadata={"help": "Whether class proportions were kept."})
    note: str = field(default="", metadata={"help": "Why stratification was dropped, if it was."})

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "dev": len(self.dev), "test": len(self.test)}


def split_dataset(ds: Dataset, *, seed: int = 0, dev: float = 0.1, test: float = 0.2,
                  stratify: bool = True) -> Splits:
    """Seeded train/dev/test split, stratified by label when every class has 2+ rows.

    Sizes are round(fraction * n). Rows keep their original index and come in shuffled order.
    """
    if not (0 <= dev < 1 and 0 <= test < 1 and dev + test < 1):
        raise ConfigError(f"Split fractions dev={dev}, test={test} must be >= 0 and sum to less than 1.",
                          hint="For example dev=0.1, test=0.2.")
    df = ds.df
    n = len(df)
    n_test, n_dev = int(round(test * n)), int(round(dev * n))
    if n - n_test - n_dev < 1:
        raise DataError(f"{ds.name} has {n} rows, too few for dev={dev}, test={test}.",
                        hint="Use smaller fractions or a larger dataset.")
    notes: list[str] = []
    y = df[ds.label_column] if stratify and ds.label_column else None
    if y is not None:
        counts = y.value_counts()
        rare = sorted(map(str, counts.index[counts < 2]))
        if rare:
            notes.append(f"not stratified: class(es) {', '.join(rare[:5])} have fewer than 2 rows")
            y = None

    def cut(idx, n_out: int, y_part, what: str):
        if n_out == 0:
            return idx, idx[:0]
        if y_part is not None:
            try:
                return shuffle_split(idx, n_out, seed, labels=y_part)
            except ValueError as e:  # e.g. fewer test rows than classes
                notes.append(f"{what} not stratified: {e}")
        return shuffle_split(idx, n_out, seed)

    idx = df.index.to_numpy()
    rest, test_idx = cut(idx, n_test, y, "test")
    train_idx, dev_idx = cut(rest, n_dev, None if y is None else y.loc[rest], "dev")
    n_frac = (round(1 - dev - test, 6), dev, test)
    return Splits(train=df.loc[train_idx], dev=df.loc[dev_idx], test=df.loc[test_idx], seed=seed,
                  fractions=n_frac, stratified=y is not None and not notes, note="; ".join(notes))


def sample_demos(pool: pd.DataFrame, k: int, *, label_column: str | None, per_class: bool = False,
                 balanced: bool = False, seed: int = 0, exclude: Any | None = None) -> pd.DataFrame:
    """Pick few-shot demonstrations from `pool` (rows keep their index; order is shuffled).

    k rows in all; `per_class`: k rows of every class; `balanced`: k rows spread evenly over the
    classes (the remainder goes to seeded-random classes). `exclude` drops that row index so an
    example is never its own demonstration. Raises DataError when too few rows are available.
    """
    import numpy as np

    if k < 0:
        raise ConfigError(f"Number of demonstrations must be >= 0, got {k}.")
    if exclude is not None and exclude in pool.index:
        pool = pool.drop(index=exclude)
    if k == 0:
        return pool.iloc[:0]
    rng = np.random.default_rng(seed)
    if not (per_class or balanced):
        if k > len(pool):
            raise DataError(f"Asked for {k} demonstrations but only {len(pool)} rows are available.",
                            hint="Use fewer shots or a larger training split.")
        return pool.iloc[rng.choice(len(pool), size=k, replace=False)]
    if not label_column or label_column not in pool.columns:
        raise ConfigError("per_class / balanced demonstrations need a label column.",
                          hint="Pass label_column, or sample k demonstrations in all.")
    groups = {str(lab): pool.index[(pool[label_column].astype(str) == str(lab)).to_numpy()]
              for lab in sorted(pool[label_column].astype(str).unique())}
    classes = list(groups)
    avail = ", ".join(f"{c}: {len(groups[c])}" for c in classes)
    hint = "Use fewer shots, or sample without per_class / balanced."
    if per_class:
        want = {c: k for c in classes}
        short = [c for c in classes if len(groups[c]) < k]
        if short:
            raise DataError(f"Not enough rows for {k} demonstration(s) per class: class(es) {', '.join(short)} "
                            f"have too few. Available per class: {avail}.", hint=hint)
    else:
        base, extra = divmod(k, len(classes))
        # the remainder goes to seeded-random classes that still have rows to give
        roomy = [i for i, c in enumerate(classes) if len(groups[c]) > base]
        short = [c for c in classes if len(groups[c]) < base]
        if short or extra > len(roomy):
            raise DataError(f"Not enough rows for {k} demonstration(s) balanced over {len(classes)} classes "
                            f"({base}{'-' + str(base + 1) if extra else ''} each)"
                            + (f": class(es) {', '.join(short)} have too few" if short else "")
                            + f". Available per class: {avail}.", hint=hint)
        lucky = set(rng.choice(roomy, size=extra, replace=False).tolist()) if extra else set()
        want = {c: base + (1 if i in lucky else 0) for i, c in enumerate(classes)}
    picked = []
    for c in classes:
        idx = groups[c]
        picked.extend(idx[np.sort(rng.choice(len(idx), size=want[c], replace=False))].tolist())
    out = pool.loc[picked]
    return out.iloc[rng.permutation(len(out))]
