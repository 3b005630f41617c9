"""The "Template: NAME (hash)" badge that Preview, Run, Train and Export show above their
start buttons, so no tab uses the editor's template silently.

The rule every tab follows: **the template in the Templates editor is the one that runs.**
Compare's winner becomes that template when you press "Open the winner in the editor";
Export can also take the winner directly (What to export → winner), and its badge says so.

    badge.add(ctx, "run")        # inside a tab's layout: creates #run-template-badge and wires it
"""
from __future__ import annotations

import html

import gradio as gr


def template_badge(yaml_text: str | None, where: str = "the Templates editor") -> str:
    """HTML: the template's name and content hash, or why there is none."""
    from workbench.core.templates import load_template

    if not (yaml_text or "").strip():
        return "<div class='wb-badge empty'>Template: <b>none</b> · load or start one in the Templates tab</div>"
    try:
        t = load_template(yaml_text)
    except Exception:  # noqa: BLE001 - half-typed YAML: say so, the Templates tab has the details
        return "<div class='wb-badge bad'>Template: <b>the editor's YAML does not parse</b> · see Templates → Problems</div>"
    return (f"<div class='wb-badge'>Template: <b>{html.escape(t.name)}</b> "
            f"(<code>{t.content_hash()[:10]}</code>) · from {html.escape(where)}</div>")


def export_badge(source: str, yaml_text: str, train_run: str | None) -> str:
    """The Export tab's badge follows its "What to export" choice."""
    if source == "winner":
        from workbench.jobs.compare import get_winner_info

        try:
            info = get_winner_info()
        except Exception:  # noqa: BLE001
            info = None
        if info is None:
            return "<div class='wb-badge bad'>Template: <b>no winner marked yet</b> · mark one in the Compare tab</div>"
        return template_badge(info["yaml"], f"the winner of comparison {info['run_id']}")
    if source == "training run":
        name = (train_run or "").rstrip("/").split("/")[-1]
        return (f"<div class='wb-badge'>Template: <b>the one training run {html.escape(name)} used</b></div>" if name
                else "<div class='wb-badge bad'>Template: <b>pick a training run</b></div>")
    return template_badge(yaml_text)


def add(ctx, prefix: str):
    """Create the badge in the current layout and keep it in step with the editor."""
    comp = gr.HTML(template_badge(""), elem_id=f"{prefix}-template-badge")
    if ctx.editor is not None:
        ctx.editor.change(template_badge, ctx.editor, comp, api_name=f"{prefix}_template_badge",
                          api_visibility="private", show_progress="hidden", queue=False)
    return comp
