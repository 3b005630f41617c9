"""Issue 28 in the page, where only the page shows it (no model: nothing is scored): after
one's own CSV is uploaded, Compare's columns and Search's start no longer hold BBC templates
that cannot render on it (item 1); a broken upload afterwards leaves that dataset in place and
the Data panel says so, still after the toast has gone (item 3)."""
from __future__ import annotations

import pytest

from test_app_ux28 import write_tickets
from test_browser import app_url, page, shot  # noqa: F401 - fixtures
from test_browser_ux import open_tab, upload_csv

pytestmark = [pytest.mark.browser]


def test_own_data_pickers_and_a_failed_upload(app_url, page, tmp_path):  # noqa: F811 - fixtures
    from playwright.sync_api import expect

    csv_path = write_tickets(tmp_path / "support_tickets.csv")
    page.goto(app_url)
    expect(page.locator("#data-summary")).to_contain_text("2225 rows", timeout=90_000)
    # On the demo data the demo templates fit and stay.
    open_tab(page, "Compare")
    expect(page.locator("#compare-yaml-1")).to_contain_text("title", timeout=30_000)

    open_tab(page, "Data")
    upload_csv(page, csv_path)
    expect(page.locator("#data-summary")).to_contain_text("40 rows", timeout=60_000)
    expect(page.locator("#data-summary")).to_contain_text("label column intent")
    # (1) no column keeps a template reading `title`, a column this data does not have
    open_tab(page, "Compare")
    for i in (1, 2):
        expect(page.locator(f"#compare-yaml-{i}")).not_to_contain_text("title", timeout=30_000)
    page.locator("#compare-pick-1 input").click()
    # no saved template fits this data yet: the library's are offered, each marked as not fitting
    expect(page.get_by_role("option").first).to_contain_text("does not fit the data")
    page.keyboard.press("Escape")
    open_tab(page, "Search")
    expect(page.locator("#search-start-yaml")).not_to_contain_text("{{ title }}", timeout=30_000)

    # (3) a broken file: the tickets stay loaded and the panel says so, after the toast is gone
    open_tab(page, "Data")
    broken = tmp_path / "broken.csv"
    broken.write_text('message,intent\n1,"unterminated\n2,fine\n')
    page.locator("#tab-data").get_by_label("Clear").first.click()       # the box shows the tickets: clear it
    expect(page.locator("#tab-data").get_by_label("Label column")).to_have_value("intent")   # clearing keeps them
    upload_csv(page, broken)
    note = page.locator("#data-load-error")
    expect(note).to_contain_text("Loading failed", timeout=60_000)
    expect(note).to_contain_text("previous dataset is still loaded")
    page.wait_for_timeout(13_000)      # the toast fades after about 10 s; the panel's note stays
    expect(note).to_be_visible()
    expect(page.locator("#data-summary")).to_contain_text("40 rows")
    expect(page.locator("#tab-data").get_by_label("Label column")).to_have_value("intent")
    shot(page, "ux28_failed_upload")
