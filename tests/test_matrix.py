"""The results matrix and human notes (issue 16), on the real SQLite registry: two stored
evals side by side, the class / disagreement / error filters, a clicked cell's prompt and
scores, notes that persist (and survive a schema migration from version 1), and the CSV /
JSON downloads carrying the notes."""
from __future__ import annotations

import json
import sqlite3

import pandas as pd

from workbench.storage.runs import SCHEMA_VERSION, RunRegistry

GOLD = ["pos", "neg", "neu", "pos"]


def _payload(name: str, preds: list[str], model: str = "default") -> dict:
    recs = [{"index": i, "gold": g, "pred": p, "correct": g == p,
             "scores": {lab: (-0.5 if lab == p else -2.0) for lab in ("neg", "neu", "pos")},
             "prompt": f"Review: example {i}\nSentiment:"} for i, (g, p) in enumerate(zip(GOLD, preds))]
    acc = sum(r["correct"] for r in recs) / len(recs)
    return {"task": "classification", "records": recs, "metrics": {"accuracy": acc, "n": len(recs)},
            "provenance": {"template": {"name": name, "hash": name * 2}, "model": {"name": model},
                           "data": {"name": "reviews.csv", "fingerprint": "fp-reviews"}}}


def _store(reg, name, preds, model="default") -> str:
    p = _payload(name, preds, model)
    return reg.add("eval", name=name, model=model, data_fingerprint="fp-reviews", metrics=p["metrics"], payload=p)


def test_matrix_filters_cells_notes_and_downloads(tmp_path):
    from workbench.app import matrix

    reg = RunRegistry()
    a = _store(reg, "short", ["pos", "neg", "pos", "pos"])       # row 2 wrong
    b = _store(reg, "long", ["pos", "pos", "neu", "pos"])        # row 1 wrong
    c = _store(reg, "short", ["pos", "neg", "neu", "neg"], model="other/model")   # same template, other model
    spec = {"runs": [a, b, c]}
    m = matrix.load_matrix(spec)
    assert [col["name"] for col in m.columns] == ["short · default", "long", "short · model"]
    df = matrix.frame(m)
    assert list(df["row"]) == ["0", "1", "2", "3"]
    assert df.loc[0, "long"] == "✓ pos" and df.loc[1, "long"] == "✗ pos"
    assert list(matrix.frame(m, only_disagree=True)["row"]) == ["1", "2", "3"]
    assert list(matrix.frame(m, only_errors=True)["row"]) == ["1", "2", "3"]
    assert list(matrix.frame(m, label="neu")["row"]) == ["2"]
    # Colours: right green, wrong red (a Styler the Dataframe renders).
    html = matrix.styled(df, m).to_html()
    assert "#dcfce7" in html and "#fee2e2" in html

    # A cell: the exact prompt and every choice's score, best first.
    detail = matrix.cell_detail(spec, "1", "long")
    assert "Review: example 1" in detail and "| pos | -0.5000 | ← predicted |" in detail

    # Notes persist in the registry (another registry object reads them) and show in the matrix.
    assert "saved" in matrix.save_note(spec, "2", "label noise", "neutral or positive?")
    assert RunRegistry().notes("fp-reviews")["2"]["tag"] == "label noise"
    df = matrix.frame(matrix.load_matrix(spec))
    assert df.loc[2, "note"] == "[label noise] neutral or positive?"
    assert list(matrix.frame(m, only_notes=True)["row"]) == ["2"]

    # Downloads carry predictions, scores and the notes.
    csv = pd.read_csv(matrix.download_csv(spec))
    assert csv.loc[2, "note_tag"] == "label noise" and "long · score · neu" in csv.columns
    doc = json.loads(open(matrix.download_json(spec)).read())
    assert doc["rows"][2]["note"]["comment"] == "neutral or positive?"
    assert doc["rows"][1]["cells"]["long"]["prompt"].startswith("Review: example 1")
    # Removing a note: empty tag and comment.
    assert "removed" in matrix.save_note(spec, "2", "", "")
    assert RunRegistry().notes("fp-reviews") == {}
    # The script endpoint returns the same rows.
    assert matrix.matrix_json(json.dumps(spec))["rows"][0]["cells"]["long"]["pred"] == "pos"


def test_notes_table_migrates_from_version_1(tmp_path):
    path = tmp_path / "old.sqlite"
    reg = RunRegistry(path)
    rid = reg.add("eval", name="old run", data_fingerprint="fp")
    # Make it a version-1 file: no notes table (nor the saved-engines table of version 3).
    with sqlite3.connect(path) as con:
        con.execute("DROP TABLE notes")
        con.execute("DROP TABLE engines")
        con.execute("UPDATE schema_version SET version = 1")
    again = RunRegistry(path)
    assert again.schema_version() == SCHEMA_VERSION == 3
    from workbench.core.spec import ModelRef
    from workbench.storage.engines import list_engines, save_engine

    save_engine("srv", ModelRef(model="openai:http://h:1/v1"), again)
    assert [e["name"] for e in list_engines(again)] == ["srv"]
    assert again.get(rid).name == "old run"
    again.set_note("fp", 7, "ambiguous", "")
    assert again.notes("fp") == {"7": {"tag": "ambiguous", "comment": "", "updated_at": again.notes("fp")["7"]["updated_at"]}}


def test_matrix_resyncs_after_a_poll_only_when_the_run_shown_changed():
    """`follow`'s step: a poll that finished a run redraws the matrix even when the browser
    dropped the metrics' change event; a poll with nothing new changes nothing."""
    import gradio as gr

    from workbench.app import matrix
    from workbench.app.common import UIState

    reg = RunRegistry()
    rid = _store(reg, "short", ["pos", "neg", "pos", "pos"])
    state = UIState()
    filters = (matrix.ALL, False, False, False)
    idle = matrix.matrix_sync(matrix.run_spec, 1, None, state, *filters)
    assert len(idle) == 6 and all(isinstance(x, type(gr.skip())) for x in idle)
    state.last_run_id = rid
    spec, summary, table, *_ = matrix.matrix_sync(matrix.run_spec, 1, None, state, *filters)
    assert spec == {"runs": [rid]}
    assert summary.startswith("4 examples × 1 column(s)")
    again = matrix.matrix_sync(matrix.run_spec, 1, spec, state, *filters)
    assert all(isinstance(x, type(gr.skip())) for x in again)


def test_a_late_empty_trigger_does_not_blank_a_followed_matrix():
    """The Run walkthrough under load: the metrics cleared at a run's start fired a change event
    that ran after the run's last poll and drew "No results yet" over the finished run; no poll
    came after to redraw it. The trigger's redraw (`matrix_auto`) now draws spec and view in one
    step and leaves an empty spec to `follow`'s resync where one follows the block; the Runs
    tab's picker (no resync) still draws its empty selection."""
    import gradio as gr

    from workbench.app import matrix
    from workbench.app.common import UIState

    reg = RunRegistry()
    rid = _store(reg, "short", ["pos", "neg", "pos", "pos"])
    filters = (matrix.ALL, False, False, False)
    shown = {"runs": [rid]}
    late = matrix.matrix_auto(matrix.run_spec, 1, {"on": True}, shown, UIState(), *filters)
    assert all(x == gr.skip() for x in late)
    spec, summary, *_ = matrix.matrix_auto(matrix.run_spec, 1, {"on": False}, shown, UIState(), *filters)
    assert spec is None and summary.startswith("*No results yet")
    done = UIState(last_run_id=rid)
    spec, summary, *_ = matrix.matrix_auto(matrix.run_spec, 1, {"on": True}, shown, done, *filters)
    assert spec == shown and summary.startswith("4 examples × 1 column(s)")     # redrawn even if unchanged
