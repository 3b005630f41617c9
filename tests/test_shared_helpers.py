"""The one-of-each helpers (issue 23): the atomic text write, the pid check and the recorded
package versions that several modules used to carry their own copies of."""
from __future__ import annotations

import os
import subprocess
import sys
import time


def test_write_text_atomic_replaces_whole_and_leaves_nothing_behind(tmp_path):
    from workbench.core.fileutil import write_text_atomic

    p = tmp_path / "sub" / "results.json"
    assert write_text_atomic(p, "old") == p
    write_text_atomic(p, "new ✓")
    assert p.read_text(encoding="utf-8") == "new ✓"
    assert sorted(x.name for x in p.parent.iterdir()) == ["results.json"]


def test_write_text_atomic_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    import errno
    from pathlib import Path

    import pytest

    from workbench.core.fileutil import write_text_atomic

    p = tmp_path / "out" / "t.yaml"
    write_text_atomic(p, "kept")
    real = Path.write_text

    def full_disk(self, *a, **kw):      # a partial write, then the disk is full
        real(self, "par")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(OSError, match="No space"):
        write_text_atomic(p, "new")
    monkeypatch.undo()
    assert p.read_text() == "kept"
    assert sorted(x.name for x in p.parent.iterdir()) == ["t.yaml"]


def test_pid_alive_tells_live_dead_and_zombie_processes_apart():
    from workbench.jobs.pids import pid_alive

    assert pid_alive(os.getpid())
    assert not pid_alive(None) and not pid_alive(0) and not pid_alive("x")
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while pid_alive(p.pid) and time.monotonic() < deadline:   # exited but not reaped: a zombie
        time.sleep(0.05)
    assert not pid_alive(p.pid), "an exited, unreaped child (zombie) counts as dead"
    p.wait()
    assert not pid_alive(p.pid)


def test_recorded_versions_share_one_list():
    from workbench.engine.versions import RECORDED, package_versions

    v = package_versions()
    assert v["python"].count(".") == 2
    assert {"torch", "transformers"} <= set(v) <= {"python", *RECORDED}
    assert package_versions(("surely-not-installed-pkg",), missing="none")["surely-not-installed-pkg"] == "none"


def test_export_status_names_no_task_when_the_bundle_has_none():
    """An export without raw rows writes no lm-eval task; the page said "lm-eval task `None`"."""
    from workbench.app.tab_export import lm_eval_line

    line = lm_eval_line({"task": None, "reproduces_predictions": False, "notes": ["no raw rows: exported without data"]})
    assert "None" not in line and line.startswith("no lm-eval task in this bundle: no raw rows")
    assert lm_eval_line({"task": "wb_topic", "reproduces_predictions": True, "notes": []}) == \
        "lm-eval task `wb_topic`: reproduces these predictions"
