"""Templates into and out of the editor: the library (list, load, save as, duplicate), a template
started from the loaded data, and lm-eval / PromptSource imports. Every load asks before it would
drop unsaved edits (app/editor_state.guard). Handlers of the Templates tab (wired in tab_templates).
"""
from __future__ import annotations

import re
from pathlib import Path

import gradio as gr

from workbench.app import template_list
from workbench.app.common import UIState, parse_template, state_dataset, user_errors
from workbench.app.editor_state import edit_status as _edit_status, guard as _guard
from workbench.app.template_drafts import draft_of


def list_templates() -> list[dict]:
    """Every template in templates_library/ and $WORKBENCH_HOME/templates/:
    [{"name", "file", "ref", "dataset", "task", "source", "error"?}, ...]; pass `ref` to
    load_template / duplicate_template. (The key is not "path": gradio_client would take a
    dict with "path" for a file to download.) The user's templates come first (docs/API.md):
    it is the one list every picker shows (app/template_list.py)."""
    with user_errors("Listing templates"):
        return template_list.entries()


def library_choices() -> list[tuple[str, str]]:
    """(label, 'path::name') of every template, the user's own first (app/template_list.py)."""
    return template_list.choices()


def name_choices(names: list | None, current: str | None):
    """UI glue: show the "template in the file" picker when an import holds several."""
    names = list(names or [])
    return gr.update(choices=names, value=current if current in names else None, visible=len(names) > 1)


def refresh_library(selected: str | None = None):
    """The library dropdown, read again from disk (after a save, an import or a page reload)."""
    return template_list.refreshed(selected)


def library_for_editor(state: UIState):
    """UI glue: the library picker names the file the editor's template came from (issue 28, item 10)."""
    path = getattr(state, "template_path", None)
    if not path:
        return gr.skip()
    ref = next((d["ref"] for d in template_list.entries() if str(Path(d["file"])) == str(Path(path))), None)
    return gr.update(value=ref) if ref else gr.skip()


def _split_ref(ref: str) -> tuple[str, str | None]:
    path, _, name = (ref or "").partition("::")
    return path, (name or None)


def load_template_into_editor(state: UIState, ref: str, current_yaml: str, discard: bool):
    """Load a library template (`path` or `path::name`) into the editor unless that would drop
    unsaved edits. Returns (state, editor YAML, edit status)."""
    from workbench.core.templates import load_template

    state = state or UIState()
    with user_errors("Loading the template"):
        if not ref:
            raise gr.Error("Pick a template from the library first.", print_exception=False)
        if not _guard(state, current_yaml, discard):
            return state, current_yaml, _edit_status(state, current_yaml)
        path, name = _split_ref(ref)
        from workbench import paths
        paths.check_server_path(path, "template", roots=[paths.library_dir(), paths.user_templates_dir()])
        t = load_template(path, name=name) if name else load_template(path)
        text = t.to_yaml()
        state.saved_yaml, state.template_path = text, path
        return state, text, _edit_status(state, text)


def save_template_as(state: UIState, yaml_text: str, name: str, overwrite: bool):
    """Save the editor's template under `name` in $WORKBENCH_HOME/templates/. Returns
    (state, editor YAML with the new name, edit status, library ref of the saved file, draft).

    The draft (the browser's localStorage copy that a reload restores) is an output of this
    very event, so the browser stores "saved, at PATH" together with the save's success
    message: a reload at any moment after the save reports success restores "✓ saved". (It used
    to be written by a follow-up event, and a reload in between restored the old draft:
    "unsaved edits (from not saved yet)".)"""
    from workbench.paths import user_templates_dir

    state = state or UIState()
    with user_errors("Saving the template"):
        t = parse_template(yaml_text)
        name = (name or "").strip() or t.name
        if not re.fullmatch(r"[\w.\- ]+", name):
            raise gr.Error(f"“{name}” is not a usable file name.", title="Save as", print_exception=False)
        t.name = name
        path = user_templates_dir() / f"{name.replace(' ', '_')}.yaml"
        if path.exists() and not overwrite:
            raise gr.Error(f"{path} already exists. Tick “overwrite” or choose another name.",
                           title="Save as", print_exception=False)
        t.save(path)
        text = t.to_yaml()
        state.saved_yaml, state.template_path = text, str(path)
        gr.Info(f"Saved to {path}")
        return state, text, _edit_status(state, text), f"{path}::{t.name}", draft_of(state, text)


def free_copy_name(name: str) -> str:
    """The first `<name>_copy`, `<name>_copy2`, ... with no file in the user folder."""
    from workbench.paths import user_templates_dir

    base, i = f"{name}_copy", 1
    new = base
    while (user_templates_dir() / f"{new}.yaml").exists():
        i += 1
        new = f"{base}{i}"
    return new


def duplicate_ask(ref: str):
    """UI glue for *Duplicate*: nothing is written yet. Opens the "name of the copy" box,
    prefilled with a free name, which *Create copy* confirms (issue 28, item 10: Duplicate used
    to write `<name>_copy.yaml` at once). Returns (the box's visibility, the proposed name)."""
    from workbench.core.templates import load_template

    with user_errors("Duplicating the template"):
        if not ref:
            raise gr.Error("Pick a template from the library first.", print_exception=False)
        path, name = _split_ref(ref)
        t = load_template(path, name=name) if name else load_template(path)
        return gr.update(visible=True), free_copy_name(t.name)


def duplicate_template(state: UIState, ref: str, current_yaml: str, discard: bool, name: str | None = None):
    """Copy a library template to the user folder under `name` (empty: the first free
    `<name>_copy`) and open the copy. An existing file of that name is never replaced: the
    copy is refused with a message naming the file (Save as with *overwrite* replaces files).
    Returns (state, editor YAML, edit status, library ref of the copy, draft); the draft is
    stored with the result, as in `save_template_as`."""
    from workbench.paths import user_templates_dir
    from workbench.core.templates import load_template

    state = state or UIState()
    with user_errors("Duplicating the template"):
        if not ref:
            raise gr.Error("Pick a template from the library first.", print_exception=False)
        if not _guard(state, current_yaml, discard):
            return state, current_yaml, _edit_status(state, current_yaml), ref, draft_of(state, current_yaml)
        path, old = _split_ref(ref)
        t = load_template(path, name=old) if old else load_template(path)
        new = (name or "").strip() or free_copy_name(t.name)
        if not re.fullmatch(r"[\w.\- ]+", new):
            raise gr.Error(f"“{new}” is not a usable file name: use letters, digits, '_', '-', '.' or spaces.",
                           title="Duplicate", print_exception=False)
        dest = user_templates_dir() / f"{new.replace(' ', '_')}.yaml"
        if dest.exists():
            raise gr.Error(f"{dest} already exists; Duplicate never replaces a template. Choose another name "
                           f"(e.g. {free_copy_name(t.name)}).", title="Duplicate", print_exception=False)
        t.name = new
        dest = t.save(dest)
        text = t.to_yaml()
        state.saved_yaml, state.template_path = text, str(dest)
        gr.Info(f"Copied to {dest}")
        return state, text, _edit_status(state, text), f"{dest}::{new}", draft_of(state, text)


def template_from_data(ds, name: str | None = None):
    """A fresh classification template for a dataset: its text column as the input, its label
    column as the gold, and its labels as the answer choices (each label its own verbalizer)."""
    from workbench.errors import DataError
    from workbench.core.templates import PromptTemplate

    if not ds.text_column:
        raise DataError(f"{ds.name} has no text column.", hint="Pick the text column in the Data tab and load again.")
    if not ds.label_column or not ds.labels:
        raise DataError(f"{ds.name} has no label column, so there is nothing to classify into.",
                        hint="Pick the label column in the Data tab (Label column) and press Load data.")
    if not re.fullmatch(r"[A-Za-z_]\w*", ds.text_column) or not re.fullmatch(r"[A-Za-z_]\w*", ds.label_column):
        raise DataError(f"The columns '{ds.text_column}' / '{ds.label_column}' are not usable as template variables.",
                        hint="Rename them to letters, digits and _ in the file (e.g. 'review_text').")
    # an upload is kept as NAME-HASH12.EXT (tab_data.keep_upload): the template is named after NAME
    stem = re.sub(r"-[0-9a-f]{12}$", "", Path(str(ds.name)).stem)
    stem = re.sub(r"\W+", "_", stem).strip("_") or "my"
    title = lambda c: c.replace("_", " ").capitalize()  # noqa: E731
    return PromptTemplate(
        name=(name or f"{stem}_{ds.label_column}").strip(),
        input=f"{title(ds.text_column)}: {{{{ {ds.text_column} }}}}\n{title(ds.label_column)}:",
        label_column=ds.label_column,
        answer_choices={str(lab): [str(lab)] for lab in ds.labels},
        description=f"Started from the data ({ds.name}): text column {ds.text_column}, label column {ds.label_column}.")


def new_template_from_data(state: UIState, current_yaml: str, discard: bool):
    """Start a template from the loaded data (not from the library): input = the text column,
    gold = the label column, answer choices = the data's labels. Not saved yet (Save as).
    Returns (state, editor YAML, edit status)."""
    state = state or UIState()
    with user_errors("Starting a template from the data"):
        ds = state_dataset(state)
        if not _guard(state, current_yaml, discard):
            return state, current_yaml, _edit_status(state, current_yaml)
        text = template_from_data(ds).to_yaml()
        state.saved_yaml, state.template_path = "", None
        gr.Info("A new template from your data is in the editor. Check the verbalizers, then Save as.")
        return state, text, _edit_status(state, text)


def import_template(state: UIState, file: str | None, pasted: str, name: str | None, current_yaml: str,
                    discard: bool):
    """Import lm-eval task YAML or a PromptSource templates.yaml (uploaded or pasted) into the
    editor. A PromptSource file with several templates fills the name choices; pick one and
    import again. Returns (state, editor YAML, edit status, names of the templates in the file)."""
    from workbench.core.lmeval_yaml import IncludeRoots
    from workbench.core.templates import load_templates

    state = state or UIState()
    with user_errors("Importing"):
        src = file if file else (pasted or "")
        if not str(src).strip():
            raise gr.Error("Upload a YAML file or paste its text first.", print_exception=False)
        if file:
            from workbench import paths
            paths.check_server_path(str(src), "file")
        # An upload may include only files of the same upload, never server files.
        ts = load_templates(Path(src), include_roots=IncludeRoots.for_upload([src])) if file \
            else load_templates(src if "\n" in src else src + "\n")  # pasted text is never a server path
        names = [t.name for t in ts]
        names_update = names
        if len(ts) > 1 and name not in names:
            gr.Info(f"The file holds {len(ts)} templates: pick one under “Template in the file”, then import again.")
            return state, current_yaml, _edit_status(state, current_yaml), names_update
        if not _guard(state, current_yaml, discard):
            return state, current_yaml, _edit_status(state, current_yaml), names_update
        t = next(t for t in ts if t.name == name) if len(ts) > 1 else ts[0]
        text = t.to_yaml()
        # An import is not saved anywhere yet: it counts as unsaved edits.
        state.saved_yaml, state.template_path = "", None
        return state, text, _edit_status(state, text), names_update


def load_lmeval_task(state: UIState, name: str, trust: bool, current_yaml: str, discard: bool):
    """An installed lm-eval task's prompt into the editor (task code only with `trust`).
    Returns (state, editor YAML, edit status)."""
    from workbench.app.lmeval_picker import task_yaml

    state = state or UIState()
    with user_errors("Loading the lm-eval task"):
        text, note = task_yaml(name, trust)
        if not _guard(state, current_yaml, discard):
            return state, current_yaml, _edit_status(state, current_yaml)
        if note:
            gr.Info(note)
        state.saved_yaml, state.template_path = "", None
        return state, text, _edit_status(state, text)
