"""Which search run a Search job writes (job id -> registry run id), so a page can open a search while it
runs. The job reports its run id through `JobContext.found` as soon as the run is registered, so the job's
own status carries it (running, cancelled or done): no table of our own to keep or to clear. A module of
its own so that the Search tab and the form restore both read it without importing each other."""
from __future__ import annotations

from workbench.jobs import queue as jobs


def run_id_of(job_id: str | None, status: dict | None = None) -> str | None:
    """The search run of a job, from its status (fetched when not given)."""
    st = status if status is not None else (jobs.status(job_id) if job_id else {})
    return (st or {}).get("result_id")
