"""Which search run each running Search job writes (job id -> registry run id), known as soon as the run
is registered, so a page can open a search while it runs. A module of its own so that the Search tab and
the form restore both read it without importing each other. A cancelled search has no job result, yet
is resumed by this run id, so entries outlive their jobs; the oldest go past KEEP entries."""
from __future__ import annotations

import threading

from workbench.jobs import queue as jobs

KEEP = 256
_LIVE: dict[str, str] = {}      # insertion-ordered: the first keys are the oldest
_LOCK = threading.Lock()


def remember(job_id: str, run_id: str) -> None:
    with _LOCK:
        _LIVE[job_id] = run_id
        while len(_LIVE) > KEEP:
            _LIVE.pop(next(iter(_LIVE)))


def run_id_of(job_id: str | None, status: dict | None = None) -> str | None:
    """The search run of a job: the one it registered (running, cancelled or done), else its result."""
    with _LOCK:
        live = _LIVE.get(job_id or "")
    if live:
        return live
    st = status if status is not None else (jobs.status(job_id) if job_id else {})
    return (st or {}).get("result_id")
