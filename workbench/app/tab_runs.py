"""Runs tab: the history of evaluations from the SQLite run registry (it survives restarts).
Open an old run to see its results again, or load its template back into the editor."""
from __future__ import annotations

import gradio as gr

from workbench.app.common import Ctx, UIState, result_views, run_payload, user_errors

COLUMNS = ["kind", "headline", "name", "model", "shots", "data", "n", "created", "id"]
KINDS = ["all kinds", "eval", "compare", "train", "export"]


def _headline(r) -> str:
    """The one number that says how it went, first in the row."""
    m = r.metrics or {}

    def pct(v):
        return f"{float(v) * 100:.1f}%" if isinstance(v, (int, float)) else None
    if r.kind == "eval":
        if m.get("accuracy") is not None:
            return f"acc {pct(m['accuracy'])}" + (f" · F1 {pct(m['macro_f1'])}" if m.get("macro_f1") is not None else "")
        if m.get("exact_match") is not None:
            return f"EM {pct(m['exact_match'])}"
    if r.kind == "compare":
        if m.get("type") not in (None, "comparison"):
            return str(m.get("type")).replace("_", " ")
        best = m.get("winner") or m.get("best")
        acc = pct(m.get("best_accuracy"))
        return (f"winner {best}" if m.get("winner") else f"best {best}") + (f" {acc}" if acc else "")
    if r.kind == "train":
        a, b = pct(m.get("adapter_accuracy")), pct(m.get("base_accuracy"))
        return (f"adapter {a}" if a else r.status) + (f" (base {b})" if b else "")
    if r.kind == "search":   # issue 28, item 10: not just "done"
        if m.get("test_winner_accuracy") is not None:
            return (f"winner {pct(m['test_winner_accuracy'])} test (start {pct(m.get('test_start_accuracy'))})"
                    + (" · significant" if m.get("significant") else ""))
        if m.get("best_dev_accuracy") is not None:
            return f"best {pct(m['best_dev_accuracy'])} dev · {r.status}"
    if r.kind == "export":
        a = m.get("accuracy")
        a = a.get("value") if isinstance(a, dict) else a
        return f"acc {pct(a)}" if pct(a) else r.status
    return r.status


def _short(text: str, n: int = 24) -> str:
    """A model name short enough that data and time stay on screen (issue 28, item 10)."""
    return text if len(text) <= n else text[: n - 1] + "…"


def _shots(r):
    s = r.settings or {}
    for key in ("shots",):
        if key in s:
            return s[key]
        if isinstance(s.get("eval"), dict) and key in s["eval"]:
            return s["eval"][key]
    if r.kind == "train" and s.get("shots_per_class"):
        return f"{s['shots_per_class']}/class"
    return None


def list_runs(search: str = "", kind: str = "all kinds"):
    """Every run in the registry, newest first: evals, comparisons, trainings and exports in
    one table (kind, headline metric, name, model, shots, data, n, created, id), filtered
    by `kind` ("all kinds", "eval", "compare", "train", "export") and a search string."""
    import pandas as pd

    from workbench.storage.runs import RunRegistry

    with user_errors("Listing runs"):
        k = None if kind in (None, "", "all kinds", "all") else kind
        if k in (None, "train"):
            from workbench.jobs.run_folder import sweep_interrupted

            sweep_interrupted()   # killed training runs appear as interrupted at once
        recs = RunRegistry().list(kind=k, search=(search or "").strip() or None)
        rows = []
        for r in recs:
            m = r.metrics or {}
            rows.append({"kind": r.kind, "headline": _headline(r), "name": r.name,
                         "model": _short((r.model or "").rstrip("/").split("/")[-1]) + (" + adapter" if r.adapter else ""),
                         "shots": _shots(r), "data": r.data_name or "", "n": m.get("n"),
                         "created": r.created_at[:16].replace("T", " "), "id": r.id})
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
        if rec.kind != "eval":
            return _other_kind(rec)
        payload = run_payload(run_id)
        md, bar, conf, table = result_views(payload, errors_only)
        prov = {"id": rec.id, "created_at": rec.created_at, "template_hash": rec.template_hash,
                "model": rec.model, "adapter": rec.adapter, "data_fingerprint": rec.data_fingerprint,
                "data": rec.data_name, "seed": rec.seed, "settings": rec.settings, "metrics": rec.metrics,
                "template_yaml": rec.template_yaml}
        return md, bar, conf, table, prov


def _other_kind(rec):
    """A comparison, training or export run: what it was and where to open it in full."""
    from workbench.app.common import empty_figure, predictions_frame

    where = {"compare": "the Compare tab (Open a stored comparison)", "train": "the Train tab (Past training runs)",
             "export": f"its bundle folder `{rec.payload_path}`"}.get(rec.kind, "its tab")
    md = (f"**{rec.kind}** run `{rec.id}` · {rec.name} · {_headline(rec)}  \nmodel `{rec.model or '?'}` · data "
          f"{rec.data_name or '?'} · created {rec.created_at[:19].replace('T', ' ')}  \nOpen it in full in {where}.")
    prov = {"id": rec.id, "kind": rec.kind, "created_at": rec.created_at, "model": rec.model, "adapter": rec.adapter,
            "data": rec.data_name, "data_fingerprint": rec.data_fingerprint, "settings": rec.settings,
            "metrics": rec.metrics, "payload_path": rec.payload_path}
    fig = empty_figure(f"a {rec.kind} run: see {where.split(' (')[0]}")
    return md, fig, fig, predictions_frame({"records": []}), prov


def one_run(run_id: str) -> list:
    """UI glue: the matrix shows the opened run (evals only)."""
    from workbench.storage.runs import RunRegistry

    try:
        return [run_id] if run_id and RunRegistry().get(run_id).kind == "eval" else []
    except Exception:  # noqa: BLE001
        return []


def select_run(table, evt: gr.SelectData):
    """Clicking a row of the runs table picks that run."""
    try:
        return table.iloc[evt.index[0]]["id"]
    except Exception:  # noqa: BLE001 - a click on an empty table
        return gr.skip()


def diff_runs(run_ids: list[str] | None):
    """Two or more stored evals of the same rows as a paired comparison (exact McNemar,
    paired bootstrap, Holm): (verdict markdown, the ids shown in the matrix)."""
    from workbench.errors import ConfigError
    from workbench.jobs.compare import compare_results
    from workbench.storage.runs import RunRegistry
    from workbench.app.compare_render import verdict_markdown

    with user_errors("Comparing the runs"):
        ids = [str(x) for x in (run_ids or []) if str(x).strip()]
        if len(ids) < 2:
            raise ConfigError("Pick at least two eval runs to compare.", hint="Tick them in “Runs to diff”.")
        reg = RunRegistry()
        results = []
        for rid in ids:
            rec = reg.get(rid)
            if rec.kind != "eval":
                raise ConfigError(f"Run {rid} is a {rec.kind} run; only evals can be diffed.",
                                  hint="Filter the table to kind 'eval'.")
            p = run_payload(rid)
            model = (rec.model or "").split("/")[-1]
            results.append((f"{rec.name} · {model}" if len({reg.get(i).model for i in ids}) > 1 else rec.name, p))
        res = compare_results(results)
        res.run_id = "(not stored: " + " vs ".join(ids) + ")"
        return verdict_markdown(res), ids


def eval_ids(table) -> gr.update:
    """UI glue: the diff picker offers the listed evals."""
    if table is None or len(table) == 0:
        return gr.update(choices=[])
    ev = table[table["kind"] == "eval"]
    return gr.update(choices=[(f"{r['name']} · {r['headline']} · {r['id']}", r["id"]) for _, r in ev.iterrows()])


def run_template(state: UIState, run_id: str, current_yaml: str, discard: bool):
    """Load a run's template into the editor (asks before replacing unsaved edits).
    Returns (state, editor YAML, edit status)."""
    from workbench.storage.runs import RunRegistry
    from workbench.app.editor_state import edit_status as _edit_status, guard as _guard

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
            kind = gr.Dropdown(KINDS, value=KINDS[0], label="Kind", scale=1, min_width=140, elem_id="runs-kind")
            search = gr.Textbox(label="Search", placeholder="template name, model, dataset, run id…", max_lines=1,
                                scale=3)
            refresh = gr.Button("↻ Refresh", scale=0, min_width=110)
        table = gr.Dataframe(headers=COLUMNS, label="Every run: evals, comparisons, trainings, exports (newest first) · "
                             "click a row to pick it", interactive=False, max_height=300, elem_id="runs-table",
                             elem_classes=["wb-nowrap"])
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
        preds = gr.Dataframe(headers=["row", "gold", "pred", "correct"], label="Predictions", interactive=False, wrap=True, max_height=420, max_chars=200)
        with gr.Accordion("Provenance (template, model, data fingerprint, settings)", open=False):
            prov = gr.JSON(label="Run record")
        with gr.Row(equal_height=True):
            diff_ids = gr.Dropdown([], multiselect=True, label="Runs to diff (evals of the same rows)", scale=4,
                                   allow_custom_value=True,
                                   elem_id="runs-diff-ids")
            diff_btn = gr.Button("Compare these runs", scale=1, elem_id="runs-diff-btn")
        diff_md = gr.Markdown("", elem_id="runs-diff")
        shown_ids = gr.State([])
        from workbench.app import matrix

        matrix.add(ctx, "runs", shown_ids, [shown_ids], matrix.runs_spec, open_=True)
        with gr.Row(visible=False):   # for scripts: the matrix of any runs / comparison as JSON
            api_spec, api_matrix_btn, api_matrix_out = gr.Textbox(), gr.Button(), gr.JSON()
    api_matrix_btn.click(matrix.matrix_json, api_spec, api_matrix_out, api_name="results_matrix")

    for i, ev in enumerate((refresh.click, search.submit, tab.select, kind.input)):
        ev(list_runs, [search, kind], table, api_name="list_runs" if i == 0 else f"list_runs_{i}",
           api_visibility="public" if i == 0 else "private").then(
            run_choices, [table, run_id], run_id, api_name=f"run_choices_{i}", api_visibility="private").then(
            eval_ids, table, diff_ids, api_name=f"runs_diff_choices_{i}", api_visibility="private")
    diff_btn.click(diff_runs, diff_ids, [diff_md, shown_ids], api_name="runs_diff")
    table.select(select_run, table, run_id, api_name="select_run", api_visibility="private")
    open_btn.click(open_run, [run_id, errors_only], [metrics, bar, conf, preds, prov], api_name="open_run").success(
        one_run, run_id, shown_ids, api_name="runs_matrix_open", api_visibility="private")
    errors_only.change(open_run, [run_id, errors_only], [metrics, bar, conf, preds, prov],
                       api_name="open_run_filtered", api_visibility="private")
    fn, field_outputs = ctx.events["template_fields"]
    tmpl_btn.click(run_template, [ctx.state, run_id, ctx.editor, discard], [ctx.state, ctx.editor, ctx.edit_status],
                   api_name="run_template").then(fn, ctx.editor, field_outputs, api_name="template_fields_from_run",
                                                 api_visibility="private")
