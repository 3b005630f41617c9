"""Issue 29 items 9-12: what the workbench writes for people, and the limits users can see."""
from __future__ import annotations

import json

import pandas as pd
import pytest

FORMULAS = ["=cmd|' /C calc'!A0", "+1+1", "@SUM(A1:A9)", "-2+3", "\t=1", "plain", "a=b"]


# ---------------------------------------------------------------------------- item 9: CSV formulas
def test_predict_csv_escapes_formula_cells_and_jsonl_stays_exact(tmp_path):
    from workbench.commands.predict import write_table

    df = pd.DataFrame({"text": FORMULAS, "pred": ["=HYPERLINK(\"x\")"] * len(FORMULAS), "score": [-1.5] * len(FORMULAS),
                       "=col": ["x"] * len(FORMULAS)})
    write_table(df, str(tmp_path / "pred.csv"))
    back = pd.read_csv(tmp_path / "pred.csv", keep_default_na=False)
    assert list(back["text"]) == ["'=cmd|' /C calc'!A0", "'+1+1", "'@SUM(A1:A9)", "'-2+3", "'\t=1", "plain", "a=b"]
    assert set(back["pred"]) == {"'=HYPERLINK(\"x\")"}
    assert list(back["score"]) == [-1.5] * len(FORMULAS)            # numbers are not text: untouched
    assert "'=col" in back.columns
    write_table(df, str(tmp_path / "pred.tsv"))
    assert "\n'=cmd" in (tmp_path / "pred.tsv").read_text()
    write_table(df, str(tmp_path / "pred.jsonl"))
    rows = [json.loads(x) for x in (tmp_path / "pred.jsonl").read_text().splitlines()]
    assert [r["text"] for r in rows] == FORMULAS                      # JSON stays exact


def test_matrix_download_csv_escapes_formula_cells(tmp_path, monkeypatch):
    from workbench.app import matrix

    recs = [{"row": 0, "gold": "=1+1", "text": "@SUM(A1)", "note": {"tag": "+x", "comment": "ok"},
             "cells": {"run": {"pred": "=2", "correct": True, "scores": {"a": -0.5}}}}]
    monkeypatch.setattr(matrix, "records", lambda m: recs)
    path = matrix.to_csv(None, tmp_path / "m.csv")
    back = pd.read_csv(path, keep_default_na=False)
    assert back.loc[0, "gold"] == "'=1+1" and back.loc[0, "text"] == "'@SUM(A1)"
    assert back.loc[0, "note_tag"] == "'+x" and back.loc[0, "run · pred"] == "'=2"
    assert back.loc[0, "run · score · a"] == -0.5


# ---------------------------------------------------------------------------- item 12: visible limits
def test_zip_that_declares_far_more_than_it_holds_is_refused_under_the_size_cap(tmp_path):
    """A few-MB zip declaring 1.5 GB used to be extracted in full under the 16 GB cap; here a
    ~60 kB zip declaring 60 MB (1000x) is refused from its directory, before a byte is written."""
    from test_hardening_bundles import make_bundle, write_manifest, zip_dir

    from workbench.errors import DataError
    from workbench.jobs.export import unzip_bundle

    root = make_bundle(tmp_path)
    (root / "adapter" / "adapter_model.safetensors").write_bytes(b"\0" * (60 << 20))
    write_manifest(root)
    z = zip_dir(root, tmp_path / "bomb.zip")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DataError, match="zip bomb"):
        unzip_bundle(z, out)
    assert not any(out.rglob("*"))


def test_pickled_adapter_is_refused_saying_only_safetensors_load(tmp_path):
    from support.fakes import FakeSession
    from test_hardening_bundles import STAND_IN, make_bundle, write_manifest

    from workbench.errors import DataError
    from workbench.jobs.export import load_bundle

    root = make_bundle(tmp_path)
    (root / "adapter" / "adapter_model.safetensors").rename(root / "adapter" / "adapter_model.bin")
    write_manifest(root)
    with pytest.raises(DataError, match="Only safetensors adapters are loaded") as e:
        load_bundle(root, session=FakeSession(STAND_IN))
    assert "run any code" in e.value.message


def test_session_refuses_a_pickled_adapter_folder(tmp_path, monkeypatch):
    from workbench.engine.session import ModelSession, SessionConfig
    from workbench.errors import ModelError

    (tmp_path / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    (tmp_path / "adapter_model.bin").write_bytes(b"not really a pickle")
    s = ModelSession(SessionConfig(model="default"))
    monkeypatch.setattr(s, "load", lambda: (_ for _ in ()).throw(AssertionError("must refuse before loading")))
    with pytest.raises(ModelError, match="Only safetensors adapters are loaded"):
        s.attach_adapter(str(tmp_path))


@pytest.mark.slow
def test_uploads_over_the_limit_are_refused(monkeypatch):
    import requests

    import workbench.app.main as main
    from remote_servers import free_port

    monkeypatch.setenv("WORKBENCH_MAX_UPLOAD_MB", "1")
    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    port = free_port()
    demo = main.launch(host="127.0.0.1", port=port, data="bbc", model="no-such-model", open_browser=False, block=False)
    try:
        url = f"http://127.0.0.1:{port}/gradio_api/upload"
        small = requests.post(url, files={"files": ("a.csv", b"text,label\na,b\n")}, timeout=30)
        assert small.status_code == 200, small.text[:200]
        big = requests.post(url, files={"files": ("big.csv", b"x" * (2 << 20))}, timeout=60)
        assert big.status_code == 413, (big.status_code, big.text[:200])
    finally:
        demo.close()


# ---------------------------------------------------------------------------- item 11: killed training
def test_killed_training_run_is_listed_as_interrupted_at_once(tmp_path, capsys):
    """After `kill -9` of a training process, `runs list --kind train` showed nothing until
    something read its folder. Now the listing itself reads the folders of runs that started."""
    import argparse

    from test_hardening_jobs import _FAKE_TRAINER, _kill, _spawn, _wait_line

    from workbench.commands import runs as runs_cmd

    run = tmp_path / "elsewhere" / "run"          # --out outside $WORKBENCH_HOME/train
    p = _spawn(_FAKE_TRAINER, str(run))
    try:
        _wait_line(p, "started")
    finally:
        _kill(p)
    parser = argparse.ArgumentParser()
    runs_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["runs", "list", "--kind", "train"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "interrupted" in out, out
    from workbench.storage.runs import RunRegistry

    assert [r.status for r in RunRegistry().list(kind="train")] == ["interrupted"]


# ---------------------------------------------------------------------------- item 10: one-line errors
@pytest.mark.parametrize("name", ["a\0.yaml", "x" * 5000 + ".yaml", ("d" * 300) + "/b.yaml"])
def test_unusable_include_names_are_template_errors(tmp_path, name):
    from workbench.core.lmeval_yaml import IncludeRoots
    from workbench.errors import TemplateError

    task = tmp_path / "t.yaml"
    with pytest.raises(TemplateError, match="not a usable file name"):
        IncludeRoots.for_file(task).resolve(name, task)


def test_deeply_nested_bundle_json_is_a_data_error(tmp_path):
    from support.fakes import FakeSession
    from test_hardening_bundles import STAND_IN, make_bundle, write_manifest

    from workbench.errors import DataError
    from workbench.jobs.export import load_bundle

    deep = "[" * 200_000 + "]" * 200_000
    root = make_bundle(tmp_path / "a")
    (root / "manifest.json").write_text(deep)
    with pytest.raises(DataError, match="nested too deeply"):
        load_bundle(root, session=FakeSession(STAND_IN))
    root = make_bundle(tmp_path / "b")
    (root / "eval_config.json").write_text(deep)
    write_manifest(root)
    with pytest.raises(DataError, match="nested too deeply"):
        load_bundle(root, session=FakeSession(STAND_IN))


def test_zip_entry_names_a_file_system_refuses_are_data_errors(tmp_path):
    import zipfile

    from test_hardening_bundles import make_bundle

    from workbench.errors import DataError
    from workbench.jobs.export import unzip_bundle

    root = make_bundle(tmp_path / "src")
    for i, extra in enumerate([["data", "data/x.txt"], ["n" * 300]]):
        z = tmp_path / f"bad{i}.zip"
        with zipfile.ZipFile(z, "w") as zf:
            for p in sorted(root.rglob("*")):
                if p.is_file():
                    zf.write(p, f"b/{p.relative_to(root).as_posix()}")
            for e in extra:
                zf.writestr(f"b/{e}", "x")
        out = tmp_path / f"out{i}"
        out.mkdir()
        with pytest.raises(DataError, match="both a file and a folder|longer than a file system"):
            unzip_bundle(z, out)


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_deeply_nested_json_data_is_a_data_error(tmp_path, suffix):
    from workbench.storage.data_load import load_dataset
    from workbench.errors import DataError

    deep = "[" * 200_000 + "]" * 200_000
    p = tmp_path / f"d{suffix}"
    p.write_text('{"text": ' + deep + ', "label": "a"}\n' if suffix == ".jsonl" else deep)
    with pytest.raises(DataError, match="nested too deeply"):
        load_dataset(str(p))


def _result():
    from workbench.jobs.inference import EvalResult

    return EvalResult(task={"template": "t"}, metrics={"accuracy": 0.75, "n": 4}, records=[{"pred": "a"}] * 4,
                      provenance={"warnings": []}, timings={"total_s": 1.0})


def test_results_on_a_full_disk_are_rescued_and_no_temp_file_is_left(tmp_path, monkeypatch):
    """Full disk simulated by a mocked ENOSPC at the write call (Path.write_text) into the out
    folder: the .tmp file is removed and the finished results are kept elsewhere, named in the error."""
    import errno
    from pathlib import Path

    from workbench.errors import ConfigError

    out = tmp_path / "full" / "res_big.json"
    real = Path.write_text

    def write_text(self, *a, **kw):
        if str(self).startswith(str(out.parent)):
            real(self, "partial")          # a partial write, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *a, **kw)

    monkeypatch.setattr(Path, "write_text", write_text)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "rescue"))
    (tmp_path / "rescue").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    with pytest.raises(ConfigError, match="No space left on device") as e:
        _result().save(out)
    assert not list(out.parent.glob("*.tmp")), list(out.parent.iterdir())
    rescued = list((tmp_path / "rescue").glob("workbench-rescued-*res_big.json"))
    assert len(rescued) == 1 and str(rescued[0]) in e.value.message
    assert json.loads(rescued[0].read_text())["metrics"]["accuracy"] == 0.75


def test_registry_on_a_full_disk_does_not_cost_the_run(monkeypatch):
    """A mocked 'database or disk is full' at the registry write: the run's result is kept and
    says it was not recorded (before: sqlite3.OperationalError after scoring, results lost)."""
    import sqlite3

    from workbench.jobs import inference, runner
    from workbench.storage import runs

    monkeypatch.setattr(inference, "evaluate", lambda *a, **kw: _result())

    def full(*a, **kw):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(runs, "record_eval", full)

    class Spec:
        class template:
            @staticmethod
            def load():
                return None
        eval = None
        judge = None

    out = runner._eval(Spec, None, None, runner.Call(record=True))
    assert out.run_id is None and out.result.metrics["accuracy"] == 0.75
    assert any("not recorded in the run registry" in w for w in out.result.provenance["warnings"])


def test_out_on_a_full_disk_is_refused_before_any_work(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    from workbench.commands.common import check_out_path
    from workbench.errors import ConfigError

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10 << 30, 10 << 30, 1 << 20))
    with pytest.raises(ConfigError, match="MB free"):
        check_out_path(str(tmp_path / "res.json"))
