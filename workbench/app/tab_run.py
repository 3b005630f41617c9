"""Run tab: zero-/few-shot evaluation of the editor's template in a background job, with a
progress bar, ETA and cancel; then the metrics, per-class P/R/F1 bars, the confusion matrix
and the predictions (filterable to the errors, with per-choice scores; for generation
templates the output, the extracted answer and whether it matched).

The job id lives in the browser's localStorage, so reloading the page reconnects to a
running evaluation; the finished result is stored in the run registry and opened by run id.
"""
from __future__ import annotations


import gradio as gr

from workbench.app.common import (Ctx, UIState, command_markdown, job_progress_html, result_views, run_payload,
                                  spec_command, state_dataset, template_source, user_errors)
from workbench.app.judge_panel import judge_kwargs
from workbench.jobs import service
from workbench.core.config import METHODS, CALIBRATIONS, SPLITS   # the one source of the choice lists

POLL_S = 1.0


def eval_spec(state: UIState, template_yaml: str, model: str, shots: float, seed: float, method: str,
              calibration: str, split: str, limit: float):
    """The RunSpec of the Run tab's form: the editor's template on this session's dataset, the
    model bar's model and adapter. `workbench eval` builds the same spec from the same choices."""
    from workbench.core.spec import build_spec

    t, path = template_source(state, template_yaml)
    ds = state_dataset(state)
    return build_spec("eval", templates=[(t, path)], data=ds, model=service.current_model_ref(model),
                      eval={"shots": _int(shots), "seed": _int(seed), "method": method or None,
                            "calibration": calibration or None, "split": split or None,
                            "split_seed": int(getattr(state, "split_seed", 0) or 0),
                            "limit": int(limit) if limit else None},
                      **(judge_kwargs(state) if t.task == "generation" else {})), t, ds


def _int(v):
    return None if v is None or v == "" else int(v)


def eval_command(state: UIState, template_yaml: str, model: str, shots: float, seed: float, method: str,
                 calibration: str, split: str, limit: float) -> str:
    """The `workbench eval ...` command that runs this very evaluation (markdown)."""
    with user_errors("Showing the command"):
        spec, _, _ = eval_spec(state, template_yaml, model, shots, seed, method, calibration, split, limit)
        return command_markdown(spec_command(spec))


def run_eval(state: UIState, template_yaml: str, model: str, shots: float, seed: float, method: str,
             calibration: str, split: str, limit: float):
    """Start an evaluation of the editor's template on this session's dataset. Returns
    (job id, progress HTML, poll timer) (the UI also keeps the job id in localStorage). Poll with `run_status(job_id)`; when its state is
    "done", `result_id` is the run id to pass to `open_run`. `limit` 0 = the whole split."""
    with user_errors("Starting the evaluation"):
        spec, t, ds = eval_spec(state, template_yaml, model, shots, seed, method, calibration, split, limit)
        errors = [p for p in t.validate(columns=[str(c) for c in ds.df.columns]) if p.severity == "error"]
        if errors:
            raise gr.Error("The template has errors: " + "; ".join(str(p) for p in errors[:3])
                           + ". Fix them in the Templates tab.", title="Template", print_exception=False)
        job_id = service.submit(spec, dataset=ds)
        return job_id, job_id, progress_html(service.status(job_id)), gr.Timer(active=True)


def run_status(job_id: str) -> dict:
    """{"state": queued|running|done|failed|cancelled|unknown, "done", "total", "eta_s",
    "message", "error", "result_id", "elapsed_s"} of a job."""
    return service.status(job_id or "")


def cancel_run(job_id: str) -> str:
    """Ask the running evaluation to stop (it stops at its next batch). Returns progress HTML."""
    if not job_id:
        return progress_html(None)
    service.cancel(job_id)
    return progress_html(service.status(job_id))


def progress_html(st: dict | None) -> str:
    meta = (st or {}).get("meta") or {}
    what = f"{meta.get('template', '')} on {meta.get('data', '')}" if meta else ""
    return job_progress_html(st, what=what, idle="No evaluation running.")


def _views(state: UIState, run_id: str | None, errors_only: bool):
    return result_views(run_payload(run_id) if run_id else None, errors_only)


def poll_run(state: UIState, job_id: str, errors_only: bool):
    """Timer tick: progress, and the results once the job has finished.
    Returns (state, progress HTML, timer, metrics, per-class plot, confusion plot, predictions)."""
    state = state or UIState()
    st = service.status(job_id or "")
    keep = tuple(gr.skip() for _ in range(4))
    if st["state"] in ("queued", "running"):
        return (state, progress_html(st), gr.Timer(active=True)) + keep
    if st["state"] == "done" and st.get("result_id") and st["result_id"] != state.last_run_id:
        state.last_run_id = st["result_id"]
        with user_errors("Opening the results"):
            return (state, progress_html(st), gr.Timer(active=False)) + _views(state, st["result_id"], errors_only)
    if st["state"] in ("failed", "cancelled"):
        if st.get("error"):
            gr.Warning(st["error"], title="Evaluation failed")
        # The failed run has no results; an earlier run's must not look like they are its.
        if state.last_run_id is not None:
            state.last_run_id = None
            return (state, progress_html(st), gr.Timer(active=False)) + cleared_views(
                f"*The evaluation {st['state']}; no results.*")
    return (state, progress_html(st if st["state"] != "unknown" else None), gr.Timer(active=False)) + keep


def cleared_views(message: str = "*Running… the results appear here when the evaluation ends.*"):
    """(metrics, per-class plot, confusion plot, predictions) with nothing from an earlier run."""
    from workbench.app.common import empty_figure, predictions_frame

    return (message, empty_figure("running…"), empty_figure("running…"), predictions_frame({"records": []}))


def reconnect(state: UIState, job_id: str, errors_only: bool):
    """Page load: pick up the job stored in localStorage (running: keep polling; done: show it)."""
    return poll_run(state, job_id, errors_only)


def filter_predictions(state: UIState, errors_only: bool):
    """The predictions table of the run shown in the Run tab, optionally only the errors."""
    from workbench.app.common import predictions_frame

    with user_errors("Filtering"):
        if not state or not state.last_run_id:
            return predictions_frame({"records": []})
        return predictions_frame(run_payload(state.last_run_id), errors_only)


def build(ctx: Ctx) -> None:
    from workbench.app import badge

    with gr.Tab("Run", id="run", elem_id="tab-run") as tab:
        badge.add(ctx, "run")
        with gr.Row(equal_height=True):
            shots = gr.Number(0, label="Shots", precision=0, minimum=0, min_width=90,
                              info="0 = zero-shot")
            seed = gr.Number(0, label="Seed", precision=0, min_width=90, info="demo sampling")
            method = gr.Dropdown(METHODS, value="acc", label="Scoring", min_width=120,
                                 info="acc_norm divides by length")
            calibration = gr.Dropdown(CALIBRATIONS, value="none", label="Calibration", min_width=120,
                                      info="contextual or PMI")
            split = gr.Dropdown(SPLITS, value="test", label="Split", min_width=100, info="70/10/20")
            limit = gr.Number(100, label="Limit", precision=0, minimum=0, min_width=90, info="0 = whole split")
        with gr.Row():
            run_btn = gr.Button("▶ Run evaluation", variant="primary", elem_id="run-btn")
            cancel_btn = gr.Button("■ Cancel", variant="stop", elem_id="cancel-btn")
            cmd_btn = gr.Button("Show command", variant="secondary", elem_id="run-command-btn", scale=0, min_width=150)
        command = gr.Markdown("", elem_id="run-command")
        progress = gr.HTML(progress_html(None), elem_id="run-progress")
        metrics = gr.Markdown("*Run an evaluation to see its results here.*", elem_id="run-metrics")
        with gr.Row():
            bar = gr.Plot(label="Per-class precision / recall / F1", elem_id="run-per-class")
            conf = gr.Plot(label="Confusion matrix", elem_id="run-confusion")
        errors_only = gr.Checkbox(False, label="Show only the errors")
        table = gr.Dataframe(headers=["row", "gold", "pred", "correct"], label="Predictions", interactive=False, wrap=True, max_height=480,
                             max_chars=200, elem_id="run-predictions")
        timer = gr.Timer(POLL_S, active=False)
        from workbench.app import matrix

        mblock = matrix.add(ctx, "run", metrics, [ctx.state], matrix.run_spec)

    with tab:
        job_box = gr.Textbox(visible=False)   # the job id, as a plain API output/input
        api_status, api_cancel = gr.Button(visible=False), gr.Button(visible=False)
        api_status_out, api_cancel_out = gr.JSON(visible=False), gr.HTML(visible=False)
    form = [ctx.state, ctx.editor, ctx.model_name, shots, seed, method, calibration, split, limit]
    started = run_btn.click(run_eval, form, [ctx.job, job_box, progress, timer], api_name="run_eval")
    cmd_btn.click(eval_command, form, command, api_name="eval_command")
    # A new job clears the previous run's results, so nothing stale sits next to "running".
    started.success(cleared_views, None, [metrics, bar, conf, table], api_name="run_clear", api_visibility="private",
                    queue=False)
    poll_out = [ctx.state, progress, timer, metrics, bar, conf, table]
    from workbench.app.model_bar import model_status

    tick = timer.tick(poll_run, [ctx.state, ctx.job, errors_only], poll_out, api_name="poll_run",
                      api_visibility="private", show_progress="hidden", concurrency_limit=None)
    matrix.follow(mblock, tick)
    tick.then(
        model_status, None, ctx.model_info, api_name="model_status_on_tick", api_visibility="private",
        show_progress="hidden", concurrency_limit=None)
    cancel_btn.click(cancel_run, ctx.job, progress, api_name="cancel_run_ui", api_visibility="private",
                     concurrency_limit=None)
    # Public, explicit-input versions for scripts (gradio_client cannot read localStorage).
    api_status.click(run_status, job_box, api_status_out, api_name="run_status", concurrency_limit=None)
    api_cancel.click(cancel_run, job_box, api_cancel_out, api_name="cancel_run", concurrency_limit=None)
    errors_only.change(filter_predictions, [ctx.state, errors_only], table, api_name="filter_predictions")
    matrix.follow(mblock, ctx.demo.load(reconnect, [ctx.state, ctx.job, errors_only], poll_out, api_name="reconnect",
                                        api_visibility="private"))
    ctx.events["run_shown"] = (poll_out, errors_only)
