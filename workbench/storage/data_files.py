"""Data files and folders as tables: CSV / TSV / JSONL / JSON / Parquet (decoded here, so that a
bad byte or line is reported where it is), a `datasets` save_to_disk folder, a BIG-bench task
folder, and `hf:owner/name[:config]` from the Hugging Face hub (fails clearly, in seconds, offline).
Split out of core/data.py (#23): core does no I/O."""
from __future__ import annotations

import difflib
import io
import json
import os
import re
import threading
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.core.data import RawTable
from workbench.errors import DataError
from workbench.storage.data_bigbench import bigbench_table, load_bigbench_dir
from workbench.storage.data_builtins import BUILTINS, supported_hint

FILE_EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
                   ".json": "json", ".parquet": "parquet", ".pq": "parquet"}
HUB_TIMEOUT_S = float(os.environ.get("WORKBENCH_HUB_TIMEOUT", "30"))


def load_path(path: Path, spec: str, split: str | None, encoding: str | None) -> RawTable:
    if not path.exists():
        close = difflib.get_close_matches(spec, list(BUILTINS), n=3)
        hint = f"Did you mean {', '.join(close)}? " if close else ""
        raise DataError(f"File not found: {spec}", hint=hint + supported_hint())
    if path.is_dir():
        if is_datasets_dir(path):
            return _load_datasets_dir(path, split)
        if (path / "task.json").is_file():
            return load_bigbench_dir(path, f"bigbench:{path.name}")
        raise DataError(f"{path} is a folder but not a `datasets` save_to_disk folder "
                        "(no dataset_info.json, state.json or dataset_dict.json) nor a BIG-bench task.",
                        hint=supported_hint())
    kind = FILE_EXTENSIONS.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"Unsupported file extension '{path.suffix or '(none)'}' for {path.name}.",
                        hint=supported_hint())
    if path.stat().st_size == 0:
        raise DataError(f"{path.name} is empty.", hint="Choose a file with a header and at least one row.")
    if kind == "parquet":
        try:
            df = pd.read_parquet(path)
        except Exception as e:  # noqa: BLE001 - pyarrow raises many types for a bad file
            raise DataError(f"Could not read Parquet file {path.name}: {e}",
                            hint="Check that the file is a valid Parquet table.") from e
        return RawTable(path.name, df, str(path))
    text = _read_text(path, encoding)
    if not text.strip():
        raise DataError(f"{path.name} is empty.", hint="Choose a file with a header and at least one row.")
    if kind in ("csv", "tsv"):
        return RawTable(path.name, _parse_csv(text, path, "\t" if kind == "tsv" else ","), str(path))
    if kind == "jsonl":
        return RawTable(path.name, _parse_jsonl(text, path), str(path))
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


def _parse_json(text: str, path: Path) -> RawTable:
    obj = _json_loads(text, path.name, lambda e: f"at line {e.lineno} column {e.colno}",
                      "Flatten the records: a list of objects of plain values.",
                      "Fix the JSON, or save one object per line as .jsonl.")
    if isinstance(obj, dict) and isinstance(obj.get("examples"), list):
        return bigbench_table(obj, path, f"bigbench:{obj.get('name') or path.parent.name}")
    if isinstance(obj, list):
        bad = next((i for i, r in enumerate(obj) if not isinstance(r, dict)), None)
        if bad is not None:
            raise DataError(f"{path.name}: item {bad} of the top-level list is a {type(obj[bad]).__name__}, "
                            "not an object.", hint="A JSON dataset is a list of records: [{\"text\": ..., \"label\": ...}].")
        return RawTable(path.name, pd.DataFrame(obj), str(path))
    try:  # column-oriented dicts and pandas' own orients
        return RawTable(path.name, pd.read_json(io.StringIO(text)), str(path))
    except ValueError as e:
        raise DataError(f"{path.name}: JSON is not a table ({e}).",
                        hint="Use a list of records, or a dict of equal-length column lists.") from e


def is_datasets_dir(p: Path) -> bool:
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


def _load_datasets_dir(path: Path, split: str | None) -> RawTable:
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
    return RawTable(name, _hf_to_pandas(obj), str(path))


def load_hub(spec: str, split: str | None) -> RawTable:
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
    return RawTable(name, _hf_to_pandas(obj), name)
