"""Built-in data for tests: loaded for real, skipped only where it is truly absent, and never
skipped under WORKBENCH_REQUIRE_DATA (what `make test` sets)."""
from __future__ import annotations

import os

import pytest


BIGBENCH_BUILTINS = ("intent", "strategyqa")


def bigbench_gone(name: str) -> str | None:
    """Why `name`'s BIG-bench rows cannot be had here, when the fetch recorded that PyPI no longer
    serves the release (`python -m workbench.storage.fetch bigbench --optional`, run by `make`)."""
    from workbench.storage.data_bigbench import bigbench_unavailable

    return bigbench_unavailable() if (name in BIGBENCH_BUILTINS or name.startswith("bigbench:")) else None


def require_data(name: str):
    """The built-in dataset `name`, loaded. A dataset this machine does not have skips the test,
    or fails it when WORKBENCH_REQUIRE_DATA is set; a dataset that is there but fails to load
    fails the test (no fallback rows, no skip that hides a broken loader)."""
    from workbench.storage.data_builtins import builtin_datasets
    from workbench.storage.data_load import load_dataset

    known = {b["name"]: b for b in builtin_datasets()}
    assert name in known, f"{name!r} is not a built-in dataset ({sorted(known)})"
    if not known[name]["available"]:
        gone = bigbench_gone(name)
        if gone:   # the registry no longer serves the release: a recorded reason, not a silent skip
            pytest.skip(f"dataset {name!r} needs the BIG-bench tasks, which could not be fetched: {gone}")
        if os.environ.get("WORKBENCH_REQUIRE_DATA"):
            pytest.fail(f"dataset {name!r} is missing but WORKBENCH_REQUIRE_DATA is set")
        pytest.skip(f"dataset {name!r} is not available here")
    return load_dataset(name)
