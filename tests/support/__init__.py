"""Shared test helpers (docs/DESIGN: tests/support/).

    from support import App, wait_for, wait_job, require_data, load_data
    with App() as app:                            # built, launched on a free loopback port
        load_data(app.client, "bbc")              # the positional /load_data call, by name
        st = wait_job(app.client, "/run_status", job_id)
    wait_for(lambda: reg.status(j)["state"] == "running", 5, "the first job to start")

Fixtures (`app` per module, `fresh_app` per test) live in support/fixtures.py and are
registered by tests/conftest.py. Fakes of the model session: support/fakes.py.
"""
from support.app import App, load_data
from support.data import require_data
from support.wait import wait_for, wait_job

__all__ = ["App", "load_data", "require_data", "wait_for", "wait_job"]
