"""The background job registry (workbench/jobs.py): progress, ETA, cancel, errors, and one
job at a time per resource."""
from __future__ import annotations

import threading
import time

from support import wait_for

from workbench.errors import Cancelled, DataError
from workbench.jobs.queue import JobRegistry


def test_progress_result_and_eta():
    reg = JobRegistry()
    gate = threading.Event()

    def work(ctx, n):
        for i in range(1, n + 1):
            ctx.progress(i, n, "step")
            if i == 2:
                gate.wait(5)
            time.sleep(0.01)
        return "run-123"

    jid = reg.start("eval", work, n=4)
    while reg.status(jid)["done"] < 2:
        time.sleep(0.01)
    mid = reg.status(jid)
    assert mid["state"] == "running" and mid["total"] == 4 and mid["message"] == "step"
    gate.set()
    st = reg.wait(jid, timeout=5)
    assert st["state"] == "done" and st["done"] == 4 and st["result_id"] == "run-123" and st["eta_s"] is None


def test_cancel_and_errors_are_reported_not_raised():
    reg = JobRegistry()

    def slow(ctx):
        while True:
            if ctx.cancelled():
                raise Cancelled()
            time.sleep(0.01)

    jid = reg.start("eval", slow)
    assert reg.cancel(jid)
    assert reg.wait(jid, timeout=5)["state"] == "cancelled"
    assert not reg.cancel(jid)                       # already finished

    def bad(ctx):
        raise DataError("row 3 has no label", hint="fill it in")

    st = reg.wait(reg.start("eval", bad), timeout=5)
    assert st["state"] == "failed" and st["error"] == "row 3 has no label\n  hint: fill it in"
    st = reg.wait(reg.start("eval", lambda ctx: 1 / 0), timeout=5)
    assert st["state"] == "failed" and st["error"].startswith("ZeroDivisionError")
    assert reg.status("nope")["state"] == "unknown"


def test_jobs_sharing_a_resource_run_one_at_a_time():
    reg = JobRegistry()
    release = threading.Event()
    first = reg.start("eval", lambda ctx: release.wait(5) and "a", resource="model")
    second = reg.start("train", lambda ctx: "b", resource="model")
    # The first holds the resource until released, so once it runs the second can only queue.
    wait_for(lambda: reg.status(first)["state"] == "running", 5, "the first job to start")
    wait_for(lambda: "waiting" in reg.status(second)["message"], 5, "the second job to say it waits")
    assert reg.status(first)["state"] == "running" and reg.status(second)["state"] == "queued"
    assert [j["id"] for j in reg.active(resource="model")] == [first, second]
    release.set()
    assert reg.wait(second, timeout=5)["result_id"] == "b"
    # A queued job can be cancelled before it starts.
    release.clear()
    third = reg.start("eval", lambda ctx: release.wait(5), resource="model")
    fourth = reg.start("eval", lambda ctx: "never", resource="model")
    wait_for(lambda: reg.status(third)["state"] == "running", 5, "the third job to start")
    reg.cancel(fourth)
    assert reg.wait(fourth, timeout=5)["state"] == "cancelled"
    release.set()
    assert reg.wait(third, timeout=5)["state"] == "done"
