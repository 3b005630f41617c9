"""Runs tab: the history of evaluations from the SQLite run registry (it survives restarts).
Open an old run to see its results again, or load its template back into the editor."""
from __future__ import annotations

import gradio as gr

from workbench.app.common import Ctx, UIState, result_views, run_payload, user_errors

COLUMNS = ["id", "created", "name", "model", "adapter", "data", "n", "accuracy", "macro_f1", "exact_match",
           "template", "seed"]


def list_runs(search: str = ""):
    """Eval runs, newest first, optionally filtered by a search string (id, name, model, data,
    template hash). Returns the table (first column: run id)."""
    import pandas as pd

    from workbench.storage.runs import RunRegistry

    with user_errors("Listing runs"):
        recs = RunRegistry().list(kind="eval", search=(search or "").strip() or None)
        rows = []
        for r in recs:
            m = r.metrics or {}
            rows.append({"id": r.id, "created": r.created_at[:19].replace("T", " "), "name": r.name,
                         "model": (r.model or "").split("/")[-1][:40], "adapter": r.adapter or "",
                         "data": r.data_name or "", "n": m.get("n"),
                         "accuracy": _r(m.get("accuracy")), "macro_f1": _r(m.get("macro_f1")),
                         "exact_match": _r(m.get("exact_match")), "template": (r.template_hash or "")[:10],
                         "seed": r.seed})
        return pd.DataFrame(rows, columns=COLUMNS)


def run_choices(table, current: str | None):
    """UI glue: the run picker offers the listed runs (keeps the current pick if listed)."""
    ids = [] if table is None or len(table) == 0 else [str(x) for x in table["id"]]
    return gr.update(choices=ids, value=current if current in ids else (ids[0] if ids else None))


def _r(v):
    return round(float(v), 4) if isinstance(v, (int, float)) else None


def open_run(run_id: str, errors_only: bool = False):
    """A stored run's results: (metrics markdown, per-class plot, confusion plot, predictions
    table, provenance: template hash and YAML, model, adapter, data fingerprint, settings, time)."""
    from workbench.storage.runs import RunRegistry

    with user_errors("Opening the run"):
        if not run_id:
            raise gr.Error("Pick a run first.", print_exception=False)
        rec = RunRegistry().get(run_id)
        payload = run_payload(run_id)
        md, bar, conf, table = result_views(payload, errors_only)
        prov = {"id": rec.id, "created_at": rec.created_at, "template_hash": rec.template_hash,
                "model": rec.model, "adapter": rec.adapter, "data_fingerprint": rec.data_fingerprint,
                "data": rec.data_name, "seed": rec.seed, "settings": rec.settings, "metrics": rec.metrics,
                "template_yaml": rec.template_yaml}
        return md, bar, conf, table, prov


def select_run(table, evt: gr.SelectData):
    """Clicking a row of the runs table picks that run."""
    try:
        return table.iloc[evt.index[0]]["id"]
    except Exception:  # noqa: BLE001 - a click on an empty table
        return gr.skip()


def run_template(state: UIState, run_id: str, current_yaml: str, discard: bool):
    """Load a run's template into the editor (asks before replacing unsaved edits).
    Returns (state, editor YAML, edit status)."""
    from workbench.storage.runs import RunRegistry
    from workbench.app.tab_templates import _edit_status, _guard

    state = state or UIState()
    with user_errors("Loading the run's template"):
        if not run_id:
            raise gr.Error("Pick a run first.", print_exception=False)
        rec = RunRegistry().get(run_id)
        if not rec.template_yaml:
            raise gr.Error(f"Run {run_id} has no stored template.", print_exception=False)
        if not _guard(state, current_yaml, discard):
            return state, current_yaml, _edit_status(state, current_yaml)
        # Not saved under a name yet: counts as unsaved edits until "Save as".
        state.saved_yaml, state.template_path = "", None
        gr.Info(f"Loaded the template of run {run_id} into the Templates tab.")
        return state, rec.template_yaml, _edit_status(state, rec.template_yaml)


def build(ctx: Ctx) -> None:
    with gr.Tab("Runs", id="runs", elem_id="tab-runs") as tab:
        with gr.Row(equal_height=True):
            search = gr.Textbox(label="Search", placeholder="template name, model, dataset, run id…", max_lines=1,
                                scale=3)
            refresh = gr.Button("↻ Refresh", scale=0, min_width=110)
        table = gr.Dataframe(headers=COLUMNS, label="Evaluation runs (newest first) · click a row to pick it",
                             interactive=False, max_height=300, elem_id="runs-table")
        with gr.Row(equal_height=True):
            run_id = gr.Dropdown([], label="Run", scale=3, allow_custom_value=True)
            open_btn = gr.Button("Open run", variant="primary", scale=1)
            tmpl_btn = gr.Button("Load its template into the editor", scale=1)
            discard = gr.Checkbox(False, label="Discard my unsaved edits", scale=1)
        metrics = gr.Markdown("", elem_id="runs-metrics")
        with gr.Row():
            bar = gr.Plot(label="Per-class precision / recall / F1")
            conf = gr.Plot(label="Confusion matrix")
        errors_only = gr.Checkbox(False, label="Show only the errors")
        preds = gr.Dataframe(label="Predictions", interactive=False, wrap=True, max_height=420, max_chars=200)
        with gr.Accordion("Provenance (template, model, data fingerprint, settings)", open=False):
            prov = gr.JSON(label="Run record")

    for i, ev in enumerate((refresh.click, search.submit, tab.select)):
        ev(list_runs, search, table, api_name="list_runs" if i == 0 else f"list_runs_{i}",
           api_visibility="public" if i == 0 else "private").then(
            run_choices, [table, run_id], run_id, api_name=f"run_choices_{i}", api_visibility="private")
    table.select(select_run, table, run_id, api_name="select_run", api_visibility="private")
    open_btn.click(open_run, [run_id, errors_only], [metrics, bar, conf, preds, prov], api_name="open_run")
    errors_only.change(open_run, [run_id, errors_only], [metrics, bar, conf, preds, prov],
                       api_name="open_run_filtered", api_visibility="private")
    fn, field_outputs = ctx.events["template_fields"]
    tmpl_btn.click(run_template, [ctx.state, run_id, ctx.editor, discard], [ctx.state, ctx.editor, ctx.edit_status],
                   api_name="run_template").then(fn, ctx.editor, field_outputs, api_name="template_fields_from_run",
                                                 api_visibility="private")
