"""The whole loop as a new user walks it, in headless Chromium, with a CSV the test writes
itself (issue 16): upload → New template from my data (two of them, saved) → Preview → Run
(results matrix: a cell, a note, the CSV download) → Compare the two saved templates picked
from the dropdowns (matrix JSON download) → a short LoRA training → Export → one Runs view
with every kind. Screenshots go to artifacts/screenshots/walk_*.png, and with
WORKBENCH_UPDATE_ASSETS=1 the README's screenshots in assets/ are refreshed."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from test_browser import ASSETS, app_url, page, shot  # noqa: F401 - fixtures
from test_browser_ux import open_tab, pick, upload_csv, write_reviews

pytestmark = [pytest.mark.browser, pytest.mark.model, pytest.mark.slow]


def fill(page, elem_id: str, value) -> None:
    box = page.locator(f"#{elem_id} input").first
    box.fill(str(value))
    box.press("Tab")


def set_code(page, elem_id: str, text: str) -> None:
    """Replace the text of a CodeMirror field (gr.Code)."""
    ed = page.locator(f"#{elem_id} .cm-content")
    ed.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(text)


def save_as(page, name: str) -> None:
    page.locator("#save-name input, #save-name textarea").first.fill(name)
    page.locator("#tab-templates").get_by_role("button", name="Save as").click()
    page.wait_for_function(
        f"() => document.querySelector('#edit-status')?.innerText.includes('{name}.yaml')", timeout=30_000)


def test_new_user_walks_the_whole_loop(app_url, page, tmp_path):  # noqa: F811 - fixtures
    from playwright.sync_api import expect

    csv_path = write_reviews(tmp_path / "movie_reviews.csv", n=42)
    shots = {}
    page.goto(app_url)
    expect(page.locator("#getting-started")).to_contain_text("Start here", timeout=90_000)
    expect(page.locator("#data-summary")).to_contain_text("2225 rows", timeout=90_000)

    # --- Data: the upload loads at once; the `sentiment` column is the label column.
    upload_csv(page, csv_path)
    expect(page.locator("#data-summary")).to_contain_text("42 rows", timeout=60_000)
    expect(page.locator("#data-summary")).to_contain_text("label column sentiment")
    shots["tab_data"] = shot(page, "walk_1_data")

    # --- Templates: two templates started from the data, both saved.
    open_tab(page, "Templates")
    page.locator("#new-from-data").click()
    expect(page.locator("#problems")).to_contain_text("No problems", timeout=30_000)
    save_as(page, "reviews_plain")
    set_code(page, "field-input", "Movie review: {{ review }}\nWas the review positive, negative or neutral? Answer:")
    expect(page.locator("#edit-status")).to_contain_text("unsaved edits", timeout=30_000)
    expect(page.locator("#problems")).to_contain_text("No problems", timeout=30_000)
    save_as(page, "reviews_question")
    expect(page.locator("#edit-status")).to_contain_text("✓ saved")
    shots["tab_templates"] = shot(page, "walk_2_templates")

    # --- Preview: the badge names the template; the exact prompt of one row.
    open_tab(page, "Preview")
    expect(page.locator("#preview-template-badge")).to_contain_text("reviews_question")
    page.locator("#tab-preview").get_by_role("button", name="Preview").click()
    expect(page.locator("#preview-text textarea")).to_have_value(re.compile(r"^Movie review: .+Answer:$", re.S),
                                                                 timeout=120_000)
    expect(page.locator("#preview-gold")).to_contain_text("Gold label")
    shots["tab_preview"] = shot(page, "walk_3_preview")

    # --- Run: the whole test split (9 rows); the matrix, a cell, a note, the CSV.
    open_tab(page, "Run")
    expect(page.locator("#run-template-badge")).to_contain_text("reviews_question")
    limit = page.locator("#tab-run").get_by_label("Limit")
    limit.fill("0")
    limit.press("Tab")
    page.locator("#run-btn").click()
    expect(page.locator("#run-metrics")).to_contain_text("accuracy", timeout=240_000)
    expect(page.locator("#run-matrix-summary")).to_contain_text("examples × 1 column", timeout=30_000)
    # (Gradio draws the visible cells as divs; a hidden <table> only sizes the columns.)
    cell = page.locator("#run-matrix [data-testid^='cell-']").filter(has_text=re.compile(r"[✓✗] \w")).first
    cell.click()
    expect(page.locator("#run-matrix-detail")).to_contain_text("Prompt (exactly as scored)", timeout=30_000)
    expect(page.locator("#run-matrix-detail")).to_contain_text("← predicted")
    page.locator("#run-note-tag input").fill("ambiguous")
    page.locator("#run-note-tag input").press("Enter")
    page.locator("#run-note-comment textarea, #run-note-comment input").first.fill("could be neutral")
    page.locator("#run-note-save").click()
    expect(page.locator("#run-matrix")).to_contain_text("could be neutral", timeout=30_000)
    with page.expect_download(timeout=60_000) as dl:
        page.locator("#run-matrix-csv").click()
    csv_file = tmp_path / "run_matrix.csv"
    dl.value.save_as(csv_file)
    assert "could be neutral" in csv_file.read_text()
    page.locator("#run-metrics").scroll_into_view_if_needed()
    shots["tab_run"] = shot(page, "walk_4_run")

    # --- Compare: the user's two templates, picked from the dropdowns.
    open_tab(page, "Compare")
    pick(page, "compare-pick-1", "reviews_plain")
    expect(page.locator("#compare-yaml-1")).to_contain_text("name: reviews_plain", timeout=30_000)
    pick(page, "compare-pick-2", "reviews_question")
    expect(page.locator("#compare-yaml-2")).to_contain_text("name: reviews_question", timeout=30_000)
    fill(page, "compare-limit", 0)
    page.locator("#compare-btn").click()
    verdict = page.locator("#compare-verdict")
    expect(verdict).to_contain_text("2 templates on the same", timeout=240_000)
    expect(verdict).to_contain_text(re.compile(r"beats|no detectable difference"))
    page.get_by_text("Results matrix: every example").last.click()
    expect(page.locator("#compare-matrix-summary")).to_contain_text("× 2 column", timeout=30_000)
    with page.expect_download(timeout=60_000) as dl:
        page.locator("#compare-matrix-json").click()
    doc = json.loads(open(dl.value.path()).read())
    assert [c["name"] for c in doc["columns"]] == ["reviews_plain", "reviews_question"]
    verdict.scroll_into_view_if_needed()
    shots["tab_compare"] = shot(page, "walk_5_compare")

    # --- Train: a short LoRA run of the editor's template (named by the badge).
    open_tab(page, "Train")
    expect(page.locator("#train-template-badge")).to_contain_text("reviews_question")
    for elem_id, value in (("train-k", 2), ("train-steps", 2), ("train-batch", 2), ("train-maxlen", 64),
                           ("train-eval-every", 0), ("train-dev-limit", 4), ("train-test-limit", 4)):
        fill(page, elem_id, value)
    page.locator("#train-start").click()
    expect(page.locator("#train-result")).to_contain_text("base + adapter", timeout=300_000)
    expect(page.locator("#train-curves .js-plotly-plot")).to_be_visible(timeout=30_000)
    shots["tab_train"] = shot(page, "walk_6_train")

    # --- Export: the editor's template, as the badge says.
    open_tab(page, "Export")
    expect(page.locator("#export-template-badge")).to_contain_text("reviews_question")
    page.locator("#tab-export").get_by_label("Rows (0 = all)").fill("0")
    page.locator("#tab-export").get_by_role("button", name="Export bundle").click()
    # (the contents list shown before writing also says "accuracy": wait for the written bundle's line)
    expect(page.locator("#tab-export")).to_contain_text(re.compile(r"Bundle \S+ · \d+ files"), timeout=240_000)
    expect(page.locator("#tab-export")).to_contain_text("accuracy")
    # The note made in the Run tab's matrix travels in the bundle (and its manifest).
    bundle = re.search(r"Bundle (\S+) ·", page.locator("#tab-export").inner_text()).group(1)
    notes = json.loads((Path(bundle) / "notes.json").read_text())
    assert any(n["comment"] == "could be neutral" for n in notes["notes"].values())
    assert "notes.json" in json.loads((Path(bundle) / "manifest.json").read_text())["files"]
    shots["tab_export"] = shot(page, "walk_7_export")

    # --- Runs: one history of every kind.
    open_tab(page, "Runs")
    table = page.locator("#runs-table")
    for kind in ("eval", "compare", "train", "export"):
        expect(table).to_contain_text(kind, timeout=30_000)
    expect(table).to_contain_text("acc ")
    shots["tab_runs"] = shot(page, "walk_8_runs")

    if os.environ.get("WORKBENCH_UPDATE_ASSETS"):
        ASSETS.mkdir(exist_ok=True)
        for name, path in shots.items():
            shutil.copy(path, ASSETS / f"{name}.png")
