"""A new user's own data and templates in the browser (issue 16): an uploaded CSV whose label
column is detected (and kept across a reload), a template started from that data, saved
templates listed in every picker (also after a reload), no false "unsaved edits" after a
reload. Runs without the model (nothing here scores), so it is quick."""
from __future__ import annotations


import pytest

from test_browser import app_url, page, shot  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser]

REVIEWS = [
    ("A warm, funny film with a great cast.", "positive"), ("Dull and far too long.", "negative"),
    ("It was fine, nothing special.", "neutral"), ("I loved every minute of it.", "positive"),
    ("The plot made no sense at all.", "negative"), ("Some good scenes, some weak ones.", "neutral"),
    ("A masterpiece of quiet acting.", "positive"), ("I walked out after an hour.", "negative"),
    ("Watchable once, then forgettable.", "neutral"), ("Brilliant music and a moving story.", "positive"),
    ("Wooden dialogue and cheap effects.", "negative"), ("An average thriller.", "neutral"),
    ("The best film I saw this year.", "positive"), ("A waste of a good cast.", "negative"),
]


def write_reviews(path, n: int = 42):
    """A small CSV of movie reviews with a `sentiment` column (no column called `label`)."""
    import csv

    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "review", "sentiment"])
        for i in range(n):
            text, lab = REVIEWS[i % len(REVIEWS)]
            w.writerow([i, f"{text} (#{i})", lab])
    return path


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()


def upload_csv(page, path) -> None:
    page.locator("#tab-data input[type=file]").first.set_input_files(str(path))


def pick(page, elem_id: str, text: str) -> None:
    """Type into a Gradio dropdown and choose the first option that contains `text`."""
    box = page.locator(f"#{elem_id} input")
    box.click()
    box.fill(text)
    page.get_by_role("option").filter(has_text=text).first.click()


def test_own_data_and_templates(app_url, page, tmp_path):  # noqa: F811 - fixtures
    from playwright.sync_api import expect

    csv_path = write_reviews(tmp_path / "my_reviews.csv")
    page.goto(app_url)
    expect(page.locator("#data-summary")).to_contain_text("2225 rows", timeout=90_000)

    # --- (2) upload: loaded at once, label column detected, pickers filled
    upload_csv(page, csv_path)
    summary = page.locator("#data-summary")
    expect(summary).to_contain_text("42 rows", timeout=60_000)
    expect(summary).to_contain_text("3 classes")
    expect(summary).to_contain_text("label column sentiment")
    expect(summary).to_contain_text("text column review")
    expect(page.locator("#tab-data").get_by_label("Label column")).to_have_value("sentiment")
    shot(page, "ux_upload")

    # --- (3) a template from the data, not from the library
    open_tab(page, "Templates")
    page.locator("#new-from-data").click()
    expect(page.locator("#problems")).to_contain_text("No problems", timeout=30_000)
    page.get_by_text("Gold, label column, demo format").click()
    expect(page.locator("#field-label-column textarea, #field-label-column input").first).to_have_value(
        "sentiment", timeout=30_000)
    page.get_by_role("tab", name="YAML", exact=True).click()
    expect(page.locator("#template-editor")).to_contain_text("Review: {{ review }}")
    expect(page.locator("#template-editor")).not_to_contain_text("dataset: bbc")
    page.get_by_role("tab", name="Fields", exact=True).click()
    page.locator("#save-name input, #save-name textarea").first.fill("my_reviews_a")
    page.locator("#tab-templates").get_by_role("button", name="Save as").click()
    expect(page.locator("#edit-status")).to_contain_text("saved", timeout=30_000)
    expect(page.locator("#edit-status")).to_contain_text("my_reviews_a.yaml")

    # --- (2) + (7) + (1) reload: the CSV is still loaded, the editor is saved, the library lists it
    page.reload()
    expect(page.locator("#data-summary")).to_contain_text("42 rows", timeout=90_000)
    expect(page.locator("#data-summary")).to_contain_text("label column sentiment")
    open_tab(page, "Templates")
    expect(page.locator("#edit-status")).to_contain_text("✓ saved", timeout=30_000)
    expect(page.locator("#edit-status")).to_contain_text("my_reviews_a.yaml")
    expect(page.locator("#edit-status")).not_to_contain_text("unsaved")
    page.locator("#library input").click()
    expect(page.get_by_role("option").filter(has_text="my_reviews_a").first).to_be_visible(timeout=30_000)
    page.keyboard.press("Escape")

    # --- (1) Compare's pickers list the saved template; typing its name loads it
    open_tab(page, "Compare")
    pick(page, "compare-pick-1", "my_reviews_a")
    expect(page.locator("#compare-yaml-1")).to_contain_text("name: my_reviews_a", timeout=30_000)
    expect(page.locator("#compare-pick-1")).to_contain_text("Template 1: my_reviews_a")
    shot(page, "ux_compare_pickers")

    # --- Getting started: the one-line guide, and the Tour's first step loads the demo loop.
    expect(page.locator("#getting-started")).to_contain_text("Start here")
    page.get_by_text("Tour: the whole loop on demo data").click()
    page.locator("#tour-1").click()
    expect(page.locator("#data-summary")).to_contain_text("2225 rows", timeout=60_000)
    expect(page.locator("#tour-text")).to_contain_text("Loaded **bbc**".replace("**", ""))
    expect(page.locator("#edit-status")).to_contain_text("bbc_headline_topic.yaml", timeout=30_000)
    page.locator("#tour-3").click()
    expect(page.locator("#run-template-badge")).to_contain_text("bbc_headline_topic", timeout=30_000)


def test_one_error_paints_no_badge_over_every_output(app_url, page, tmp_path):  # noqa: F811 - fixtures
    """(10) One failed event (loading a file that does not exist) is explained once, in a toast
    naming the problem; Gradio's red "Error" badge is not painted over each of the event's nine
    outputs (summary, splits, class balance, rows, column pickers, ...), which keep showing the
    dataset that is still loaded."""
    from playwright.sync_api import expect

    page.goto(app_url)
    expect(page.locator("#data-summary")).to_contain_text("2225 rows", timeout=90_000)
    missing = tmp_path / "no_such_reviews.csv"
    page.locator("#tab-data").get_by_label("…or a path on the server").fill(str(missing))
    page.locator("#tab-data").get_by_role("button", name="Load data").click()
    toast = page.locator(".toast-body")
    expect(toast.first).to_contain_text("no_such_reviews.csv", timeout=30_000)
    expect(toast).to_have_count(1)
    page.wait_for_timeout(500)   # let every status tracker settle into its error state
    # Gradio's status tracker marks a failed output with <span class="error">Error</span> (the
    # toast's own title is the one "Error" that should show).
    badges = page.locator("span.error:not(.toast-title)").filter(has_text="Error")
    visible = sum(1 for i in range(badges.count()) if badges.nth(i).is_visible())
    assert visible == 0, f"{visible} outputs show a red Error badge for one failed load"
    expect(page.locator("#data-summary")).to_contain_text("2225 rows")   # the loaded data is still shown
    shot(page, "ux_one_error")


@pytest.mark.model
def test_train_live_curves_are_in_view_while_training_runs(app_url, page):  # noqa: F811 - fixtures
    """(8) The Train tab's live curves sit under a long form: starting a run brings the progress
    line and the live plot into the viewport, and they stay there while the run goes on."""
    from playwright.sync_api import expect

    page.set_viewport_size({"width": 1440, "height": 860})
    page.goto(app_url)
    expect(page.locator("#data-summary")).to_contain_text("2225 rows", timeout=90_000)
    open_tab(page, "Train")
    for elem_id, value in (("train-k", 2), ("train-steps", 40), ("train-batch", 2), ("train-maxlen", 64),
                           ("train-eval-every", 0), ("train-dev-limit", 4), ("train-test-limit", 4)):
        box = page.locator(f"#{elem_id} input").first
        box.fill(str(value))
        box.press("Tab")
    page.evaluate("window.scrollTo(0, 0)")
    expect(page.locator("#train-curves")).not_to_be_in_viewport()      # below the fold before the run
    page.locator("#train-start").click()
    progress = page.locator("#train-progress")
    expect(progress).not_to_contain_text("No training", timeout=30_000)
    # the whole plot, not an edge of it, on a laptop-sized window
    expect(page.locator("#train-curves")).to_be_in_viewport(ratio=0.9, timeout=10_000)
    expect(progress).to_be_in_viewport(ratio=1)
    page.wait_for_timeout(3_000)                                         # a few polls later: still in view
    expect(page.locator("#train-curves")).to_be_in_viewport(ratio=0.9)
    shot(page, "ux_train_live_curves")
    page.locator("#train-stop").click()
    expect(progress).not_to_contain_text("running", timeout=120_000)
