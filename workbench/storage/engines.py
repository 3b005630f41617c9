"""Saved inference-server entries: a short name for an engine URL and its settings.

    save_engine("vllm-70b", ModelRef(model="openai:http://gpu-box:8000/v1#llama-70b",
                                     tokenizer="meta-llama/Llama-3.1-70B-Instruct", engine={"concurrency": 32}))
    resolve(ModelRef(model="vllm-70b", adapter=None))   # -> that ModelRef (the adapter carried over)

The model bar, the Compare tab's model columns and the CLI's `--model` all accept an entry's
name wherever they accept a model, and resolve it here, so a RunSpec (and the command it
prints) always records the URL and settings themselves: a spec stays reproducible if the entry
is later changed or deleted. Entries live in the run registry's SQLite file (table `engines`).
No API key is ever stored: the key comes from WORKBENCH_API_KEY / OPENAI_API_KEY at run time.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, replace
from datetime import datetime, timezone

from workbench.core.spec import ENGINE_DEFAULTS, ModelRef
from workbench.errors import ConfigError
from workbench.storage.runs import RunRegistry

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SAVED_FIELDS = ("model", "tokenizer", "engine", "dtype")   # what an entry records


def _check(name: str, ref: ModelRef) -> None:
    if not _NAME.match(name or "") or name == "default" or name.endswith(".gguf"):
        raise ConfigError(f"'{name}' cannot name a saved engine.",
                          hint="Use letters, digits, '-', '_' or '.', without '/' or ':' (so it cannot be "
                               "mistaken for a folder, a hub id or a URL), and not 'default'.")
    if not ref.remote:
        raise ConfigError(f"A saved engine needs an inference server URL, got '{ref.model}'.",
                          hint="Write it as openai:http://HOST:PORT/v1 (optionally #SERVED_NAME).")
    from workbench.paths import check_server_url

    check_server_url(ref.model)   # an exposed server saves (and uses) only allow-listed servers
    unknown = sorted(set(ref.engine) - set(ENGINE_DEFAULTS))
    if unknown:
        raise ConfigError(f"Unknown engine setting(s) {', '.join(unknown)}.",
                          hint=f"Known: {', '.join(ENGINE_DEFAULTS)}.")


def save_engine(name: str, ref: ModelRef, registry: RunRegistry | None = None) -> dict:
    """Save (or replace) the entry `name`; returns it as stored."""
    name = (name or "").strip()
    _check(name, ref)
    entry = {k: v for k, v in asdict(ref).items() if k in _SAVED_FIELDS}
    reg = registry or RunRegistry()
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with reg._write() as con:
        con.execute("INSERT INTO engines (name, entry, updated_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                    " entry = excluded.entry, updated_at = excluded.updated_at", (name, json.dumps(entry), now))
    return {"name": name, **entry, "updated_at": now}


def list_engines(registry: RunRegistry | None = None) -> list[dict]:
    """Every saved entry, by name: [{"name", "model", "tokenizer", "engine", "dtype", "updated_at"}]."""
    reg = registry or RunRegistry()
    with reg._connect() as con:
        rows = con.execute("SELECT name, entry, updated_at FROM engines ORDER BY name").fetchall()
    return [{"name": r["name"], **json.loads(r["entry"]), "updated_at": r["updated_at"]} for r in rows]


def delete_engine(name: str, registry: RunRegistry | None = None) -> bool:
    reg = registry or RunRegistry()
    with reg._write() as con:
        return con.execute("DELETE FROM engines WHERE name = ?", ((name or "").strip(),)).rowcount > 0


def resolve(ref: ModelRef, registry: RunRegistry | None = None) -> ModelRef:
    """`ref` with a saved entry's URL and settings when `ref.model` names one; else `ref` itself.
    Settings given on `ref` (a CLI flag) win over the entry's."""
    name = (ref.model or "").strip()
    if not _NAME.match(name) or name == "default":
        return ref
    for e in list_engines(registry):
        if e["name"] == name:
            return replace(ref, model=e["model"], tokenizer=ref.tokenizer or e.get("tokenizer"),
                           dtype=ref.dtype or e.get("dtype"), engine={**(e.get("engine") or {}), **ref.engine})
    return ref
