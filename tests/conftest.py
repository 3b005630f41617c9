"""Shared fixtures.

Each test gets a fresh `WORKBENCH_HOME` (registry, user templates, runs) while
`WORKBENCH_CACHE` keeps pointing at the real cache, so the default model is converted from
GGUF once per machine, not once per test.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REAL_CACHE = Path(os.environ.get("WORKBENCH_CACHE") or os.environ.get("WORKBENCH_HOME")
                  or Path.home() / ".cache" / "prompt-workbench")
os.environ["WORKBENCH_CACHE"] = str(REAL_CACHE)
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Under pytest-xdist (`make test` runs `-n 2`) each worker gets its share of the cores for torch's pool
# (and, through the environment, for the lm_eval, training and server processes its tests start). Two
# workers that each spin the default one-thread-per-core OpenMP pool on 2 cores oversubscribe them, and the
# pool's spinning threads burn CPU that the other worker needs (measured on 8 model-heavy files: 368 CPU s
# serial with 2 threads, 236 CPU s under `-n 2` with 1 thread each; BENCHMARKS.md, test suite).
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if XDIST_WORKER:
    _threads = str(max(1, (os.cpu_count() or 1) // max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1))))
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[_var] = _threads
    # Gradio's upload/cache folder: one per worker, so two apps never write the same cached file at once.
    import tempfile

    os.environ.setdefault("GRADIO_TEMP_DIR", os.path.join(tempfile.gettempdir(), f"gradio-{XDIST_WORKER}"))


def pytest_configure(config):
    if XDIST_WORKER and "torch" in sys.modules:   # a plugin imported torch before the variables above were set
        import torch

        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture(autouse=True)
def workbench_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "wbhome"
    home.mkdir()
    monkeypatch.setenv("WORKBENCH_HOME", str(home))
    monkeypatch.setenv("WORKBENCH_CACHE", str(REAL_CACHE))
    return home


@pytest.fixture(scope="session")
def session():
    """The real default model (SmolLM2-135M-Instruct), loaded once for the whole test run."""
    from workbench.engine.session import get_session

    return get_session("default")


@pytest.fixture(scope="session")
def bbc():
    from workbench.storage.data_load import load_dataset

    return load_dataset("bbc")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A server a test started that died under it is the cause, not the clients' retries into 'connection
    refused': put how it died (exit code or signal, its log's last lines) at the top of the failure."""
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    deaths = []
    for value in getattr(item, "funcargs", {}).values():
        died = getattr(value, "died", None)
        if callable(died):
            try:
                why = died()
            except Exception:  # noqa: BLE001 - a report hook must not raise
                why = None
            if why:
                deaths.append(why)
    if deaths:
        rep.longrepr = "\n\n".join(deaths) + "\n\n--- the test's own failure ---\n" + str(rep.longrepr)


# CPU seconds per test on request (WORKBENCH_TEST_CPU=15): a measure that other work on the machine barely moves;
# under xdist, the longest files first (support/schedule.py).
pytest_plugins = ["support.cpu_time", "support.schedule"]

# Shared fixtures from tests/support/ (the launched app, per module or per test; the reference server).
from support.fixtures import app, fresh_app, ref, reference_server  # noqa: E402,F401 - fixtures, registered by import


def pytest_terminal_summary(terminalreporter):
    """The last lines name the machine, so that a CI log says which CPU (AMD, or Intel with AMX)
    this suite passed or failed on, and which llama.cpp build ran there."""
    import platform

    model, flags = "?", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model == "?":
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    isa = ", ".join(f for f in ("avx2", "avx512f", "amx_tile", "amx_bf16") if f in flags) or "none of avx2/avx512/amx"
    llama = "not installed"
    try:
        from importlib.metadata import version

        llama = version("llama_cpp_python")
    except Exception:
        pass
    terminalreporter.write_line(f"machine: {model} · {os.cpu_count()} cores · {platform.machine()} · {isa} · "
                                f"llama-cpp-python {llama} (portable build: scripts/build_llama_cpp.sh)")
