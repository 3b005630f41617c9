"""The one wait of the test suite: poll a condition until it holds, or fail saying what did not happen."""
from __future__ import annotations

import time
from typing import Any, Callable

FINAL = ("done", "failed", "cancelled")


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Call `predicate` until it returns something truthy, and return that. After `timeout`
    seconds the test fails with `what` (what was awaited) and the predicate's last value."""
    end = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= end:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def wait_job(client, status_api: str, job_id: str, timeout: float = 300) -> dict:
    """Poll a job's status endpoint (`/run_status`, `/compare_status`, ...) through gradio_client
    until the job is done, failed or cancelled; return its last status."""
    box = {}

    def finished():
        box["st"] = client.predict(job_id, api_name=status_api)
        return box["st"]["state"] in FINAL
    try:
        wait_for(finished, timeout, f"job {job_id} ({status_api}) to finish", interval=0.2)
    except AssertionError as e:
        raise AssertionError(f"{e}; status: {box.get('st')}") from None
    return box["st"]
