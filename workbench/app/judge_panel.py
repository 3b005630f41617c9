"""The Judge section beside the template editor: pick a rubric from templates_library/judges/,
edit it, choose the judge model, and use it; the Run and Compare tabs then score every generated
output with it (the judge travels in their RunSpecs, as `--judge` does on the command line).

    judge_pick("helpfulness_yesno")               -> the rubric's YAML
    judge_use(state, yaml, model, labels)         -> (state, status): Run and Compare use this judge
    judge_preview(state, yaml, template_yaml)     -> the judge's prompt on the first row, with its tokens
    judge_clear(state)                            -> (state, status): no judge
"""
from __future__ import annotations

import html
from pathlib import Path

import gradio as gr

from workbench.app.common import Ctx, UIState, state_dataset, user_errors

NONE = "(no judge)"


def _library() -> dict[str, Path]:
    from workbench.core.judge import library_judges

    return {p.stem: p for p in library_judges()}


def judge_pick(name: str) -> str:
    """The YAML of a library rubric ('' for none)."""
    p = _library().get(name or "")
    return p.read_text(encoding="utf-8") if p else ""


def _status(state: UIState) -> str:
    if not state or not state.judge_yaml:
        return "*No judge: Run and Compare report reference metrics only.*"
    from workbench.core.judge import load_judge

    j = load_judge(state.judge_yaml)
    who = f"`{html.escape(state.judge_model)}`" if state.judge_model else "the model bar's model"
    labels = f"; agreement with column `{html.escape(state.judge_labels)}`" if state.judge_labels else ""
    return (f"**Judge: {html.escape(j.name)}** ({j.mode}, {j.content_hash()[:12]}) on {who}{labels}. "
            "Run and Compare score every generated output with it.")


def judge_use(state: UIState, judge_yaml: str, judge_model: str, labels: str):
    """Check the judge and keep it for this session's Run and Compare jobs. Returns (state, status)."""
    from workbench.core.judge import load_judge

    state = state or UIState()
    with user_errors("Using the judge"):
        j = load_judge(judge_yaml or "")
        columns = None
        if state.data_spec:
            columns = [str(c) for c in state_dataset(state).df.columns]
        problems = j.validate(columns=columns)
        if problems:
            raise gr.Error("; ".join(problems), title="Judge", print_exception=False)
        lib = {p.read_text(encoding="utf-8").strip(): str(p) for p in _library().values()}
        state.judge_yaml = judge_yaml
        state.judge_path = lib.get((judge_yaml or "").strip())
        state.judge_model = (judge_model or "").strip()
        state.judge_labels = (labels or "").strip()
        return state, _status(state)


def judge_clear(state: UIState):
    """Stop judging. Returns (state, status)."""
    state = state or UIState()
    state.judge_yaml, state.judge_path, state.judge_model, state.judge_labels = "", None, "", ""
    return state, _status(state)


def judge_preview(state: UIState, judge_yaml: str, template_yaml: str, row_position: int = 0) -> str:
    """The judge's prompt for the first row of the loaded data, with the gold answer standing in for
    the model's output, and its tokens under the loaded model's tokenizer (the verdict words are
    scored right after the last token)."""
    from workbench.app.common import parse_template
    from workbench.app.matrix import tokens_text
    from workbench.core.judge import load_judge

    with user_errors("Previewing the judge"):
        j = load_judge(judge_yaml or "")
        ds = state_dataset(state)
        row = ds.df.iloc[min(max(0, int(row_position or 0)), len(ds.df) - 1)]
        t = parse_template(template_yaml) if (template_yaml or "").strip() else None
        inp = t.render_input(row) if t is not None else str(row.iloc[0])
        ref = t.gold(row) if t is not None and t.task == "generation" else ""
        out = ref or "(the model's output)"
        if j.mode == "pointwise":
            prompt = j.render(row=dict(row), input=inp, output=out, reference=ref)
        else:
            prompt = j.render(row=dict(row), input=inp, output_a=out, output_b="(the other template's output)",
                              reference=ref)
        words = ", ".join(f"`{html.escape(j.delimiter + w)}`" for w in j.words())
        return ("Judge prompt (the gold answer stands in for the output):\n\n```text\n"
                + prompt.replace("```", "`\u200b``") + "\n```\n\n" + f"Verdict continuations: {words}\n\n"
                + tokens_text(prompt))


def preview_judge(state: UIState, template_yaml: str, split: str, position: float) -> str:
    """The Preview tab's judge part: the judge in use (Judge section) on the previewed row of a
    generation template, with its exact tokens; '' when there is no judge or the template classifies."""
    if not state or not state.judge_yaml:
        return ""
    from workbench.app.common import parse_template
    from workbench.core.spec import resolve_eval
    from workbench.jobs.inference import eval_rows

    with user_errors("Previewing the judge"):
        t = parse_template(template_yaml)
        if t.task != "generation":
            return ""
        rows, _ = eval_rows(state_dataset(state), resolve_eval({"split": split or "test",
                                                                "split_seed": state.split_seed}, t))
        pos = min(max(0, int(position or 0)), len(rows) - 1)
        where = list(state_dataset(state).df.index).index(rows.index[pos])
        return "#### Judge\n\n" + judge_preview(state, state.judge_yaml, template_yaml, where)


def judge_kwargs(state: UIState | None) -> dict:
    """build_spec's judge arguments from this session's Judge section (none when unset)."""
    if not state or not getattr(state, "judge_yaml", ""):
        return {}
    from workbench.core.judge import load_judge

    j = load_judge(state.judge_yaml)
    model = None
    if state.judge_model:
        from workbench.core.spec import ModelRef
        from workbench.storage.engines import resolve

        model = resolve(ModelRef(model=state.judge_model))   # a saved server's name: its URL and tokenizer
    return {"judge": (j, state.judge_path), "judge_model": model, "judge_labels": state.judge_labels or None}


def build(ctx: Ctx) -> None:
    """The Judge accordion (inside the Templates tab, under the editor)."""
    with gr.Accordion("Judge (generation templates)", open=False, elem_id="judge-section"):
        gr.Markdown("A model judge scores every generated output: the probability of each verdict word after "
                    "the rubric gives an expected score per row (docs/JUDGE.md).")
        with gr.Row():
            pick = gr.Dropdown([NONE, *_library()], value=NONE, label="Rubric library", elem_id="judge-library",
                               scale=2)
            model = gr.Textbox(label="Judge model", placeholder="empty = the model bar's model", max_lines=1,
                               elem_id="judge-model", scale=2)
            labels = gr.Textbox(label="Human ratings column (optional)", max_lines=1, elem_id="judge-labels", scale=1)
        yaml_box = gr.Code(language="yaml", label="Judge (YAML: rubric in Jinja, verdict words)", lines=12,
                           elem_id="judge-editor", value="")
        with gr.Row():
            use_btn = gr.Button("Use this judge", variant="primary", size="sm", elem_id="judge-use")
            prev_btn = gr.Button("Preview judge prompt", size="sm", elem_id="judge-preview-btn")
            clear_btn = gr.Button("No judge", size="sm", elem_id="judge-clear")
        status = gr.Markdown(_status(UIState()), elem_id="judge-status")
        preview = gr.Markdown("", elem_id="judge-preview")
    pick.change(judge_pick, pick, yaml_box, api_name="judge_pick")
    use_btn.click(judge_use, [ctx.state, yaml_box, model, labels], [ctx.state, status], api_name="judge_use")
    clear_btn.click(judge_clear, ctx.state, [ctx.state, status], api_name="judge_clear")
    prev_btn.click(judge_preview, [ctx.state, yaml_box, ctx.editor], preview, api_name="judge_preview")
