"""CPU seconds per test, for measuring the suite on a shared machine (registered by tests/conftest.py).

`--durations` reports wall time, which other work on the machine inflates; CPU time (this process's
threads: the launched apps, torch's pool, plus the child processes a test started and waited for)
barely moves with load. `WORKBENCH_TEST_CPU=N pytest ...` prints the N tests that used the most
CPU, each as CPU seconds / wall seconds, the tests' total, and the cores busy over the session's wall
time; nothing is printed without it. Under pytest-xdist each worker measures its own tests and sends
the figures in the test's report (`user_properties`), so the summary covers every worker.

A child process's CPU is counted when it is reaped, so it can land on a later test than the one that
started it (a server shared by a module, say); the totals are right either way."""
from __future__ import annotations

import os
import resource
import time

import pytest

_SEEN: dict[str, tuple[float, float]] = {}
_KEY = "workbench_cpu_wall"
_SESSION_T0 = time.perf_counter()


def _cpu() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_setup(item):
    if os.environ.get("WORKBENCH_TEST_CPU"):
        item._workbench_cpu0 = (_cpu(), time.perf_counter())   # before any fixture of this test is set up
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    start = getattr(item, "_workbench_cpu0", None)
    if call.when == "teardown" and start is not None:    # setup, call and teardown: a module fixture counts once,
        rep = outcome.get_result()                       # where it ran
        rep.user_properties.append((_KEY, (_cpu() - start[0], time.perf_counter() - start[1])))


def pytest_runtest_logreport(report):
    """In the process that reports: the serial run itself, or the xdist controller."""
    if report.when != "teardown":
        return
    for key, value in report.user_properties:
        if key == _KEY:
            _SEEN[report.nodeid] = tuple(value)


def pytest_terminal_summary(terminalreporter):
    n = os.environ.get("WORKBENCH_TEST_CPU")
    if not n or not _SEEN:
        return
    top = sorted(_SEEN.items(), key=lambda kv: -kv[1][0])[: int(n) if n.isdigit() else 15]
    terminalreporter.write_sep("=", f"most CPU time ({len(top)} of {len(_SEEN)} tests): CPU s / wall s")
    for nodeid, (cpu, wall) in top:
        terminalreporter.write_line(f"{cpu:8.2f} / {wall:7.2f}  {nodeid}")
    cpu, wall = (sum(v[i] for v in _SEEN.values()) for i in (0, 1))
    out = os.environ.get("WORKBENCH_TEST_CPU_JSON")       # every test's figures, for tests/support/schedule.py
    if out:
        import json

        with open(out, "w") as f:
            json.dump({k: {"cpu_s": round(c, 2), "wall_s": round(w, 2)} for k, (c, w) in sorted(_SEEN.items())}, f,
                      indent=0)
    session = time.perf_counter() - _SESSION_T0
    terminalreporter.write_line(f"total: {cpu:.1f} CPU s in tests ({wall:.1f} s of tests, summed over workers); "
                                f"{session:.1f} s of session wall: {cpu / max(session, 1e-9):.2f} cores busy")
