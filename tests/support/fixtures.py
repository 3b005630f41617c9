"""Shared fixtures, registered by tests/conftest.py (pytest_plugins)."""
from __future__ import annotations

import pytest

from remote_servers import NO_FAULTS, ServerProcess
from support.app import App


@pytest.fixture(scope="module")
def app():
    """One launched app for a module whose tests do not disturb each other. Each test still
    gets its own WORKBENCH_HOME (conftest.workbench_home); the app reads paths per call."""
    with App() as a:
        yield a


@pytest.fixture()
def fresh_app():
    """A launched app for one test (a test that changes the app's own state)."""
    with App() as a:
        yield a


@pytest.fixture(scope="session")
def reference_server():
    """One protocol reference server (tests/reference_server.py) for the whole run: each start imports
    torch and transformers and loads the model in a new process (seconds of CPU), and four modules use it.
    It keeps no state a test reads except its fault settings, reset here per use, and cumulative request
    counters, which tests read as differences. Tests that need their own (a delay set at start, a death)
    still start one with ServerProcess.reference(...)."""
    with ServerProcess.reference() as srv:
        yield srv


@pytest.fixture()
def ref(reference_server):
    """The shared reference server with no faults set, before and after the test."""
    reference_server.set_faults(**NO_FAULTS)
    yield reference_server
    reference_server.set_faults(**NO_FAULTS)
