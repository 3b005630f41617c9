"""Run a user template's validation or preview in a forked child with hard limits.

    out = isolated(fn, *args, seconds=5.0)   # fn(*args) in a child; its value, or its exception

The render budget (core/render.py) is cooperative: it checks between operations, so one C-level
operation that it failed to bound (issue 29, item 4 listed several) holds the server's GIL for
as long as it runs, and other users wait. On the server, a template's renders therefore run in
a child forked for the request:

- the child gets an address-space cap of its parent's current size + `WORKBENCH_RENDER_MEMORY_MB`
  (default 2048) and a CPU-time cap of `seconds` + 1 (the kernel stops it if all else fails);
- the parent waits on a pipe, holding no lock and no GIL, and kills the child at `seconds` (+0.5 s
  to collect a result the child had just finished);
- the child inherits the loaded dataset and tokenizer copy-on-write, so nothing is loaded again.

A validation costs ~80-95 ms this way instead of ~10 ms in the server's thread (measured side by
side on a loaded 2-core machine; docs/SECURITY.md). Where
fork is unavailable (not POSIX), or with `WORKBENCH_ISOLATE_RENDERS=0`, `fn` runs in the calling
thread under the cooperative budget alone.
"""
from __future__ import annotations

import logging
import os
import pickle
import resource
import select
import signal
import sys
import threading
import time
import warnings
from typing import Any, Callable

from workbench.core.render import RenderLimitError

log = logging.getLogger(__name__)

MEMORY_MB = int(os.environ.get("WORKBENCH_RENDER_MEMORY_MB", "2048") or 2048)
MAX_CHILDREN = int(os.environ.get("WORKBENCH_RENDER_WORKERS", "8") or 8)
_slots = threading.BoundedSemaphore(MAX_CHILDREN)


def enabled() -> bool:
    return hasattr(os, "fork") and os.environ.get("WORKBENCH_ISOLATE_RENDERS", "1").lower() not in ("0", "false", "no")


def _vm_bytes() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _child(w: int, fn: Callable, args: tuple, kwargs: dict, seconds: float, memory_mb: int) -> None:
    try:
        vm = _vm_bytes()
        if vm:
            cap = vm + memory_mb * (1 << 20)
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        cpu = int(seconds) + 2
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        try:
            payload = ("ok", fn(*args, **kwargs))
        except MemoryError:
            payload = ("err", RenderLimitError(f"template rendering stopped: it needed more than {memory_mb:,} MB of "
                                               "memory", "simplify the template (docs/SECURITY.md)"))
        except BaseException as e:  # noqa: BLE001 - handed to the parent, which raises it
            payload = ("err", e)
        try:
            blob = pickle.dumps(payload)
        except Exception as e:  # noqa: BLE001 - an unpicklable result or exception
            blob = pickle.dumps(("err", RuntimeError(f"{type(e).__name__}: {str(e)[:300]}")))
        view = memoryview(blob)
        os.write(w, len(blob).to_bytes(8, "little"))
        while view:
            n = os.write(w, view)
            view = view[n:]
    finally:
        os._exit(0)   # no atexit handlers, no gradio shutdown: the parent owns those


def _read_all(r: int, deadline: float) -> bytes | None:
    buf = bytearray()
    want = None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([r], [], [], left)
        if not ready:
            return None
        chunk = os.read(r, 1 << 20)
        if not chunk:
            return bytes(buf) if want is not None and len(buf) >= 8 + want else None
        buf += chunk
        if want is None and len(buf) >= 8:
            want = int.from_bytes(buf[:8], "little")
        if want is not None and len(buf) >= 8 + want:
            return bytes(buf[8:8 + want])


def isolated(fn: Callable[..., Any], *args, seconds: float, memory_mb: int | None = None, **kwargs) -> Any:
    """fn(*args, **kwargs) in a forked child with hard memory and CPU limits, killed after
    `seconds`: returns its value or raises its exception (a RenderLimitError when it was killed)."""
    if not enabled():
        return fn(*args, **kwargs)
    memory_mb = MEMORY_MB if memory_mb is None else memory_mb
    if not _slots.acquire(timeout=seconds):
        raise RenderLimitError(f"the server is busy with {MAX_CHILDREN} template renders; try again in a moment",
                               "long-running templates stop after their time limit (docs/SECURITY.md)")
    try:
        r, w = os.pipe()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)   # "fork() in a multi-threaded process"
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
        if pid == 0:  # pragma: no cover - the child (coverage does not follow it)
            os.close(r)
            _child(w, fn, args, kwargs, seconds, memory_mb)
        os.close(w)
        try:
            blob = _read_all(r, time.monotonic() + seconds + 0.5)
        finally:
            os.close(r)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
    finally:
        _slots.release()
    if blob is None:
        raise RenderLimitError(f"template rendering stopped after {seconds:g} s (time limit; the render was "
                               "killed)", "simplify the template; see the render budget in docs/SECURITY.md")
    kind, value = pickle.loads(blob)
    if kind == "err":
        raise value
    return value
