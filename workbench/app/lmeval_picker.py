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

from workbench.app.common import user_errors


@functools.lru_cache(maxsize=1)
def _library():
    from workbench.storage.lmeval_library import TaskLibrary

    return TaskLibrary()


def search_tasks(query: str):
    """Up to 50 task / group / tag names matching `query` (prefix matches first)."""
    with user_errors("Searching lm-eval tasks"):
        q = (query or "").strip()
        if len(q) < 2:
            return gr.update(choices=[], value=None)
        names = _library().search(q, limit=50)
        return gr.update(choices=names, value=names[0] if names else None)


def task_yaml(name: str, trust: bool) -> tuple[str, str]:
    """(template YAML of the task, a note for the user). Groups show their first task."""
    if not name:
        raise gr.Error("Search for a task and pick one first.", print_exception=False)
    lib = _library()
    members = lib.expand(name)
    note = (f"**{name}** is a group/tag of {len(members)} tasks; showing the first. "
            f"Run them all: `workbench eval --task {name}`") if len(members) > 1 else ""
    task = lib.load(members[0], trust_code=bool(trust))
    fns = getattr(task.template, "function_names", {})
    if fns:
        note += (f"\n\nThis task runs task code ({', '.join(f'{k}: {v}' for k, v in fns.items())}); the editor "
                 f"shows its YAML part. Score it with `workbench eval --task {task.name} --trust-task-code`.")
    task.template.metadata.pop("path", None)  # no server paths in the page
    return task.template.to_yaml(), note.strip()
