"""Templates tab: the template as YAML in a code editor, plus structured fields (input Jinja,
answer choices, instruction, few-shot) kept in sync with it; live validation with line and
column; the library (list, load, save as, duplicate); lm-eval / PromptSource import.
This module lays the tab out and wires its events; the handlers are in `template_files` (library,
imports), `template_form` (fields, validation) and `template_drafts` (the localStorage draft).

Edits are never lost: the editor content is mirrored into the browser's localStorage (a page
reload restores it), and loading over unsaved edits needs "discard my unsaved edits" ticked.
"""
from __future__ import annotations

import gradio as gr

from workbench.app import template_list
from workbench.app.common import Ctx
# The editor's saved/unsaved state; shared with the tabs that load templates into the editor.
from workbench.app.editor_state import edit_status as _edit_status  # noqa: F401
# The handlers live beside this module (this one lays the tab out and wires them); re-exported here.
from workbench.app.template_drafts import draft_of, editor_changed, restore_draft, sync_draft  # noqa: F401
from workbench.app.template_files import (duplicate_ask, duplicate_template, free_copy_name,  # noqa: F401
                                          import_template, library_choices, library_for_editor, list_templates,
                                          load_lmeval_task, load_template_into_editor, name_choices,
                                          new_template_from_data, refresh_library, save_template_as,
                                          template_from_data)
from workbench.app.template_form import VALIDATE_SECONDS, apply_fields, template_fields, validate_template  # noqa: F401

CHOICE_HEADERS = ["label", "verbalizers (comma-separated)"]
SAMPLINGS = ["fixed", "per_example", "similar"]
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
                library = gr.Dropdown(library_choices(), value=None, label="Templates", elem_id="library",
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
