"""Shared fixtures, registered by tests/conftest.py (pytest_plugins)."""
from __future__ import annotations

import pytest

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
