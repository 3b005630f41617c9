"""The Templates editor's saved / unsaved state, for every tab that puts a template into the
editor (Templates, Compare's winner, Runs): whether loading may replace its content, and the
status line. A module of its own so that no tab imports another tab (tests/test_layers.py)."""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from workbench.app.common import UIState


def is_dirty(state: UIState, current_yaml: str) -> bool:
    cur = (current_yaml or "").strip()
    return bool(cur) and cur != (state.saved_yaml or "").strip()


def guard(state: UIState, current_yaml: str, discard: bool) -> bool:
    """True if loading may replace the editor content; otherwise warn and keep the edits."""
    if is_dirty(state, current_yaml) and not discard:
        gr.Warning("The editor has unsaved edits. Save them with “Save as”, or tick “Discard my unsaved edits” "
                   "and load again.", title="Unsaved edits kept")
        return False
    return True


def edit_status(state: UIState, yaml_text: str) -> str:
    where = f"`{Path(state.template_path).name}`" if state.template_path else "not saved yet"
    if not state.template_path and (yaml_text or "").strip():
        # nothing was loaded or saved yet: there are no edits "from" anything (issue 28, item 10)
        return "● **unsaved edits**, not in a file yet (Save as keeps them in your templates)"
    if is_dirty(state, yaml_text):
        return f"● **unsaved edits** (from {where})"
    return f"✓ saved · {where}"
