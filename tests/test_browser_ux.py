"""A new user's own data and templates in the browser (issue 16): an uploaded CSV whose label
column is detected (and kept across a reload), a template started from that data, saved
templates listed in every picker (also after a reload), no false "unsaved edits" after a
reload. Runs without the model (nothing here scores), so it is quick."""
from __future__ import annotations

from pathlib import Path

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


# --- (10) the small things of the page itself: a cut-off label, "1 2 3" headers, headers broken
# inside a word, emoji without a font. One page load, every tab, no model.

TABS = ["Data", "Templates", "Preview", "Run", "Compare", "Search", "Train", "Export", "Runs"]

# Every visible table: its header texts, and the header words that the layout broke over lines.
_TABLES_JS = """() => {
  const out = [];
  const seen = new Set();
  for (const cell of document.querySelectorAll('.header-cell')) {
    const box = cell.getBoundingClientRect();
    if (!cell.checkVisibility({visibilityProperty: true}) || box.width === 0 || box.height === 0) continue;
    const block = cell.closest('.block') || cell.parentElement;
    const key = block.id || block.getAttribute('data-testid') || 'table';
    if (!seen.has(block)) { seen.add(block); out.push({table: key, block, headers: [], broken: []}); }
    const t = out.find(o => o.block === block);
    t.headers.push(cell.innerText.trim());
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    let node;
    while ((node = walker.nextNode())) {
      for (const m of node.data.matchAll(/\\S+/g)) {
        const r = document.createRange();
        r.setStart(node, m.index);
        r.setEnd(node, m.index + m[0].length);
        const tops = new Set([...r.getClientRects()].filter(q => q.width > 0).map(q => Math.round(q.top)));
        if (tops.size > 1) t.broken.push(`${m[0]} (over ${tops.size} lines)`);
      }
    }
  }
  return out.map(({table, headers, broken}) => ({table, headers, broken}));
}"""

# Every distinct non-ASCII character of the visible text (where it is, for the message).
_CHARS_JS = """() => {
  const out = {};
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let node;
  while ((node = walker.nextNode())) {
    const el = node.parentElement;
    if (!el || el.closest('script, style, textarea') || !el.checkVisibility({visibilityProperty: true})) continue;
    for (const ch of node.data) {
      const cp = ch.codePointAt(0);
      if (cp < 0x80 || /\\s/.test(ch) || (cp >= 0xFE00 && cp <= 0xFE0F) || cp === 0x200D) continue;
      if (!(ch in out)) out[ch] = (el.closest('[id]') || el).id + ': ' + node.data.trim().slice(0, 60);
    }
  }
  return out;
}"""


def _numbered(headers: list[str]) -> bool:
    """Gradio's placeholder headers of a table given no columns: "1", "2", "3", ..."""
    return bool(headers) and headers == [str(i) for i in range(1, len(headers) + 1)]


def _fonts_for(ch: str) -> list[str]:
    """Installed fonts (fontconfig, which Chromium uses on Linux) that have a glyph for `ch`."""
    import subprocess

    out = subprocess.run(["fc-list", f":charset={ord(ch):x}", "family"], capture_output=True, text=True,
                         timeout=30, check=False).stdout
    return [ln for ln in out.splitlines() if ln.strip()]


def _seed_runs() -> str:
    """A finished search (winner, held-out verdict, leaderboard) and an eval in the registry, so the
    Search and Runs tabs have filled tables without a model. Returns the search's run id."""
    from workbench.storage.runs import RunRegistry

    root = Path(__file__).resolve().parent.parent / "templates_library"
    y0 = (root / "bbc_headline_topic.yaml").read_text()
    y1 = y0.replace("Topic:", "The topic of this headline is")
    cand = {
        "start": {"n": 40, "stage": "start", "change": "start template", "config": {"shots": 0},
                  "accuracy": 0.55, "yaml": y0, "tokens": 4_000},
        "w1": {"n": 40, "stage": "instruction", "change": "instruction: 'The topic of this headline is'",
               "config": {"shots": 0}, "accuracy": 0.725, "yaml": y1, "tokens": 4_400},
        "w2": {"n": 12, "stage": "demonstrations", "change": "4 similar demonstrations",
               "config": {"shots": 4}, "accuracy": 0.5, "yaml": y0, "tokens": 9_000},
    }
    payload = {
        "status": "done", "tokens": 17_400, "seconds": 42.0, "dev_rows": 40, "stages": [], "history": [],
        "curve": [{"tokens": 17_400, "seconds": 42.0, "best": 0.725}],
        "start": {"key": "start", "name": "bbc_headline_topic", "yaml": y0, "config": {"shots": 0},
                  "dev_accuracy": 0.55},
        "winner": {"key": "w1", "name": "bbc_headline_topic-search", "yaml": y1, "config": {"shots": 0},
                   "dev_accuracy": 0.725, "describe": "instruction: 'The topic of this headline is'"},
        "candidates": cand,
        "test": {"n": 100, "start_accuracy": 0.52, "winner_accuracy": 0.68, "dev_to_test_drop": 0.045,
                 "verdict": {"text": "bbc_headline_topic-search beats bbc_headline_topic by 16.0 pts "
                                     "(95% CI 7.0 to 25.0, McNemar p=0.0010)", "significant": True},
                 "test_uses": 2},
    }
    reg = RunRegistry()
    run_id = reg.add("search", name="bbc_headline_topic search", data_name="bbc", model="default",
                     metrics={"status": "done", "winner": "bbc_headline_topic-search", "best_dev_accuracy": 0.725},
                     payload=payload)
    reg.add("eval", name="bbc_headline_topic", model="HuggingFaceTB/SmolLM2-135M-Instruct", data_name="bbc",
            settings={"shots": 4}, metrics={"accuracy": 0.6125, "macro_f1": 0.5931, "n": 80})
    return run_id


def test_small_things_in_the_page(app_url, page):  # noqa: F811 - fixtures
    """(10) In a real page, on every tab: the "overwrite" checkbox label is whole (not cut to
    "overwri"); no table shows Gradio's "1 2 3" placeholder headers; no header word is broken over
    lines (letter by letter in a narrow column); every character on screen, the Search tab's winner,
    verdict and leaderboard included, has a glyph in an installed font (✅ ➖ 🏆 were boxes)."""
    from playwright.sync_api import expect

    search_id = _seed_runs()
    page.goto(app_url)
    expect(page.locator("#data-summary")).to_contain_text("2225 rows", timeout=90_000)
    problems: list[str] = []

    # (a) the overwrite label, whole and unclipped
    open_tab(page, "Templates")
    label = page.locator("#save-overwrite label").first
    expect(label).to_be_visible()
    expect(label).to_contain_text("overwrite")
    clip = label.evaluate("""(lab) => {
      const text = [...lab.querySelectorAll('span')].find(s => s.innerText.includes('overwrite')) || lab;
      const r = text.getBoundingClientRect();
      const bad = [];
      if (text.scrollWidth > text.clientWidth + 1) bad.push(`text ${text.scrollWidth} px in ${text.clientWidth} px`);
      for (let el = text; el && el !== document.body; el = el.parentElement) {
        const cs = getComputedStyle(el);
        if (el !== text && cs.overflowX === 'visible') continue;
        const b = el.getBoundingClientRect();
        if (el !== text && (r.right > b.right + 1 || r.left < b.left - 1))
          bad.push(`${el.tagName.toLowerCase()}.${el.className} clips it (${Math.round(r.right - b.right)} px)`);
      }
      return bad;
    }""")
    if clip:
        problems.append(f"(a) the overwrite label is cut: {clip}")

    # (b) + (c) + (d) on every tab as it opens; the Search tab also with a stored search opened
    chars: dict[str, str] = {}

    def check_tab(tab: str) -> None:
        page.wait_for_timeout(400)   # let the tab mount and its tables lay out
        for t in page.evaluate(_TABLES_JS):
            if _numbered(t["headers"]):
                problems.append(f"(b) {tab}: table {t['table']} shows placeholder headers {t['headers']}")
            if t["broken"]:
                problems.append(f"(c) {tab}: table {t['table']} breaks header words: {t['broken']}")
        for ch, where in page.evaluate(_CHARS_JS).items():
            chars.setdefault(ch, f"{tab} · {where}")

    for tab in TABS:
        open_tab(page, tab)
        check_tab(tab)
    open_tab(page, "Search")
    page.locator("#search-run-id input, #search-run-id textarea").first.fill(search_id)
    page.locator("#search-open-btn").click()
    expect(page.locator("#search-summary")).to_contain_text("bbc_headline_topic-search", timeout=30_000)
    expect(page.locator("#search-leaderboard")).to_contain_text("instruction", timeout=30_000)
    expect(page.locator("#search-summary")).not_to_contain_text("<span")   # marks rendered, not escaped
    check_tab("Search (a stored search opened)")
    open_tab(page, "Runs")
    expect(page.locator("#runs-table")).to_contain_text("acc 61.3%", timeout=30_000)
    check_tab("Runs (an eval and a search listed)")
    shot(page, "ux_small_things")

    import shutil

    has_fc = shutil.which("fc-list") is not None
    for ch, where in sorted(chars.items()) if has_fc else ():
        if not _fonts_for(ch):
            problems.append(f"(d) {ch!r} (U+{ord(ch):04X}) has no installed font, drawn as a box: {where}")
    assert not problems, "\n".join(problems)
    if not has_fc:
        pytest.skip("fc-list (fontconfig) is missing: the glyph check (d) was not done")
