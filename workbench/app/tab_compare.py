"""Compare tab: 2-8 templates, or models × templates, side by side on identical examples, with paired verdicts.

Each column holds one editable template (picked from the library, or copied from the
Templates editor). "Compare" runs them in a background job (`compare.compare_templates`:
the same rows, demos and seed for all; evals already in the run registry are reused) and
shows the leaderboard with CIs, the verdicts (exact McNemar, paired bootstrap, Holm), the
per-class F1 of every template, two confusion matrices side by side and the examples on
which the templates disagree (filterable by class). A template can be marked the winner,
which the Export step picks up. The Robustness section runs few-shot seed variance or a
format-spread study (`sensitivity.format_spread`) on one column.

"Models" adds model columns: the model bar's model plus each model listed there (a hub id, a
folder, a .gguf, or an inference server openai:http://HOST:PORT/v1[#NAME]). The job then scores
the models × templates grid on the same rows (`compare_models.compare_grid`, from the same
RunSpec `workbench compare --model A --model B ...` builds), holding each model in turn, and the
verdict adds every pair of columns (`TEMPLATE @ MODEL`).

All logic lives in `workbench.jobs.compare` / `workbench.jobs.sensitivity`; the handlers only parse
inputs, start jobs and turn stored results into tables and figures. This module holds the form's
spec, the jobs, the robustness studies and the layout; beside it: `compare_columns` (the columns'
pickers and the model list), `compare_views` (the handlers of the comparison on screen) and
`compare_render` (verdict text, tables, figures). Their handlers are re-exported here.
"""
from __future__ import annotations

import gradio as gr

from workbench.app.common import Ctx, UIState, command_markdown, spec_command, state_dataset, user_errors
from workbench.app.compare_columns import (BEST, MAX_COLUMNS, baseline_choices, column_picker,  # noqa: F401
                                           extra_models, initial_columns, library_choices, library_yaml,
                                           refresh_pickers, show_columns)
from workbench.app.compare_render import (ALL_CLASSES, cleared_views, disagreements_frame,  # noqa: F401
                                          leaderboard_frame, pct as _pct, progress_html, verdict_markdown)
from workbench.app.compare_views import (compare_confusion, compare_disagreements, compare_mark_winner,  # noqa: F401
                                         compare_open, list_stored, load_run, poll_compare, stored_choices,
                                         view_choices, winner_to_editor)
from workbench.jobs import queue as jobs
from workbench.jobs import service
from workbench.core.config import METHODS, CALIBRATIONS, SPLITS   # the one source of the choice lists
from workbench.core.options import N_BOOT, SEEDS, SPREAD

POLL_S = 1.0


# ------------------------------------------------------------------------------------ inputs
def _templates(n: float, yamls) -> list:
    from workbench.errors import TemplateError
    from workbench.app.common import parse_template

    n = max(1, min(MAX_COLUMNS, int(n or 2)))
    out = []
    for i, text in enumerate(list(yamls)[:n]):
        try:
            out.append(parse_template(text))
        except TemplateError as e:
            raise TemplateError(f"column {i + 1}: {e.message}", e.hint) from None
    return out


def _choices(state: UIState, shots, seed, method, calibration, split, limit) -> dict:
    """The form's evaluation choices (None = unset: build_spec applies the template's default)."""
    return {"shots": None if shots is None else int(shots), "seed": None if seed is None else int(seed),
            "method": method or None, "calibration": calibration or None, "split": split or None,
            "split_seed": int(getattr(state, "split_seed", 0) or 0), "limit": int(limit) if limit else None}


def model_refs(model: str, models) -> list:
    """The ModelRefs of the form: the model bar's (with its adapter) first, then each extra model.
    Like `workbench compare --adapter`, the adapter goes with every model."""
    from workbench.core.spec import ModelRef, check_models
    from workbench.storage.engines import resolve

    first = service.current_model_ref(model)
    refs = [first] + [resolve(ModelRef(model=m, adapter=first.adapter)) for m in extra_models(models)]
    check_models(refs)      # the same check build_spec applies for the CLI and Python
    return refs


def compare_spec(state: UIState, model: str, models: str, shots: float, seed: float, method: str, calibration: str,
                 split: str, limit: float, baseline: str, n_boot: float, n: float, *yamls: str):
    """The RunSpec of the Compare form (`workbench compare` builds the same one). `models`: extra
    models (see `extra_models`); with any, the spec compares the models × templates grid."""
    from workbench.app.judge_panel import judge_kwargs
    from workbench.core.spec import build_spec
    from workbench.errors import ConfigError
    from workbench.jobs.compare import MAX_TEMPLATES

    # the form's 8 template columns, then (optional, so older API clients keep working) the
    # stopping rule: sequential (bool) and margin (points)
    yamls, rule = yamls[:MAX_COLUMNS], list(yamls[MAX_COLUMNS:]) + [False, 0]
    templates = _templates(n, yamls)
    refs = model_refs(model, models)
    if len(refs) * len(templates) > MAX_TEMPLATES:
        raise ConfigError(f"{len(refs)} models × {len(templates)} templates is {len(refs) * len(templates)} columns; "
                          f"a comparison takes at most {MAX_TEMPLATES}.", hint="Use fewer models or templates.")
    ds = state_dataset(state)
    base = (baseline or "").strip()
    opts = {"baseline": None if base in ("", BEST, "best") else base}
    if n_boot:
        opts["n_boot"] = int(n_boot)     # (build_spec leaves out the default, N_BOOT)
    if rule[0]:
        # margin in points on the form, a fraction in the spec (as --margin)
        opts.update(sequential=True, margin=float(rule[1] or 0) / 100 or None)
    spec = build_spec("compare", templates=templates, data=ds, model=refs if len(refs) > 1 else refs[0],
                      eval=_choices(state, shots, seed, method, calibration, split, limit), options=opts,
                      **(judge_kwargs(state) if _all_generation(templates) else {}))
    return spec, templates, ds


def _all_generation(templates) -> bool:
    return all(getattr(t[0] if isinstance(t, tuple) else t, "task", "") == "generation" for t in templates)


def compare_command(state: UIState, model: str, models: str, shots: float, seed: float, method: str,
                    calibration: str, split: str, limit: float, baseline: str, n_boot: float, n: float,
                    *yamls: str) -> str:
    """The `workbench compare ...` command that runs this very comparison (markdown); with extra
    models, `--model` once per model."""
    with user_errors("Showing the command"):
        spec, _, _ = compare_spec(state, model, models, shots, seed, method, calibration, split, limit, baseline,
                                  n_boot, n, *yamls)
        return command_markdown(spec_command(spec))


def _check(templates, ds) -> None:
    cols = [str(c) for c in ds.df.columns]
    for i, t in enumerate(templates):
        errors = [p for p in t.validate(columns=cols) if p.severity == "error"]
        if errors:
            raise gr.Error(f"Column {i + 1} ({t.name}) has errors: " + "; ".join(str(p) for p in errors[:3]),
                           title="Template", print_exception=False)


# ------------------------------------------------------------------------------------ jobs
def start_compare(state: UIState, model: str, models: str, shots: float, seed: float, method: str,
                  calibration: str, split: str, limit: float, baseline: str, n_boot: float, n: float, *yamls: str):
    """Start comparing the first `n` template columns on this session's dataset: on the model
    bar's `model`, or, when `models` lists more (one per line or comma-separated), on every
    model (the models × templates grid, each model held in turn). Returns (job id, job id,
    progress HTML, poll timer). Poll `compare_status(job_id)`; when "done", `result_id` is the
    comparison's run id for `compare_open`. `baseline` is a column name, or empty / "best"
    for the best column; `limit` 0 = the whole split."""
    with user_errors("Starting the comparison"):
        spec, templates, ds = compare_spec(state, model, models, shots, seed, method, calibration, split, limit,
                                           baseline, n_boot, n, *yamls)
        _check(templates, ds)
        job_id = service.submit(spec, dataset=ds)
        return job_id, job_id, progress_html(service.status(job_id)), gr.Timer(active=True)


def robust_spec(kind: str, state, model, column, seeds, n_variants, shots, seed, method, calibration, split, limit,
                yamls):
    """The RunSpec of a sensitivity study of column `column` ("seeds": a seed variance over `seeds`, "spread":
    a format spread of `n_variants`), as `workbench compare --seeds / --spread` builds it. Returns (spec, dataset)."""
    from workbench.app.common import parse_template
    from workbench.core.spec import build_spec

    col = max(1, min(MAX_COLUMNS, int(column or 1)))
    t = parse_template(list(yamls)[col - 1])
    ds = state_dataset(state)
    kind_opts = (("seed_variance", {"seeds": str(seeds or "")}) if kind == "seeds"
                 else ("format_spread", {"spread": int(n_variants) if n_variants else None}))   # None = SPREAD
    spec = build_spec(kind_opts[0], templates=[t], data=ds, model=service.current_model_ref(model),
                      eval=_choices(state, shots, seed, method, calibration, split, limit), options=kind_opts[1])
    _check([t], ds)
    return spec, ds


def _start_robust(kind: str, state, model, column, seeds, n_variants, shots, seed, method, calibration, split, limit,
                  yamls):
    spec, ds = robust_spec(kind, state, model, column, seeds, n_variants, shots, seed, method, calibration, split,
                           limit, yamls)
    job_id = service.submit(spec, dataset=ds, meta={"study": "seed variance" if kind == "seeds" else "format spread"})
    return job_id, job_id, progress_html(service.status(job_id)), gr.Timer(active=True)


def start_seed_variance(state: UIState, model: str, column: float, seeds: str, shots: float, method: str,
                        calibration: str, split: str, limit: float, *yamls: str):
    """Few-shot variance of column `column`'s template over `seeds` ("0,1,2"); needs shots >= 1.
    Returns (job id, job id, progress HTML, timer); the finished job's `result_id` opens with
    `robustness_open`."""
    with user_errors("Starting the seed-variance run"):
        return _start_robust("seeds", state, model, column, seeds, 0, shots, 0, method, calibration, split, limit,
                             yamls)


def start_format_spread(state: UIState, model: str, column: float, n_variants: float, seed: float, shots: float,
                        method: str, calibration: str, split: str, limit: float, *yamls: str):
    """Format sensitivity of column `column`'s template: `n_variants` meaning-preserving
    rewrites (seeded by `seed`, which is also the demo seed). Returns like start_seed_variance."""
    with user_errors("Starting the format-spread run"):
        return _start_robust("spread", state, model, column, "", n_variants, shots, seed, method, calibration, split,
                             limit, yamls)


def compare_status(job_id: str) -> dict:
    """{"state", "done", "total", "eta_s", "message", "error", "result_id", ...} of a job."""
    return jobs.status(job_id or "")


def cancel_compare(job_id: str) -> str:
    if job_id:
        jobs.cancel(job_id)
    return progress_html(jobs.status(job_id) if job_id else None)


_load = load_run   # the robustness views' loader (compare_views.load_run)


# ------------------------------------------------------------------------------------ robustness views
def robustness_open(run_id: str):
    """A stored seed-variance or format-spread study: (markdown, spread plot, table)."""
    import pandas as pd

    from workbench.core import plots

    with user_errors("Opening the study"):
        res = _load(run_id)
        if res.type == "seed_variance":
            a = res.accuracy
            md = (f"**Few-shot seed variance of {res.template['name']}** on {res.n} examples: accuracy "
                  f"**{_pct(a['mean'])} ± {_pct(a['std'])}** pts (min {_pct(a['min'])}, max {_pct(a['max'])}) over "
                  f"{len(res.seeds)} demo seeds · run `{res.run_id}`")
            fig = plots.score_spread({res.template["name"]: [p["accuracy"] for p in res.per_seed]},
                                     title="Accuracy over demo seeds")
            df = pd.DataFrame([{"seed": p["seed"], "accuracy %": _pct(p["accuracy"]), "macro-F1 %": _pct(p["macro_f1"]),
                                "demo rows": str(p["demo_indices"]), "reused": p["reused"]} for p in res.per_seed])
        elif res.type == "format_spread":
            a = res.accuracy
            md = (f"**Format spread of {res.template['name']}** ({len(res.variants) - 1} variants, Sclar et al. 2023) "
                  f"on {res.n} examples: accuracy spread **{_pct(a['spread'])} pts** (min {_pct(a['min'])}, max "
                  f"{_pct(a['max'])}, std {_pct(a['std'])})")
            if res.best_vs_worst:
                md += f"\n\nBest vs worst format: {res.best_vs_worst['text']}"
            md += f"\n\n<small>run `{res.run_id}`</small>"
            fig = plots.score_spread({"formats": [v["accuracy"] for v in res.variants]},
                                     title="Accuracy over meaning-preserving formats")
            df = pd.DataFrame([{"format": v["name"], "change": v["change"], "accuracy %": _pct(v["accuracy"]),
                                "95% CI": f"[{_pct(v['ci_low'])}, {_pct(v['ci_high'])}]",
                                "macro-F1 %": _pct(v["macro_f1"]), "prompt (end)": v.get("example_prompt", "")[-160:]}
                               for v in sorted(res.variants, key=lambda v: -v["accuracy"])])
        else:
            raise gr.Error(f"Run {run_id} is a side-by-side comparison; open it above.", print_exception=False)
        return md, fig, df


def poll_robust(job_id: str):
    st = jobs.status(job_id or "")
    keep = (gr.skip(), gr.skip(), gr.skip())
    if st["state"] in ("queued", "running"):
        return (progress_html(st), gr.Timer(active=True)) + keep
    if st["state"] == "done" and st.get("result_id"):
        return (progress_html(st), gr.Timer(active=False)) + robustness_open(st["result_id"])
    if st["state"] == "failed" and st.get("error"):
        gr.Warning(st["error"], title="Study failed")
    return (progress_html(st if st["state"] != "unknown" else None), gr.Timer(active=False)) + keep


def open_stored(run_id: str, label: str):
    """Open a stored run in the right place: comparisons above, studies under Robustness."""
    from workbench.jobs.compare import open_run

    with user_errors("Opening the run"):
        if not run_id:
            raise gr.Error("Pick a stored comparison first.", print_exception=False)
        res = open_run(run_id)
        skip12 = tuple(gr.skip() for _ in range(12))
        if res.type == "comparison":
            return compare_open(run_id, label) + (gr.skip(), gr.skip(), gr.skip())
        return skip12 + robustness_open(run_id)


# ------------------------------------------------------------------------------------ layout
def build(ctx: Ctx) -> None:
    choices = library_choices()
    initial = initial_columns()
    with gr.Tab("Compare", id="compare", elem_id="tab-compare"):
        gr.Markdown("Put 2–8 templates side by side, or models × templates (list more models under *Models*). "
                    "All of them run on **the same examples, demos and seed**; the verdict uses paired tests "
                    "(exact McNemar, paired bootstrap, Holm for more than two).")
        with gr.Row(equal_height=True):
            n_cols = gr.Slider(1, MAX_COLUMNS, value=2, step=1, label="Templates", scale=2,
                               info="one is enough when models are compared")
            models = gr.Textbox("", label="Models (optional)", scale=2, lines=1, max_lines=4, elem_id="compare-models",
                                placeholder="openai:http://HOST:PORT/v1 · HuggingFaceTB/SmolLM2-360M-Instruct",
                                info="more models to compare with the model bar's, one per line or comma-separated: "
                                     "a hub id, a folder, a .gguf or an inference server; each column is "
                                     "template @ model")
            from_editor = gr.Button("Editor's template into column 1", scale=1)
        columns, pickers, codes = [], [], []
        with gr.Row(elem_id="compare-columns"):
            for i in range(MAX_COLUMNS):
                v, y = initial[i] if i < len(initial) else (None, "")
                with gr.Column(visible=i < 2, min_width=260) as col:
                    pick = gr.Dropdown(choices, value=v, label=f"Template {i + 1}", allow_custom_value=True,
                                       filterable=True, elem_id=f"compare-pick-{i + 1}",
                                       info="yours first, then the library; or type a name")
                    code = gr.Code(y, language="yaml", label="YAML (editable)", lines=9, max_lines=18,
                                   elem_id=f"compare-yaml-{i + 1}")
                columns.append(col)
                pickers.append(pick)
                codes.append(code)
        with gr.Row(equal_height=True):
            shots = gr.Number(0, label="Shots", precision=0, minimum=0, min_width=80)
            seed = gr.Number(0, label="Seed", precision=0, min_width=80, info="same demos for all")
            method = gr.Dropdown(METHODS, value="acc", label="Scoring", min_width=110)
            calibration = gr.Dropdown(CALIBRATIONS, value="none", label="Calibration", min_width=110)
            split = gr.Dropdown(SPLITS, value="test", label="Split", min_width=90)
            limit = gr.Number(200, label="Limit", precision=0, minimum=0, min_width=80, info="0 = whole split",
                              elem_id="compare-limit")
            baseline = gr.Dropdown([BEST], value=BEST, label="Compare against", allow_custom_value=True,
                                   min_width=160, info="or a template name")
            n_boot = gr.Number(N_BOOT, label="Bootstrap", precision=0, minimum=100, min_width=90)
        with gr.Row(equal_height=True):
            sequential = gr.Checkbox(False, label="Stop when settled (sequential)", elem_id="compare-sequential",
                                     info="rows in a random order, in growing batches; anytime-valid verdict at 5%; "
                                          "with Models, a column stops once settled worse")
            margin = gr.Number(0, label="Equivalence margin (pts)", minimum=0, maximum=50, min_width=120,
                               info="stop as 'equivalent' inside ±margin; 0 = never")
        with gr.Row():
            run_btn = gr.Button("Compare", variant="primary", elem_id="compare-btn")
            cancel_btn = gr.Button("■ Cancel", variant="stop")
            cmd_btn = gr.Button("Show command", variant="secondary", elem_id="compare-command-btn", scale=0,
                                min_width=150)
        command = gr.Markdown("", elem_id="compare-command")
        from workbench.app import compare_task      # an lm-eval task's rows instead of the loaded data

        compare_task.add(ctx, n_cols=n_cols, models=models, codes=codes, limit=limit)
        progress = gr.HTML(progress_html(None), elem_id="compare-progress")
        verdicts = gr.Markdown("*Run a comparison to see the verdict here.*", elem_id="compare-verdict")
        board = gr.Dataframe(headers=["#", "template", "accuracy %", "95% CI", "macro-F1 %", "Δacc pts", "p"],
                             label="Leaderboard", interactive=False, wrap=True, elem_id="compare-leaderboard")
        with gr.Row():
            lb_plot = gr.Plot(label="Accuracy with 95% CI", elem_id="compare-ci")
            f1_plot = gr.Plot(label="Per-class F1", elem_id="compare-f1")
        with gr.Row():
            with gr.Column():
                conf_a_name = gr.Dropdown([], label="Confusion matrix of", allow_custom_value=True)
                conf_a = gr.Plot(label="Confusion (left)")
            with gr.Column():
                conf_b_name = gr.Dropdown([], label="…next to", allow_custom_value=True)
                conf_b = gr.Plot(label="Confusion (right)")
        with gr.Row(equal_height=True):
            cls = gr.Dropdown([ALL_CLASSES], value=ALL_CLASSES, label="Disagreements involving class", scale=1,
                              allow_custom_value=True)
            gr.Markdown("Examples where the templates predict differently (✓ = right), with each template's "
                        "per-choice scores.", container=False)
        disagreements = gr.Dataframe(headers=["row", "gold"], label="Disagreements", interactive=False, wrap=True, max_height=480,
                                     max_chars=240, elem_id="compare-disagreements")
        from workbench.app import matrix

        shown = gr.State("")                 # this user's comparison on screen (run id)
        mblock = matrix.add(ctx, "compare", shown, [shown], matrix.compare_spec, open_=False)
        with gr.Row(equal_height=True):
            winner = gr.Dropdown([], label="Winner", scale=2, allow_custom_value=True)
            win_btn = gr.Button("Mark as winner", scale=1, elem_id="compare-mark-winner")
            win_edit_btn = gr.Button("Open the winner in the editor", scale=1, elem_id="compare-winner-to-editor")
        win_md = gr.Markdown("")
        with gr.Accordion("Robustness: few-shot seed variance and format spread", open=False):
            with gr.Row(equal_height=True):
                r_col = gr.Number(1, label="Column", precision=0, minimum=1, maximum=MAX_COLUMNS, min_width=80)
                r_seeds = gr.Textbox(SEEDS, label="Demo seeds", min_width=140,
                                     info="seed variance needs Shots ≥ 1")
                r_seed_btn = gr.Button("Run seed variance")
                r_n = gr.Number(SPREAD, label="Format variants", precision=0, minimum=1, maximum=16, min_width=90)
                r_spread_btn = gr.Button("Run format spread")
            r_progress = gr.HTML(progress_html(None))
            r_md = gr.Markdown("")
            r_plot = gr.Plot(label="Score spread")
            r_table = gr.Dataframe(headers=["seed / format", "accuracy %", "macro-F1 %"], label="Per seed / per format", interactive=False, wrap=True, max_chars=200)
        with gr.Accordion("Open a stored comparison", open=False):
            with gr.Row(equal_height=True):
                stored = gr.Dropdown([], label="Stored comparisons and studies", scale=3, allow_custom_value=True)
                stored_json = gr.JSON(visible=False)
                refresh = gr.Button("↻ Refresh", scale=0)
                open_btn = gr.Button("Open", scale=0)
        timer = gr.Timer(POLL_S, active=False)
        r_timer = gr.Timer(POLL_S, active=False)
        job = ctx.browser["compare_job"]
        r_job = ctx.browser["robust_job"]
        job_box, r_job_box = gr.Textbox(visible=False), gr.Textbox(visible=False)
        run_box, open_api, r_open_api = gr.Textbox(visible=False), gr.Button(visible=False), gr.Button(visible=False)
        api_status, api_status_out = gr.Button(visible=False), gr.JSON(visible=False)
        api_cancel, api_cancel_out = gr.Button(visible=False), gr.HTML(visible=False)

    # Columns and their templates.
    n_cols.change(show_columns, n_cols, columns, api_name="compare_columns", api_visibility="private", queue=False)
    for i, (pick, code) in enumerate(zip(pickers, codes)):
        # One public endpoint is enough for scripts; the other columns' events stay private.
        pick.input(library_yaml, pick, code, api_name="compare_library_yaml" if i == 0 else f"compare_library_yaml_{i + 1}",
                   api_visibility="public" if i == 0 else "private")
    if ctx.editor is not None:
        from_editor.click(lambda y: y, ctx.editor, codes[0], api_name="compare_from_editor", api_visibility="private",
                          queue=False)
    for i, (pick, code) in enumerate(zip(pickers, codes)):
        code.change(column_picker(i), [code, pick], pick, api_name=f"compare_column_label_{i + 1}",
                    api_visibility="private", show_progress="hidden")
    if ctx.templates_changed is not None:
        ctx.templates_changed.change(refresh_pickers, pickers, pickers, api_name="compare_refresh_pickers",
                                     api_visibility="private", show_progress="hidden")
    # Loaded data (a click, an upload, the page load): the pickers list the templates that fit it
    # first, and no column keeps one that cannot render on it (issue 28, item 1; app/fit.py).
    from workbench.app import fit

    fit_in = [ctx.state, ctx.editor if ctx.editor is not None else gr.State(""), n_cols] + pickers + codes
    for i, key in enumerate(("page_load_data", "data_loaded", "data_uploaded")):
        if key in ctx.events:
            ctx.events[key].then(fit.compare_fit_data, fit_in, pickers + codes,
                                 api_name="compare_fit_data" if i == 1 else f"compare_fit_data_{key}",
                                 api_visibility="public" if i == 1 else "private", show_progress="hidden")
    baseline_in = [ctx.model_name, models, n_cols] + codes
    for code in codes:
        code.change(baseline_choices, baseline_in, baseline, api_name="compare_baselines",
                    api_visibility="private", queue=False, show_progress="hidden")
    n_cols.change(baseline_choices, baseline_in, baseline, api_name="compare_baselines_n",
                  api_visibility="private", queue=False)
    models.change(baseline_choices, baseline_in, baseline, api_name="compare_baselines_models",
                  api_visibility="private", queue=False, show_progress="hidden")

    # Comparison job.
    from workbench.app import form_restore

    settings = [shots, seed, method, calibration, split, limit]
    form = [ctx.state, ctx.model_name, models] + settings + [baseline, n_boot, n_cols] + codes + [sequential, margin]
    started = run_btn.click(start_compare, form, [job, job_box, progress, timer], api_name="compare_start")
    cmd_btn.click(compare_command, form, command, api_name="compare_command")
    views = [shown, verdicts, board, lb_plot, f1_plot, conf_a_name, conf_a, conf_b_name, conf_b, cls,
             disagreements, winner]
    # A new comparison clears the previous verdict, tables, plots and winner message.
    started.success(cleared_views, None, views + [win_md], api_name="compare_clear", api_visibility="private",
                    queue=False)
    from workbench.app.model_bar import model_status

    # The comparison job loads the model in the background: keep the model bar truthful.
    tick = timer.tick(poll_compare, [shown, job, cls], [progress, timer] + views, api_name="compare_poll",
                      api_visibility="private", show_progress="hidden", concurrency_limit=None)
    matrix.follow(mblock, tick)
    tick.then(
        model_status, None, ctx.model_info, api_name="model_status_after_compare", api_visibility="private",
        show_progress="hidden", concurrency_limit=None)
    cancel_btn.click(cancel_compare, job, progress, api_name="compare_cancel_ui", api_visibility="private",
                     concurrency_limit=None)
    api_status.click(compare_status, job_box, api_status_out, api_name="compare_status", concurrency_limit=None)
    api_cancel.click(cancel_compare, job_box, api_cancel_out, api_name="compare_cancel", concurrency_limit=None)
    ctx.demo.load(poll_compare, [shown, job, cls], [progress, timer] + views, api_name="compare_reconnect",
                  api_visibility="private").then(
        # the form of the attached comparison, not the page's defaults (issue 28, item 2)
        lambda j: form_restore.compare_form(j, len(codes)), job, settings + [models, n_cols] + codes,
        api_name="compare_form_on_load", api_visibility="private", show_progress="hidden")

    # Browsing a comparison.
    open_api.click(compare_open, [run_box, cls], views, api_name="compare_open")
    cls.input(compare_disagreements, [shown, cls], disagreements, api_name="compare_disagreements")
    conf_a_name.input(compare_confusion, [shown, conf_a_name], conf_a, api_name="compare_confusion")
    conf_b_name.input(compare_confusion, [shown, conf_b_name], conf_b, api_name="compare_confusion_right",
                      api_visibility="private")
    win_btn.click(compare_mark_winner, [shown, winner], win_md, api_name="compare_mark_winner")
    fn, field_outputs = ctx.events.get("template_fields", (None, None))
    to_editor = win_edit_btn.click(winner_to_editor, [ctx.state, shown, winner, ctx.editor],
                                   [ctx.state, ctx.editor, ctx.edit_status], api_name="compare_winner_to_editor")
    if fn is not None:
        to_editor.then(fn, ctx.editor, field_outputs, api_name="template_fields_from_winner", api_visibility="private")
    # The stored comparisons are listed when the page loads (no ↻ needed).
    ctx.demo.load(list_stored, None, stored_json, api_name="compare_list_on_load", api_visibility="private").then(
        stored_choices, stored_json, stored, api_name="compare_list_choices_on_load", api_visibility="private",
        queue=False)

    # Robustness jobs.
    r_out = [r_md, r_plot, r_table]
    r_seed_btn.click(start_seed_variance, [ctx.state, ctx.model_name, r_col, r_seeds, shots, method, calibration,
                                           split, limit] + codes,
                     [r_job, r_job_box, r_progress, r_timer], api_name="robustness_seeds")
    r_spread_btn.click(start_format_spread, [ctx.state, ctx.model_name, r_col, r_n, seed, shots, method, calibration,
                                             split, limit] + codes,
                       [r_job, r_job_box, r_progress, r_timer], api_name="robustness_spread")
    r_timer.tick(poll_robust, r_job, [r_progress, r_timer] + r_out, api_name="robustness_poll",
                 api_visibility="private", show_progress="hidden", concurrency_limit=None).then(
        model_status, None, ctx.model_info, api_name="model_status_after_robustness", api_visibility="private",
        show_progress="hidden", concurrency_limit=None)
    r_open_api.click(robustness_open, run_box, r_out, api_name="robustness_open")

    # Stored runs.
    refresh.click(list_stored, None, stored_json, api_name="compare_list").then(
        stored_choices, stored_json, stored, api_name="compare_list_choices", api_visibility="private", queue=False)
    # Whenever another comparison is shown, its names and classes fill the pickers.
    shown.change(view_choices, shown, [conf_a_name, conf_b_name, cls, winner], api_name="compare_view_choices",
                 api_visibility="private")
    open_btn.click(open_stored, [stored, cls], views + r_out, api_name="compare_open_stored",
                   api_visibility="private")

