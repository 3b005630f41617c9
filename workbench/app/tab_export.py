"""Export tab: write a bundle (template, adapter, metrics with CIs, model card, lm-eval and
PromptSource files, manifest) and offer it as a .zip download; import a bundle or an lm-eval /
PromptSource YAML back into the template library.

The template comes from the editor, the latest marked comparison winner, or a LoRA training
run (its adapter, template and test results). Exporting measures the metrics, which runs the
model, so it is a background job (`workbench.jobs.queue`) polled by a timer, like the Run tab. All
logic lives in `workbench.jobs.export`.
"""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from workbench.app.common import Ctx, UIState, command_markdown, spec_command, state_dataset, template_source, user_errors
from workbench.jobs import queue as jobs
from workbench.jobs import service

SOURCES = ["editor", "winner", "training run"]
POLL_S = 1.0


def train_runs() -> list[tuple[str, str]]:
    """(label, run folder) of finished training runs in the registry, newest first."""
    from workbench.storage.runs import RunRegistry

    out = []
    for r in RunRegistry().list(kind="train", limit=100):
        if r.payload_path:
            acc = (r.metrics or {}).get("adapter_accuracy")
            out.append((f"{r.name} · {r.created_at[:16].replace('T', ' ')}" + (f" · acc {acc:.3f}" if acc else ""),
                        r.payload_path))
    return out


def refresh_train_runs():
    with user_errors("Listing training runs"):
        return gr.update(choices=train_runs())


def export_spec(state: UIState, model: str, template_yaml: str, source: str, train_run: str, name: str,
                merge: bool, shots: float, seed: float, method: str, split: str, limit: float,
                overwrite: bool = False, include_rows: bool | None = None):
    """The RunSpec of the Export form (`workbench export` builds the same one). `source`:
    "editor", "winner" (the latest marked comparison winner) or "training run". `overwrite`
    replaces a bundle of the same name (off unless ticked); `include_rows` writes the raw test
    rows (None: only for the built-in demo data, export_plan.default_include_rows)."""
    from workbench.app.export_plan import default_include_rows

    from workbench import paths
    from workbench.core.spec import build_spec
    from workbench.errors import ConfigError
    from workbench.jobs.export import sanitize_name

    source = source or "editor"
    if source not in SOURCES:
        raise ConfigError(f"Unknown source {source!r}.", hint=f"Use one of: {', '.join(SOURCES)}.")
    ds = state_dataset(state)
    if include_rows is None:
        include_rows = default_include_rows(getattr(state, "data_spec", None))
    opts: dict = {"merge": bool(merge)}
    if overwrite:   # only when the form says so (issue 28, item 9)
        opts["overwrite"] = True
    if not include_rows:   # raw rows are opt-in for one's own data (issue 28, item 7)
        opts["no_data"] = True
    if source == "training run":
        if not train_run:
            raise ConfigError("No training run is selected.", hint="Pick one in the list (↻ refreshes it).")
        paths.check_server_path(train_run, "training run", roots=[paths.train_dir()])
    from workbench.jobs.export_source import export_source

    templates, picked = export_source(template_source(state, template_yaml) if source == "editor" else None,
                                      train_run=train_run if source == "training run" else None,
                                      winner=True if source == "winner" else None)
    opts.update(picked)
    base_name = (name or "").strip() or (templates[0][0].name if isinstance(templates[0], tuple) else templates[0].name)
    opts["out"] = str(paths.exports_dir() / sanitize_name(base_name))
    choices = {"shots": None if shots is None else int(shots), "seed": None if seed is None else int(seed),
               "method": method or None, "split": split or None,
               "split_seed": int(getattr(state, "split_seed", 0) or 0), "limit": int(limit) if limit else None}
    spec = build_spec("export", templates=templates, data=ds, model=service.current_model_ref(model), eval=choices,
                      options=opts)
    return spec, ds


def export_command(state: UIState, model: str, template_yaml: str, source: str, train_run: str, name: str,
                   merge: bool, shots: float, seed: float, method: str, split: str, limit: float,
                   overwrite: bool = False, include_rows: bool | None = None) -> str:
    """The `workbench export ...` command that writes this very bundle (markdown)."""
    with user_errors("Showing the command"):
        spec, _ = export_spec(state, model, template_yaml, source, train_run, name, merge, shots, seed, method,
                              split, limit, overwrite, include_rows)
        return command_markdown(spec_command(spec))


def start_export(state: UIState, model: str, template_yaml: str, source: str, train_run: str, name: str,
                 merge: bool, shots: float, seed: float, method: str, split: str, limit: float,
                 overwrite: bool = False, include_rows: bool | None = None):
    """Start exporting a bundle. `source`: "editor" (the YAML passed), "winner" (the latest
    marked comparison winner) or "training run" (`train_run` is its folder). `limit` 0 = the
    whole split. Returns (job id, status text, poll timer); poll `export_status(job_id)` and,
    when done, `export_open(job_id)` for the card and the zip."""
    with user_errors("Starting the export"):
        spec, ds = export_spec(state, model, template_yaml, source, train_run, name, merge, shots, seed, method,
                               split, limit, overwrite, include_rows)
        job_id = service.submit(spec, dataset=ds, meta={"name": Path(spec.options.out).name})
        msg = f"Exporting **{Path(spec.options.out).name}** …"
        if spec.options.train_run:   # say it when the adapter did not beat its base (issue 28, item 6)
            from workbench.app.export_plan import adapter_verdict, verdict_markdown

            v = adapter_verdict(spec.options.train_run)
            if v and not v["better"]:
                msg += "\n\n" + verdict_markdown(v)
        return job_id, msg, gr.Timer(active=True)


def export_contents(state: UIState, source: str, train_run: str, merge: bool, include_rows: bool, shots: float) -> str:
    """Markdown: what the bundle of this form will hold (files, raw rows or not, and whether a
    training run's adapter beat its base), shown before exporting."""
    from workbench.app.export_plan import bundle_contents

    try:
        ds = state_dataset(state)
    except Exception:  # noqa: BLE001 - no data yet
        ds = None
    return bundle_contents(source or "editor", train_run, bool(merge), bool(include_rows), shots,
                           ds.name if ds is not None else None, _note_count(ds))


def _note_count(ds) -> int:
    """Rows of the loaded data with a tag or comment (they go into the bundle's notes.json)."""
    from workbench.storage.runs import RunRegistry

    if ds is None:
        return 0
    try:
        return len(RunRegistry().notes(ds.fingerprint()))
    except Exception:  # noqa: BLE001 - as in the export itself: notes are a courtesy
        return 0


def rows_default(state: UIState) -> bool:
    """UI glue: the raw-rows box's default for the loaded data."""
    from workbench.app.export_plan import default_include_rows

    return default_include_rows(getattr(state, "data_spec", None))


def export_status(job_id: str) -> dict:
    """{"state", "done", "total", "message", "error", "result_id" (the bundle folder), ...}."""
    return jobs.status(job_id or "")


def export_open(job_id: str):
    """A finished export: (summary markdown, the bundle as a .zip to download, model card)."""
    import json
    import tempfile
    from pathlib import Path

    from workbench.errors import ConfigError
    from workbench.jobs.export import zip_bundle

    with user_errors("Opening the export"):
        st = jobs.status(job_id or "")
        if st["state"] != "done" or not st.get("result_id"):
            raise ConfigError(f"Export job {job_id!r} is {st['state']}" + (f": {st['error']}" if st.get("error") else "."),
                              hint="Wait until it is done, or start it again.")
        path = Path(st["result_id"])
        # Gradio serves files only from its temp/cache folders, so the zip goes to the temp dir.
        z = zip_bundle(path, Path(tempfile.mkdtemp(prefix="wb-export-")) / f"{path.name}.zip")
        m = json.loads((path / "metrics.json").read_text())["test"]
        man = json.loads((path / "manifest.json").read_text())
        a, f = m["accuracy"], m["macro_f1"]
        lm = man["lm_eval"]
        md = (f"**Bundle `{path}`** · {len(man['files']) + 1} files\n\n"
              f"accuracy **{a['value']:.3f}** [{a['ci_low']:.3f}, {a['ci_high']:.3f}] · macro-F1 **{f['value']:.3f}**"
              f" · {m['n']} test examples · "
              + ("adapter merged into `model/`" if man["merged"] else "adapter in `adapter/`" if man["adapter"]
                 else "no adapter")
              + "\n\n" + lm_eval_line(lm))
        return md, str(z), card_markdown((path / "README.md").read_text())


def lm_eval_line(lm: dict) -> str:
    """The manifest's lm-eval entry in words. No task is written when the bundle carries no raw
    rows (the export then says why in its notes), so there is no task name to show."""
    notes = "; ".join(lm.get("notes") or [])
    if not lm.get("task"):
        return "no lm-eval task in this bundle" + (f": {notes}" if notes else "")
    return (f"lm-eval task `{lm['task']}`: "
            + ("reproduces these predictions" if lm.get("reproduces_predictions") else notes or "not checked"))


def card_markdown(card: str) -> str:
    """The model card for the page: its YAML front matter (Hub metadata) as a YAML block, not
    run together as prose by the Markdown renderer."""
    if card.startswith("---\n"):
        end = card.find("\n---", 4)
        if end > 0:
            front, rest = card[4:end], card[end + 4:].lstrip("\n")
            return f"**Metadata (YAML front matter)**\n\n```yaml\n{front}\n```\n\n{rest}"
    return card


def poll_export(job_id: str):
    """Timer tick: progress text; the results once the job is done."""
    st = jobs.status(job_id or "")
    if st["state"] in ("queued", "running"):
        done, total = st.get("done") or 0, st.get("total") or 0
        msg = f"{st['state']} · {st.get('message') or ''}" + (f" · {done}/{total}" if total else "")
        return (msg, gr.Timer(active=True), gr.skip(), gr.skip(), gr.skip())
    if st["state"] == "done":
        return ("done",) + (gr.Timer(active=False),) + export_open(job_id)
    if st.get("error"):
        gr.Warning(st["error"], title="Export failed")
    return (st["state"], gr.Timer(active=False), gr.skip(), gr.skip(), gr.skip())


def import_file(path: str, overwrite: bool = False) -> str:
    """Import an uploaded bundle .zip, lm-eval task YAML or PromptSource YAML into the user
    template folder; returns what was written."""
    from workbench.errors import ConfigError
    from workbench.jobs.export import import_path

    with user_errors("Importing"):
        if not path:
            raise ConfigError("No file was uploaded.", hint="Drop a bundle .zip or a template YAML first.")
        from workbench import paths
        paths.check_server_path(path, "file")
        written = import_path(path, overwrite=bool(overwrite))
        return "Imported into your templates:\n" + "\n".join(f"- `{p}`" for p in written)


def build(ctx: Ctx) -> None:
    with gr.Tab("Export", id="export", elem_id="tab-export") as tab:
        gr.Markdown("Export a template with its evidence as a bundle: `template.yaml`, the adapter, `metrics.json` "
                    "with confidence intervals, a model card, `lm_eval_task.yaml`, `promptsource.yaml` and a "
                    "checksummed `manifest.json`. Use it with `workbench predict --bundle …` or `load_bundle(…)`.")
        from workbench.app import badge

        export_badge = gr.HTML(badge.template_badge(""), elem_id="export-template-badge")
        with gr.Row(equal_height=True):
            source = gr.Radio(SOURCES, value="editor", label="What to export", scale=2,
                              info="editor = the template named above; winner = the latest marked Compare winner")
            train_run = gr.Dropdown([], label="Training run (for 'training run')", allow_custom_value=True, scale=3)
            refresh = gr.Button("↻", scale=0, min_width=50)
        with gr.Row(equal_height=True):
            name = gr.Textbox(label="Bundle name", placeholder="default: the template's name", max_lines=1)
            merge = gr.Checkbox(False, label="Merge the adapter into the base weights")
            replace = gr.Checkbox(False, label="Replace a bundle of the same name", elem_id="export-overwrite")
            include_rows = gr.Checkbox(True, label="Include the raw rows (data/*.jsonl)", elem_id="export-include-rows",
                                       info="off by default for your own data")
        with gr.Row(equal_height=True):
            shots = gr.Number(0, label="Shots", precision=0, minimum=0)
            seed = gr.Number(0, label="Seed", precision=0)
            method = gr.Dropdown(["acc", "acc_norm", "acc_bytes"], value="acc", label="Scoring")
            split = gr.Dropdown(["test", "dev", "train", "all"], value="test", label="Split")
            limit = gr.Number(200, label="Rows (0 = all)", precision=0, minimum=0)
        with gr.Row():
            export_btn = gr.Button("Export bundle", variant="primary")
            cmd_btn = gr.Button("Show command", variant="secondary", elem_id="export-command-btn", scale=0, min_width=150)
        command = gr.Markdown("", elem_id="export-command")
        contents = gr.Markdown("", elem_id="export-contents")
        job = gr.Textbox(visible=False)
        status = gr.Markdown("")
        summary = gr.Markdown("")
        zip_file = gr.File(label="Bundle (.zip)", interactive=False)
        with gr.Accordion("Model card (README.md)", open=False):
            card = gr.Markdown("")
        with gr.Accordion("Import a bundle, lm-eval task or PromptSource YAML", open=False):
            upload = gr.File(label="Bundle .zip or template YAML", file_types=[".zip", ".yaml", ".yml"], type="filepath")
            overwrite = gr.Checkbox(False, label="Replace a different template of the same name")
            import_btn = gr.Button("Import")
            imported = gr.Markdown("")
        timer = gr.Timer(POLL_S, active=False)
        # plain endpoints for scripts (gradio_client): poll and open an export by job id
        with gr.Row(visible=False):
            api_job = gr.Textbox()
            api_status_btn, api_open_btn = gr.Button(), gr.Button()
            api_out = gr.JSON()

    refresh.click(refresh_train_runs, None, train_run, api_name="export_train_runs")
    # The badge follows the editor and the "what to export" choice; the training-run list
    # fills when the page loads (no ↻ needed).
    for ev in (ctx.editor.change, source.change, train_run.change):
        ev(badge.export_badge, [source, ctx.editor, train_run], export_badge, api_name=None,
           api_visibility="private", show_progress="hidden", queue=False)
    ctx.demo.load(refresh_train_runs, None, train_run, api_name="export_train_runs_on_load", api_visibility="private")
    tab.select(refresh_train_runs, None, train_run, api_name="export_train_runs_on_select", api_visibility="private")
    form = [ctx.state, ctx.model_name, ctx.editor, source, train_run, name, merge, shots, seed, method, split, limit,
            replace, include_rows]
    # The bundle's contents are listed before it is written, and follow the form (issue 28, item 7).
    plan_in = [ctx.state, source, train_run, merge, include_rows, shots]
    for ev in (source.change, train_run.change, merge.change, include_rows.change, shots.change, tab.select):
        ev(export_contents, plan_in, contents, api_name=None, api_visibility="private", show_progress="hidden")
    for key in ("page_load_data", "data_loaded", "data_uploaded"):
        if key in ctx.events:   # one's own data: raw rows off until ticked
            ctx.events[key].then(rows_default, ctx.state, include_rows, api_name=None, api_visibility="private",
                                 show_progress="hidden")
    export_btn.click(start_export, form, [job, status, timer], api_name="export_start")
    cmd_btn.click(export_command, form, command, api_name="export_command")
    timer.tick(poll_export, job, [status, timer, summary, zip_file, card], api_name="export_poll",
               api_visibility="private", show_progress="hidden")
    api_status_btn.click(export_status, api_job, api_out, api_name="export_status", concurrency_limit=None)
    api_open_btn.click(export_open, api_job, [summary, zip_file, card], api_name="export_open")
    import_btn.click(import_file, [upload, overwrite], imported, api_name="import_bundle")
