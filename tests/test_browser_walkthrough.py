"""The whole loop as a new user walks it, in headless Chromium (Debian's), with a CSV the test
writes itself whose label column is not obvious (issues 16 and 28): `ticket_id,message,channel,
queue`, where the loader's guess is `channel` (2 values) and the user picks `queue` → New
template from my data (two of them, saved) → Preview → Run (results matrix: a cell, a note, the
CSV download) → Compare the two saved templates (the JSON download holds the verdict) → Search,
the page reloaded while it runs, picked up again until the held-out verdict → Train (a few
steps), the page reloaded while it trains, picked up until base vs adapter → Export (the
contents listed first, then the bundle's files checked against that list) → one Runs view.

Every wait is on something the page shows (Playwright's expect, generous timeouts), never a
sleep. Screenshots go to artifacts/screenshots/walk_*.png; with WORKBENCH_UPDATE_ASSETS=1 the
README's screenshots in assets/ are refreshed from this walk."""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from test_browser import ASSETS, app_url, page, shot  # noqa: F401 - fixtures
from test_browser_ux import open_tab, pick, upload_csv

pytestmark = [pytest.mark.browser, pytest.mark.model, pytest.mark.slow]

# Support tickets for four queues; `channel` (email/chat) is the column with the fewest values,
# so the loader guesses it and asks; the user's label column is `queue`.
TICKETS = {
    "billing": ["I was charged twice for my subscription this month", "Please send me an invoice for March",
                "My card payment failed but the money left my account", "How do I get a refund for the annual plan",
                "The price on my bill is higher than advertised", "Can I pay by bank transfer instead of card"],
    "technical": ["The app crashes every time I open the settings page", "I get error 500 when I upload a photo",
                  "The website does not load on my phone", "Sync stopped working after the last update",
                  "The login page shows a blank screen", "Notifications arrive hours late on Android"],
    "account": ["I forgot my password and the reset email never came", "How do I change the email on my account",
                "Please delete my account and all my data", "I want to add a second user to my profile",
                "My username shows the wrong name", "How can I turn on two-factor authentication"],
    "shipping": ["My parcel has not arrived after two weeks", "The tracking number does not work",
                 "The box was damaged when it was delivered", "Can you ship to an address in Canada",
                 "I received the wrong item in my order", "When will my order be dispatched"],
}


def write_tickets(path: Path, n: int = 48) -> Path:
    queues = list(TICKETS)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ticket_id", "message", "channel", "queue"])
        for i in range(n):
            q = queues[i % 4]
            w.writerow([1000 + i, TICKETS[q][(i // 4) % 6], "email" if i % 3 else "chat", q])
    return path


def fill(page, elem_id: str, value) -> None:
    box = page.locator(f"#{elem_id} input").first
    box.fill(str(value))
    box.press("Tab")


def fill_label(page, tab: str, label: str, value) -> None:
    box = page.locator(f"#tab-{tab}").get_by_label(label)
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


def stored(page, key: str) -> None:
    """Wait until the browser has stored the job it follows (a gr.BrowserState in localStorage):
    a reload in the instant between the job's first progress line and that write found no job
    to reconnect to ("No search running.")."""
    page.wait_for_function("k => !!localStorage.getItem(k)", arg=key, timeout=30_000)


def started(progress) -> str:
    """Wait until a job's progress line shows it under way (or already over: a fast machine
    may finish before a poll shows it running); returns the state seen."""
    from playwright.sync_api import expect

    expect(progress).to_contain_text(re.compile(r"\b(running|done)\b"), timeout=120_000)
    return "running" if "running" in progress.inner_text() else "done"


def test_new_user_walks_the_whole_loop(app_url, page, tmp_path):  # noqa: F811 - fixtures
    from playwright.sync_api import expect

    csv_path = write_tickets(tmp_path / "support_tickets.csv")
    shots = {}
    page.goto(app_url)
    expect(page.locator("#getting-started")).to_contain_text("Start here", timeout=90_000)
    expect(page.locator("#data-summary")).to_contain_text("2225 rows", timeout=90_000)

    # --- Data: the upload loads at once; the guess (`channel`) is flagged, the user picks `queue`.
    upload_csv(page, csv_path)
    summary = page.locator("#data-summary")
    expect(summary).to_contain_text("48 rows", timeout=60_000)
    expect(page.locator("#label-warning")).to_contain_text("Is channel the label column?", timeout=30_000)
    expect(page.locator("#label-warning")).to_contain_text("queue")          # named as another candidate
    label_box = page.locator("#tab-data").get_by_label("Label column")
    label_box.click()
    label_box.fill("queue")
    page.get_by_role("option", name="queue", exact=True).click()
    page.locator("#tab-data").get_by_role("button", name="Load data").click()
    expect(summary).to_contain_text("label column queue", timeout=60_000)
    expect(summary).to_contain_text("4 classes")
    expect(page.locator("#label-warning")).to_have_count(0)
    shots["tab_data"] = shot(page, "walk_1_data")

    # --- Templates: two templates started from the data, both saved.
    open_tab(page, "Templates")
    page.locator("#new-from-data").click()
    # named after the user's file (not the kept copy's hashed name); the queues are the choices
    expect(page.locator("#problems")).to_contain_text("support_tickets_queue", timeout=30_000)
    expect(page.locator("#field-choices")).to_contain_text("shipping")
    expect(page.locator("#problems")).to_contain_text("No problems", timeout=30_000)
    save_as(page, "tickets_plain")
    set_code(page, "field-input",
             "Support ticket: {{ message }}\nWhich team handles it: billing, technical, account or shipping? Team:")
    expect(page.locator("#edit-status")).to_contain_text("unsaved edits", timeout=30_000)
    expect(page.locator("#problems")).to_contain_text("No problems", timeout=30_000)
    save_as(page, "tickets_question")
    expect(page.locator("#edit-status")).to_contain_text("✓ saved")
    shots["tab_templates"] = shot(page, "walk_2_templates")

    # --- Preview: the badge names the template; the exact prompt of one row.
    open_tab(page, "Preview")
    expect(page.locator("#preview-template-badge")).to_contain_text("tickets_question")
    page.locator("#tab-preview").get_by_role("button", name="Preview").click()
    expect(page.locator("#preview-text textarea")).to_have_value(re.compile(r"^Support ticket: .+Team:$", re.S),
                                                                 timeout=120_000)
    expect(page.locator("#preview-gold")).to_contain_text("Gold label")
    shots["tab_preview"] = shot(page, "walk_3_preview")

    # --- Run: the whole test split; the matrix, a cell, a note, the CSV.
    open_tab(page, "Run")
    expect(page.locator("#run-template-badge")).to_contain_text("tickets_question")
    limit = page.locator("#tab-run").get_by_label("Limit")
    limit.fill("0")
    limit.press("Tab")
    page.locator("#run-btn").click()
    expect(page.locator("#run-metrics")).to_contain_text("accuracy", timeout=240_000)
    # (the matrix follows each poll, app/matrix.py `follow`: under load it may come a poll later)
    expect(page.locator("#run-matrix-summary")).to_contain_text("examples × 1 column", timeout=90_000)
    # (Gradio draws the visible cells as divs; a hidden <table> only sizes the columns.)
    cell = page.locator("#run-matrix [data-testid^='cell-']").filter(has_text=re.compile(r"[✓✗] \w")).first
    cell.click()
    expect(page.locator("#run-matrix-detail")).to_contain_text("Prompt (exactly as scored)", timeout=30_000)
    expect(page.locator("#run-matrix-detail")).to_contain_text("← predicted")
    page.locator("#run-note-tag input").fill("ambiguous")
    page.locator("#run-note-tag input").press("Enter")
    page.locator("#run-note-comment textarea, #run-note-comment input").first.fill("could be account")
    page.locator("#run-note-save").click()
    expect(page.locator("#run-matrix")).to_contain_text("could be account", timeout=30_000)
    with page.expect_download(timeout=60_000) as dl:
        page.locator("#run-matrix-csv").click()
    csv_file = tmp_path / "run_matrix.csv"
    dl.value.save_as(csv_file)
    assert "could be account" in csv_file.read_text()
    page.locator("#run-metrics").scroll_into_view_if_needed()
    shots["tab_run"] = shot(page, "walk_4_run")

    # --- Compare: the user's two templates, picked from the dropdowns; the JSON holds the verdict.
    open_tab(page, "Compare")
    pick(page, "compare-pick-1", "tickets_plain")
    expect(page.locator("#compare-yaml-1")).to_contain_text("name: tickets_plain", timeout=30_000)
    pick(page, "compare-pick-2", "tickets_question")
    expect(page.locator("#compare-yaml-2")).to_contain_text("name: tickets_question", timeout=30_000)
    fill(page, "compare-limit", 0)
    page.locator("#compare-btn").click()
    verdict = page.locator("#compare-verdict")
    expect(verdict).to_contain_text("2 templates on the same", timeout=240_000)
    expect(verdict).to_contain_text(re.compile(r"beats|no detectable difference"))
    page.get_by_text("Results matrix: every example").last.click()
    expect(page.locator("#compare-matrix-summary")).to_contain_text("× 2 column", timeout=90_000)
    with page.expect_download(timeout=60_000) as dl:
        page.locator("#compare-matrix-json").click()
    doc = json.loads(Path(dl.value.path()).read_text())
    assert [c["name"] for c in doc["columns"]] == ["tickets_plain", "tickets_question"]
    cmp = doc["comparison"]
    v = cmp["verdicts"][0]
    assert {v["a"], v["b"]} == {"tickets_plain", "tickets_question"}
    assert 0 <= v["p_mcnemar"] <= 1 and len(v["delta_acc_ci"]) == 2
    # the very sentence the page shows
    assert re.search(r"beats|no detectable difference", v["text"])
    assert " ".join(v["text"].split())[:60] in " ".join(verdict.inner_text().split())
    assert cmp["spec"]["kind"] == "compare" and len(doc["rows"]) == cmp["n"]
    verdict.scroll_into_view_if_needed()
    shots["tab_compare"] = shot(page, "walk_5_compare")

    # --- Search from the editor's template, a tiny budget; the page reloaded while it runs.
    open_tab(page, "Search")
    page.locator("#search-from-editor").click()
    expect(page.locator("#search-start-yaml")).to_contain_text("name: tickets_question", timeout=30_000)
    axes = page.locator("#search-axes")
    for axis in ("instruction", "demos"):
        axes.get_by_label(axis, exact=True).uncheck()
    fill_label(page, "search", "Token budget", 400)
    fill_label(page, "search", "Time budget (s)", 120)
    page.locator("#search-btn").click()
    progress = page.locator("#search-progress")
    print("search at the reload:", started(progress))
    stored(page, "workbench_search_job")
    page.reload()
    open_tab(page, "Search")
    # picked up again: the same search's progress, its form (not the page's defaults), its result
    expect(progress).to_contain_text("search from tickets_question", timeout=120_000)
    expect(page.locator("#tab-search").get_by_label("Token budget")).to_have_value("400", timeout=30_000)
    search_summary = page.locator("#search-summary")
    expect(search_summary).to_contain_text("Held-out test", timeout=300_000)
    expect(progress).to_contain_text("done", timeout=60_000)
    expect(page.locator("#search-plot .js-plotly-plot")).to_be_visible(timeout=30_000)
    expect(page.locator("#search-leaderboard")).to_contain_text("start", timeout=30_000)
    search_summary.scroll_into_view_if_needed()
    shots["tab_search"] = shot(page, "walk_6_search")

    # --- Train: a short LoRA run of the editor's template; the page reloaded while it trains.
    open_tab(page, "Train")
    expect(page.locator("#train-template-badge")).to_contain_text("tickets_question", timeout=30_000)
    for elem_id, value in (("train-k", 2), ("train-steps", 6), ("train-batch", 2), ("train-maxlen", 64),
                           ("train-eval-every", 3), ("train-dev-limit", 4), ("train-test-limit", 8)):
        fill(page, elem_id, value)
    page.locator("#train-start").click()
    train_progress = page.locator("#train-progress")
    print("training at the reload:", started(train_progress))
    stored(page, "workbench_train_run")
    page.reload()
    open_tab(page, "Train")
    expect(page.locator("#train-steps input").first).to_have_value("6", timeout=60_000)    # its form, not 60
    expect(page.locator("#train-eval-every input").first).to_have_value("3")
    expect(page.locator("#train-result")).to_contain_text("base + adapter", timeout=300_000)
    expect(train_progress).to_contain_text("done", timeout=60_000)
    expect(train_progress).to_contain_text("step 6/6")
    expect(page.locator("#train-result")).to_contain_text("Paired verdict")
    expect(page.locator("#train-curves .js-plotly-plot")).to_be_visible(timeout=30_000)
    shots["tab_train"] = shot(page, "walk_7_train")

    # --- Export: the editor's template; what the bundle will hold is listed before it is written.
    open_tab(page, "Export")
    expect(page.locator("#export-template-badge")).to_contain_text("tickets_question", timeout=30_000)
    page.locator("#tab-export").get_by_label("Rows (0 = all)").fill("0")
    contents = page.locator("#export-contents")
    expect(contents).to_contain_text("The bundle will hold", timeout=30_000)
    # one's own data: no raw rows unless ticked; the matrix note is named (notes.json)
    expect(page.locator("#export-include-rows input")).not_to_be_checked()
    expect(contents).to_contain_text("No raw rows")
    expect(contents).to_contain_text("notes.json")
    listed = set()
    for entry in contents.locator("li code").all_inner_texts():
        listed |= {f.strip().rstrip("/") for f in entry.split(",")}
    assert {"template.yaml", "metrics.json", "README.md", "manifest.json", "notes.json"} <= listed
    assert not any(f.startswith("data/") for f in listed)
    page.locator("#tab-export").get_by_role("button", name="Export bundle").click()
    # (the contents list also says "metrics": wait for the written bundle's line)
    expect(page.locator("#tab-export")).to_contain_text(re.compile(r"Bundle \S+ · \d+ files"), timeout=240_000)
    expect(page.locator("#tab-export")).to_contain_text("accuracy")
    bundle = Path(re.search(r"Bundle (\S+) ·", page.locator("#tab-export").inner_text()).group(1))
    written = {str(f.relative_to(bundle)) for f in bundle.rglob("*") if f.is_file()}
    # exactly the listed files (a listed folder stands for its files), and no raw rows
    tops = {w.split("/")[0] for w in written}
    assert tops == listed, f"listed {sorted(listed)}, written {sorted(written)}"
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert set(manifest["files"]) <= written and "data/test.jsonl" not in written
    # The note made in the Run tab's matrix travels in the bundle.
    notes = json.loads((bundle / "notes.json").read_text())
    assert any(n["comment"] == "could be account" for n in notes["notes"].values())
    shots["tab_export"] = shot(page, "walk_8_export")       # the list above, the written bundle below

    # --- Runs: one history of every kind.
    open_tab(page, "Runs")
    table = page.locator("#runs-table")
    for kind in ("eval", "compare", "search", "train", "export"):
        expect(table).to_contain_text(kind, timeout=30_000)
    expect(table).to_contain_text("acc ")
    shots["tab_runs"] = shot(page, "walk_9_runs")

    if os.environ.get("WORKBENCH_UPDATE_ASSETS"):
        ASSETS.mkdir(exist_ok=True)
        for name, path in shots.items():
            shutil.copy(path, ASSETS / f"{name}.png")
