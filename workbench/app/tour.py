"""Getting started: one line under the title that says what to do, and a Tour that walks the
whole loop on the demo data (BBC headlines) in a few clicks: each step does the setup and
opens the tab where the next click happens.

    tour.header(ctx)         # before the tabs: the one-line guide and the Tour accordion
    tour.wire(ctx, tabs)     # after the tabs: the steps' events (they switch tabs)
"""
from __future__ import annotations

import gradio as gr

from workbench.app.common import UIState

GUIDE = ("**Start here:** load your data (**Data**: upload a CSV) → **Templates**: *New template from my data* → "
         "**Preview** one row → **Run** it → **Compare** templates → **Train** / **Export**. "
         "New to this? Open the **Tour** below: it walks the loop on demo data.")

STEPS = [
    ("tour-1", "1 · Demo data and template", "data",
     "Loaded **bbc** (2225 news headlines, 5 topics) and the template *bbc_headline_topic*. "
     "Look at the class balance; then step 2."),
    ("tour-2", "2 · See the exact prompt", "preview",
     "This is the **Preview** tab: press **Preview** to see exactly what the model reads for one row, its tokens "
     "and each answer's tokens. Then step 3."),
    ("tour-3", "3 · Score it", "run",
     "This is the **Run** tab: set *Limit* to 20 and press **Run evaluation**. Accuracy, per-class bars, the "
     "confusion matrix and the **results matrix** (click a cell) appear when it ends. Then step 4."),
    ("tour-4", "4 · Compare two prompts", "compare",
     "The **Compare** tab runs two templates on the same rows and says which is better, with a paired test. "
     "Set *Limit* to 40 and press **Compare**. Then step 5."),
    ("tour-5", "5 · Keep the winner", "export",
     "Mark the winner in Compare and open it in the editor; **Export** writes it with its metrics as a bundle. "
     "**Train** fine-tunes a small LoRA on it. Every run lands in **Runs**. Now try it with your own CSV."),
]


def header(ctx) -> dict:
    """The guide line and the Tour (its buttons are wired by `wire`)."""
    gr.Markdown(GUIDE, elem_id="getting-started")
    buttons = {}
    with gr.Accordion("Tour: the whole loop on demo data, in five clicks", open=False, elem_id="tour"):
        with gr.Row():
            for elem_id, label, _, _ in STEPS:
                buttons[elem_id] = gr.Button(label, size="sm", elem_id=elem_id)
        text = gr.Markdown("", elem_id="tour-text")
    ctx.events["tour"] = (buttons, text)
    return buttons


def demo_data(state: UIState):
    """Tour step 1: the bbc data (load_data's outputs) and the Data tab's source set to it."""
    from workbench.app.tab_data import load_data

    return load_data(state, "bbc", None, "", None, None, 0) + ("bbc",)


def demo_template(state: UIState, current_yaml: str):
    """Tour step 1: the demo template into the editor (never over unsaved edits)."""
    from workbench.app import template_list
    from workbench.app.tab_templates import load_template_into_editor

    ref = template_list.resolve("bbc_headline_topic")
    return load_template_into_editor(state, ref, current_yaml, False)


def step(elem_id: str):
    """A step's handler: its explanation, and the tab to show."""
    _, _, tab, text = next(s for s in STEPS if s[0] == elem_id)

    def fn():
        return text, gr.Tabs(selected=tab)
    fn.__name__ = f"tour_{elem_id.replace('-', '_')}"
    return fn


def wire(ctx, tabs) -> None:
    if "tour" not in ctx.events:
        return
    buttons, text = ctx.events["tour"]
    for elem_id, btn in buttons.items():
        ev = btn.click(step(elem_id), None, [text, tabs], api_name=elem_id.replace("-", "_"),
                       api_visibility="private", queue=False)
        if elem_id == "tour-1" and "data_io" in ctx.events:
            inputs, outputs = ctx.events["data_io"]
            source = inputs[1]
            loaded = ev.then(demo_data, ctx.state, outputs + [source], api_name="tour_demo_data",
                             api_visibility="private")
            if "column_choices" in ctx.events:
                fn, cols = ctx.events["column_choices"]
                loaded = loaded.then(fn, ctx.state, cols, api_name="tour_columns", api_visibility="private")
            if ctx.editor is not None:
                done = loaded.then(demo_template, [ctx.state, ctx.editor], [ctx.state, ctx.editor, ctx.edit_status],
                                   api_name="tour_demo_template", api_visibility="private")
                if "template_fields" in ctx.events:
                    fn, field_outputs = ctx.events["template_fields"]
                    done.then(fn, ctx.editor, field_outputs, api_name="tour_template_fields",
                              api_visibility="private")
