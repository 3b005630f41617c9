"""The Compare tab's lm-eval task picker in the browser (issue #25): search a task by name,
give its rows as a folder on the server, put two templates of our own in the columns and
compare them with the task's own prompt; the verdict per metric appears under the picker.
Small: 4 made-up MMLU rows, the default model."""
from __future__ import annotations

import pytest

from test_app_compare_task import MINE, _data
from test_browser import app_url, page, shot  # noqa: F401 - fixtures
from test_browser_walkthrough import set_code

pytestmark = [pytest.mark.browser, pytest.mark.model]


def _text(page, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id} input, #{elem_id} textarea").first
    box.fill(value)
    box.press("Tab")


def test_compare_tab_task_picker_in_the_browser(app_url, page, tmp_path):  # noqa: F811
    pytest.importorskip("lm_eval")
    from playwright.sync_api import expect

    data = _data(tmp_path)
    page.goto(app_url)
    expect(page.locator("#data-summary")).to_contain_text("2225 rows", timeout=90_000)
    page.get_by_role("tab", name="Compare", exact=True).click()
    set_code(page, "compare-yaml-1", MINE)
    set_code(page, "compare-yaml-2", MINE.replace("my_mmlu", "my_mmlu_q").replace("Question:", "Q:"))
    _text(page, "compare-limit", "4")
    page.get_by_text("On an lm-eval task's rows").click()
    # typing searches (no Tab: focus in the dropdown would show its filter box, not its value)
    box = page.locator("#compare-task-search input, #compare-task-search textarea").first
    box.fill("mmlu_anat")
    box.press("Enter")     # as a user whose typing showed nothing would: searches again (the same answer)
    expect(page.locator("#compare-task-pick input")).to_have_value("mmlu_anatomy", timeout=60_000)
    _text(page, "compare-task-data", str(data))
    page.locator("#compare-task-btn").click()
    result = page.locator("#compare-task-result")
    expect(result).to_contain_text("my_mmlu vs task prompt", timeout=600_000)
    expect(result).to_contain_text("my_mmlu_q vs task prompt")
    expect(result).to_contain_text("4 rows")
    expect(result.locator("table").first).to_contain_text("acc_norm")     # the arms' metrics table
    shot(page, "compare_task_picker")
