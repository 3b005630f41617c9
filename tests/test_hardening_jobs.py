"""Killed jobs (issue 15, item 6), with real processes killed by SIGKILL:

- a training run whose process died is `interrupted` at once (pid + process start time), not
  `running` for ever; /train_attach does not call it "still training"; exporting it needs
  force, and then the model card says so;
- an export killed at any point leaves no half bundle: the next export into the same folder
  removes `.NAME.tmp-*`, restores or removes `.NAME.old-*`, removes `.NAME.zip.tmp-*` and a zip
  that no longer matches its folder, and the registry holds a row only for finished exports."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import load_data
from support.fakes import FakeSession

from workbench.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "templates_library" / "bbc_headline_topic.yaml"


def _spawn(code: str, *args: str) -> subprocess.Popen:
    # tests/ too: a child that imports this module needs its `support` import
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}"})


def _kill(p: subprocess.Popen) -> None:
    p.send_signal(signal.SIGKILL)
    p.wait(20)


def _wait_line(p: subprocess.Popen, want: str, timeout: float = 300) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        line = p.stdout.readline()
        if not line:
            raise AssertionError(f"child ended before {want!r} (rc {p.poll()})")
        if line.strip() == want:
            return
    raise AssertionError(f"no {want!r} within {timeout} s")


# ---------------------------------------------------------------------------- training runs
_FAKE_TRAINER = """
import sys, time
from pathlib import Path
from workbench.jobs.training import RunLog, owner_fields
run = Path(sys.argv[1]); run.mkdir(parents=True, exist_ok=True)
log = RunLog(run)
log.write("start", total_steps=30, n_train=10, registry=True, **owner_fields())
log.write("train", step=3, loss=1.0)
if len(sys.argv) > 2:
    (run / "adapter").mkdir(exist_ok=True)
    (run / "adapter" / "adapter_config.json").write_text("{}")
print("started", flush=True)
time.sleep(120)
"""


def test_killed_training_process_is_interrupted_at_once(tmp_path):
    from workbench.jobs.training import read_log, read_status

    run = tmp_path / "run"
    p = _spawn(_FAKE_TRAINER, str(run))
    try:
        _wait_line(p, "started")
        assert read_status(run)["state"] == "running"      # alive: running
    finally:
        _kill(p)
    st = read_status(run)
    assert st["state"] == "interrupted" and st["step"] == 3
    assert "died" in st["stop_reason"]
    # marked once, in the log, so every later reader (and other processes) agree
    ends = [r for r in read_log(run) if r["event"] == "end"]
    assert len(ends) == 1 and ends[0]["status"] == "interrupted"
    assert read_status(run)["state"] == "interrupted"
    assert len([r for r in read_log(run) if r["event"] == "end"]) == 1


def test_interrupted_run_is_recorded_in_the_registry(tmp_path):
    from workbench.jobs.training import read_status
    from workbench.storage.runs import RunRegistry

    run = tmp_path / "run"
    p = _spawn(_FAKE_TRAINER, str(run))
    try:
        _wait_line(p, "started")
    finally:
        _kill(p)
    read_status(run)
    rows = RunRegistry().list(kind="train")
    assert [r.status for r in rows] == ["interrupted"] and rows[0].payload_path == str(run)


def test_reused_pid_is_not_taken_for_the_owner(tmp_path):
    """A live process with the recorded pid but another start time is not the run's owner."""
    from workbench.jobs.training import RunLog, owner_fields, read_status

    run = tmp_path / "run"
    run.mkdir()
    own = owner_fields()
    RunLog(run).write("start", total_steps=5, **{**own, "pid_start": (own["pid_start"] or 0) + 12345})
    assert read_status(run)["state"] == "interrupted"


def test_train_attach_does_not_say_still_training(tmp_path, workbench_home):
    pytest.importorskip("gradio")
    import gradio as gr

    from workbench.app.tab_train import train_attach

    run = workbench_home / "train" / "run"
    p = _spawn(_FAKE_TRAINER, str(run))
    try:
        _wait_line(p, "started")
        with pytest.raises(gr.Error, match="still training"):
            train_attach("default", str(run))
    finally:
        _kill(p)
    with pytest.raises(gr.Error) as e:
        train_attach("default", str(run))
    assert "still training" not in str(e.value) and "saved no adapter" in str(e.value)


def test_export_of_an_interrupted_run_needs_force(tmp_path):
    from workbench.jobs.export import export_train_run

    run = tmp_path / "run"
    p = _spawn(_FAKE_TRAINER, str(run), "with-adapter")
    try:
        _wait_line(p, "started")
        with pytest.raises(ConfigError, match="still training"):
            export_train_run(run, None)
    finally:
        _kill(p)
    with pytest.raises(ConfigError) as e:
        export_train_run(run, None)
    assert "interrupted" in str(e.value) and "step 3 of 30" in str(e.value) and "--force" in str(e.value)


def test_model_card_says_the_run_was_interrupted():
    from workbench.jobs.model_card import training_section

    lines = training_section({"max_steps": 30, "step": 3,
                              "run_state": {"state": "interrupted", "step": 3, "total_steps": 30,
                                            "stop_reason": "the process running it died (pid 1)", "forced": True}})
    text = "\n".join(lines)
    assert "interrupted" in text and "3 of 30" in text and "exported with --force" in text
    assert "interrupted" not in "\n".join(training_section({"max_steps": 30, "step": 30}))


# ---------------------------------------------------------------------------- exports
STAND_IN = "stand-in-model"   # the fake session's identity (support/fakes.py): export reads no model


def stand_in_result(limit: int = 8):
    """An EvalResult-shaped dict over the first `limit` test rows of bbc, predicting the gold
    label (the export writes whatever it is given; scoring is not what is tested here)."""
    from dataclasses import asdict

    from workbench.storage.data_load import load_dataset
    from workbench.core.templates import load_template
    from workbench.jobs.inference import EvalConfig, eval_rows

    t, ds = load_template(TEMPLATE), load_dataset("bbc")
    cfg = EvalConfig(limit=limit)
    rows, _ = eval_rows(ds, cfg)
    recs = [{"index": (i.item() if hasattr(i, "item") else i), "gold": str(g), "pred": str(g),
             "scores": {lab: 0.0 for lab in t.answer_choices}} for i, g in zip(rows.index, rows[t.label_column])]
    res = {"provenance": {"template": {"hash": t.content_hash(), "name": t.name, "yaml": t.to_yaml()},
                          "data": {"fingerprint": ds.fingerprint(), "name": ds.name},
                          "config": asdict(cfg), "model": {"identity": STAND_IN, "name": "stand-in"}},
           "records": recs}
    return t, ds, res


def export_once(out: Path, zip_too: bool = False, record: bool = True) -> Path:
    from workbench.jobs.export import ExportConfig, export_bundle

    t, ds, res = stand_in_result()
    return export_bundle(t, ds, result=res, session=FakeSession(STAND_IN), model="stand-in",
                         export=ExportConfig(name="best", out_dir=str(out), overwrite=True, comparison=False,
                                             record=record, zip=zip_too))


_CHILD_EXPORT = """
import os, sys, time, zipfile
from pathlib import Path
from tests.test_hardening_jobs import export_once
out, stage = Path(sys.argv[1]), sys.argv[2]
real_replace = os.replace
def pause():
    print("paused", flush=True); time.sleep(120)
if stage == "before_swap":
    import workbench.jobs.export as ex
    ex._swap_in = lambda tmp, final: pause()
elif stage == "mid_swap":
    def replace(src, dst):
        real_replace(src, dst)
        if Path(src).name == "best":
            pause()
    os.replace = replace
elif stage == "zip":
    real_write = zipfile.ZipFile.write
    def write(self, *a, **k):
        real_write(self, *a, **k)
        pause()
    zipfile.ZipFile.write = write
export_once(out, zip_too=True)
print("finished", flush=True)
"""


def _debris(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("stage", ["before_swap", "mid_swap", "zip"])
def test_killed_export_is_cleaned_up_by_the_next(tmp_path, workbench_home, stage):
    from workbench.jobs.export import verify_bundle
    from workbench.storage.runs import RunRegistry

    out = tmp_path / "exports"
    first = export_once(out, zip_too=True)           # a finished export: folder, zip, one registry row
    first_manifest = (first / "manifest.json").read_text()
    assert [r.status for r in RunRegistry().list(kind="export")] == ["done"]
    time.sleep(1.1)                                   # the second export's created_at differs
    p = _spawn(_CHILD_EXPORT, str(out), stage)
    try:
        _wait_line(p, "paused", timeout=120)
    finally:
        _kill(p)
    debris = _debris(out)
    assert debris, "the killed export should have left its temp files (else the test tests nothing)"
    # the killed export recorded nothing
    assert len(RunRegistry().list(kind="export")) == 1
    if stage == "mid_swap":
        assert not (out / "best").exists()            # killed between the two renames
    if stage == "zip":                                # the new folder is in place, the zip is the old one
        assert (out / "best" / "manifest.json").read_text() != first_manifest

    from workbench.jobs.export import clean_export_debris

    cleaned = clean_export_debris(out)
    assert cleaned and not _debris(out)
    verify_bundle(out / "best")                        # a complete bundle is in place
    z = out / "best.zip"
    if z.exists():                                    # a zip kept is the zip of that folder
        import zipfile
        with zipfile.ZipFile(z) as f:
            assert f.read("best/manifest.json").decode() == (out / "best" / "manifest.json").read_text()
    again = export_once(out, zip_too=True)
    verify_bundle(again)
    assert not _debris(out) and len(RunRegistry().list(kind="export")) == 2


def test_export_records_only_after_the_zip_is_written(tmp_path, workbench_home, monkeypatch):
    """An export that fails while zipping is not in the registry (and its bundle folder is
    complete, since the zip comes after it)."""
    import workbench.jobs.export as ex
    from workbench.storage.runs import RunRegistry

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ex, "zip_bundle", boom)
    with pytest.raises(OSError):
        export_once(tmp_path / "out", zip_too=True)
    assert RunRegistry().list(kind="export") == []


def test_zip_name_keeps_dots(tmp_path):
    """best.v2 zips to best.v2.zip, not best.zip (which would be another bundle's zip)."""
    from workbench.jobs.export import zip_bundle

    out = tmp_path / "o"
    b = export_once(out, record=False)
    b2 = b.rename(b.parent / "best.v2")
    assert zip_bundle(b2).name == "best.v2.zip"


# ---------------------------------------------------------------------------- the real thing
@pytest.mark.model
@pytest.mark.slow
def test_real_cli_train_killed_then_export(tmp_path, session, bbc):
    """`workbench train` (the real CLI, the real model) killed with SIGKILL after its first
    adapter save: the run is interrupted, export refuses it, --force exports it with a card that
    says so."""
    from workbench.jobs.export import ExportConfig, export_train_run
    from workbench.jobs.training import read_log, read_status

    run = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-m", "workbench.cli", "train", "--data", "bbc", "--template", str(TEMPLATE),
                          "--steps", "40", "--k", "2", "--batch-size", "2", "--eval-every", "1", "--dev-limit", "3",
                          "--test-limit", "4", "--out", str(run)],
                         env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        t0 = time.monotonic()
        while not any(r.get("event") == "saved" for r in read_log(run)):
            assert p.poll() is None, "train ended early"
            assert time.monotonic() - t0 < 600
            time.sleep(0.5)
    finally:
        _kill(p)
    st = read_status(run)
    assert st["state"] == "interrupted" and st["has_adapter"]
    with pytest.raises(ConfigError, match="interrupted"):
        export_train_run(run, bbc, session=session)
    # the run never wrote its test results, so the export scores now: on a small sample of bbc
    from workbench.storage.data_load import load_dataset

    small = load_dataset("bbc", limit=30)
    path = export_train_run(run, small, session=session, force=True,
                            export=ExportConfig(name="killed", out_dir=str(tmp_path), record=False, comparison=False))
    card = (path / "README.md").read_text()
    assert "interrupted" in card and f"of {st['total_steps']}" in card
    assert json.loads((path / "train_config.json").read_text())["run_state"]["state"] == "interrupted"


@pytest.mark.model
@pytest.mark.slow
def test_server_killed_mid_training(tmp_path, workbench_home):
    """`workbench serve` (a real server process on loopback) trains through /train_start and is
    killed with SIGKILL mid-run: the run reads as interrupted, and the Train tab's handlers say
    so instead of "still training"."""
    import socket

    import gradio as gr
    from gradio_client import Client

    from workbench.app.tab_train import train_attach, train_status

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                          "--no-browser", "--data", "bbc"],
                         env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        t0 = time.monotonic()
        while True:
            try:
                c = Client(f"http://127.0.0.1:{port}/", verbose=False)
                break
            except Exception:  # noqa: BLE001 - not up yet
                assert p.poll() is None and time.monotonic() - t0 < 300, "server did not start"
                time.sleep(1)
        load_data(c, "bbc")
        # k=2 per class, 500 steps, no dev evaluation: it trains for minutes unless killed
        args = ["k per class", 2, 8, 16, 0.05, [], 5e-4, 1, 500, 4, 1, 64, 0.1, 0, 0, 3, "lm", 10, 10]
        run_dir = c.predict(TEMPLATE.read_text(), "default", *args, api_name="/train_start")[0]
        while True:
            st = c.predict(run_dir, api_name="/train_status")
            if st["state"] == "running" and st["step"] >= 1:
                break
            assert st["state"] in ("pending", "running") and time.monotonic() - t0 < 600, st
            time.sleep(0.5)
    finally:
        _kill(p)
    st = train_status(run_dir)
    assert st["state"] == "interrupted" and st["step"] >= 1, st
    with pytest.raises(gr.Error) as e:
        train_attach("default", run_dir)
    assert "still training" not in str(e.value)
