"""The one list of templates every tab offers: the user's own ($WORKBENCH_HOME/templates/)
first, then the library (templates_library/).

    choices()                       # [(label, "path::name"), ...] for a dropdown
    choices(task="classification")  # what Compare can score
    resolve("my_sentiment")         # a bare name typed into a picker -> "path::name"

The list is read from disk on every call (a few small YAML files), so whoever asks after a
save, an import or a page reload sees the new file. The Templates tab bumps a hidden counter
(`ctx.templates_changed`) after every save / duplicate / import; the tabs with pickers listen
to it and to the page load, so no picker needs a refresh button.
"""
from __future__ import annotations

import gradio as gr


def entries(task: str | None = None) -> list[dict]:
    """[{"name", "file", "ref", "dataset", "task", "source", "error"?}], user templates first."""
    from workbench.storage.library import list_library

    out = []
    for t in list_library():
        if task and (t.get("error") or t.get("task") != task):
            continue
        d = {k: v for k, v in t.items() if k != "path"}
        d["file"], d["ref"] = t["path"], f"{t['path']}::{t['name']}"
        out.append(d)
    # Stable sort: the user's own templates come first, each group keeps its file order.
    out.sort(key=lambda d: d.get("source") != "user")
    return out


def label(d: dict) -> str:
    tag = "⚠ " if d.get("error") else ""
    where = "yours" if d.get("source") == "user" else "library"
    ds = f" · {d['dataset']}" if d.get("dataset") else ""
    return f"{tag}{d['name']}  ({where}{ds})"


def choices(task: str | None = None) -> list[tuple[str, str]]:
    return [(label(d), d["ref"]) for d in entries(task)]


def resolve(value: str | None, task: str | None = None) -> str | None:
    """A picker value ("path::name", or a bare template name typed by the user) as a ref;
    None when nothing matches."""
    value = (value or "").strip()
    if not value:
        return None
    items = entries(task)
    if any(d["ref"] == value for d in items):
        return value
    for d in items:   # user templates first: a user copy named like a library one wins
        if d["name"] == value or d["name"].lower() == value.lower():
            return d["ref"]
    return value if "::" in value else None


def refreshed(current: str | None = None, task: str | None = None):
    """A dropdown update with the fresh list, keeping `current` if it is still listed."""
    ch = choices(task)
    values = [v for _, v in ch]
    cur = resolve(current, task)
    return gr.update(choices=ch, value=cur if cur in values else (current if current in values else None))


def bump(n: float | None) -> int:
    """UI glue: the next value of the "templates changed" counter."""
    return int(n or 0) + 1


def template_yaml(choice: str) -> str:
    """The YAML of a template chosen (or typed by name) in a picker ('path::name' or a name);
    gr.skip() for no choice. Only the library and the user's folder are read."""
    from workbench.app.common import user_errors
    from workbench.core.templates import load_template
    from workbench.errors import TemplateError

    if not choice:
        return gr.skip()
    with user_errors("Loading the template"):
        ref = resolve(choice)
        if ref is None:
            raise TemplateError(f"No template named '{choice}'.",
                                hint="Pick one from the list; save your editor's template first (Templates → Save as).")
        path, _, name = ref.rpartition("::")
        from workbench import paths
        paths.check_server_path(path or ref, "template", roots=[paths.library_dir(), paths.user_templates_dir()])
        return load_template(path or ref, name=name or None).to_yaml()
