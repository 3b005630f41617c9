"""What every tab shares: the per-user state, the shared-component context, error handling,
the dataset cache and the rendering of an eval result.

The tabs only wire components to handlers; each handler is a module-level function that takes
and returns plain values, so `gradio_client` can call it by its `api_name`.
"""
from __future__ import annotations

import functools
import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from workbench.errors import WorkbenchError

log = logging.getLogger("workbench.app")

DEFAULT_TEMPLATE = {"bbc": "bbc_headline_topic", "intent": "intent_topic_word", "strategyqa": "strategyqa_yes_no"}


@dataclass
class UIState:
    """One browser session's state (a `gr.State`): never shared between users."""

    data_spec: str | None = None          # built-in name, a path, or an uploaded file's path
    text_column: str | None = None
    label_column: str | None = None
    split_seed: int = 0
    saved_yaml: str = ""                  # the editor content as last loaded or saved ("" = none)
    template_path: str | None = None      # where the editor content was loaded from / saved to
    last_run_id: str | None = None        # the run shown in the Run tab
    judge_yaml: str = ""                  # the Judge section's judge in use ("" = none; app/judge_panel.py)
    judge_path: str | None = None         # its library file, when it is one unchanged
    judge_model: str = ""                 # "" = the model bar's model
    judge_labels: str = ""                # a column of people's ratings ("" = none)


@dataclass
class Ctx:
    """Components created by one tab and used by others (built in TABS order)."""

    demo: Any
    state: Any                           # gr.State(UIState)
    job: Any                             # gr.BrowserState: the running eval's job id (reload reconnects)
    draft: Any                           # gr.BrowserState: the editor's content (reload keeps edits)
    model_name: Any = None               # model bar textbox
    model_info: Any = None               # model bar markdown
    editor: Any = None                   # Templates tab: the whole template as YAML
    edit_status: Any = None              # Templates tab: "saved" / "unsaved edits" line
    events: dict = field(default_factory=dict)   # named event dependencies other tabs can .then() on
    templates_changed: Any = None        # hidden counter, bumped after a template is saved / imported
    # Per-tab gr.BrowserState, created at page level in main.py: a component created inside a
    # tab is only built when the tab is first shown, so it would be empty in the page-load event
    # that reconnects to a running job after a reload.
    browser: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------ errors
# Hints are written for the CLI; on the page, a flag names the box to use instead.
_UI_WORDS = [("--model DIR", "the folder in the Model box"), ("--model default", "'default' in the Model box"),
             ("--model", "the Model box"), ("--label-column", "the Label column picker (Data tab)"),
             ("--text-column", "the Text column picker (Data tab)"), ("--data", "the Data tab"),
             ("--template", "the Templates tab"), ("--shots", "the Shots box"), ("--limit", "the Limit box")]


def ui_words(text: str) -> str:
    """CLI flags in a message ("pass the folder: --model DIR") as the page's words."""
    import re

    for flag, words in _UI_WORDS:
        text = re.sub(re.escape(flag) + r"(?![\w-])", words, text)
    return text


def format_error(e: WorkbenchError) -> str:
    msg, hint = ui_words(e.message), ui_words(e.hint) if e.hint else ""
    return f"{msg}\n\nHint: {hint}" if hint else msg


@contextmanager
def user_errors(what: str) -> Iterator[None]:
    """Turn errors into a readable toast (gr.Error), never a traceback in the page.

    A WorkbenchError shows its message and hint; anything else is a bug, logged with its
    traceback on the server and shown as one line."""
    import gradio as gr

    try:
        yield
    except gr.Error:
        raise
    except WorkbenchError as e:
        raise gr.Error(format_error(e), title=f"{what} failed", print_exception=False) from None
    except Exception as e:  # noqa: BLE001
        log.exception("%s failed", what)
        raise gr.Error(f"{type(e).__name__}: {e}", title=f"{what} failed", print_exception=False) from None


# ------------------------------------------------------------------------------------ data
@functools.lru_cache(maxsize=8)
def _load_dataset_cached(spec: str, text_column: str | None, label_column: str | None, mtime: float):
    from workbench.storage.data_load import load_dataset

    return load_dataset(spec, text_column=text_column, label_column=label_column)


def get_dataset(spec: str, text_column: str | None = None, label_column: str | None = None):
    """Load (or reuse) a dataset. Datasets are read-only once loaded, so sessions that open the
    same file share one copy; a changed file (new mtime) is read again."""
    import os

    mtime = os.path.getmtime(spec) if os.path.exists(spec) else 0.0
    return _load_dataset_cached(spec, text_column or None, label_column or None, mtime)


def state_dataset(state: UIState):
    from workbench.errors import DataError

    if not state or not state.data_spec:
        raise DataError("No dataset is loaded.", hint="Open the Data tab and load a dataset first.")
    return get_dataset(state.data_spec, state.text_column, state.label_column)


def parse_template(yaml_text: str):
    from workbench.errors import TemplateError
    from workbench.core.templates import load_template

    if not (yaml_text or "").strip():
        raise TemplateError("The template editor is empty.", hint="Load a template from the library in the Templates tab.")
    # Editor text is YAML, never a server path (a one-line "path" would otherwise be opened).
    return load_template(yaml_text if "\n" in yaml_text else yaml_text + "\n")


# ------------------------------------------------------------------------------------ results
def empty_figure(message: str):
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.update_layout(template="plotly_white", height=320, xaxis_visible=False, yaxis_visible=False,
                      annotations=[dict(text=message, showarrow=False, font=dict(size=14, color="#888"))])
    return fig


class _Result:
    """An EvalResult's dict read like the object (for format_judge)."""

    def __init__(self, d: dict):
        self.metrics, self.provenance = d["metrics"], d.get("provenance", {})


def metrics_markdown(payload: dict) -> str:
    m, prov, t = payload["metrics"], payload.get("provenance", {}), payload.get("timings", {})
    cfg = prov.get("config", {})
    if payload.get("task") == "generation":
        heads = [("exact match", m.get("exact_match")), ("token F1", m.get("token_f1")), ("contains", m.get("contains"))]
    else:
        heads = [("accuracy", m.get("accuracy")), ("macro F1", m.get("macro_f1")), ("weighted F1", m.get("weighted_f1"))]
    cells = " | ".join(f"**{v:.3f}**" if isinstance(v, (int, float)) else "–" for _, v in heads)
    lines = ["| " + " | ".join(n for n, _ in heads) + " | examples |", "|" + "---|" * (len(heads) + 1),
             f"| {cells} | {m.get('n', len(payload.get('records', [])))} |", ""]
    tmpl, model, data = prov.get("template", {}), prov.get("model", {}), prov.get("data", {})
    lines.append(f"template **{tmpl.get('name', '?')}** (`{str(tmpl.get('hash', ''))[:10]}`) · model `{model.get('name', '?')}`"
                 + (f" + adapter `{model['adapter']}`" if model.get("adapter") else "")
                 + f" · data **{data.get('name', '?')}** {data.get('split', '')} split (seed {data.get('split_seed', 0)})")
    how = ("generation" if payload.get("task") == "generation"
           else f"method `{cfg.get('method', 'acc')}` · calibration `{cfg.get('calibration', 'none')}`")
    lines.append(f"{cfg.get('shots', 0)}-shot (seed {cfg.get('seed', 0)}) · {how} · {t.get('total_s', 0):.1f}s "
                 f"({t.get('examples_per_s', 0):.1f} examples/s)")
    if m.get("reference_metrics"):
        lines.append("reference metrics: " + " · ".join(f"{k} **{v:.4g}**" for k, v in m["reference_metrics"].items()))
    if m.get("judge_score") is not None:
        from workbench.jobs.judge import format_judge

        lines.append("\n```text\n" + format_judge(_Result(payload)) + "\n```")
    if payload.get("task") != "generation" and isinstance(m.get("accuracy"), (int, float)) and m.get("n"):
        # the accuracy's 95% interval and the majority baseline beside it (issue 28, items 4 and 10)
        from workbench.core.collapse import one_class_text
        from workbench.core.stats import wilson_interval

        lo, hi = wilson_interval(round(m["accuracy"] * m["n"]), int(m["n"]))
        lines.append(f"\naccuracy 95% interval [{lo:.3f}, {hi:.3f}] (Wilson, n={m['n']})"
                     + (f" · majority baseline **{m['majority_baseline']:.3f}**" if "majority_baseline" in m else ""))
        if one_class_text(m):
            lines.append("\n" + one_class_text(m))
    for w in prov.get("warnings", []):   # e.g. prompts cut to the model's window
        lines.append(f"\n⚠ {w}")
    return "\n".join(lines)


def predictions_frame(payload: dict, errors_only: bool = False):
    """One row per example: gold, prediction, correct and (classification) a score per choice."""
    import pandas as pd

    rows = []
    gen = payload.get("task") == "generation"
    for r in payload.get("records", []):
        if errors_only and r.get("correct"):
            continue
        tail = r.get("prompt", "")[-160:].replace("\n", " ⏎ ")
        if gen:
            d = {"row": r["index"], "gold": _s(r["gold"]), "output": r.get("output", ""),
                 "extracted": r["pred"], "match": "✓" if r["correct"] else "✗"}
            for m, v in (r.get("metrics") or {}).items():
                d[m] = round(float(v), 3)
            if isinstance(r.get("judge"), dict):
                d["judge"] = round(float(r["judge"]["score"]), 3)
            d["prompt (end)"] = tail
            rows.append(d)
        else:
            d = {"row": r["index"], "gold": r["gold"], "pred": r["pred"], "correct": "✓" if r["correct"] else "✗"}
            for lab, s in (r.get("scores") or {}).items():
                d[f"score · {lab}"] = round(float(s), 3)
            d["prompt (end)"] = tail
            rows.append(d)
    if not rows:
        cols = ["row", "gold", "output", "extracted", "match"] if gen else ["row", "gold", "pred", "correct"]
        return pd.DataFrame(columns=cols)
    return pd.DataFrame(rows)


def _s(v) -> str:
    return " | ".join(map(str, v)) if isinstance(v, list) else str(v)


def result_views(payload: dict | None, errors_only: bool = False):
    """(metrics markdown, per-class figure, confusion figure, predictions table) of a result."""
    from workbench.core import plots

    if not payload:
        return ("*No results yet.*", empty_figure("no results yet"), empty_figure("no results yet"),
                predictions_frame({"records": []}))
    md = metrics_markdown(payload)
    m = payload["metrics"]
    if payload.get("task") == "generation" or "per_class" not in m:
        bar = empty_figure("generation run: see exact match above and the outputs below")
        conf = empty_figure("no confusion matrix for generation")
    else:
        bar = plots.per_class_bar(m)
        conf = plots.confusion_heatmap(m)
    return md, bar, conf, predictions_frame(payload, errors_only)


def run_payload(run_id: str) -> dict:
    """The stored result of a run."""
    from workbench.paths import runs_db

    return _run_payload(str(runs_db()), run_id)


@functools.lru_cache(maxsize=16)
def _run_payload(db: str, run_id: str) -> dict:
    # Runs are immutable once recorded, so caching by (registry file, id) is safe.
    from workbench.errors import ConfigError
    from workbench.storage.runs import RunRegistry

    reg = RunRegistry(db)
    reg.get(run_id)   # raises a readable error for an unknown id
    p = reg.payload(run_id)
    if p is None:
        raise ConfigError(f"Run {run_id} has no stored results.", hint="Only eval runs can be opened here.")
    return p


def fmt_seconds(s) -> str:
    if s is None:
        return "…"
    s = float(s)
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.1f} min"


def job_progress_html(st: dict | None, *, what: str = "", idle: str = "Nothing running.", unit: str = "") -> str:
    """The progress bar + status line of a `workbench.jobs.queue` job (Run and Compare tabs).
    `unit` names what `done/total` counts; empty hides them (the message then carries each
    stage's real counts, core/progress.py). The ETA is the job's own steady one (jobs/queue.py)."""
    import html

    if not st or st.get("state") == "unknown":
        return f"<div class='wb-progress idle'><span>{html.escape(idle)}</span></div>"
    state, done, total = st["state"], st.get("done", 0), st.get("total", 0)
    pct = 100.0 if state == "done" else (100.0 * done / total if total else 0.0)
    if state == "running":
        counts = f"{done}/{total} {unit} · " if unit and total else ""
        eta = f"ETA {fmt_seconds(st.get('eta_s'))} · " if total else ""
        detail = f"{counts}{html.escape(st.get('message') or '')} · {eta}{fmt_seconds(st.get('elapsed_s'))} elapsed"
    elif state == "queued":
        detail = html.escape(st.get("message") or "queued")
    elif state == "done":
        rid = st.get("result_id")      # None: a job whose result is not a registry run (a task comparison)
        detail = f"finished in {fmt_seconds(st.get('elapsed_s'))}" + (f" · run <code>{html.escape(str(rid))}</code>"
                                                                       if rid else "")
    elif state == "failed":
        detail = "failed: " + html.escape(st.get("error") or "")
    else:
        detail = html.escape(st.get("message") or state)
    return (f"<div class='wb-progress {state}'><div class='wb-bar'><div class='wb-fill' style='width:{pct:.1f}%'></div>"
            f"</div><div class='wb-detail'><b>{state}</b> · {html.escape(what)} · {detail}</div></div>")



# ------------------------------------------------------------------------------------ run specs
def template_source(state: UIState | None, template_yaml: str) -> tuple:
    """(template, path) of the editor's content: the file it was loaded from or saved to while
    the editor still holds it unchanged, else no path (the command then saves it first)."""
    t = parse_template(template_yaml)
    path = None
    if state is not None and state.template_path and (template_yaml or "").strip() == (state.saved_yaml or "").strip():
        path = state.template_path
    return t, path


def spec_command(spec) -> str:
    """The spec's equivalent `workbench ...` command, runnable as shown: templates that exist only
    in the editor are written to $WORKBENCH_HOME/specs/NAME-HASH.yaml (content-addressed, so the
    same template always gets the same file) and the command names that file."""
    import dataclasses
    import re

    from workbench import paths

    refs = []
    for t in spec.templates:
        if t.path is None:
            folder = paths.home() / "specs"
            folder.mkdir(parents=True, exist_ok=True)
            f = folder / f"{re.sub(r'[^A-Za-z0-9._-]+', '-', t.name)[:60]}-{t.hash[:12]}.yaml"
            if not f.exists():
                f.write_text(t.yaml, encoding="utf-8")
            t = dataclasses.replace(t, path=str(f))
        refs.append(t)
    return dataclasses.replace(spec, templates=refs).command()


def command_markdown(command: str) -> str:
    return f"Equivalent command (same settings, same predictions):\n\n```bash\n{command}\n```"
