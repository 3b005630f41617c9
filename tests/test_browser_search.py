"""The Search tab in headless Chromium (Debian's): a small search (calibration only, 8 dev rows,
12 test rows) started from the page shows its live progress, then the winner, the held-out
verdict, the best-so-far plot and the leaderboard. Screenshot: artifacts/screenshots/tab_search.png
(and assets/ with WORKBENCH_UPDATE_ASSETS=1)."""
from __future__ import annotations

import os
import shutil

import pytest

from test_browser import ASSETS, app_url, open_tab, page, shot  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.model]


def fill(page, elem_id: str, value) -> None:
    box = page.locator(f"#{elem_id} input")
    box.fill(str(value))
    box.press("Tab")


def test_search_tab_in_the_browser(app_url, page):  # noqa: F811 - pytest fixtures
    from playwright.sync_api import expect

    page.goto(app_url)
    expect(page.locator("#data-summary")).to_contain_text("2225 rows", timeout=90_000)
    open_tab(page, "Search")
    expect(page.locator("#tab-search")).to_be_visible()
    expect(page.locator("#search-start-yaml")).to_contain_text("Label:")
    axes = page.locator("#search-axes")
    for axis in ("verbalizer", "format", "instruction", "demos"):
        axes.get_by_label(axis, exact=True).uncheck()
    for elem_id, value in (("search-max-dev", 8), ("search-test-limit", 12)):
        fill(page, elem_id, value)
    page.locator("#search-btn").click()
    expect(page.locator("#search-progress")).to_contain_text("search from bbc_weak_start", timeout=60_000)
    summary = page.locator("#search-summary")
    expect(summary).to_contain_text("Held-out test", timeout=300_000)
    expect(summary).to_contain_text("n=12")
    expect(summary).to_contain_text("search(es)")
    expect(page.locator("#search-progress")).to_contain_text("done", timeout=60_000)
    expect(page.locator("#search-plot .js-plotly-plot")).to_be_visible(timeout=30_000)
    expect(page.locator("#search-leaderboard")).to_contain_text("start")
    expect(page.locator("#search-leaderboard")).to_contain_text("calibration")
    path = shot(page, "tab_search")
    if os.environ.get("WORKBENCH_UPDATE_ASSETS"):
        shutil.copy(path, ASSETS / path.name)
