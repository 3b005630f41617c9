"""The lm-eval task picker of the Templates tab: search the installed lm-eval task library by
name and load a task's prompt into the editor.

Task code (`!function`) runs only when the "Trust task code" box is ticked (off by default),
and only for tasks on the server's own disk (the installed lm-eval tasks folder): uploads and
pasted YAML go through the plain importer, which never runs code. A task whose prompt itself
is code (doc_to_text / doc_to_choice / doc_to_target functions) can be viewed, and is run
from the CLI: `workbench eval --task NAME --trust-task-code`.
"""
from __future__ import annotations

import functools

import gradio as gr

from workbench.app.common import UIState, user_errors


@functools.lru_cache(maxsize=1)
def _library():
    from workbench.core.lmeval_tasks import TaskLibrary

    return TaskLibrary()


def search_tasks(query: str):
    """Up to 50 task / group / tag names matching `query` (prefix matches first)."""
    with user_errors("Searching lm-eval tasks"):
        q = (query or "").strip()
        if len(q) < 2:
            return gr.update(choices=[], value=None)
        names = _library().search(q, limit=50)
        return gr.update(choices=names, value=names[0] if names else None)


def load_task(state: UIState, name: str, trust: bool, current_yaml: str, discard: bool):
    """The task's prompt as template YAML in the editor. Returns (state, editor YAML, note)."""
    from workbench.app.tab_templates import _edit_status, _guard

    state = state or UIState()
    with user_errors("Loading the lm-eval task"):
        if not name:
            raise gr.Error("Search for a task and pick one first.", print_exception=False)
        lib = _library()
        members = lib.expand(name)
        if len(members) > 1:
            note = (f"**{name}** is a group/tag of {len(members)} tasks; showing the first. "
                    f"Run them all: `workbench eval --task {name}`")
        else:
            note = ""
        task = lib.load(members[0], trust_code=bool(trust))
        if not _guard(state, current_yaml, discard):
            return state, current_yaml, _edit_status(state, current_yaml)
        fns = getattr(task.template, "function_names", {})
        if fns:
            note += (f"\n\nThis task runs task code ({', '.join(f'{k}: {v}' for k, v in fns.items())}); the editor "
                     f"shows its YAML part. Score it with `workbench eval --task {task.name} --trust-task-code`.")
        task.template.metadata.pop("path", None)  # no server paths in the page
        text = task.template.to_yaml()
        state.saved_yaml, state.template_path = "", None
        if note.strip():
            gr.Info(note.strip())
        return state, text, _edit_status(state, text)
