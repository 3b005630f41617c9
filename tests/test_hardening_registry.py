"""A broken or busy run registry (issue 15, item 7): a corrupt runs.sqlite is named, kept and
explained (how to recover); a registry locked by another process is reported quickly, naming
the process that holds it, instead of a 30 s wait and "database is locked"."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
import time

import pytest

from workbench.errors import ConfigError


def test_garbage_file_is_named_and_kept(workbench_home):
    from workbench.storage.runs import RunRegistry

    db = workbench_home / "runs.sqlite"
    db.write_bytes(b"this is not a database at all " * 100)
    before = db.read_bytes()
    with pytest.raises(ConfigError) as e:
        RunRegistry()
    msg = str(e.value)
    assert str(db) in msg and "SQLite" in msg and ".recover" in msg and "mv " in msg
    assert db.read_bytes() == before          # never deleted or rewritten


def test_damaged_pages_are_named_and_kept(workbench_home):
    """A real registry whose pages were overwritten: listing runs fails with a clear error."""
    from workbench.storage.runs import RunRegistry

    reg = RunRegistry()
    for i in range(200):
        reg.add("eval", name=f"run {i}", metrics={"accuracy": 0.5}, payload={"x": "y" * 500})
    db = workbench_home / "runs.sqlite"
    with sqlite3.connect(db) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw = bytearray(db.read_bytes())
    page = 4096
    for off in range(2 * page, len(raw) - page, 3 * page):   # keep the header page, wreck others
        raw[off:off + page] = b"\xff" * page
    db.write_bytes(bytes(raw))
    with pytest.raises(ConfigError) as e:
        RunRegistry().list(limit=500)
    assert "corrupt" in str(e.value) or "SQLite" in str(e.value)
    assert db.exists() and db.stat().st_size == len(raw)


def test_locked_registry_names_the_holder_quickly(workbench_home, monkeypatch):
    """Another process holds a write lock; our write gives up after WORKBENCH_DB_TIMEOUT and
    says which process (pid) holds the file."""
    from workbench.storage.runs import RunRegistry

    reg = RunRegistry()
    db = workbench_home / "runs.sqlite"
    code = ("import sqlite3, sys, time\n"
            "con = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "con.execute('BEGIN EXCLUSIVE'); con.execute(\"INSERT INTO runs (id, kind, created_at, name) "
            "VALUES ('x', 'eval', '2020', 'held')\")\n"
            "print('locked', flush=True); time.sleep(60)\n")
    p = subprocess.Popen([sys.executable, "-c", code, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "locked"
        monkeypatch.setenv("WORKBENCH_DB_TIMEOUT", "1")
        t0 = time.monotonic()
        with pytest.raises(ConfigError) as e:
            reg.add("eval", name="mine")
        took = time.monotonic() - t0
    finally:
        p.kill()
        p.wait(10)
    msg = str(e.value)
    assert took < 10, took
    assert "locked" in msg and f"pid {p.pid}" in msg and "WORKBENCH_DB_TIMEOUT" in msg
    # once the holder is gone, the registry works again (nothing was damaged)
    assert reg.add("eval", name="after") and [r.name for r in reg.list()] == ["after"]


def test_registry_waits_the_configured_time(monkeypatch):
    """The registry's SQLite connections wait db_timeout() for a lock: a short default, and
    WORKBENCH_DB_TIMEOUT when set (the timeout the connection is opened with, not a read-back of
    the variable)."""
    from workbench.storage import runs

    seen, real_connect = [], sqlite3.connect

    def connect(*args, **kwargs):
        seen.append(kwargs.get("timeout"))
        return real_connect(*args, **kwargs)
    monkeypatch.setattr(runs.sqlite3, "connect", connect)
    monkeypatch.delenv("WORKBENCH_DB_TIMEOUT", raising=False)
    runs.RunRegistry().list()
    assert seen and all(t is not None and 0 < t <= 10 for t in seen), seen
    seen.clear()
    monkeypatch.setenv("WORKBENCH_DB_TIMEOUT", "2.5")
    runs.RunRegistry().add("eval", name="x")
    assert seen and set(seen) == {2.5}, seen
