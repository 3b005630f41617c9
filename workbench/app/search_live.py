"""Which search run each running Search job writes (job id -> registry run id), known as soon as the run
is registered, so a page can open a search while it runs. A module of its own so that the Search tab and
the form restore both read it without importing each other; an entry lives only while its job runs
(afterwards the job's result id says the same)."""
from __future__ import annotations

import threading

from workbench.jobs import queue as jobs

_LIVE: dict[str, str] = {}
_LOCK = threading.Lock()


def remember(job_id: str, run_id: str) -> None:
    with _LOCK:
        _LIVE[job_id] = run_id


def forget(job_id: str) -> None:
    with _LOCK:
        _LIVE.pop(job_id, None)


def run_id_of(job_id: str | None, status: dict | None = None) -> str | None:
    """The search run of a job: the live one while it runs, else the finished job's result."""
    with _LOCK:
        live = _LIVE.get(job_id or "")
    if live:
        return live
    st = status if status is not None else (jobs.status(job_id) if job_id else {})
    return (st or {}).get("result_id")
