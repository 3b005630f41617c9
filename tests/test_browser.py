"""The page itself, in headless Chromium (Debian's, never a downloaded one) driven by Playwright:
every tab, a template edit with live validation, a preview, a small eval with its metrics and
plots, a page reload that reconnects to a running eval, and the run history. Screenshots go
to artifacts/screenshots/."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from remote_servers import free_port

pytestmark = [pytest.mark.browser, pytest.mark.model]

CHROMIUM = os.environ.get("WORKBENCH_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
SHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
ASSETS = Path(__file__).resolve().parent.parent / "assets"


@pytest.fixture()
def app_url():
    from workbench.app.main import build_app, launch_demo, launch_kwargs

    demo = build_app(model="default", data="bbc")
    port = free_port()
    launch_demo(demo, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_kwargs())
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@pytest.fixture()
def page():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import expect, sync_playwright

    # an expect() without its own timeout polls for 5 s by default: on a loaded 2-core box a
    # checkbox restored from the browser's storage took longer (a failure under -n 2), so every
    # browser test's assertions wait up to 30 s; a broken page still fails them, only later
    expect.set_options(timeout=30_000)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        ctx = browser.new_context(viewport={"width": 1440, "height": 1000}, device_scale_factor=1)
        pg = ctx.new_page()
        pg.set_default_timeout(60_000)
        try:
            yield pg
        finally:
            browser.close()


def shot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()


def test_whole_loop_in_the_browser(app_url, page):
    from playwright.sync_api import expect

    page.goto(app_url)
    # --- Data: the default dataset opens by itself
    expect(page.locator("#data-summary")).to_contain_text("2225 rows", timeout=90_000)
    expect(page.locator("#class-balance .js-plotly-plot")).to_be_visible(timeout=30_000)
    expect(page.locator("#data-table")).to_contain_text("business")
    shots = {"tab_data": shot(page, "tab_data")}

    # --- Templates: the default template is in the editor; an edit is validated live
    open_tab(page, "Templates")
    expect(page.locator("#problems")).to_contain_text("No problems", timeout=30_000)
    expect(page.locator("#edit-status")).to_contain_text("saved")
    field = page.locator("#field-input .cm-content")
    field.click()
    page.keyboard.press("Control+End")
    page.keyboard.insert_text(" {{ titel }}")
    expect(page.locator("#problems")).to_contain_text("variable 'titel' is not a column", timeout=30_000)
    expect(page.locator("#problems")).to_contain_text("line 2, column")
    expect(page.locator("#edit-status")).to_contain_text("unsaved edits")
    shot(page, "templates_problem")
    for _ in range(len(" {{ titel }}")):
        page.keyboard.press("Backspace")
    expect(page.locator("#problems")).to_contain_text("No problems", timeout=30_000)
    # The YAML view follows the fields.
    page.get_by_role("tab", name="YAML", exact=True).click()
    expect(page.locator("#template-editor")).to_contain_text("Headline: {{ title }}")
    page.get_by_role("tab", name="Fields", exact=True).click()
    shots["tab_templates"] = shot(page, "tab_templates")

    # --- Preview: the exact text, tokens, verbalizers and gold
    open_tab(page, "Preview")
    page.locator("#tab-preview").get_by_role("button", name="Preview").click()
    expect(page.locator("#preview-text textarea")).to_have_value(re.compile(r"^Headline: .+\nTopic:$"),
                                                                 timeout=90_000)
    expect(page.locator("#preview-gold")).to_contain_text("Gold label")
    expect(page.locator("#preview-tokens")).to_contain_text("Topic")
    expect(page.locator("#model-info")).to_contain_text("default · ")   # the model bar shows the loaded model
    shots["tab_preview"] = shot(page, "tab_preview")

    # --- Run: a small zero-shot eval; metrics, both plots and the predictions appear
    open_tab(page, "Run")
    limit = page.locator("#tab-run").get_by_label("Limit")
    limit.fill("16")
    limit.press("Tab")
    page.locator("#run-btn").click()
    expect(page.locator("#run-metrics")).to_contain_text("accuracy", timeout=180_000)
    expect(page.locator("#run-progress")).to_contain_text("done")
    expect(page.locator("#run-per-class .js-plotly-plot")).to_be_visible(timeout=30_000)
    expect(page.locator("#run-confusion .js-plotly-plot")).to_be_visible(timeout=30_000)
    expect(page.locator("#run-predictions")).to_contain_text("score · business")
    shots["tab_run"] = shot(page, "tab_run")

    # --- Reload during a run: the page reconnects to the same job and shows its result
    limit.fill("150")
    limit.press("Tab")
    page.locator("#run-btn").click()
    expect(page.locator("#run-progress")).to_contain_text("running", timeout=60_000)
    page.reload()
    open_tab(page, "Run")
    expect(page.locator("#run-progress")).to_contain_text("on bbc", timeout=60_000)
    expect(page.locator("#run-metrics table")).to_contain_text(re.compile(r"\b150\b"), timeout=240_000)

    # --- Runs: both runs are listed; open the first one again
    open_tab(page, "Runs")
    expect(page.locator("#runs-table")).to_contain_text("bbc_headline_topic", timeout=30_000)
    page.locator("#tab-runs").get_by_role("button", name="Open run").click()
    expect(page.locator("#runs-metrics")).to_contain_text("accuracy", timeout=30_000)
    shots["tab_runs"] = shot(page, "tab_runs")

    if os.environ.get("WORKBENCH_UPDATE_ASSETS"):
        ASSETS.mkdir(exist_ok=True)
        for name, path in shots.items():
            shutil.copy(path, ASSETS / f"{name}.png")
