"""A response cache for remote inference servers, in SQLite (`$WORKBENCH_HOME/responses.sqlite`).

    cache = ResponseCache()
    key = cache.key(identity, "/v1/completions", body)   # served model identity + the exact request
    hit = cache.get(key)                                  # the parsed JSON response, or None
    cache.put(key, response_json)

Re-running a comparison against the same server then costs nothing, as with lm-eval's
`--use_cache` and promptfoo's cache. The key is the served model's identity (URL, served name,
the model the server reports) plus the exact request body, so a different prompt, token ids,
sampling setting or model never hits. Only successful responses are stored. The API key is
not part of any request body, so it is never written here. A server that swaps weights under
the same served name would hit stale entries: `--no-response-cache` (or `clear()`) avoids that.

It is also a store for `engine.caching.CachingEngine` (any engine's results, keyed by the
engine's model identity and the request): `get(key)` and `put(key, identity, endpoint, value)`.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path

from workbench.paths import home

_SCHEMA = """CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    identity TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    response TEXT NOT NULL,
    created REAL NOT NULL)"""


class ResponseCache:
    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else home() / "responses.sqlite"
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        with self._lock:
            self._wal()
            with self._conn:
                self._conn.execute(_SCHEMA)
        self.hits = 0
        self.misses = 0

    def _wal(self) -> None:
        """WAL journaling, so a CLI run and the server can share the cache. Switching needs a
        moment with no other connection, which the busy timeout does not wait for: another process
        that has the file open makes the switch fail at once. A file already in WAL mode needs no
        switch; otherwise retry briefly, then go on without it (it is a cache, not the registry)."""
        if self._conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
            return
        for _ in range(50):
            try:
                self._conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError:
                time.sleep(0.1)

    @staticmethod
    def key(identity: str, endpoint: str, body: dict) -> str:
        blob = json.dumps({"identity": identity, "endpoint": endpoint, "body": body}, sort_keys=True,
                          separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def get(self, key: str) -> dict | None:
        with self._lock:
            row = self._conn.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return json.loads(row[0])

    def put(self, key: str, identity: str, endpoint: str, response: dict) -> None:
        with self._lock, self._conn:
            self._conn.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)",
                               (key, identity, endpoint, json.dumps(response), time.time()))

    def count(self, identity: str | None = None) -> int:
        with self._lock:
            if identity is None:
                return self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
            return self._conn.execute("SELECT COUNT(*) FROM responses WHERE identity = ?", (identity,)).fetchone()[0]

    def clear(self, identity: str | None = None) -> int:
        with self._lock, self._conn:
            if identity is None:
                return self._conn.execute("DELETE FROM responses").rowcount
            return self._conn.execute("DELETE FROM responses WHERE identity = ?", (identity,)).rowcount

    def close(self) -> None:
        with self._lock:
            self._conn.close()
