"""Issue 28 in the page, where only the page shows it (no model: nothing is scored): after
one's own CSV is uploaded, Compare's columns and Search's start no longer hold BBC templates
that cannot render on it (item 1); a broken upload afterwards leaves that dataset in place and
the Data panel says so, still after the toast has gone (item 3); *Duplicate* asks for a name
before it writes a copy and never replaces a template (item 10); the Train and Search forms are
kept across a reload when no job is attached (item 2)."""
from __future__ import annotations

import re

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


def test_duplicate_asks_before_it_writes_a_copy(app_url, page):  # noqa: F811 - fixtures
    """(10) *Duplicate* wrote `<name>_copy.yaml` the moment it was pressed. Now it asks: a name
    box, prefilled with a free name; Cancel writes nothing; Create copy writes and opens the copy;
    a taken name is refused and the existing file is left as it was."""
    from playwright.sync_api import expect

    from workbench.paths import user_templates_dir

    def pick_library_original():
        box = page.locator("#library input")
        box.click()
        box.fill("bbc_headline_topic")
        page.get_by_role("option").filter(has_text=re.compile(r"bbc_headline_topic\s+\(library")).first.click()

    copy = user_templates_dir() / "bbc_headline_topic_copy.yaml"
    page.goto(app_url)
    expect(page.locator("#data-summary")).to_contain_text("2225 rows", timeout=90_000)
    open_tab(page, "Templates")
    expect(page.locator("#edit-status")).to_contain_text("saved", timeout=30_000)
    pick_library_original()
    dup_btn = page.locator("#tab-templates").get_by_role("button", name="Duplicate", exact=True)
    dup_btn.click()
    name = page.locator("#dup-name input, #dup-name textarea").first
    expect(name).to_have_value("bbc_headline_topic_copy", timeout=30_000)
    assert not copy.exists()                                   # asked, nothing written
    page.locator("#dup-cancel").click()
    expect(name).to_be_hidden(timeout=30_000)
    assert not copy.exists()

    dup_btn.click()
    expect(name).to_have_value("bbc_headline_topic_copy", timeout=30_000)
    page.locator("#dup-confirm").click()
    expect(page.locator("#edit-status")).to_contain_text("bbc_headline_topic_copy.yaml", timeout=30_000)
    expect(name).to_be_hidden(timeout=30_000)
    assert copy.exists()
    before = copy.read_text()

    # the same name again: refused, the file kept; the box stays open for another name
    pick_library_original()
    dup_btn.click()
    expect(name).to_have_value("bbc_headline_topic_copy2", timeout=30_000)
    name.fill("bbc_headline_topic_copy")
    page.locator("#dup-confirm").click()
    expect(page.get_by_text("Duplicate never replaces a template").first).to_be_visible(timeout=30_000)
    expect(name).to_be_visible()
    assert copy.read_text() == before
    shot(page, "ux28_duplicate_asks")


def test_forms_are_kept_across_a_reload_without_a_job(app_url, page):  # noqa: F811 - fixtures
    """(2) Without a job, a reload used to rebuild the Train and Search forms from the page's
    defaults (60 steps / eval every 20; 600 s): the values the user typed come back now."""
    from playwright.sync_api import expect

    page.goto(app_url)
    expect(page.locator("#data-summary")).to_contain_text("2225 rows", timeout=90_000)
    open_tab(page, "Train")
    steps, every = page.locator("#train-steps input").first, page.locator("#train-eval-every input").first
    expect(steps).to_have_value("60", timeout=30_000)
    for box, value in ((steps, "7"), (every, "5")):
        box.fill(value)
        box.press("Tab")
    # each edit is stored in the browser (Gradio encrypts a BrowserState: wait for a new value)
    stored = "k => localStorage.getItem(k)"
    changed = "([k, old]) => localStorage.getItem(k) !== null && localStorage.getItem(k) !== old"
    page.wait_for_function(changed, arg=["workbench_train_form", None], timeout=30_000)
    open_tab(page, "Search")
    seconds = page.locator("#tab-search").get_by_label("Time budget (s)")
    expect(seconds).to_have_value("600", timeout=30_000)
    seconds.fill("150")
    seconds.press("Tab")
    page.wait_for_function(changed, arg=["workbench_search_form", None], timeout=30_000)
    before = page.evaluate(stored, "workbench_search_form")
    page.locator("#search-axes").get_by_label("demos", exact=True).uncheck()
    page.wait_for_function(changed, arg=["workbench_search_form", before], timeout=30_000)
    page.reload()
    expect(page.locator("#data-summary")).to_contain_text("2225 rows", timeout=90_000)
    open_tab(page, "Train")
    expect(steps).to_have_value("7", timeout=30_000)
    expect(every).to_have_value("5")
    open_tab(page, "Search")
    expect(seconds).to_have_value("150", timeout=30_000)
    expect(page.locator("#search-axes").get_by_label("demos", exact=True)).not_to_be_checked()
    expect(page.locator("#search-axes").get_by_label("verbalizer", exact=True)).to_be_checked()
