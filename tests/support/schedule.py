"""Longest files first under pytest-xdist (registered by tests/conftest.py).

`make test` runs `-n 2 --dist loadfile`: each worker takes whole files, so a module's fixtures (a launched
app, a loaded task, the shared reference server's one start per worker) are built once. xdist hands files
out in collection order (or, by default, most tests first), and a worker asks for the next file when it
is nearly done with its own. With the long files last, one worker ends alone on the walkthrough while
the other idles; handed out longest first (the LPT rule), the short files fill the gaps at the end.

The seconds below are each file's wall time in one `-n 2 --dist loadfile` run of the whole suite
(`WORKBENCH_TEST_CPU=40 WORKBENCH_TEST_CPU_JSON=t.json pytest -n 2 --dist loadfile`, summed per file,
rounded; files under 15 s left out). That run shared its 2 cores with other work (load 8-13), so the
figures are about 3x a quiet machine's: only their order matters here. A file not listed is guessed from
its marks, so a new test file needs no entry to be scheduled sensibly.
Without xdist nothing is reordered: a serial run keeps the files in their usual order."""
from __future__ import annotations

import os

import pytest

FILE_SECONDS: dict[str, float] = {
    "test_browser_walkthrough.py": 332, "test_native.py": 260, "test_remote.py": 259, "test_judge_model.py": 152,
    "test_lmeval_parity.py": 119, "test_sequential_grid.py": 119, "test_app_compare_models.py": 111,
    "test_browser_ux28.py": 101, "test_lmeval_outputs_parity.py": 100, "test_inference.py": 99,
    "test_lmeval_library.py": 98, "test_browser_ux.py": 97, "test_browser.py": 96, "test_sandbox_surface.py": 91,
    "test_hardening_jobs.py": 79, "test_selfask.py": 72, "test_prefix_scoring.py": 66, "test_browser_tabs.py": 60,
    "test_sequential_compare.py": 60, "test_browser_judge.py": 55, "test_spec.py": 53, "test_export.py": 52,
    "test_prefix_generate.py": 47, "test_hardening_bundles.py": 41, "test_fuzz.py": 40,
    "test_app_concurrency.py": 39, "test_browser_search.py": 30, "test_browser_compare_task.py": 29,
    "test_app_compare_task.py": 29, "test_search_generation.py": 29, "test_app_api.py": 27, "test_training.py": 26,
    "test_search.py": 26, "test_compare.py": 26, "test_app_compare.py": 24, "test_session.py": 22,
    "test_render_budget.py": 21, "test_reuse.py": 19, "test_app_search.py": 19, "test_render_isolation.py": 18,
    "test_sequential.py": 16, "test_hardening_exposed.py": 16,
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
