"""Edits are never lost: the editor's text is mirrored into the browser's localStorage as a draft
(its text, its saved copy, the file it came from), and a page reload restores it, asking the disk
whether a draft that looks unsaved is in fact saved. Handlers of the Templates tab.
"""
from __future__ import annotations

from pathlib import Path

from workbench.app.common import DEFAULT_TEMPLATE, UIState
from workbench.app.editor_state import edit_status as _edit_status, is_dirty as _is_dirty


def draft_of(state: UIState, yaml_text: str) -> dict:
    """The localStorage draft: the editor's text, its saved copy and the file it came from. The
    key is "file", not "path": the save's outputs include the draft, and gradio_client takes a
    dict with "path" for a file to download."""
    return {"yaml": yaml_text, "saved": state.saved_yaml, "file": state.template_path}


def editor_changed(state: UIState, yaml_text: str):
    """Live check on every edit: (problems markdown, edit status, draft for localStorage)."""
    from workbench.app.template_form import validate_template

    state = state or UIState()
    return validate_template(state, yaml_text), _edit_status(state, yaml_text), draft_of(state, yaml_text)


def sync_draft(state: UIState, yaml_text: str):
    """After a load: the edit status and the localStorage draft, written now. A load that
    leaves the text as it was fires no editor change, so without this the stored draft kept the
    old "saved" copy and path, and a reload showed false "unsaved edits" naming the old file."""
    state = state or UIState()
    return _edit_status(state, yaml_text), draft_of(state, yaml_text)


def _saved_file(yaml_text: str, hint_path: str | None) -> str | None:
    """The file (the given path, else the user's or the library's file of that name) that holds
    exactly this template, or None."""
    from workbench.paths import library_dir, user_templates_dir
    from workbench.core.templates import load_template

    try:
        t = load_template(yaml_text)
    except Exception:  # noqa: BLE001 - a half-typed draft is unsaved by definition
        return None
    cands = [Path(hint_path)] if hint_path else []
    cands += [user_templates_dir() / f"{t.name.replace(' ', '_')}.yaml", library_dir() / f"{t.name}.yaml"]
    for p in cands:
        try:
            if p.is_file() and load_template(p, name=t.name).content_hash() == t.content_hash():
                return str(p)
        except Exception:  # noqa: BLE001 - another template in that file, or unreadable
            continue
    return None


def restore_draft(state: UIState, draft: dict | None):
    """On page load: the editor content from localStorage, or the dataset's default template.
    Returns (state, editor YAML, edit status)."""
    from workbench.paths import library_dir
    from workbench.core.templates import load_template

    state = state or UIState()
    if draft and (draft.get("yaml") or "").strip():
        # "path": the key of drafts stored before it was renamed "file"
        file = draft.get("file") or draft.get("path")
        state.saved_yaml, state.template_path = draft.get("saved") or "", file
        if _is_dirty(state, draft["yaml"]):
            # The stored "saved" copy can lag behind (a save whose text did not change fires
            # no editor event): ask the disk whether this very template is saved, and where.
            on_disk = _saved_file(draft["yaml"], file)
            if on_disk:
                state.saved_yaml, state.template_path = draft["yaml"], on_disk
        return state, draft["yaml"], _edit_status(state, draft["yaml"])
    name = DEFAULT_TEMPLATE.get(str(state.data_spec), "bbc_headline_topic")
    path = library_dir() / f"{name}.yaml"
    try:
        text = load_template(path).to_yaml()
    except Exception:  # noqa: BLE001 - no library (installed without the repo): start empty
        return state, "", "no template loaded"
    state.saved_yaml, state.template_path = text, str(path)
    return state, text, _edit_status(state, text)
