"""The Templates tab's editor state, at the handler level (no server, no browser): what a page
reload restores after Save as and Duplicate (issue 22, item 2).

The browser keeps a draft of the editor in localStorage (`ctx.draft`, a gr.BrowserState); a reload
restores it with `restore_draft`. Whatever marks the editor saved must be in the draft the moment
the save reports success, that is, be an output of the save event itself: a follow-up event
(the old `sync_draft` after `.success`) left a window in which a reload restored the pre-save
draft and read "● unsaved edits (from not saved yet)".
"""
from __future__ import annotations

from workbench.app.common import UIState
from workbench.app.tab_templates import (draft_of, duplicate_template, editor_changed, restore_draft,
                                         save_template_as)

TYPED = """name: typed_here
input: |-
  Headline: {{ title }}
  Topic:
answer_choices:
  business: [business]
  tech: [tech]
"""


def test_save_as_returns_the_saved_draft_and_a_reload_reads_saved():
    state = UIState()
    # The user types a template: the draft stored so far says "not saved yet".
    _, status, before = editor_changed(state, TYPED)
    assert "unsaved edits" in status and before["file"] is None
    # Save as under another name than the YAML's (the name, and so the text, change).
    state, text, status, ref, draft = save_template_as(state, TYPED, "my_saved", False)
    assert "✓ saved" in status and "name: my_saved" in text
    # The save's own outputs carry the draft a reload restores: saved text and file.
    assert draft == {"yaml": text, "saved": text, "file": ref.split("::")[0]}
    _, restored, status = restore_draft(UIState(), draft)
    assert restored == text and status.startswith("✓ saved") and "my_saved.yaml" in status
    # The pre-save draft is what the old wiring left in the browser until a second event ran;
    # restoring it shows the race's symptom (so the assertion above is not vacuous).
    _, _, old_status = restore_draft(UIState(), before)
    assert "unsaved edits" in old_status and "not in a file yet" in old_status and "✓ saved" not in old_status


def test_duplicate_returns_the_copy_as_saved_draft():
    from workbench.paths import library_dir

    ref = str(library_dir() / "bbc_headline_topic.yaml")
    state, text, status, copy_ref, draft = duplicate_template(UIState(), ref, "", True)
    assert "bbc_headline_topic_copy" in text and draft == draft_of(state, text)
    assert draft["file"] == copy_ref.split("::")[0]
    assert restore_draft(UIState(), draft)[2].startswith("✓ saved")
    # A draft stored by an older version (key "path") still restores.
    old = {"yaml": text, "saved": text, "path": draft["file"]}
    assert restore_draft(UIState(), old)[2].startswith("✓ saved")


def test_duplicate_asks_for_a_name_and_never_replaces_a_template():
    """Issue 28, item 10: *Duplicate* wrote `<name>_copy.yaml` at once. Now the button only
    proposes a free name (nothing written); the copy is made under the confirmed name, and a
    name that is taken is refused, the existing file left as it was."""
    import gradio as gr
    import pytest

    from workbench.app.tab_templates import duplicate_ask
    from workbench.paths import library_dir, user_templates_dir

    ref = str(library_dir() / "bbc_headline_topic.yaml")
    box, proposed = duplicate_ask(ref)
    assert box["visible"] is True and proposed == "bbc_headline_topic_copy"
    assert not (user_templates_dir() / "bbc_headline_topic_copy.yaml").exists()      # asking writes nothing
    _, text, _, copy_ref, _ = duplicate_template(UIState(), ref, "", True, "my topic copy")
    assert "name: my topic copy" in text and copy_ref.endswith("my_topic_copy.yaml::my topic copy")
    mine = user_templates_dir() / "my_topic_copy.yaml"
    before = mine.read_text()
    with pytest.raises(gr.Error, match="already exists; Duplicate never replaces"):
        duplicate_template(UIState(), ref, "", True, "my topic copy")
    assert mine.read_text() == before
    # the proposal skips taken names
    duplicate_template(UIState(), ref, "", True, "")
    assert duplicate_ask(ref)[1] == "bbc_headline_topic_copy2"


def test_duplicate_button_only_asks():
    """The wiring: the Duplicate button's event writes nothing (no editor, no draft among its
    outputs); the confirm button's event (/duplicate_template) does."""
    from workbench.app.main import build_app

    demo = build_app()
    by_name = {fn.api_name: fn for fn in demo.fns.values()}
    ask = by_name["duplicate_ask"]
    assert [b.elem_id for b in ask.outputs] == ["dup-ask", "dup-name"]
    assert [demo.blocks[t[0]].elem_id for t in ask.targets] == ["dup-btn"]
    confirm = by_name["duplicate_template"]
    assert [demo.blocks[t[0]].elem_id for t in confirm.targets] == ["dup-confirm"]
    assert any(getattr(b, "elem_id", None) == "template-editor" for b in confirm.outputs)


def test_save_and_duplicate_events_write_the_draft_themselves():
    """The wiring: the browser draft is an output of the save and duplicate events, so the
    browser stores it in the same response that reports success (no second event to wait for)."""
    from workbench.app.main import build_app

    demo = build_app()
    draft_ids = {b._id for b in demo.blocks.values() if getattr(b, "storage_key", None) == "workbench_template_draft"}
    assert len(draft_ids) == 1
    by_name = {fn.api_name: fn for fn in demo.fns.values()}
    for api in ("save_template", "duplicate_template"):
        outs = {b._id for b in by_name[api].outputs}
        assert draft_ids <= outs, f"/{api} does not write the browser draft itself"


def test_form_keep_restores_only_without_a_running_job():
    """Issue 28, item 2: the kept form comes back by field name when no job runs; a running job's
    own settings win; nothing stored changes nothing."""
    import gradio as gr

    from workbench.app.form_keep import restore_values, snapshot

    names = ["steps", "eval_every", "mode"]
    stored = snapshot(names)(7, 5, "lora")
    assert stored == {"fields": {"steps": 7, "eval_every": 5, "mode": "lora"}}
    assert restore_values(names, stored, job_running=False) == (7, 5, "lora")
    skip = gr.skip()
    assert all(v == skip for v in restore_values(names, stored, job_running=True))
    assert all(v == skip for v in restore_values(names, {}, job_running=False))
    # a field the stored form did not have keeps its default
    got = restore_values(names + ["new_field"], stored, job_running=False)
    assert got[:3] == (7, 5, "lora") and got[3] == skip
