"""An lm-eval task's rows: its eval split and few-shot pool from --data (a file, a folder of
<split>.jsonl files, a saved DatasetDict) or from the task's own dataset_path, with
process_docs applied as lm-eval applies it. Loading reads files and may reach the hub, so it
lives in storage/, not core/ (#23).

    data = task_data(task, data="hs_local/", num_fewshot=2)     # TaskData
    splits, source = local_splits("folder/")                    # every split, for class tasks
"""
from __future__ import annotations

from pathlib import Path

from workbench.core.lmeval_tasks import LmEvalTask, TaskData, frame_docs
from workbench.errors import DataError


def _split_files(folder: Path) -> dict[str, Path]:
    out = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in (".jsonl", ".json", ".csv", ".parquet") and p.is_file():
            out.setdefault(p.stem.split(".")[0].split("-")[0], p)
    return out


def _builder(p: Path) -> str:
    return {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}.get(p.suffix.lower(), "json")


def _load_splits(task: LmEvalTask, data: str | Path | None, need: list[str]):
    """{split: datasets.Dataset} for the splits in `need`."""
    import datasets

    c = task.config
    if data is not None:
        p = Path(data).expanduser()
        if not p.exists():
            raise DataError(f"--data {p}: not found", "give a file (the task's eval split) or a folder of <split>.jsonl files")
        if p.is_dir() and (p / "dataset_dict.json").is_file():
            dd = datasets.load_from_disk(str(p))
            return {s: dd[s] for s in need if s in dd}, str(p)
        if p.is_dir():
            files = _split_files(p)
            if not files:
                raise DataError(f"--data {p}: no .jsonl/.json/.csv/.parquet files", "name the files after the splits, e.g. test.jsonl")
            use = {s: files[s] for s in need if s in files}
            if not use:
                raise DataError(f"--data {p}: none of the task's splits ({', '.join(need)}) is there (found: {', '.join(files)})",
                                f"name the files after the splits, e.g. {need[0]}.jsonl")
            out = {}
            for s, f in use.items():
                out[s] = datasets.load_dataset(_builder(f), data_files={s: str(f)}, split=s)
            return out, str(p)
        # One file: it is the eval split (and, failing any other, the few-shot pool).
        d = datasets.load_dataset(_builder(p), data_files={"x": str(p)}, split="x")
        return {s: d for s in need}, str(p)
    path = c.get("dataset_path")
    if not path:
        raise DataError(f"task {task.name!r} names no dataset_path", "give the rows with --data FILE")
    kwargs = dict(c.get("dataset_kwargs") or {})
    # A dataset *script* is hub code, not lm-eval's: --trust-task-code never covers it.
    kwargs.pop("trust_remote_code", None)
    name = c.get("dataset_name")
    try:
        local = Path(str(path)).expanduser()
        if local.is_dir() and (local / "dataset_dict.json").is_file():
            dd = datasets.load_from_disk(str(local))
        else:
            dd = datasets.load_dataset(str(path), name, **kwargs)
    except Exception as e:  # noqa: BLE001 - offline, missing, gated: one clear message
        raise DataError(f"could not load the dataset of task {task.name!r} ({path}{'/' + name if name else ''}): "
                        f"{type(e).__name__}: {str(e)[:300]}",
                        f"offline or not cached: give a local copy with --data FILE (the {task.eval_split} split) or "
                        "--data FOLDER (one <split>.jsonl per split)") from e
    missing = [s for s in need if s not in dd]
    if missing:
        raise DataError(f"dataset {path} has no split(s) {', '.join(missing)} (has {', '.join(dd)})", "check the task's splits")
    return {s: dd[s] for s in need}, f"{path}{'/' + name if name else ''}"


def task_data(task: LmEvalTask, data: str | Path | None = None, *, num_fewshot: int | None = None,
              limit: int | None = None):
    """The task's eval rows (lm-eval's test split, else validation) and few-shot pool, with
    process_docs applied as lm-eval applies it."""
    from workbench.core.data import Dataset

    k = task.num_fewshot if num_fewshot is None else num_fewshot
    ev = task.eval_split
    if not ev:
        raise DataError(f"task {task.name!r} has neither test_split nor validation_split", "check the task YAML")
    samples = task.fewshot_config.get("samples")
    fs = task.fewshot_split if k > 0 and not (isinstance(samples, list) and not task.fewshot_config.get("split")
                                              and not task.config.get("fewshot_split")) else None
    need = [ev] + ([fs] if fs and fs != ev else [])
    splits, source = _load_splits(task, data, need)
    if data is not None and fs and fs not in splits:
        splits[fs] = splits[ev]  # a local copy without that split: its eval rows are the pool

    def docs(split: str) -> list[dict]:
        d = splits[split]
        if task.process_docs is not None:
            try:
                d = task.process_docs(d)
            except (Exception, SystemExit) as e:  # noqa: BLE001 - the task's own code on these rows
                raise DataError(f"task {task.name!r}: process_docs failed on the {split} rows: {type(e).__name__}: {e}",
                                "check that --data has the columns of the task's dataset") from e
        return [dict(x) for x in d]

    eval_docs = docs(ev)
    if limit:
        eval_docs = eval_docs[: int(limit)]
    if not eval_docs:
        raise DataError(f"the {ev} split of task {task.name!r} is empty", "check --data")
    eval_ds = Dataset(name=task.name, df=frame_docs(eval_docs), text_column=None, label_column=None, source=source,
                      meta={"lm_eval_task": task.name, "split": ev})
    fs_ds = None
    if k > 0:
        if isinstance(samples, list) and fs is None:
            pool = [dict(s) for s in samples]
        else:
            pool = docs(fs)
        fs_ds = Dataset(name=f"{task.name}:fewshot", df=frame_docs(pool), text_column=None, label_column=None,
                        source=source, meta={"split": fs})
    return TaskData(eval=eval_ds, fewshot=fs_ds, eval_split=ev, fewshot_split=fs if k > 0 else None, source=source)



def local_splits(data: str | Path, splits: tuple[str, ...] = ("test", "validation", "train")):
    """(datasets.DatasetDict, source) from --data for a Python class task, which reads its own
    splits (self.dataset[split]): a folder gives one split per <split>.jsonl/.json/.csv/.parquet
    file; a saved DatasetDict is used as is; one file stands for every split in `splits`."""
    import datasets

    p = Path(data).expanduser()
    if not p.exists():
        raise DataError(f"--data {p}: not found", "give a folder of <split>.jsonl files (e.g. validation.jsonl)")
    if p.is_dir() and (p / "dataset_dict.json").is_file():
        return datasets.load_from_disk(str(p)), str(p)
    if p.is_dir():
        files = _split_files(p)
        if not files:
            raise DataError(f"--data {p}: no .jsonl/.json/.csv/.parquet files", "name the files after the splits, e.g. validation.jsonl")
    else:
        files = {s: p for s in splits}
    return datasets.DatasetDict({s: datasets.load_dataset(_builder(f), data_files={s: str(f)}, split=s)
                                 for s, f in files.items()}), str(p)
