"""BIG-bench JSON tasks as tables: where the task files are (an installed `bigbench` package, or
the copy `python -m workbench.storage.fetch bigbench` writes), and `task.json` → `RawTable`.
Split out of core/data.py (#23): core does no I/O."""
from __future__ import annotations

import difflib
import importlib.util
import json
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.core.data import RawTable
from workbench.errors import DataError

BIGBENCH_FETCH_HINT = ("Run `python -m workbench.storage.fetch bigbench` (or `make data`) once to download "
                       "the BIG-bench JSON tasks into $WORKBENCH_HOME/bigbench (or $WORKBENCH_CACHE).")


def bigbench_unavailable() -> str | None:
    """Why the BIG-bench tasks could not be fetched (the registry no longer serves the release), as
    `python -m workbench.storage.fetch bigbench --optional` recorded it; None when nothing was recorded."""
    from workbench.paths import cache_home, home

    for base in dict.fromkeys([cache_home(), home()]):
        p = base / "bigbench" / "UNAVAILABLE"
        if p.is_file():
            return p.read_text().strip() or "BIG-bench could not be fetched"
    return None


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


def load_bigbench_spec(name: str) -> RawTable:
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
        return load_bigbench_dir(sdir, f"bigbench:{task}/{sub}")
    return load_bigbench_dir(tdir, f"bigbench:{task}")


def _subtasks(tdir: Path) -> list[str]:
    return sorted(p.name for p in tdir.iterdir() if (p / "task.json").is_file())


def _short_list(xs: list[str], n: int = 15) -> str:
    return ", ".join(xs[:n]) + (f", … ({len(xs)} in all)" if len(xs) > n else "")


def load_bigbench_dir(tdir: Path, name: str) -> RawTable:
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
    return bigbench_table(obj, path, name)


def bigbench_table(obj: dict, path: Path, name: str) -> RawTable:
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
    return RawTable(name, df, str(path), text_column="input", label_column="label" if has_scores else None,
                auto_label=False, description=str(obj.get("description") or ""), meta=meta)


def bigbench_task_available(task: str) -> bool:
    root = bigbench_root()
    return bool(root and (root / task / "task.json").is_file())
