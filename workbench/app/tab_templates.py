"""Templates tab: the template as YAML in a code editor, plus structured fields (input Jinja,
answer choices, instruction, few-shot) kept in sync with it; live validation with line and
column; the library (list, load, save as, duplicate); lm-eval / PromptSource import.

Edits are never lost: the editor content is mirrored into the browser's localStorage (a page
reload restores it), and loading over unsaved edits needs "discard my unsaved edits" ticked.
"""
from __future__ import annotations

import re
from pathlib import Path

import gradio as gr

from workbench.app import template_list
# The editor's saved/unsaved state; shared with the tabs that load templates into the editor.
from workbench.app.editor_state import edit_status as _edit_status, guard as _guard, is_dirty as _is_dirty
from workbench.app.common import DEFAULT_TEMPLATE, Ctx, UIState, parse_template, state_dataset, user_errors

CHOICE_HEADERS = ["label", "verbalizers (comma-separated)"]
SAMPLINGS = ["fixed", "per_example", "similar"]
VALIDATE_SECONDS = 5.0   # every render of one validation request together (docs/SECURITY.md)


# ------------------------------------------------------------------------------------ library
def list_templates() -> list[dict]:
    """Every template in templates_library/ and $WORKBENCH_HOME/templates/:
    [{"name", "file", "ref", "dataset", "task", "source", "error"?}, ...]; pass `ref` to
    load_template / duplicate_template. (The key is not "path": gradio_client would take a
    dict with "path" for a file to download.) The user's templates come first (docs/API.md):
    it is the one list every picker shows (app/template_list.py)."""
    with user_errors("Listing templates"):
        return template_list.entries()


def _library_choices() -> list[tuple[str, str]]:
    from workbench.app import template_list

    return template_list.choices()


def name_choices(names: list | None, current: str | None):
    """UI glue: show the "template in the file" picker when an import holds several."""
    names = list(names or [])
    return gr.update(choices=names, value=current if current in names else None, visible=len(names) > 1)


def refresh_library(selected: str | None = None):
    """The library dropdown, read again from disk (after a save, an import or a page reload)."""
    from workbench.app import template_list

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


# ------------------------------------------------------------------------------------ fields
def template_fields(yaml_text: str):
    """The structured fields of the editor's template: (name, input, instruction, answer
    choices table [label, verbalizers], few-shot k, per_class, balanced, sampling, task).
    Leaves the fields alone while the YAML does not parse."""
    try:
        t = parse_template(yaml_text)
    except Exception:  # noqa: BLE001 - half-typed YAML is normal; validation reports it
        return tuple(gr.skip() for _ in range(13))
    rows = [[k, ", ".join(v)] for k, v in t.answer_choices.items()]
    return (t.name, t.input, t.instruction, rows or [["", ""]], t.fewshot.k, t.fewshot.per_class,
            t.fewshot.balanced, t.fewshot.sampling, t.target or "", t.label_column, t.demo_format or "",
            t.choices_expr or "", t.task)


def apply_fields(yaml_text: str, name: str, input_: str, instruction: str, choices, k: float, per_class: bool,
                 balanced: bool, sampling: str, target: str | None = None, label_column: str | None = None,
                 demo_format: str | None = None, choices_expr: str | None = None) -> str:
    """Write the structured fields into the editor's template and return the new YAML.
    `target`, `label_column`, `demo_format`, `choices_expr`: None keeps the template's value,
    "" clears it (label_column falls back to "label")."""
    import pandas as pd

    with user_errors("Updating the template"):
        try:
            t = parse_template(yaml_text)
        except Exception:  # noqa: BLE001
            raise gr.Error("Fix the YAML first (see Problems); field edits are kept in the fields.",
                           title="YAML does not parse", print_exception=False) from None
        t.name = (name or "").strip() or t.name
        t.input = input_ or ""
        t.instruction = instruction or ""
        rows = choices.values.tolist() if isinstance(choices, pd.DataFrame) else (choices or [])
        if not t.choices_expr and t.task == "classification":
            ac = {}
            for row in rows:
                label = str(row[0]).strip() if row and row[0] is not None else ""
                if label:
                    words = [w.strip() for w in str(row[1] if len(row) > 1 and row[1] is not None else "").split(",")]
                    ac[label] = [w for w in words if w]
            t.answer_choices = ac
        t.fewshot.k = int(k or 0)
        t.fewshot.per_class, t.fewshot.balanced = bool(per_class), bool(balanced)
        t.fewshot.sampling = sampling or "fixed"
        if target is not None:
            t.target = target if target.strip() else None
        if label_column is not None:
            t.label_column = label_column.strip() or "label"
        if demo_format is not None:
            t.demo_format = demo_format if demo_format.strip() else None
        if choices_expr is not None:
            t.choices_expr = choices_expr.strip() or None
        return t.to_yaml()


# ------------------------------------------------------------------------------------ validation
def _yaml_line(yaml_text: str, field: str, line: int | None) -> int | None:
    """Where a field's line lands in the YAML: block scalars (`key: |`) start on the next line."""
    lines = yaml_text.splitlines()
    parts = field.split(".")
    start, indent = 0, ""
    key_line = None
    for depth, part in enumerate(parts):
        pat = re.compile(rf"^{indent}{re.escape(part)}\s*:(.*)$" if depth == 0 else rf"^(\s+){re.escape(part)}\s*:(.*)$")
        for i in range(start, len(lines)):
            m = pat.match(lines[i])
            if m:
                key_line, start = i, i + 1
                break
        else:
            return None
    if key_line is None:
        return None
    rest = lines[key_line].split(":", 1)[1].strip()
    if rest[:1] in ("|", ">"):
        return key_line + 1 + (line or 1)
    return key_line + 1


def validate_template(state: UIState, yaml_text: str) -> str:
    """Every problem of the editor's template against the loaded data (columns, labels, a
    sample row, and the tokenizer when a model is loaded), as markdown with line and column."""
    from workbench.errors import WorkbenchError
    from workbench.app.model_bar import current_session

    try:
        t = parse_template(yaml_text)
    except WorkbenchError as e:
        return f"✗ **{e.message}**" + (f"  \n{e.hint}" if e.hint else "")
    columns = labels = sample = None
    note = ""
    try:
        ds = state_dataset(state)
        columns, labels = [str(c) for c in ds.df.columns], list(ds.labels)
        sample = ds.df.iloc[0].to_dict()
    except WorkbenchError:
        note = "  \n*Load a dataset to also check column names and labels.*"
    s = current_session()
    from workbench.app.isolate import isolated

    try:
        # the renders run in a child with hard memory/CPU limits, killed at the deadline, so a
        # runaway template cannot starve the server (app/isolate.py); inside it, one
        # cooperative deadline for all of this request's renders
        return isolated(_validate_markdown, t, yaml_text, columns, labels, sample, s.tokenizer if s else None, note,
                        seconds=VALIDATE_SECONDS)
    except WorkbenchError as e:
        return f"✗ **{e.message}**" + (f"  \n{e.hint}" if e.hint else "")
    except Exception as e:  # noqa: BLE001 - validation must never take the page down
        return f"✗ validation failed: {type(e).__name__}: {e}"


def _validate_markdown(t, yaml_text: str, columns, labels, sample, tokenizer, note: str) -> str:
    from workbench.core.render import limits as render_limits

    try:
        with render_limits(seconds=VALIDATE_SECONDS):
            probs = t.validate(columns=columns, labels=labels, tokenizer=tokenizer, sample_row=sample)
    except Exception as e:  # noqa: BLE001 - validation must never take the page down
        return f"✗ validation failed: {type(e).__name__}: {e}"
    if not probs:
        return f"✓ **No problems.** `{t.name}` · {t.task} · {len(t.answer_choices)} labels" + note
    out = []
    for p in probs:
        icon = "✗" if p.severity == "error" else "⚠"
        where = ""
        if p.line:
            where = f", line {p.line}" + (f", column {p.column}" if p.column else "")
            yl = _yaml_line(yaml_text, p.field, p.line)
            if yl:
                where += f" (YAML line {yl})"
        out.append(f"{icon} **{p.field}**{where}: {p.message}")
    n_err = sum(p.severity == "error" for p in probs)
    head = f"**{n_err} error(s), {len(probs) - n_err} warning(s)**"
    return head + "\n\n" + "\n".join(f"- {x}" for x in out) + note


def draft_of(state: UIState, yaml_text: str) -> dict:
    """The localStorage draft: the editor's text, its saved copy and the file it came from. The
    key is "file", not "path": the save's outputs include the draft, and gradio_client takes a
    dict with "path" for a file to download."""
    return {"yaml": yaml_text, "saved": state.saved_yaml, "file": state.template_path}


def editor_changed(state: UIState, yaml_text: str):
    """Live check on every edit: (problems markdown, edit status, draft for localStorage)."""
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


PLACEHOLDER = """name: my_template
input: |-
  Headline: {{ title }}
  Topic:
answer_choices:
  business: [business]
  tech: [tech, technology]
"""


def build(ctx: Ctx) -> None:
    with gr.Tab("Templates", id="templates", elem_id="tab-templates") as tab:
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                gr.Markdown("#### Library")
                # no value: a dropdown would otherwise show its first choice, not the editor's template
                library = gr.Dropdown(_library_choices(), value=None, label="Templates", elem_id="library",
                                      info="templates_library/ and your own folder")
                discard = gr.Checkbox(False, label="Discard my unsaved edits when loading")
                new_btn = gr.Button("+ New template from my data", size="sm", elem_id="new-from-data",
                                    variant="primary")
                with gr.Row():
                    load_btn = gr.Button("Load", variant="primary", size="sm")
                    dup_btn = gr.Button("Duplicate", size="sm", elem_id="dup-btn")
                    refresh_btn = gr.Button("↻", size="sm", min_width=40, scale=0)
                # Duplicate asks for the copy's name first (prefilled with a free one).
                with gr.Group(visible=False, elem_id="dup-ask") as dup_box:
                    dup_name = gr.Textbox(label="Name of the copy", max_lines=1, elem_id="dup-name",
                                          info="saved in your templates folder; an existing file is never replaced")
                    with gr.Row():
                        dup_ok = gr.Button("Create copy", size="sm", variant="primary", elem_id="dup-confirm")
                        dup_cancel = gr.Button("Cancel", size="sm", elem_id="dup-cancel")
                gr.Markdown("#### Save as")
                # One per line: in the narrow library column a checkbox beside the name was cut
                # to "overwri".
                save_name = gr.Textbox(label="Name", placeholder="my_topic_prompt", max_lines=1, elem_id="save-name")
                overwrite = gr.Checkbox(False, label="overwrite an existing file", elem_id="save-overwrite")
                save_btn = gr.Button("Save as", size="sm")
                with gr.Accordion("Import lm-eval / PromptSource YAML", open=False):
                    imp_file = gr.File(label="YAML file", file_types=[".yaml", ".yml"], type="filepath", height=100)
                    imp_text = gr.Textbox(label="…or paste it", lines=4, placeholder="doc_to_text: \"{{ question }}\"\n…")
                    imp_name = gr.Dropdown([], label="Template in the file", visible=False)
                    imp_btn = gr.Button("Import", size="sm")
                with gr.Accordion("lm-eval task library", open=False):
                    task_q = gr.Textbox(label="Search tasks", placeholder="hellaswag, mmlu, arc…", max_lines=1)
                    task_pick = gr.Dropdown([], label="Task", allow_custom_value=True, elem_id="lmeval-task")
                    task_trust = gr.Checkbox(False, label="Trust task code (the server's installed lm-eval tasks only)")
                    task_btn = gr.Button("Load task", size="sm")
            with gr.Column(scale=3):
                status = ctx.edit_status = gr.Markdown("", elem_id="edit-status")
                with gr.Tabs():
                    with gr.Tab("Fields", id="fields"):
                        with gr.Row():
                            f_name = gr.Textbox(label="Name", max_lines=1, scale=2)
                            f_task = gr.Textbox(label="Task", interactive=False, scale=1)
                        f_input = gr.Code(language="jinja2", label="Input (Jinja: the row's columns are variables)",
                                          lines=4, elem_id="field-input")
                        f_instr = gr.Code(language="jinja2", label="Instruction (before the demonstrations; optional)",
                                          lines=2, wrap_lines=True, elem_id="field-instruction")
                        f_choices = gr.Dataframe(headers=CHOICE_HEADERS, datatype=["str", "str"], interactive=True,
                                                 label="Answer choices: label → verbalizer words (first word is used in demos)",
                                                 row_count=5, column_count=2, elem_id="field-choices")
                        with gr.Row():
                            f_k = gr.Number(0, label="Few-shot k", precision=0, minimum=0)
                            f_per_class = gr.Checkbox(False, label="k per class")
                            f_balanced = gr.Checkbox(False, label="balanced")
                            f_sampling = gr.Dropdown(SAMPLINGS, value="fixed", label="Demo sampling")
                        # Every field a validation problem can name is editable here.
                        with gr.Accordion("Gold, label column, demo format, choices expression", open=False,
                                          elem_id="fields-advanced"):
                            with gr.Row():
                                f_label_col = gr.Textbox(label="Label column", max_lines=1, elem_id="field-label-column",
                                                         info="the column holding the gold label")
                                f_target = gr.Textbox(label="Target (Jinja; empty = {{ label column }})", max_lines=2,
                                                      elem_id="field-target")
                            f_demo = gr.Code(language="jinja2", label="Demo format (optional; variables: the row and `answer`)",
                                             lines=2)
                            f_cexpr = gr.Textbox(label="Choices expression (optional; per-row choices instead of the table)",
                                                 max_lines=1)
                    with gr.Tab("YAML", id="yaml"):
                        ctx.editor = gr.Code(language="yaml", label="Template (YAML with Jinja strings)", lines=18,
                                             max_lines=40, elem_id="template-editor", value="")
                gr.Markdown("#### Problems")
                problems = gr.Markdown("", elem_id="problems")
                from workbench.app import judge_panel

                judge_panel.build(ctx)

    fields = [f_name, f_input, f_instr, f_choices, f_k, f_per_class, f_balanced, f_sampling, f_target, f_label_col,
              f_demo, f_cexpr]
    editor = ctx.editor
    # Live validation: every change (typed or loaded) is checked; always_last drops the
    # intermediate keystrokes while a check is running, which is the debounce.
    editor.change(editor_changed, [ctx.state, editor], [problems, status, ctx.draft], api_name="editor_changed",
                  api_visibility="private", trigger_mode="always_last", show_progress="hidden",
                  concurrency_limit=None)
    # YAML typed by the user -> fields; fields edited by the user -> YAML. `.input` fires only
    # on user edits, so the two never chase each other.
    editor.input(template_fields, editor, fields + [f_task], api_name="template_fields",
                 trigger_mode="always_last", show_progress="hidden", concurrency_limit=None)
    for key, comp in zip(["name", "input", "instruction", "choices", "k", "per_class", "balanced", "sampling",
                          "target", "label_column", "demo_format", "choices_expr"], fields):
        comp.input(apply_fields, [editor] + fields, editor, api_name=f"apply_field_{key}", api_visibility="private",
                   trigger_mode="always_last", show_progress="hidden", concurrency_limit=None)
    # The public name for scripts (the per-field listeners above are private).
    with tab:
        api_apply, api_validate, api_list = (gr.Button(visible=False) for _ in range(3))
        api_list_out = gr.JSON(visible=False)
        lib_ref = gr.Textbox(visible=False)     # the library entry to select after save / duplicate
        imp_names = gr.JSON(visible=False)      # template names in an imported file
        changed = ctx.templates_changed = gr.Number(0, visible=False)   # every picker listens to it
    api_apply.click(apply_fields, [editor] + fields, editor, api_name="apply_fields")
    # no queue limit: each check runs in its own killed-at-deadline child (app/isolate.py caps
    # them at $WORKBENCH_RENDER_WORKERS), so runaway checks cannot hold up an ordinary one
    api_validate.click(validate_template, [ctx.state, editor], problems, api_name="validate_template",
                       concurrency_limit=None)
    api_list.click(list_templates, None, api_list_out, api_name="list_templates")

    loaded = load_btn.click(load_template_into_editor, [ctx.state, library, editor, discard], [ctx.state, editor, status],
                            api_name="load_template")
    loaded.success(sync_draft, [ctx.state, editor], [status, ctx.draft], api_name="sync_draft_load",
                   api_visibility="private", queue=False)
    loaded.then(template_fields, editor, fields + [f_task],
                                                  api_name="template_fields_after_load", api_visibility="private")
    dup_btn.click(duplicate_ask, library, [dup_box, dup_name], api_name="duplicate_ask", api_visibility="private")
    dup_cancel.click(lambda: gr.update(visible=False), None, dup_box, api_name=None, api_visibility="private",
                     queue=False)
    dup = dup_ok.click(duplicate_template, [ctx.state, library, editor, discard, dup_name],
                       [ctx.state, editor, status, lib_ref, ctx.draft], api_name="duplicate_template")
    dup.success(lambda: gr.update(visible=False), None, dup_box, api_name=None, api_visibility="private",
                queue=False)
    dup.then(template_fields, editor, fields + [f_task], api_name="template_fields_after_dup", api_visibility="private")
    dup.success(template_list.bump, changed, changed, api_name="templates_changed_after_dup", api_visibility="private",
                queue=False)
    new_btn.click(new_template_from_data, [ctx.state, editor, discard], [ctx.state, editor, status],
                  api_name="new_template_from_data").then(template_fields, editor, fields + [f_task],
                                                          api_name="template_fields_after_new",
                                                          api_visibility="private")
    refresh_btn.click(refresh_library, library, library, api_name="refresh_library", api_visibility="private")
    saved = save_btn.click(save_template_as, [ctx.state, editor, save_name, overwrite],
                           [ctx.state, editor, status, lib_ref, ctx.draft], api_name="save_template")
    saved.then(template_fields, editor, fields + [f_task], api_name="template_fields_after_save",
               api_visibility="private")
    saved.success(
        template_list.bump, changed, changed, api_name="templates_changed_after_save", api_visibility="private",
        queue=False)
    # A saved or duplicated file joins the library list, selected.
    lib_ref.change(refresh_library, lib_ref, library, api_name="refresh_library_to", api_visibility="private")
    # Every picker (this library, Compare's columns, ...) lists the new file: on save and
    # duplicate (above/below) and on every page load (a reload builds the page from the
    # server's first config, which predates the user's files).
    changed.change(refresh_library, lib_ref, library, api_name="refresh_library_on_change", api_visibility="private",
                   queue=False)
    ctx.demo.load(refresh_library, library, library, api_name="refresh_library_on_load", api_visibility="private",
                  queue=False)
    imp_btn.click(import_template, [ctx.state, imp_file, imp_text, imp_name, editor, discard],
                  [ctx.state, editor, status, imp_names], api_name="import_template").then(
        name_choices, [imp_names, imp_name], imp_name, api_name="import_names", api_visibility="private").then(
        template_fields, editor, fields + [f_task], api_name="template_fields_after_import", api_visibility="private")

    from workbench.app import lmeval_picker
    task_q.submit(lmeval_picker.search_tasks, task_q, task_pick, api_name="search_lmeval_tasks")
    task_btn.click(load_lmeval_task, [ctx.state, task_pick, task_trust, editor, discard], [ctx.state, editor, status],
                   api_name="load_lmeval_task").then(template_fields, editor, fields + [f_task],
                                                     api_name="template_fields_after_task", api_visibility="private")

    # Page load (after the data): restore the draft from localStorage, else the default template.
    ctx.events["page_load_data"].then(restore_draft, [ctx.state, ctx.draft], [ctx.state, editor, status],
                                      api_name="restore_draft", api_visibility="private").then(
        template_fields, editor, fields + [f_task], api_name="template_fields_on_start", api_visibility="private").then(
        library_for_editor, ctx.state, library, api_name="library_for_editor", api_visibility="private",
        show_progress="hidden")
    # New data: re-check the template against its columns and labels.
    ctx.events["data_loaded"].then(validate_template, [ctx.state, editor], problems,
                                   api_name="validate_after_data", api_visibility="private")
    if "data_uploaded" in ctx.events:
        ctx.events["data_uploaded"].then(validate_template, [ctx.state, editor], problems,
                                         api_name="validate_after_upload", api_visibility="private")
    ctx.events["template_fields"] = (template_fields, fields + [f_task])
