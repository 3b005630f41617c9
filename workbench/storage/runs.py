"""The run registry: every eval, comparison, training run and export, with what produced it.

    reg = RunRegistry()                       # $WORKBENCH_HOME/runs.sqlite
    rid = reg.add("eval", name="sentiment v2", template_hash=t.content_hash(), model="default",
                  data_fingerprint=ds.fingerprint(), settings=cfg, metrics=m, payload=results)
    reg.list(kind="eval", search="sentiment")  # newest first
    reg.find_by_key(result_key(result))          # reuse an identical eval (see record_eval)

Storage is one SQLite file (stdlib `sqlite3`). The small, listable fields live in `runs`; the
full results JSON (per-example predictions, can be megabytes) lives zlib-compressed in a
separate `payloads` table, so listing runs never reads it. The file uses WAL journaling so
the UI can read while a background job writes, and a `schema_version` table drives
migrations. Each call opens its own short-lived connection, and writes in this process go
through a lock, so one registry object is safe to share between threads (Gradio handlers run
in a thread pool).

A registry that another process keeps locked longer than `db_timeout()` seconds
($WORKBENCH_DB_TIMEOUT, default 5) is a ConfigError naming the process(es) that hold the file;
a file that is not a readable SQLite database is a ConfigError that says how to recover. The
file is never deleted or rewritten on such errors.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import secrets
import sqlite3
import threading
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from workbench.errors import ConfigError

KINDS = ("eval", "compare", "train", "export", "search", "judge")

# Settings that change speed but not predictions; left out of `settings_key` so that an eval
# rerun with a different batch size is still recognised as the same work.
IGNORED_SETTINGS = frozenset({"batch_size", "max_batch_tokens", "num_workers", "progress"})

SCHEMA_VERSION = 3
DEFAULT_DB_TIMEOUT_S = 5.0

# Migration i brings a database from version i-1 to version i. Append, never edit.
_MIGRATIONS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            created_at TEXT NOT NULL,
            name TEXT NOT NULL,
            template_hash TEXT,
            template_yaml TEXT,
            model TEXT,
            adapter TEXT,
            data_fingerprint TEXT,
            data_name TEXT,
            seed INTEGER,
            settings TEXT NOT NULL DEFAULT '{}',
            settings_key TEXT,
            metrics TEXT NOT NULL DEFAULT '{}',
            status TEXT NOT NULL DEFAULT 'done',
            payload_path TEXT
        )""",
        "CREATE INDEX runs_created ON runs (created_at)",
        "CREATE INDEX runs_match ON runs (template_hash, model, data_fingerprint, settings_key)",
        """CREATE TABLE payloads (
            run_id TEXT PRIMARY KEY,
            size INTEGER NOT NULL,
            data BLOB NOT NULL
        )""",
    ],
    # 2: human notes on examples ("label noise", "ambiguous", ...), keyed by the dataset's
    # fingerprint and the row's index, so every run and comparison on that data shows them.
    2: [
        """CREATE TABLE notes (
            data_fingerprint TEXT NOT NULL,
            row_index TEXT NOT NULL,
            tag TEXT NOT NULL DEFAULT '',
            comment TEXT NOT NULL DEFAULT '',
            updated_at TEXT NOT NULL,
            PRIMARY KEY (data_fingerprint, row_index)
        )""",
    ],
    # 3: saved inference-server entries (storage/engines.py): a name -> URL + tokenizer + settings.
    3: [
        """CREATE TABLE engines (
            name TEXT PRIMARY KEY,
            entry TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
    ],
}

NOTE_TAGS = ("label noise", "ambiguous", "interesting", "template problem", "other")


def db_timeout() -> float:
    """Seconds to wait for another process's write lock before saying who holds it."""
    raw = os.environ.get("WORKBENCH_DB_TIMEOUT")
    try:
        return max(0.0, float(raw)) if raw else DEFAULT_DB_TIMEOUT_S
    except ValueError:
        return DEFAULT_DB_TIMEOUT_S


def _holders(path: Path) -> list[str]:
    """'pid N (command)' of the other processes that have the registry file open (Linux /proc;
    empty where that cannot be read)."""
    want = {str(path.resolve()), *(str(path.resolve()) + suf for suf in ("-wal", "-shm", "-journal"))}
    out = []
    try:
        procs = [d for d in os.listdir("/proc") if d.isdigit() and int(d) != os.getpid()]
    except OSError:
        return out
    for pid in procs:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if not any(os.readlink(f"/proc/{pid}/fd/{fd}") in want for fd in fds):
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except OSError:
            continue
        out.append(f"pid {pid} ({cmd[:120]})" if cmd else f"pid {pid}")
    return out


def _registry_error(path: Path, e: sqlite3.DatabaseError, timeout: float) -> ConfigError | None:
    """A ConfigError for a locked, corrupt or unwritable registry; None for other errors."""
    text = str(e).lower()
    if isinstance(e, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        who = _holders(path)
        held = ", ".join(who) if who else "another process (it could not be identified)"
        return ConfigError(
            f"The run registry {path} is locked by another writer: {held}. It did not let go within {timeout:g} s.",
            "Wait for that job to finish and try again, or stop it if it hangs"
            + (f" (kill {who[0].split()[1]})" if who else "")
            + "; set WORKBENCH_DB_TIMEOUT=<seconds> to wait longer.")
    if any(k in text for k in ("not a database", "malformed", "encrypted", "disk image", "file is not")):
        return ConfigError(
            f"The run registry {path} is corrupt: it is not a readable SQLite database ({e}). "
            "It was left untouched.",
            f"Move it aside (mv {path} {path}.broken) and the workbench starts an empty registry; your training "
            f"runs and bundles on disk are not affected. To salvage its rows: sqlite3 {path}.broken .recover "
            f"| sqlite3 {path}")
    if "readonly" in text or "read-only" in text or "unable to open" in text:
        return ConfigError(f"The run registry {path} cannot be written ({e}).",
                           "Check the permissions of the file and its folder, or point WORKBENCH_HOME elsewhere.")
    return None


def _json_default(o: Any) -> Any:
    """Let numpy scalars/arrays, paths and dataclasses through json.dumps."""
    if hasattr(o, "tolist"):
        return o.tolist()
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    if isinstance(o, (set, frozenset)):
        return sorted(o, key=str)
    return str(o)


def _dumps(obj: Any, **kw) -> str:
    return json.dumps(obj, default=_json_default, ensure_ascii=False, **kw)


def settings_key(settings: dict | None) -> str:
    """A stable hash of the settings that affect predictions.

    Canonical JSON (sorted keys, no whitespace) of `settings` minus `IGNORED_SETTINGS`, then
    sha256, first 16 hex digits. Pass a dataclass or a dict; key order does not matter.
    """
    if settings is None:
        settings = {}
    if dataclasses.is_dataclass(settings) and not isinstance(settings, type):
        settings = dataclasses.asdict(settings)
    kept = {k: v for k, v in settings.items() if k not in IGNORED_SETTINGS}
    canon = _dumps(kept, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()[:16]


@dataclass
class RunRecord:
    """One row of the registry (without its payload; see `RunRegistry.payload`)."""

    id: str = field(metadata={"help": "Unique id, e.g. 20250101-120000-a1b2c3."})
    kind: str = field(metadata={"help": "eval | compare | train | export."})
    created_at: str = field(metadata={"help": "ISO 8601 creation time, UTC."})
    name: str = field(metadata={"help": "Human-readable name shown in the runs table."})
    template_hash: str | None = field(default=None, metadata={"help": "PromptTemplate.content_hash()."})
    template_yaml: str | None = field(default=None, metadata={"help": "Full template YAML, to reproduce the run."})
    model: str | None = field(default=None, metadata={"help": "Model name as resolved by models.py."})
    adapter: str | None = field(default=None, metadata={"help": "LoRA adapter path or id, if any."})
    data_fingerprint: str | None = field(default=None, metadata={"help": "Dataset.fingerprint() of the evaluated split."})
    data_name: str | None = field(default=None, metadata={"help": "Dataset name, for display and search."})
    seed: int | None = field(default=None, metadata={"help": "Seed used for sampling/splits/training."})
    settings: dict = field(default_factory=dict, metadata={"help": "Run settings (EvalConfig, TrainConfig, ...)."})
    metrics: dict = field(default_factory=dict, metadata={"help": "Headline metrics (accuracy, macro_f1, ...)."})
    status: str = field(default="done", metadata={"help": "done | running | failed | cancelled | interrupted (its process died)."})
    payload_path: str | None = field(default=None, metadata={"help": "Folder or file holding large artefacts outside the DB (training output, bundle)."})
    settings_key: str | None = field(default=None, metadata={"help": "settings_key(settings), used to find identical runs."})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_COLUMNS = [f.name for f in dataclasses.fields(RunRecord)]
_UPDATABLE = set(_COLUMNS) - {"id", "settings_key"}
_SEARCHED = ("id", "kind", "name", "model", "adapter", "data_name", "template_hash", "status")


class RunRegistry:
    """SQLite-backed registry of runs. See the module docstring."""

    def __init__(self, path: str | Path | None = None):
        if path is None:
            from workbench.paths import runs_db

            path = runs_db()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        with self._lock, self._connect() as con:
            # WAL lets readers proceed while a writer commits; it is a property of the file,
            # so setting it once is enough.
            con.execute("PRAGMA journal_mode=WAL")
            self._migrate(con)

    # --- connection and schema ---------------------------------------------------------

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        timeout = db_timeout()
        try:
            con = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        except sqlite3.DatabaseError as e:
            raise (_registry_error(self.path, e, timeout) or e) from e
        con.row_factory = sqlite3.Row
        try:
            yield con
        except sqlite3.DatabaseError as e:
            err = _registry_error(self.path, e, timeout)
            if err is None:
                raise
            raise err from e
        finally:
            con.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A connection inside one IMMEDIATE transaction, serialized within this process."""
        with self._lock, self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def _migrate(self, con: sqlite3.Connection) -> None:
        con.execute("BEGIN IMMEDIATE")
        try:
            con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = con.execute("SELECT version FROM schema_version").fetchone()
            version = row[0] if row else 0
            if version > SCHEMA_VERSION:
                raise ConfigError(
                    f"run registry {self.path} has schema version {version}, newer than this "
                    f"workbench understands ({SCHEMA_VERSION})",
                    "upgrade prompt-workbench, or point WORKBENCH_HOME at another folder")
            for v in range(version + 1, SCHEMA_VERSION + 1):
                for stmt in _MIGRATIONS[v]:
                    con.execute(stmt)
            if row is None:
                con.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            elif version != SCHEMA_VERSION:
                con.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def schema_version(self) -> int:
        with self._connect() as con:
            return int(con.execute("SELECT version FROM schema_version").fetchone()[0])

    # --- rows ------------------------------------------------------------------------------

    @staticmethod
    def _record(row: sqlite3.Row) -> RunRecord:
        d = {k: row[k] for k in _COLUMNS}
        d["settings"] = json.loads(d["settings"] or "{}")
        d["metrics"] = json.loads(d["metrics"] or "{}")
        return RunRecord(**d)

    @staticmethod
    def _new_id(now: datetime) -> str:
        return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"

    def add(
        self,
        kind: str,
        *,
        name: str,
        template_hash: str | None = None,
        template_yaml: str | None = None,
        model: str | None = None,
        adapter: str | None = None,
        data_fingerprint: str | None = None,
        data_name: str | None = None,
        seed: int | None = None,
        settings: dict | None = None,
        metrics: dict | None = None,
        payload: dict | None = None,
        status: str = "done",
        payload_path: str | None = None,
        key: str | None = None,
    ) -> str:
        """Record a run and return its id. `payload` (full results JSON) is stored compressed.
        `key` is the run's reuse key (workbench.core.spec.eval_key for evals); without one the
        settings' hash is stored."""
        if kind not in KINDS:
            raise ConfigError(f"unknown run kind {kind!r}", f"use one of {', '.join(KINDS)}")
        if dataclasses.is_dataclass(settings) and not isinstance(settings, type):
            settings = dataclasses.asdict(settings)
        settings = settings or {}
        now = datetime.now(timezone.utc)
        run_id = self._new_id(now)
        values = {
            "id": run_id, "kind": kind, "created_at": now.isoformat(timespec="microseconds"),
            "name": name, "template_hash": template_hash, "template_yaml": template_yaml,
            "model": model, "adapter": adapter, "data_fingerprint": data_fingerprint,
            "data_name": data_name, "seed": None if seed is None else int(seed),
            "settings": _dumps(settings), "metrics": _dumps(metrics or {}),
            "status": status, "payload_path": None if payload_path is None else str(payload_path),
            "settings_key": key or settings_key(settings),
        }
        blob = self._compress(payload) if payload is not None else None
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        with self._write() as con:
            con.execute(f"INSERT INTO runs ({cols}) VALUES ({marks})", list(values.values()))
            if blob is not None:
                con.execute("INSERT INTO payloads (run_id, size, data) VALUES (?, ?, ?)",
                            (run_id, blob[0], blob[1]))
        return run_id

    @staticmethod
    def _compress(payload: dict) -> tuple[int, bytes]:
        raw = _dumps(payload).encode("utf-8")
        return len(raw), zlib.compress(raw, 6)

    def get(self, run_id: str) -> RunRecord:
        with self._connect() as con:
            row = con.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise ConfigError(f"no run with id {run_id!r} in {self.path}",
                              "list runs with `workbench runs` or the Runs tab")
        return self._record(row)

    def payload(self, run_id: str) -> dict | None:
        """The full results JSON stored with the run, or None if it had none."""
        with self._connect() as con:
            row = con.execute("SELECT data FROM payloads WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            return None
        return json.loads(zlib.decompress(row[0]).decode("utf-8"))

    def list(self, kind: str | None = None, limit: int = 200, search: str | None = None) -> list[RunRecord]:
        """Runs newest first, optionally of one kind and matching `search` (case-insensitive
        substring of id, name, model, adapter, data name, template hash, kind or status)."""
        where, args = [], []
        if kind:
            where.append("kind = ?")
            args.append(kind)
        if search:
            pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            where.append("(" + " OR ".join(f"{c} LIKE ? ESCAPE '\\'" for c in _SEARCHED) + ")")
            args.extend([pattern] * len(_SEARCHED))
        sql = "SELECT * FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        # rowid breaks ties between runs created within the same microsecond.
        sql += " ORDER BY created_at DESC, rowid DESC LIMIT ?"
        args.append(int(limit))
        with self._connect() as con:
            return [self._record(r) for r in con.execute(sql, args).fetchall()]

    def find_by_key(self, key: str, kind: str = "eval") -> RunRecord | None:
        """The newest finished run stored under reuse key `key` (see `record_eval`)."""
        with self._connect() as con:
            row = con.execute("SELECT * FROM runs WHERE kind = ? AND status = 'done' AND settings_key = ? "
                              "ORDER BY created_at DESC, rowid DESC LIMIT 1", (kind, key)).fetchone()
        return None if row is None else self._record(row)

    def update(self, run_id: str, **fields: Any) -> RunRecord:
        """Change fields of a run (e.g. status and metrics when a training run ends).
        `payload=` replaces the stored payload; `settings=` also refreshes the settings key."""
        payload = fields.pop("payload", None)
        bad = set(fields) - _UPDATABLE
        if bad:
            raise ConfigError(f"cannot update run field(s) {', '.join(sorted(bad))}",
                              f"updatable fields: {', '.join(sorted(_UPDATABLE))}, payload")
        if "kind" in fields and fields["kind"] not in KINDS:
            raise ConfigError(f"unknown run kind {fields['kind']!r}", f"use one of {', '.join(KINDS)}")
        values = dict(fields)
        if "settings" in values:
            s = values["settings"]
            if dataclasses.is_dataclass(s) and not isinstance(s, type):
                s = dataclasses.asdict(s)
            values["settings"] = _dumps(s or {})
            values["settings_key"] = settings_key(s)
        if "metrics" in values:
            values["metrics"] = _dumps(values["metrics"] or {})
        blob = self._compress(payload) if payload is not None else None
        with self._write() as con:
            if not con.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone():
                raise ConfigError(f"no run with id {run_id!r} in {self.path}",
                                  "list runs with `workbench runs` or the Runs tab")
            if values:
                sets = ", ".join(f"{k} = ?" for k in values)
                con.execute(f"UPDATE runs SET {sets} WHERE id = ?", [*values.values(), run_id])
            if blob is not None:
                con.execute("INSERT OR REPLACE INTO payloads (run_id, size, data) VALUES (?, ?, ?)",
                            (run_id, blob[0], blob[1]))
        return self.get(run_id)

    # --- notes on examples -------------------------------------------------------------------

    def set_note(self, data_fingerprint: str, row_index, tag: str = "", comment: str = "") -> dict | None:
        """Mark row `row_index` of the data with `data_fingerprint`; an empty tag and comment
        delete the note. Returns the note, or None when deleted."""
        if not data_fingerprint:
            raise ConfigError("a note needs the data's fingerprint", "open a run or comparison first")
        tag, comment = (tag or "").strip(), (comment or "").strip()
        if len(comment) > 2000:
            raise ConfigError("the comment is longer than 2000 characters", "keep notes short")
        key = (str(data_fingerprint), str(row_index))
        with self._write() as con:
            if not tag and not comment:
                con.execute("DELETE FROM notes WHERE data_fingerprint = ? AND row_index = ?", key)
                return None
            now = datetime.now(timezone.utc).isoformat(timespec="seconds")
            con.execute("INSERT INTO notes (data_fingerprint, row_index, tag, comment, updated_at) VALUES (?, ?, ?, ?, ?)"
                        " ON CONFLICT (data_fingerprint, row_index) DO UPDATE SET tag = excluded.tag,"
                        " comment = excluded.comment, updated_at = excluded.updated_at", (*key, tag, comment, now))
        return {"row": key[1], "tag": tag, "comment": comment, "updated_at": now}

    def notes(self, data_fingerprint: str) -> dict[str, dict]:
        """{row index (as str): {"tag", "comment", "updated_at"}} for one dataset."""
        with self._connect() as con:
            rows = con.execute("SELECT row_index, tag, comment, updated_at FROM notes WHERE data_fingerprint = ?",
                               (str(data_fingerprint),)).fetchall()
        return {r["row_index"]: {"tag": r["tag"], "comment": r["comment"], "updated_at": r["updated_at"]} for r in rows}

    def delete(self, run_id: str) -> None:
        """Remove a run and its payload. Files under `payload_path` are left alone."""
        with self._write() as con:
            con.execute("DELETE FROM payloads WHERE run_id = ?", (run_id,))
            con.execute("DELETE FROM runs WHERE id = ?", (run_id,))


# ---------------------------------------------------------------------------- eval runs
def result_key(result_or_dict) -> str:
    """The reuse key of a stored eval result: its template, data, rows, settings and full model
    identity (workbench.core.spec.eval_key). Results from before model identities were recorded
    get a key no new eval can have, so they are never reused."""
    from workbench.core.spec import eval_key

    d = result_or_dict.to_dict() if hasattr(result_or_dict, "to_dict") else result_or_dict
    prov = d.get("provenance", d)
    return eval_key(prov["template"]["hash"], prov["data"]["fingerprint"], prov["config"],
                    prov["data"].get("row_indices_hash"), prov["model"].get("model_identity") or {"legacy": True})


def record_eval(result, registry: RunRegistry | None = None, name: str | None = None) -> str:
    """Store an EvalResult (its full JSON as the payload) under its reuse key; return the run id."""
    reg = registry or RunRegistry()
    d = result.to_dict() if hasattr(result, "to_dict") else result
    prov = d["provenance"]
    m = d["metrics"]
    headline = {k: m[k] for k in ("n", "accuracy", "macro_f1", "exact_match", "token_f1", "contains") if k in m}
    settings = dict(prov["config"], row_indices_hash=prov["data"].get("row_indices_hash"))
    return reg.add(
        "eval", name=name or prov["template"]["name"], template_hash=prov["template"]["hash"],
        template_yaml=prov["template"]["yaml"], model=prov["model"]["identity"], adapter=prov["model"].get("adapter"),
        data_fingerprint=prov["data"]["fingerprint"], data_name=prov["data"]["name"], seed=prov["config"].get("seed"),
        settings=settings, metrics=headline, payload=d, key=result_key(d))
