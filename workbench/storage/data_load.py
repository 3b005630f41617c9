"""Load a dataset from any source: the one entry point of the workbench's data loading.

    ds = load_dataset("bbc")                          # built-in (see builtin_datasets())
    ds = load_dataset("bigbench:intent_recognition")  # BIG-bench JSON task (TASK or TASK/SUBTASK)
    ds = load_dataset("reviews.csv", label_column="stars")
    ds = load_data_ref(spec.data)                     # a RunSpec's DataSpec

Sources: built-ins (`bbc`, `sentiment`, `intent`, `strategyqa`), `bigbench:TASK[/SUBTASK]` or a
path to a BIG-bench `task.json`, CSV / TSV / JSONL / JSON / Parquet files, a `datasets`
`save_to_disk` folder, and `hf:owner/name[:config]` (needs the hub; fails clearly offline).
The readers are storage/data_files.py, data_bigbench.py and data_builtins.py; the pure table
work (column detection, labels, splits, demonstrations) is core/data.py.
"""
from __future__ import annotations

from pathlib import Path

from workbench.core.data import Dataset, finish_table
from workbench.errors import ConfigError, DataError
from workbench.storage.data_bigbench import load_bigbench_spec
from workbench.storage.data_builtins import BUILTINS, supported_hint
from workbench.storage.data_files import is_datasets_dir, load_hub, load_path


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
        raise DataError("No dataset given.", hint=supported_hint())
    if limit is not None and int(limit) < 1:
        raise ConfigError(f"limit must be a positive number of rows, got {limit}.",
                          hint="Leave limit empty to load every row.")
    if split and not (spec.startswith("hf:") or is_datasets_dir(Path(spec).expanduser())):
        raise DataError(f"split={split!r} only applies to `datasets` folders and hf: datasets, not {spec!r}.",
                        hint="Use split_dataset(...) to make train/dev/test splits of a single table.")

    if spec in BUILTINS:
        raw = BUILTINS[spec].load()
    elif spec.startswith("bigbench:"):
        raw = load_bigbench_spec(spec[len("bigbench:"):])
    elif spec.startswith("hf:"):
        raw = load_hub(spec, split)
    else:
        raw = load_path(Path(spec).expanduser(), spec, split, encoding)
    ds = finish_table(raw, text_column=text_column, label_column=label_column, limit=limit)
    ds.spec = spec
    return ds


def load_data_ref(ref) -> Dataset:
    """The rows a RunSpec's `DataRef` names (its source and column choices), refused when the data
    changed since the spec was made (its fingerprint)."""
    ds = load_dataset(ref.source, text_column=ref.text_column, label_column=ref.label_column)
    if ref.fingerprint and ds.fingerprint() != ref.fingerprint:
        raise DataError(f"The data at {ref.source} changed since this spec was made "
                        f"(fingerprint {ds.fingerprint()} != {ref.fingerprint}).",
                        hint="Build the spec again on the current data.")
    return ds
