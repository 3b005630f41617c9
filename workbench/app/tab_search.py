"""Search tab: start from a template, let the workbench search label words, format,
instruction, demonstrations and calibration on train + dev, and see the winner proven once on
held-out test rows.

The search runs as a "search" RunSpec on the model service (`jobs.runner.execute`, as `workbench search`
runs it; the job holds the model and its adapter); while it runs, the tab
polls the job and reads the search's checkpoint in the run registry, so the best-so-far plot and
the leaderboard update live, and a page reload reconnects. A cancelled search can be resumed by
its run id without rescoring anything. All logic lives in `workbench.jobs.search`; the handlers
below parse the form, start jobs and render stored results.
"""
from __future__ import annotations


import gradio as gr

from workbench.app.common import Ctx, UIState, empty_figure, job_progress_html, state_dataset, user_errors
from workbench.core.search_space import AXES
from workbench.app import search_live
from workbench.jobs import queue as jobs
from workbench.core.config import CALIBRATIONS   # the one source of the choice lists

POLL_S = 1.0
SELECTIONS = ["random", "similar"]
# A deliberately weak start for the bbc demo data (opaque verbalizers A-E, plain format).
EXAMPLE_START = """name: bbc_weak_start
dataset: bbc
input: |-
  Text: {{ title }}
  Label:
answer_choices:
  business: [A]
  entertainment: [B]
  politics: [C]
  sports: [D]
  tech: [E]
"""



# ------------------------------------------------------------------------------------ jobs
def search_spec(state: UIState, model: str, start, cfg, resume: str | None = None):
    """The search's RunSpec, as `workbench search` builds it: the model as the model bar has it (with
    its attached adapter), this session's data, the form's settings."""
    from workbench.core.spec import build_spec
    from workbench.jobs.service import current_model_ref

    return build_spec("search", templates=[start], data=state_dataset(state), model=current_model_ref(model),
                      search=cfg, options={"resume": resume})


def _submit(spec) -> str:
    """Queue the search on the model service: it holds the spec's model (and adapter) for its whole run,
    so another user's model switch or adapter change is refused with ModelBusy naming this search."""
    from workbench.jobs import service

    return service.submit(spec, meta={"budget_seconds": spec.search.budget_seconds})


def _ints(text: str, what: str) -> list[int]:
    from workbench.errors import ConfigError

    try:
        return [int(x) for x in str(text or "").replace(" ", "").split(",") if x]
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated integers, got {text!r}", "e.g. 0,2,4") from None


def _config(axes, budget_tokens, budget_seconds, max_dev_rows, test_limit, shots, selections, calibrations,
            propose, evaluate_test, winner_name, plain_words=False, metric="", racing="halving", alpha=0.05):
    from workbench.core.config import SearchConfig

    cfg = SearchConfig(axes=[a for a in AXES if a in (axes or [])],
                       budget_tokens=int(budget_tokens) if budget_tokens else None,
                       budget_seconds=float(budget_seconds) if budget_seconds else None,
                       max_dev_rows=int(max_dev_rows) if max_dev_rows else None,
                       test_limit=int(test_limit) if test_limit else None, shots=_ints(shots, "Shots") or [0],
                       selections=list(selections or ["random"]), calibrations=list(calibrations or ["none"]),
                       propose_instructions=int(propose or 0), evaluate_test=bool(evaluate_test),
                       winner_name=(winner_name or "").strip() or None, plain_label_words=bool(plain_words),
                       metric=(metric or "").strip() or None, racing=racing or "halving",
                       alpha=float(alpha) if alpha else 0.05)
    cfg.validate()
    return cfg


def search_start(state: UIState, model: str, start_yaml: str, axes: list, budget_tokens: float,
                 budget_seconds: float, max_dev_rows: float, test_limit: float, shots: str, selections: list,
                 calibrations: list, propose: float, evaluate_test: bool, winner_name: str, plain_words: bool = False,
                 metric: str = "", racing: str = "halving", alpha: float = 0.05):
    """Start a search from `start_yaml` on this session's dataset. `axes` ⊆ verbalizer, format,
    instruction, demos, calibration (generation templates: format, instruction, demos); budgets
    0 = no limit; `max_dev_rows`/`test_limit` 0 = all. `metric`: a generation template's metric
    to search on (empty = its first `metrics:` entry); `racing`: halving or sequential (drops a
    candidate once settled worse at `alpha`).
    Returns (job id, job id, progress HTML, poll timer). Poll `search_status(job_id)`; when
    "done", `result_id` is the search's run id for `search_open`."""
    from workbench.app.common import parse_template

    with user_errors("Starting the search"):
        start = parse_template(start_yaml)
        cfg = _config(axes, budget_tokens, budget_seconds, max_dev_rows, test_limit, shots, selections,
                      calibrations, propose, evaluate_test, winner_name, plain_words, metric, racing, alpha)
        job_id = _submit(search_spec(state, model, start, cfg))
        return job_id, job_id, progress_html(jobs.status(job_id)), gr.Timer(active=True)


def search_resume(state: UIState, model: str, run_id: str, budget_tokens: float, budget_seconds: float):
    """Continue a cancelled search `run_id` (its settings and scores are reused; the budgets given
    here replace the stored ones). Returns like search_start. The spec is `workbench search --resume`'s:
    the stored start, default settings but the budgets (the search goes on with its stored settings)."""
    from workbench.core.config import SearchConfig
    from workbench.core.templates import PromptTemplate
    from workbench.jobs.search import open_search

    with user_errors("Resuming the search"):
        run_id = (run_id or "").strip()
        prev = open_search(run_id)
        cfg = SearchConfig(budget_tokens=int(budget_tokens) if budget_tokens else None,
                           budget_seconds=float(budget_seconds) if budget_seconds else None)
        start = PromptTemplate.from_yaml(prev.payload["start"]["yaml"])
        job_id = _submit(search_spec(state, model, start, cfg, resume=run_id))
        return job_id, job_id, progress_html(jobs.status(job_id)), gr.Timer(active=True)


def search_status(job_id: str) -> dict:
    """{"state", "done", "total", "eta_s", "message", "error", "result_id", "run_id", ...};
    `run_id` is the search's registry id as soon as it exists (for a live `search_open`)."""
    from workbench.app.search_report import capped_eta

    st = capped_eta(jobs.status(job_id or ""))   # the ETA stays within the time budget (issue 28, item 5)
    st["run_id"] = search_live.run_id_of(job_id, st)
    return st


def search_cancel(job_id: str) -> str:
    """Stop the search at its next scoring call; its state stays in the registry (resumable)."""
    if job_id:
        jobs.cancel(job_id)
    return progress_html(jobs.status(job_id) if job_id else None)


def progress_html(st: dict | None) -> str:
    from workbench.app.search_report import capped_eta

    st = capped_eta(st) if st else st
    meta = (st or {}).get("meta") or {}
    what = f"search from {meta.get('template', '')} on {meta.get('data', '')}" if meta else ""
    return job_progress_html(st, what=what, idle="No search running.")


# ------------------------------------------------------------------------------------ views
def _pct(x) -> str:
    return "–" if x is None else f"{x * 100:.1f}%"


def summary_markdown(payload: dict, run_id: str | None) -> str:
    from workbench.jobs.search_report import objective_of, racing_text

    s = payload
    w = s.get("winner") or {}
    st = s["start"]
    obj = objective_of(s)
    show, what = obj.show, obj.label     # "accuracy", or the generation metric searched on
    lines = [f"**Search** `{run_id}` · {s.get('status')} · {s.get('tokens', 0):,} tokens · "
             f"{s.get('seconds', 0):.0f} s · {len(s.get('candidates', {}))} candidates · "
             f"{s.get('dev_rows')} dev rows · objective: **{what}** · {racing_text(s)}"
             + (" · budget used up" if s.get("budget_exhausted") else "")]
    best = s["curve"][-1]["best"] if s.get("curve") else None
    if s.get("status") == "running":
        lines.append(f"\nBest so far on all dev rows: **{show(best)}** {what} (start {show(st.get('dev_accuracy'))}) · "
                     f"stage {len(s.get('stages', [])) + 1}")
    if w:
        lines.append(f"\n<span class='wb-mark win'>winner</span> **{w.get('name')}**: dev {what} {show(w.get('dev_accuracy'))} "
                     f"(start {show(st.get('dev_accuracy'))}) — {w.get('describe') or 'no change'}")
    t = s.get("test")
    if t:
        from workbench.jobs.search import dev_to_test_text

        # Text marks, not emoji: ✅ ➖ 🏆 🔎 render as boxes where no emoji font is installed.
        mark = ("<span class='wb-mark sig'>significant</span>" if t["verdict"]["significant"]
                else "<span class='wb-mark ns'>not significant</span>")
        lines += [f"\n**Held-out test** (n={t['n']}, scored once): start {show(t['start_accuracy'])} → winner "
                  f"**{show(t['winner_accuracy'])}** {what} · {dev_to_test_text(t, obj)}",
                  f"\n- {mark} {t['verdict']['text']}",
                  f"- This test split has been used by **{t['test_uses']}** search(es)"
                  + (": every extra look makes one good result less convincing." if (t["test_uses"] or 0) > 1 else ".")]
        if t.get("majority_baseline") is not None:
            lines.append(f"- majority baseline on these rows: {_pct(t['majority_baseline'])}")
        for role, c in (t.get("one_class") or {}).items():
            if c:   # issue 28, item 4
                lines.append(f"- ⚠ the {role} predicts one class for {c['share']:.0%} of rows (*{c['label']}*): "
                             f"accuracy {_pct(c['accuracy'])} vs majority baseline {_pct(c['majority_baseline'])}")
    from workbench.app.search_report import report_lines

    extra = report_lines(s, run_id)   # unreached axes, doubtful label words, your best template (issue 28, item 5)
    if extra:
        lines += [""] + extra
    if s.get("saved_path"):
        lines.append(f"\nSaved as a user template: `{s['saved_path']}` (in every template picker).")
    return "\n".join(lines)


def leaderboard_frame(payload: dict):
    import pandas as pd

    from workbench.jobs.search import leaderboard
    from workbench.jobs.search_report import objective_of

    show = objective_of(payload).show
    # the column keeps its name for accuracy searches; a generation search names its metric
    col = "dev acc" if objective_of(payload).is_accuracy else f"dev {objective_of(payload).label}"
    rows = [{"#": r["rank"], "": "winner" if r["is_winner"] else ("start" if r["is_start"] else ""),
             "stage": r["stage"], "change": r["change"], col: show(r["dev_accuracy"]), "dev rows": r["n"],
             "tokens": r["tokens"], "diff vs start": r["diff"]} for r in leaderboard(payload)]
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["#", "stage", "change", "dev acc", "dev rows", "tokens"])


def _what(payload: dict) -> str:
    from workbench.jobs.search_report import objective_of

    o = objective_of(payload)
    return o.label if o.is_accuracy else f"{o.label} (÷100, mean per row)" if o.name in ("chrf", "bleu") else o.label


def _views(payload: dict, run_id: str | None):
    from workbench.core import plots
    from workbench.core.search_space import template_diff

    fig = (plots.search_progress(payload.get("curve", []), payload.get("history", []),
                                 start=payload["start"].get("dev_accuracy"), what=_what(payload))
           if payload.get("history") else empty_figure("no candidate scored yet"))
    w = payload.get("winner") or {}
    diff = template_diff(payload["start"]["yaml"], w["yaml"], {k: v for k, v in w.get("config", {}).items()
                                                              if payload["start"]["config"].get(k) != v}) if w else ""
    return summary_markdown(payload, run_id), fig, leaderboard_frame(payload), diff, w.get("yaml", "")


def search_open(run_id: str):
    """A stored (or running) search: (summary markdown, best-so-far plot, leaderboard table,
    winner diff vs start, winner YAML)."""
    from workbench.jobs.search import open_search

    with user_errors("Opening the search"):
        res = open_search((run_id or "").strip())
        return (res.run_id,) + _views(res.payload, res.run_id)


def poll_search(job_id: str):
    """Timer tick: progress, and the live views from the search's registry checkpoint."""
    st = search_status(job_id)
    running = st["state"] in ("queued", "running")
    run_id = st.get("run_id")
    skip = (gr.skip(),) * 6
    if st["state"] == "failed" and st.get("error"):
        gr.Warning(st["error"], title="Search failed")
    if not run_id:
        return (progress_html(st if st["state"] != "unknown" else None), gr.Timer(active=running)) + skip
    try:
        from workbench.jobs.search import open_search

        res = open_search(run_id)
        views = (res.run_id,) + _views(res.payload, res.run_id)
    except Exception:  # noqa: BLE001 - the first checkpoint may not be written yet
        views = skip
    return (progress_html(st), gr.Timer(active=running)) + views


def use_library(choice: str):
    from workbench.app import template_list

    return template_list.template_yaml(choice)


def build(ctx: Ctx) -> None:
    from workbench.app import template_list

    job_state = ctx.browser.get("search_job") or gr.BrowserState("", storage_key="workbench_search_job")
    with gr.Tab("Search", id="search", elem_id="tab-search") as tab:
        gr.Markdown("Start from a template; the search tries label words, formats, instructions, demonstrations "
                    "and calibration on the **train and dev** splits (racing: many candidates on a few dev rows, "
                    "the best on more), then scores the winner **once** on the held-out test split against the "
                    "start. See docs/SEARCH.md.")
        with gr.Row():
            lib = gr.Dropdown(template_list.choices(), value=None, label="Start from a library template", scale=3,
                              elem_id="search-library")
            from_editor = gr.Button("Use the Templates editor's template", scale=1, elem_id="search-from-editor")
        start_yaml = gr.Code(EXAMPLE_START, language="yaml", label="Start template", lines=10, elem_id="search-start-yaml")
        with gr.Row(equal_height=True):
            axes = gr.CheckboxGroup(list(AXES), value=list(AXES), label="Search axes", elem_id="search-axes")
            budget_tokens = gr.Number(300_000, label="Token budget", precision=0, minimum=0, info="0 = no limit")
            budget_seconds = gr.Number(600, label="Time budget (s)", precision=0, minimum=0, info="0 = no limit")
            max_dev = gr.Number(0, label="Max dev rows", precision=0, minimum=0, info="0 = all", elem_id="search-max-dev")
            test_limit = gr.Number(0, label="Test rows", precision=0, minimum=0, info="0 = all",
                                   elem_id="search-test-limit")
        with gr.Accordion("More settings", open=False):
            with gr.Row():
                shots = gr.Textbox("0,2,4", label="Demonstration counts", info="comma-separated")
                selections = gr.CheckboxGroup(SELECTIONS, value=SELECTIONS, label="Demo selection",
                                              info="similar = nearest by sentence embedding")
                calibrations = gr.CheckboxGroup(list(CALIBRATIONS), value=list(CALIBRATIONS), label="Calibrations")
            with gr.Row():
                propose = gr.Number(0, label="Model-proposed instructions", precision=0, minimum=0,
                                    info="APE-style; 0 = library only")
                evaluate_test = gr.Checkbox(True, label="Score the winner once on test at the end")
                winner_name = gr.Textbox("", label="Winner's name", info="empty = <start>-search-<id>")
                plain_words = gr.Checkbox(False, label="Only plain label words", elem_id="search-plain-words",
                                          info="no stop-words, no words unrelated to the class name")
            with gr.Row():
                metric = gr.Textbox("", label="Metric (generation templates)", elem_id="search-metric",
                                    info="empty = the template's first `metrics:` entry, e.g. chrf, rougeL, exact_match")
                racing = gr.Radio(["halving", "sequential"], value="halving", label="Racing", elem_id="search-racing",
                                  info="sequential: drop a candidate once settled worse (anytime-valid)")
                alpha = gr.Number(0.05, label="Alpha (sequential racing)", minimum=0.001, maximum=0.5,
                                  elem_id="search-alpha")
        with gr.Row():
            start_btn = gr.Button("Search", variant="primary", elem_id="search-btn")
            cancel_btn = gr.Button("■ Cancel", variant="stop", elem_id="search-cancel-btn")
            resume_id = gr.Textbox("", label="Run id", placeholder="a stopped or finished search", scale=2,
                                   elem_id="search-run-id")
            resume_btn = gr.Button("↻ Resume", elem_id="search-resume-btn")
            open_btn = gr.Button("Open", elem_id="search-open-btn")
        progress = gr.HTML(progress_html(None), elem_id="search-progress")
        summary = gr.Markdown("*Run a search to see the winner and its held-out verdict here.*", elem_id="search-summary")
        plot = gr.Plot(label="Best so far vs budget", elem_id="search-plot")
        board = gr.Dataframe(headers=["#", "stage", "change", "dev acc", "dev rows", "tokens"],
                             label="Candidates tried (best first; more dev rows first)", interactive=False, wrap=True,
                             max_height=420, max_chars=160, elem_id="search-leaderboard")
        with gr.Row():
            diff = gr.Code("", language=None, label="Winner vs start", lines=8, elem_id="search-diff")
            win_yaml = gr.Code("", language="yaml", label="Winner (saved as a user template)", lines=8,
                               elem_id="search-winner-yaml")
        timer = gr.Timer(POLL_S, active=False)
        job_box = gr.Textbox(visible=False)
        api_status, api_cancel = gr.Button(visible=False), gr.Button(visible=False)
        api_status_out, api_cancel_out = gr.JSON(visible=False), gr.HTML(visible=False)

    lib.change(use_library, lib, start_yaml, api_name="search_library_yaml")
    # Loaded data: templates that fit it first; a start that cannot render on it is replaced (issue 28, item 1).
    from workbench.app import fit

    fit_in = [ctx.state, ctx.editor if ctx.editor is not None else gr.State(""), start_yaml]
    for i, key in enumerate(("page_load_data", "data_loaded", "data_uploaded")):
        if key in ctx.events:
            ctx.events[key].then(fit.search_fit_data, fit_in, [lib, start_yaml],
                                 api_name="search_fit_data" if i == 1 else f"search_fit_data_{key}",
                                 api_visibility="public" if i == 1 else "private", show_progress="hidden")
    if ctx.editor is not None:
        from_editor.click(lambda y: y, ctx.editor, start_yaml, api_name="search_from_editor", api_visibility="private")
    from workbench.app import form_restore

    form = [ctx.state, ctx.model_name, start_yaml, axes, budget_tokens, budget_seconds, max_dev, test_limit, shots,
            selections, calibrations, propose, evaluate_test, winner_name, plain_words, metric, racing, alpha]
    start_btn.click(search_start, form, [job_state, job_box, progress, timer], api_name="search_start")
    resume_btn.click(search_resume, [ctx.state, ctx.model_name, resume_id, budget_tokens, budget_seconds],
                     [job_state, job_box, progress, timer], api_name="search_resume")
    views = [resume_id, summary, plot, board, diff, win_yaml]
    open_btn.click(search_open, resume_id, views, api_name="search_open")
    timer.tick(poll_search, job_state, [progress, timer] + views, api_name="search_poll", api_visibility="private",
               show_progress="hidden", concurrency_limit=None)
    cancel_btn.click(search_cancel, job_state, progress, api_name="search_cancel_ui", api_visibility="private",
                     concurrency_limit=None)
    api_status.click(search_status, job_box, api_status_out, api_name="search_status", concurrency_limit=None)
    api_cancel.click(search_cancel, job_box, api_cancel_out, api_name="search_cancel", concurrency_limit=None)
    loaded = ctx.demo.load(poll_search, job_state, [progress, timer] + views, api_name="search_reconnect",
                           api_visibility="private").then(
        # the form shows the attached search's settings, not the page's defaults (issue 28, item 2)
        form_restore.search_form, job_state, form[2:], api_name="search_form_on_load", api_visibility="private",
        show_progress="hidden")
    # The page-load event can see the job's BrowserState before the browser has read it back from
    # localStorage (seen once in the walkthrough: "No search running." after a reload during a
    # search); showing the tab reconnects again with the stored value, as the Train tab does.
    tab.select(poll_search, job_state, [progress, timer] + views, api_name="search_reconnect_on_select",
               api_visibility="private", show_progress="hidden", concurrency_limit=None).then(
        form_restore.search_form_if_running, job_state, form[2:], api_name="search_form_on_select",
        api_visibility="private", show_progress="hidden")
    # ...and without a running search, the form as the user last edited it
    if "search_form" in ctx.browser:
        from workbench.app import form_keep

        form_keep.wire(ctx, form_restore.SEARCH_FIELDS, form[2:], ctx.browser["search_form"], job_state,
                       lambda job: search_status(job)["state"] in ("queued", "running"), "search", after=loaded)
