"""The Compare tab's lm-eval task picker: compare on an installed lm-eval task's own rows.

Pick a task (search by name), then either compare the task's own prompt with the template
columns (tick "with the columns' templates"), or the task on two or more models (the model
bar's plus the Models box), or both (models × prompts). The job runs the RunSpec that
`workbench compare --task T ...` builds (jobs/task_compare.task_compare_spec), so the result
is the CLI's: each arm's lm-eval metrics ("metric,filter") and a paired verdict per metric
against the first arm (McNemar for binary per-row metrics, a paired bootstrap otherwise).

Task code runs only with "Trust task code" ticked, and only from the installed lm-eval tasks
folder (as in the Templates tab's picker). The task's rows come from its own dataset, or from
a file or folder on the server (`--data`), e.g. for offline use.
"""
from __future__ import annotations

import re
import shlex

import gradio as gr

from workbench.app.common import command_markdown, job_progress_html, user_errors
from workbench.jobs import queue as jobs
from workbench.jobs import service

POLL_S = 1.0
EMPTY = "*Pick an lm-eval task and press “Compare on task”.*"


def task_spec(task: str, trust: bool, data: str, num_fewshot, limit, with_columns: bool, model: str, models,
              n: float, *yamls: str):
    """The RunSpec of the form: the one `workbench compare --task` builds from the same choices."""
    from workbench.app.common import parse_template
    from workbench.errors import ConfigError, TemplateError
    from workbench.jobs.task_compare import task_compare_spec

    task = (task or "").strip()
    if not task:
        raise ConfigError("No lm-eval task picked.", "Search for a task by name and pick one.")
    names = [service.current_model_ref(model).model] + [m.strip() for m in re.split(r"[\n,]+", str(models or ""))
                                                         if m.strip()]
    templates = []
    for i, text in enumerate(list(yamls)[: max(1, int(n or 1))] if with_columns else []):
        try:
            templates.append(parse_template(text))
        except TemplateError as e:
            raise TemplateError(f"column {i + 1}: {e.message}", e.hint) from None
    if len(names) < 2 and not templates:
        raise ConfigError("A task comparison needs two models or a template to compare with the task's own prompt.",
                          "List a second model under Models, or tick “with the columns' templates”.")
    return task_compare_spec(task, models=names, templates=templates, trust_code=bool(trust), include_paths=[],
                             data=(data or "").strip() or None,
                             num_fewshot=None if num_fewshot in (None, "") else int(num_fewshot),
                             limit=int(limit) if limit else None)


def task_command(task: str, trust: bool, data: str, num_fewshot, limit, with_columns: bool, model: str, models,
                 n: float, *yamls: str) -> str:
    """The `workbench compare --task ...` command that runs this comparison (markdown)."""
    with user_errors("Showing the command"):
        spec = task_spec(task, trust, data, num_fewshot, limit, with_columns, model, models, n, *yamls)
        o = spec.options
        out = ["workbench", "compare", "--task", o.task]
        if o.trust_task_code:
            out.append("--trust-task-code")
        for m in spec.models:
            out += ["--model", m.model]
        if o.task_data:
            out += ["--data", o.task_data]
        if o.num_fewshot is not None:
            out += ["--num-fewshot", str(o.num_fewshot)]
        if o.limit:
            out += ["--limit", str(o.limit)]
        # the user's templates (the first template is the task's own prompt): a template that
        # exists only in the form is written to $WORKBENCH_HOME/specs, as spec_command does
        for t in spec.templates[1:]:
            out += ["--template", _template_file(t)]
        return command_markdown(" ".join(shlex.quote(a) for a in out))


def _template_file(t) -> str:
    from workbench import paths

    if t.path:
        return t.path
    folder = paths.home() / "specs"
    folder.mkdir(parents=True, exist_ok=True)
    f = folder / f"{re.sub(r'[^A-Za-z0-9._-]+', '-', t.name)[:60]}-{t.hash[:12]}.yaml"
    if not f.exists():
        f.write_text(t.yaml, encoding="utf-8")
    return str(f)


def start_task_compare(task: str, trust: bool, data: str, num_fewshot, limit, with_columns: bool, model: str,
                       models, n: float, *yamls: str):
    """Start comparing on lm-eval task `task`: the task's own prompt with the first `n` template
    columns (`with_columns`), on the model bar's `model` and every model in `models`. Returns
    (job id, job id, progress HTML, poll timer); poll `compare_status(job_id)`, then read the
    result with `compare_task_result(job_id)`."""
    with user_errors("Starting the task comparison"):
        spec = task_spec(task, trust, data, num_fewshot, limit, with_columns, model, models, n, *yamls)
        job_id = service.submit(spec)
        return job_id, job_id, job_progress_html(service.status(job_id), what=f"lm-eval task {spec.options.task}"), \
            gr.Timer(active=True)


def compare_task_result(job_id: str) -> dict:
    """The finished task comparison: {"task", "arms": [{name, model, template, metrics}],
    "verdicts": {"B vs A": {metric key: verdict}}, "settings"}; {} while it runs."""
    job = jobs.REGISTRY.get(job_id or "")
    res = getattr(job, "result", None)
    if res is None or not hasattr(res, "verdicts"):
        return {}
    d = res.to_dict()
    d.pop("records", None)
    d.get("settings", {}).pop("spec", None)
    return d


def result_markdown(d: dict) -> str:
    if not d:
        return EMPTY
    keys = sorted({k for a in d["arms"] for k, v in a["metrics"].items() if "," in k and isinstance(v, (int, float))})
    if not keys:
        # a single-input multiple-choice task on the template path reports lm-eval's bare names
        keys = [k for k in ("acc", "acc_norm") if all(k in a["metrics"] for a in d["arms"])]
    lines = [f"**lm-eval task {d['task']}**, {d['settings'].get('n', '?')} rows; baseline: "
             f"**{d['settings'].get('baseline')}**", ""]
    if keys:
        lines += ["| arm | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        for a in d["arms"]:
            lines.append(f"| {a['name']} | " + " | ".join(f"{a['metrics'].get(k, float('nan')):.4f}" for k in keys)
                         + " |")
    for pair, vs in d["verdicts"].items():
        lines += ["", f"**{pair}**", "", "| metric | test | Δ | 95% CI | p | verdict |", "|---|---|---|---|---|---|"]
        for key, v in vs.items():
            lines.append(f"| {key} | {v['test']} | {v['delta']:+.4f} | [{v['ci_low']:+.4f}, {v['ci_high']:+.4f}] | "
                         f"{v.get('p_value', float('nan')):.3g} | {v['words']} |")
    return "\n".join(lines)


def poll_task_compare(job_id: str):
    """UI glue: progress, the timer (stops when the job ends) and the result."""
    st = jobs.status(job_id) if job_id else None
    final = st is None or st["state"] in ("done", "failed", "cancelled", "unknown")
    html = job_progress_html(st, what="lm-eval task comparison")
    return html, gr.Timer(active=not final), result_markdown(compare_task_result(job_id)) if st and st["state"] == "done" \
        else gr.update()


def add(ctx, *, n_cols, models, codes, limit) -> None:
    """The task picker's widgets and events, inside the Compare tab (called by tab_compare.build)."""
    from workbench.app import lmeval_picker

    with gr.Accordion("On an lm-eval task's rows", open=False, elem_id="compare-task"):
        gr.Markdown("Compare the task's **own prompt** with the template columns, or the task on the model bar's "
                    "model and the *Models*, on the task's rows with its filters and metrics — the same run as "
                    "`workbench compare --task`.")
        with gr.Row(equal_height=True):
            query = gr.Textbox("", label="Search lm-eval tasks", placeholder="e.g. arc_easy, mmlu_anatomy, gsm8k",
                               scale=2, elem_id="compare-task-search")
            task = gr.Dropdown([], label="lm-eval task", allow_custom_value=True, scale=2, elem_id="compare-task-pick")
            trust = gr.Checkbox(False, label="Trust task code", scale=1,
                                info="run the task's !function code (installed lm-eval tasks only)")
        with gr.Row(equal_height=True):
            data = gr.Textbox("", label="Task data (optional)", scale=3, elem_id="compare-task-data",
                              info="a file or folder on the server (one <split>.jsonl per split); empty = the "
                                   "task's own dataset")
            fewshot = gr.Number(None, label="Few-shot", precision=0, minimum=0, min_width=90,
                                info="empty = the task's")
            with_cols = gr.Checkbox(True, label="with the columns' templates", scale=1,
                                    info="each scored on the task's rows against the task's prompt")
        with gr.Row():
            go = gr.Button("Compare on task", variant="primary", elem_id="compare-task-btn")
            cmd = gr.Button("Show command", scale=0, min_width=150)
        command = gr.Markdown("")
        progress = gr.HTML(job_progress_html(None, what="lm-eval task comparison"))
        result = gr.Markdown(EMPTY, elem_id="compare-task-result")
        job = gr.State("")
        job_box = gr.Textbox(visible=False)
        timer = gr.Timer(POLL_S, active=False)
        api_result, api_result_out = gr.Button(visible=False), gr.JSON(visible=False)
    query.change(lmeval_picker.search_tasks, query, task, api_name="compare_task_search", queue=False)
    # Enter searches again: a change event the page dropped (seen once under load in CI) costs one key
    query.submit(lmeval_picker.search_tasks, query, task, api_name="compare_task_search_enter",
                 api_visibility="private", queue=False)
    form = [task, trust, data, fewshot, limit, with_cols, ctx.model_name, models, n_cols] + list(codes)
    go.click(start_task_compare, form, [job, job_box, progress, timer], api_name="compare_task_start")
    cmd.click(task_command, form, command, api_name="compare_task_command")
    timer.tick(poll_task_compare, job, [progress, timer, result], api_name="compare_task_poll",
               api_visibility="private", show_progress="hidden")
    api_result.click(compare_task_result, job_box, api_result_out, api_name="compare_task_result", concurrency_limit=None)
