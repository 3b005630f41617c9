"""The Compare, Train and Export tabs in headless Chromium (Debian's, never a downloaded one):
a two-template comparison runs from the Compare tab and shows its verdict, leaderboard and
plots; one tiny LoRA run started from the Train tab shows its live curves, the
dev evaluations and the final base-vs-adapter comparison, and is redrawn after a page reload.
Screenshots go to artifacts/screenshots/tab_{compare,train,export}.png (and to assets/ with
WORKBENCH_UPDATE_ASSETS=1)."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from test_browser import ASSETS, app_url, open_tab, page, shot  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.model]


def fill(page, elem_id: str, value) -> None:
    box = page.locator(f"#{elem_id} input")
    box.fill(str(value))
    box.press("Tab")


def test_compare_train_export_tabs(app_url, page):  # noqa: F811 - pytest fixtures
    from playwright.sync_api import expect

    page.goto(app_url)
    expect(page.locator("#data-summary")).to_contain_text("2225 rows", timeout=90_000)
    shots = {}

    # --- Compare: the two library templates the tab opens with, on the same 60 test rows.
    open_tab(page, "Compare")
    expect(page.locator("#tab-compare")).to_be_visible()
    fill(page, "compare-limit", 60)
    page.locator("#compare-btn").click()
    verdict = page.locator("#compare-verdict")
    expect(verdict).to_contain_text("2 templates on the same 60 examples", timeout=180_000)
    expect(verdict).to_contain_text("zero-shot")
    expect(verdict).to_contain_text("McNemar")
    board = page.locator("#compare-leaderboard")
    expect(board).to_contain_text("bbc_headline_topic")
    expect(board).to_contain_text("bbc_headline_question")
    expect(board).to_contain_text("(reference)")
    expect(page.locator("#compare-ci .js-plotly-plot")).to_be_visible(timeout=30_000)
    expect(page.locator("#compare-f1 .js-plotly-plot")).to_be_visible(timeout=30_000)
    # The job loaded the model; the model bar says so (and which path scored).
    expect(page.locator("#model-info")).to_contain_text("scoring: native", timeout=30_000)
    shots["tab_compare"] = shot(page, "tab_compare")

    # --- Train: the tiny run (2 headlines per class, 3 steps, eval every 2, 10 dev/test rows)
    open_tab(page, "Train")
    expect(page.locator("#train-targets")).to_contain_text("default for llama: q_proj k_proj v_proj o_proj",
                                                            timeout=60_000)
    for elem_id, value in (("train-k", 2), ("train-steps", 3), ("train-batch", 4), ("train-maxlen", 64),
                           ("train-eval-every", 2), ("train-dev-limit", 10), ("train-test-limit", 10)):
        fill(page, elem_id, value)
    page.locator("#train-start").click()
    expect(page.locator("#train-progress")).to_contain_text("step", timeout=60_000)
    expect(page.locator("#train-curves .js-plotly-plot")).to_be_visible(timeout=120_000)
    expect(page.locator("#train-result")).to_contain_text("base + adapter", timeout=240_000)
    expect(page.locator("#train-progress")).to_contain_text("done")
    expect(page.locator("#train-progress")).to_contain_text("step 3/3")
    expect(page.locator("#train-evals")).to_contain_text("F1 · business")
    expect(page.locator("#train-per-class .js-plotly-plot")).to_be_visible(timeout=30_000)
    expect(page.locator("#train-conf-base .js-plotly-plot")).to_be_visible()
    expect(page.locator("#train-conf-adapter .js-plotly-plot")).to_be_visible()
    expect(page.locator("#train-past input")).to_have_value(re.compile(r"bbc_headline_topic · done · step 3/3"),
                                                            timeout=30_000)
    # Attach: the model bar shows the adapter; detach takes it away.
    page.locator("#train-attach").click()
    expect(page.locator("#model-info")).to_contain_text(re.compile(r"adapter /\S+/train/\S+/adapter"),
                                                          timeout=60_000)
    page.locator("#train-detach").click()
    expect(page.locator("#model-info")).to_contain_text("no adapter", timeout=60_000)
    page.locator("#train-result").scroll_into_view_if_needed()
    shots["tab_train"] = shot(page, "tab_train")

    # --- A reload redraws the run from its log (the run folder is in localStorage).
    page.reload()
    open_tab(page, "Train")
    expect(page.locator("#train-progress")).to_contain_text("step 3/3", timeout=60_000)
    expect(page.locator("#train-curves .js-plotly-plot")).to_be_visible(timeout=30_000)
    expect(page.locator("#train-result")).to_contain_text("base + adapter")

    open_tab(page, "Export")
    expect(page.locator("#tab-export")).to_contain_text("Export bundle")
    shots["tab_export"] = shot(page, "tab_export")

    if os.environ.get("WORKBENCH_UPDATE_ASSETS"):
        ASSETS.mkdir(exist_ok=True)
        for name, path in shots.items():
            shutil.copy(path, ASSETS / f"{name}.png")
    assert all(Path(p).stat().st_size > 10_000 for p in shots.values())
