"""CPU seconds per test, for measuring the suite on a shared machine (registered by tests/conftest.py).

`--durations` reports wall time, which other work on the machine inflates; CPU time (this process's
threads: the launched apps, torch's pool, plus the child processes a test started and waited for)
barely moves with load. `WORKBENCH_TEST_CPU=N pytest ...` prints the N tests that used the most
CPU, each as CPU seconds / wall seconds, and the run's total; nothing is printed without it."""
from __future__ import annotations

import os
import resource
import time

import pytest

_SEEN: dict[str, tuple[float, float]] = {}


def _cpu() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if not os.environ.get("WORKBENCH_TEST_CPU"):
        yield
        return
    c0, t0 = _cpu(), time.perf_counter()
    yield                                   # setup, call and teardown: a module fixture counts once, where it ran
    _SEEN[item.nodeid] = (_cpu() - c0, time.perf_counter() - t0)


def pytest_terminal_summary(terminalreporter):
    n = os.environ.get("WORKBENCH_TEST_CPU")
    if not n or not _SEEN:
        return
    top = sorted(_SEEN.items(), key=lambda kv: -kv[1][0])[: int(n) if n.isdigit() else 15]
    terminalreporter.write_sep("=", f"most CPU time ({len(top)} of {len(_SEEN)} tests): CPU s / wall s")
    for nodeid, (cpu, wall) in top:
        terminalreporter.write_line(f"{cpu:8.2f} / {wall:7.2f}  {nodeid}")
    cpu, wall = (sum(v[i] for v in _SEEN.values()) for i in (0, 1))
    terminalreporter.write_line(f"total: {cpu:.1f} CPU s in {wall:.1f} s of tests ({cpu / max(wall, 1e-9):.2f} cores busy)")
