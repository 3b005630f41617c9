"""Background jobs inside the server process: one thread per job, polled by the UI.

    job_id = jobs.start("eval", run_one, resource="model", template=t, dataset=ds)
    jobs.status(job_id)   # {"state": "running", "done": 120, "total": 400, "eta_s": 7.5, ...}
    jobs.cancel(job_id)   # the job sees ctx.cancelled() and stops at its next check

`fn(ctx, **kw)` does the work. It reports with `ctx.progress(done, total, message)` and checks
`ctx.cancelled()` (or passes `ctx.cancelled` as the `cancel=` callback of long core calls, which
raise `errors.Cancelled`). Whatever it returns is the job's `result`; a string return is also
taken as `result_id` (a run-registry id the UI opens when the job ends).

Why a thread and not a Gradio generator: the work must outlive the browser tab. The UI only
stores the job id (in the browser's localStorage) and polls `status`, so a page reload, a
second tab or a dropped connection reconnects to the same job and loses no progress
(LlamaBoard's runner does the same with a log file). Jobs that share a `resource` (the model)
run one at a time; the later ones wait in state "queued" and can be cancelled while waiting.

Reused by the Train tab for LoRA runs, so nothing here knows about evals.
"""
from __future__ import annotations

import logging
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from workbench.core.progress import SteadyEta
from workbench.errors import Cancelled, WorkbenchError

log = logging.getLogger(__name__)

STATES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")
MAX_KEPT = 200   # finished jobs kept for status queries; the oldest are forgotten first


@dataclass
class Job:
    id: str
    kind: str
    resource: str | None
    state: str = "queued"
    done: int = 0
    total: int = 0
    message: str = ""
    error: str | None = None
    result: Any = None
    result_id: str | None = None
    meta: dict = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    started: float | None = None          # when the work began (after waiting for the resource)
    finished: float | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    # The ETA from the rate over the whole count so far (core/progress.py): a per-tick rate jumps
    # with batch lengths, and model warm-up before the first report does not count.
    eta: SteadyEta = field(default_factory=SteadyEta)

    def eta_s(self) -> float | None:
        """Seconds left (None until the rate is known)."""
        if self.state != "running" or not self.total:
            return None
        e = self.eta.eta()
        return None if e is None else round(e, 1)

    def to_status(self) -> dict:
        now = self.finished or time.time()
        return {"id": self.id, "kind": self.kind, "state": self.state, "done": self.done, "total": self.total,
                "eta_s": self.eta_s(), "message": self.message, "error": self.error, "result_id": self.result_id,
                "elapsed_s": round(now - (self.started or now), 1), "meta": dict(self.meta)}


class JobContext:
    """What a job function sees: progress reporting and the cancel flag."""

    def __init__(self, job: Job):
        self._job = job

    @property
    def job_id(self) -> str:
        return self._job.id

    def progress(self, done: int, total: int, message: str = "") -> None:
        j = self._job
        j.done, j.total = int(done), int(total)
        j.eta.update(j.done, j.total)
        if message:
            j.message = message

    def message(self, text: str) -> None:
        self._job.message = text

    def found(self, result_id: str) -> None:
        """The job's run-registry id, known before it ends (a search registers its run at the start):
        status() shows it at once, and it stays after a cancel (a stopped search is resumed by it)."""
        self._job.result_id = result_id

    def cancelled(self) -> bool:
        return self._job.cancel_event.is_set()


class JobRegistry:
    def __init__(self):
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._resources: dict[str, threading.Lock] = {}

    def start(self, kind: str, fn: Callable[..., Any], *, resource: str | None = None,
              meta: dict | None = None, **kw) -> str:
        job = Job(id=f"{kind}-{uuid.uuid4().hex[:10]}", kind=kind, resource=resource, meta=dict(meta or {}))
        with self._lock:
            self._jobs[job.id] = job
            self._forget_old()
            res_lock = self._resources.setdefault(resource, threading.Lock()) if resource else None
        t = threading.Thread(target=self._run, args=(job, fn, kw, res_lock), name=f"job-{job.id}", daemon=True)
        t.start()
        return job.id

    def _run(self, job: Job, fn, kw: dict, res_lock: threading.Lock | None) -> None:
        ctx = JobContext(job)
        if res_lock is not None:
            job.message = f"waiting for another {job.resource} job to finish"
            # Poll so a queued job can be cancelled before it ever starts.
            while not res_lock.acquire(timeout=0.2):
                if job.cancel_event.is_set():
                    self._finish(job, "cancelled", message="cancelled before it started")
                    return
        try:
            if job.cancel_event.is_set():
                self._finish(job, "cancelled", message="cancelled before it started")
                return
            job.state, job.started, job.message = "running", time.time(), "starting"
            result = fn(ctx, **kw)
            job.result = result
            if isinstance(result, str):
                job.result_id = result
            self._finish(job, "done", message="finished")
        except Cancelled:
            self._finish(job, "cancelled", message="cancelled")
        except WorkbenchError as e:
            self._finish(job, "failed", error=str(e), message="failed")
        except Exception as e:  # noqa: BLE001 - a job must never die silently; the log has the traceback
            log.error("job %s failed:\n%s", job.id, traceback.format_exc())
            self._finish(job, "failed", error=f"{type(e).__name__}: {e}", message="failed")
        finally:
            if res_lock is not None and res_lock.locked():
                res_lock.release()

    @staticmethod
    def _finish(job: Job, state: str, *, message: str = "", error: str | None = None) -> None:
        job.error = error
        job.message = message or job.message
        job.finished = time.time()
        job.state = state   # last: pollers that see a final state also see the rest

    def _forget_old(self) -> None:
        done = [j for j in self._jobs.values() if j.state in FINISHED]
        for j in sorted(done, key=lambda j: j.created)[: max(0, len(done) - MAX_KEPT)]:
            del self._jobs[j.id]

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id or "")

    def status(self, job_id: str) -> dict:
        job = self.get(job_id)
        if job is None:
            return {"id": job_id, "kind": None, "state": "unknown", "done": 0, "total": 0, "eta_s": None,
                    "message": "no such job (the server may have restarted)", "error": None, "result_id": None,
                    "elapsed_s": 0.0, "meta": {}}
        return job.to_status()

    def cancel(self, job_id: str) -> bool:
        """Ask a job to stop; True if it was still queued or running."""
        job = self.get(job_id)
        if job is None or job.state in FINISHED:
            return False
        job.cancel_event.set()
        job.message = "cancelling…"
        return True

    def active(self, kind: str | None = None, resource: str | None = None) -> list[dict]:
        return [j.to_status() for j in list(self._jobs.values())
                if j.state in ("queued", "running") and (kind is None or j.kind == kind)
                and (resource is None or j.resource == resource)]

    def wait(self, job_id: str, timeout: float | None = None, poll: float = 0.05) -> dict:
        """Block until the job finishes (for scripts and tests)."""
        end = None if timeout is None else time.time() + timeout
        while True:
            st = self.status(job_id)
            if st["state"] in FINISHED or st["state"] == "unknown":
                return st
            if end is not None and time.time() > end:
                return st
            time.sleep(poll)


# The process-wide registry: jobs outlive the browser sessions that started them.
REGISTRY = JobRegistry()


def start(kind: str, fn: Callable[..., Any], **kw) -> str:
    return REGISTRY.start(kind, fn, **kw)


def status(job_id: str) -> dict:
    return REGISTRY.status(job_id)


def cancel(job_id: str) -> bool:
    return REGISTRY.cancel(job_id)


def active(kind: str | None = None, resource: str | None = None) -> list[dict]:
    return REGISTRY.active(kind, resource)
