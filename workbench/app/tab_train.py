"""Train tab: a short LoRA fine-tune of the editor's template on the session's dataset
(prompt-based, LM-BFF style; `workbench.jobs.training`), watched live, then compared with the base
model and attached to the shared session with one click.

The run is a `training.TrainJob`: `prepare` validates everything synchronously (a bad setting
is a toast before any work), then a thread trains while a `gr.Timer` polls the run folder's
log. The run folder is the job's identity: it is kept in the browser's localStorage, so a page
reload (or a second browser) reconnects with `TrainJob.attach(run_dir)` and redraws the curves
from `log.jsonl`; the dropdown of past runs reopens any run folder the same way.
"""
from __future__ import annotations

import functools
import html
from pathlib import Path

import gradio as gr

from workbench.app.common import (Ctx, UIState, command_markdown, empty_figure, spec_command, state_dataset,
                                  template_source, user_errors)

POLL_S = 1.5
MODES = ["lm", "head"]
from workbench.app.form_restore import DATA_ALL, DATA_K  # noqa: E402 - the form's data choices
FINISHED = ("done", "cancelled", "failed", "interrupted")


# ------------------------------------------------------------------------------------ helpers
def _run_dir(run_dir: str):
    """A run folder the UI may read or act on: one that holds a training log, or a folder under
    $WORKBENCH_HOME/train (a run just started writes its first log row a moment later)."""
    from workbench.errors import ConfigError
    from workbench.paths import train_dir
    from workbench.jobs.training import LOG_NAME

    from workbench import paths

    p = Path((run_dir or "").strip())
    if (run_dir or "").strip() and paths.server_paths_restricted():
        paths.check_server_path(str(p), "training run", roots=[train_dir()])
    ok = bool((run_dir or "").strip()) and ((p / LOG_NAME).is_file()
                                             or (p.is_dir() and p.resolve().parent == train_dir().resolve()))
    if not ok:
        raise ConfigError(f"No training run at '{run_dir}'.",
                          hint="Pick a run from the list of training runs (↻ refreshes it), or start one.")
    return p


def _num(v, default=None, cast=float):
    """A gr.Number value (None when the box is empty) as int/float, or `default`."""
    if v is None or v == "":
        return default
    return cast(v)


def _fmt_s(s) -> str:
    if s is None:
        return "…"
    s = float(s)
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.1f} min"


def _f(v, fmt="{:.3f}") -> str:
    return fmt.format(v) if isinstance(v, (int, float)) else "–"


def progress_html(st: dict | None) -> str:
    """A progress bar and one status line: step/total, loss, speed, ETA, dev metrics, best step."""
    if not st or st.get("state") in (None, "unknown"):
        return "<div class='wb-progress idle'><span>No training run yet.</span></div>"
    state, step, total = st["state"], st.get("step") or 0, st.get("total_steps") or 0
    pct = 100.0 if state == "done" else (100.0 * step / total if total else 0.0)
    name = html.escape(Path(st.get("run_dir", "")).name)
    parts = [f"step {step}/{total or '?'}"]
    if st.get("loss") is not None:
        parts.append(f"loss {st['loss']:.4f}")
    if st.get("steps_per_s"):
        parts.append(f"{st['steps_per_s']:.2f} steps/s")
    if state == "running":
        parts.append("comparing base and adapter on test" if st.get("phase") == "final_eval"
                     else f"ETA {_fmt_s(st.get('eta_s'))}")
    if st.get("dev_macro_f1") is not None:
        parts.append(f"dev acc {_f(st.get('dev_accuracy'))} · macro-F1 {_f(st.get('dev_macro_f1'))}")
    if st.get("best_step") is not None:
        parts.append(f"best step {st['best_step']}")
    if st.get("cancel_requested") and state == "running":
        parts.append("stopping…")
    if st.get("stop_reason") and state != "running":
        parts.append(f"stopped: {st['stop_reason']}")
    if state == "failed" and st.get("error"):
        parts.append("error: " + str(st["error"]))
    detail = html.escape(" · ".join(parts))
    return (f"<div class='wb-progress {state}'><div class='wb-bar'><div class='wb-fill' style='width:{pct:.1f}%'></div>"
            f"</div><div class='wb-detail'><b>{state}</b> · <code>{name}</code> · {detail}</div></div>")


def eval_table(rows: list[dict]):
    """One row per dev evaluation: step, accuracy, macro-F1 and each class's F1."""
    import pandas as pd

    out = []
    for r in rows:
        if r.get("event") != "eval":
            continue
        d = {"step": r.get("step"), "dev acc": round(r.get("dev_accuracy") or 0, 3),
             "dev macro-F1": round(r.get("dev_macro_f1") or 0, 3), "best": "★" if r.get("best") else ""}
        for lab, v in (r.get("dev_per_class_f1") or {}).items():
            d[f"F1 · {lab}"] = round(float(v), 3)
        out.append(d)
    return pd.DataFrame(out) if out else pd.DataFrame(columns=["step", "dev acc", "dev macro-F1", "best"])


def result_markdown(res: dict | None, st: dict, run_dir: str | None = None) -> str:
    """Base vs base + adapter on the test split: headline metrics, the paired verdict (when
    the run folder holds both test results) and per-class P/R/F1."""
    if not res:
        if st.get("state") in ("pending", "running"):
            return "*The comparison with the base model appears here when the run ends.*"
        return "*This run has no result file.*"
    test = res.get("test") or {}
    adapter = res.get("adapter_dir") or "(none)"
    t = res.get("timings") or {}
    head = (f"**{html.escape(str(res.get('status')))}** ({res.get('stop_reason')}) · {res.get('steps')} steps, "
            f"best at step {res.get('best_step')} · {_f(t.get('steps_per_s'), '{:.2f}')} steps/s · "
            f"{_fmt_s(t.get('total_s'))} · adapter `{adapter}`")
    if not test:
        return head + "\n\n*No test comparison (the run was cancelled or `final_eval` was off); the best adapter is kept.*"
    b, a = test["base"], test["adapter"]
    lines = [head, "", f"Test split, {a.get('n', '?')} examples, same template and rows:", "",
             "| | base | base + adapter | Δ |", "|---|---|---|---|"]
    def bold_higher(x: float, y: float) -> tuple[str, str]:
        # the better side in bold, neither on a tie (a worse adapter used to be bold, issue 28, item 6)
        fx, fy = f"{x:.3f}", f"{y:.3f}"
        return (f"**{fx}**", fy) if x > y else ((fx, f"**{fy}**") if y > x else (fx, fy))

    for key, name in (("accuracy", "accuracy"), ("macro_f1", "macro-F1"), ("weighted_f1", "weighted F1")):
        if key in b and key in a:
            cb, ca = bold_higher(b[key], a[key])
            lines.append(f"| {name} | {cb} | {ca} | {a[key] - b[key]:+.3f} |")
    # inside the table (a row after the verdict below was printed as plain "| … |" text)
    if "majority_baseline" in a:
        lines.append(f"| majority baseline | {b.get('majority_baseline', a['majority_baseline']):.3f} | "
                     f"{a['majority_baseline']:.3f} | |")
    from workbench.core.collapse import one_class_text

    if run_dir:   # the paired base-vs-adapter verdict (issue 28, item 6)
        from workbench.app.export_plan import adapter_verdict, verdict_markdown

        v = verdict_markdown(adapter_verdict(run_dir))
        if v:
            lines += ["", v]
    for who, m in (("the base model", b), ("the adapter", a)):   # issue 28, item 4
        if one_class_text(m):
            lines += ["", one_class_text(m, who)]
    lines += ["", "| class | support | P base | P adapter | R base | R adapter | F1 base | F1 adapter |",
              "|---|---|---|---|---|---|---|---|"]
    for lab, pb in (b.get("per_class") or {}).items():
        pa = (a.get("per_class") or {}).get(lab, {})
        lines.append(f"| {lab} | {pb.get('support', '')} | {_f(pb.get('precision'))} | {_f(pa.get('precision'))} | "
                     f"{_f(pb.get('recall'))} | {_f(pa.get('recall'))} | {_f(pb.get('f1'))} | **{_f(pa.get('f1'))}** |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ endpoints
@functools.lru_cache(maxsize=8)
def _model_defaults(model: str) -> dict:
    # The architecture's default targets need only the module tree, so the model is built on
    # the meta device from its config: no weights are read.
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from workbench.engine.models import resolve_model
    from workbench.jobs.training import default_target_modules, linear_module_names

    resolved = resolve_model(model)
    config = AutoConfig.from_pretrained(resolved.path)
    with torch.device("meta"):
        m = AutoModelForCausalLM.from_config(config)
    return {"model": model, "model_type": getattr(config, "model_type", "?"),
            "target_modules": default_target_modules(m), "target_modules_mlp": default_target_modules(m, mlp=True),
            "linear_modules": linear_module_names(m)}


def train_defaults(model: str) -> dict:
    """The training defaults for `model`: {"model", "model_type", "target_modules" (the
    per-architecture LoRA default), "target_modules_mlp", "linear_modules" (every name that may
    be targeted), "config" (every TrainConfig default)}."""
    from dataclasses import asdict

    from workbench.jobs.training import TrainConfig

    with user_errors("Reading the training defaults"):
        model = (model or "").strip() or "default"
        return {**_model_defaults(model), "config": asdict(TrainConfig())}


def train_spec(state: UIState, template_yaml: str, model: str, data_mode: str, k: float, lora_r: float,
               lora_alpha: float, lora_dropout: float, target_modules: list[str] | None, lr: float, epochs: float,
               steps: float, batch_size: float, grad_accum: float, max_length: float, warmup: float, seed: float,
               eval_every: float, patience: float, mode: str, dev_limit: float, test_limit: float):
    """The RunSpec of the Train form (`workbench train` builds the same one)."""
    from workbench.core.spec import ModelRef, build_spec
    from workbench.errors import ConfigError
    from workbench.jobs.training import TrainConfig

    t, path = template_source(state, template_yaml)
    ds = state_dataset(state)
    if data_mode not in (None, "", DATA_ALL, DATA_K):
        raise ConfigError(f"Unknown training data choice {data_mode!r}.", hint=f"Use '{DATA_ALL}' or '{DATA_K}'.")
    shots = _num(k, None, int) if data_mode == DATA_K else None
    if data_mode == DATA_K and shots is None:
        raise ConfigError("'k per class' needs k.", hint="Set k (e.g. 16), or train on all of the train split.")
    targets = [s.strip() for s in (target_modules or []) if s and s.strip()] or None
    # An empty box means "the default", and the defaults are TrainConfig's, the very ones `workbench train`
    # uses with no flags; an explicit 0 keeps its documented meaning (no step cap, the whole split).
    d = TrainConfig()
    choices = dict(
        lora_r=_num(lora_r, d.lora_r, int), lora_alpha=_num(lora_alpha, d.lora_alpha, int),
        lora_dropout=_num(lora_dropout, d.lora_dropout), target_modules=targets, mode=mode or d.mode,
        lr=_num(lr, d.lr), epochs=_num(epochs, d.epochs), max_steps=_num(steps, d.max_steps or 0, int) or None,
        batch_size=_num(batch_size, d.batch_size, int), grad_accum=_num(grad_accum, d.grad_accum, int),
        max_length=_num(max_length, d.max_length, int), warmup_ratio=_num(warmup, d.warmup_ratio),
        seed=_num(seed, d.seed, int), shots_per_class=shots, split_seed=int(getattr(state, "split_seed", 0) or 0),
        eval_every=_num(eval_every, d.eval_every, int), patience=_num(patience, d.patience, int),
        dev_limit=_num(dev_limit, d.dev_limit or 0, int) or None,
        test_limit=_num(test_limit, d.test_limit or 0, int) or None)
    model = (model or "").strip() or "default"
    return build_spec("train", templates=[(t, path)], data=ds, model=ModelRef(model=model), train=choices), ds


def train_command(state: UIState, template_yaml: str, model: str, data_mode: str, k: float, lora_r: float,
                  lora_alpha: float, lora_dropout: float, target_modules: list[str] | None, lr: float, epochs: float,
                  steps: float, batch_size: float, grad_accum: float, max_length: float, warmup: float, seed: float,
                  eval_every: float, patience: float, mode: str, dev_limit: float, test_limit: float) -> str:
    """The `workbench train ...` command that runs this very training (markdown)."""
    with user_errors("Showing the command"):
        spec, _ = train_spec(state, template_yaml, model, data_mode, k, lora_r, lora_alpha, lora_dropout,
                             target_modules, lr, epochs, steps, batch_size, grad_accum, max_length, warmup, seed,
                             eval_every, patience, mode, dev_limit, test_limit)
        return command_markdown(spec_command(spec))


def train_start(state: UIState, template_yaml: str, model: str, data_mode: str, k: float, lora_r: float,
                lora_alpha: float, lora_dropout: float, target_modules: list[str] | None, lr: float, epochs: float,
                steps: float, batch_size: float, grad_accum: float, max_length: float, warmup: float, seed: float,
                eval_every: float, patience: float, mode: str, dev_limit: float, test_limit: float):
    """Validate and start a LoRA run of the editor's template on this session's dataset.
    `data_mode`: "all of the train split" or "k per class" (`k` rows per class); `target_modules`
    empty = the architecture's default; `steps` 0 = train by `epochs`; `dev_limit`/`test_limit`
    0 = the whole split. Returns (run folder, status markdown, poll timer); poll
    `train_status(run_dir)` and open the result with `train_open(run_dir)`."""
    from workbench.jobs import service

    with user_errors("Starting training"):
        spec, ds = train_spec(state, template_yaml, model, data_mode, k, lora_r, lora_alpha, lora_dropout,
                              target_modules, lr, epochs, steps, batch_size, grad_accum, max_length, warmup, seed,
                              eval_every, patience, mode, dev_limit, test_limit)
        job = service.start_training(spec, dataset=ds)   # validates data, lengths, modules: raises now
        run_dir = str(job.run_dir)
        return run_dir, run_dir, progress_html(job.status()), gr.Timer(active=True)


def train_status(run_dir: str) -> dict:
    """The run's status: {"state": pending|running|done|cancelled|failed|interrupted, "step",
    "total_steps", "loss", "lr", "steps_per_s", "eta_s", "dev_accuracy", "dev_macro_f1",
    "dev_per_class_f1", "best_step", "phase", "has_adapter", "stop_reason", "error", "result"
    (true once result.json is written), ...}; {"state": "unknown"} for no run."""
    from workbench.jobs.train_job import TrainJob

    if not (run_dir or "").strip():
        return {"state": "unknown"}
    with user_errors("Reading the training status"):
        p = _run_dir(run_dir)
        st = TrainJob.attach(p).status()
        st["result"] = (p / "result.json").exists()
        # A finished thread's log ends with "end"; result.json is written right before it.
        return st


def train_cancel(run_dir: str) -> dict:
    """Ask the run to stop (at its next micro-batch); the best adapter so far is kept.
    Returns the status dict."""
    from workbench.jobs.train_job import TrainJob

    with user_errors("Stopping training"):
        p = _run_dir(run_dir)
        job = TrainJob.attach(p)
        if job.status()["state"] in ("pending", "running"):
            job.cancel()
        return train_status(str(p))


def train_open(run_dir: str):
    """A run's views: (progress HTML, curves figure, dev evaluations table, result markdown,
    per-class F1 base vs adapter figure, confusion base, confusion base + adapter). Figures
    of a run still going are placeholders except the curves."""
    from workbench.jobs.training import read_log, read_result
    from workbench.jobs.train_job import TrainJob, result_figures

    with user_errors("Opening the training run"):
        p = _run_dir(run_dir)
        job = TrainJob.attach(p)
        st = job.status()
        rows = read_log(p)
        figs = result_figures(p)
        wait = "appears when the run ends" if st["state"] in ("pending", "running") else "no test comparison"
        return (progress_html(st), figs["curves"], eval_table(rows), result_markdown(read_result(p), st, str(p)),
                figs.get("per_class") or empty_figure(f"per-class F1: {wait}"),
                figs.get("confusion_base") or empty_figure(f"confusion (base): {wait}"),
                figs.get("confusion_adapter") or empty_figure(f"confusion (adapter): {wait}"))


def train_attach(model: str, run_dir: str):
    """Attach the run's (best) adapter to the shared model session: every tab then scores with
    it until `train_detach`. Returns (model bar markdown, message)."""
    from workbench.errors import ConfigError
    from workbench.engine.session import get_session
    from workbench.jobs.training import ADAPTER_NAME
    from workbench.jobs.train_job import TrainJob
    from workbench.app.model_bar import model_status

    with user_errors("Attaching the adapter"):
        p = _run_dir(run_dir)
        st = TrainJob.attach(p).status()
        if st["state"] in ("pending", "running"):
            raise ConfigError("This run is still training.", hint="Wait until it ends, or stop it: the best adapter is kept.")
        if not st.get("has_adapter"):
            raise ConfigError(f"Run {p.name} saved no adapter.", hint="It stopped before its first save; train again.")
        adapter = p / ADAPTER_NAME
        session = get_session((model or "").strip() or "default")
        # refuses while a job holds the model, and an adapter of another base model (session.py)
        session.attach_adapter(str(adapter))
        msg = f"Adapter of **{p.name}** attached: every tab now scores with it. Detach to go back."
        if st["state"] == "interrupted":
            msg += (f" Note: this run was interrupted at step {st.get('step')} of {st.get('total_steps')} "
                    "(its process died); the adapter is the best one saved before that.")
        if (adapter / "head.safetensors").exists():
            # Head mode trains a classifier the verbalizer scoring never reads (docs/TRAINING.md).
            msg += (" ⚠ This run trained a classification head (mode: head): the tabs score verbalizers with "
                    "its LoRA weights only, so their numbers will not match the run's test table. "
                    "Train with mode lm for an adapter that scores verbalizers.")
        return model_status(), msg


def train_detach():
    """Detach any adapter from the shared model session. Returns (model bar markdown, message)."""
    from workbench.app.model_bar import current_session, model_status

    with user_errors("Detaching the adapter"):
        s = current_session()
        if s is None or not s.adapter:
            return model_status(), "No adapter is attached."
        s.detach_adapter()   # refused while a job holds the model (session.py)
        return model_status(), "Adapter detached: the base model is back."


def train_runs() -> list[dict]:
    """Training run folders, newest first: [{"run_dir", "name", "state", "step", "total_steps",
    "best_step", "dev_macro_f1", "has_adapter"}]."""
    from workbench.jobs.training import list_runs

    with user_errors("Listing training runs"):
        keys = ("run_dir", "state", "step", "total_steps", "best_step", "dev_macro_f1", "has_adapter")
        return [{**{k: st.get(k) for k in keys}, "name": Path(st["run_dir"]).name} for st in list_runs()]


# ------------------------------------------------------------------------------------ page glue
def _run_choices():
    runs = train_runs()
    # A running run's step would be stale at once (the list is not redrawn every tick): the
    # progress line above shows it live (issue 28, item 10).
    return [(f"{r['name']} · {r['state']}" + ("" if r["state"] in ("pending", "running")
                                             else f" · step {r['step']}/{r['total_steps'] or '?'}"), r["run_dir"])
            for r in runs]


def refresh_runs(current: str):
    choices = _run_choices()
    values = [v for _, v in choices]
    return gr.Dropdown(choices=choices, value=current if current in values else None)


def show_defaults(model: str):
    """Fill the target-module choices and say what the default is."""
    try:
        d = train_defaults(model)
    except gr.Error:
        return gr.Dropdown(info="empty = the architecture's default (model not readable yet)")
    return gr.Dropdown(choices=d["linear_modules"],
                       info=f"empty = default for {d['model_type']}: {' '.join(d['target_modules'])}")


def _empty_views():
    return (progress_html(None), empty_figure("start a run to see its curves"), eval_table([]),
            "*Start a run, or open a past one, to see its results.*", empty_figure("per-class F1 after the run"),
            empty_figure("confusion (base)"), empty_figure("confusion (adapter)"))


def poll_train(run_dir: str, seen: int):
    """Timer tick: progress; curves and the dev table when the log grew; everything at the end.
    Returns (progress, timer, rows seen, curves, eval table, result md, per-class, conf base,
    conf adapter, past-runs dropdown)."""
    from workbench.core import plots
    from workbench.jobs.training import read_log
    from workbench.jobs.train_job import TrainJob

    skip7 = tuple(gr.skip() for _ in range(7))
    try:
        st = TrainJob.attach(_run_dir(run_dir)).status()
    except Exception:  # noqa: BLE001 - no run (any more): stop polling quietly
        return (progress_html(None), gr.Timer(active=False), 0) + skip7
    if st["state"] in ("pending", "running"):
        rows = read_log(run_dir)
        if len(rows) == seen:
            return (progress_html(st), gr.Timer(active=True), seen) + skip7
        return (progress_html(st), gr.Timer(active=True), len(rows), plots.training_curves(rows),
                eval_table(rows)) + tuple(gr.skip() for _ in range(5))
    if st["state"] == "failed" and st.get("error"):
        gr.Warning(str(st["error"]), title="Training failed")
    views = train_open(run_dir)
    # The run's state in the past-runs list changes now, so that list is refreshed once.
    return (views[0], gr.Timer(active=False), len(read_log(run_dir))) + tuple(views[1:]) + (refresh_runs(run_dir),)


def _running(run_dir: str) -> bool:
    from workbench.jobs.train_job import TrainJob

    return TrainJob.attach(run_dir).status()["state"] in ("pending", "running")


def reconnect(run_dir: str):
    """Page load / tab shown: redraw the run stored in localStorage and keep polling it if it
    still runs. Without a stored run, the run in progress on this server (there is at most one)."""
    if not (run_dir or "").strip():
        from workbench.jobs.training import list_runs

        live = [r for r in list_runs() if r["state"] in ("pending", "running")]
        if not live:
            return ("", gr.Timer(active=False), 0) + _empty_views()
        run_dir = live[0]["run_dir"]
    try:
        views = train_open(run_dir)
    except gr.Error:
        return ("", gr.Timer(active=False), 0) + _empty_views()
    from workbench.jobs.train_job import TrainJob

    running = TrainJob.attach(run_dir).status()["state"] in ("pending", "running")
    return (run_dir, gr.Timer(active=running), 0) + views


def open_past(run_dir: str):
    """Dropdown choice: show that run and follow it (it becomes the tab's run)."""
    if not run_dir:
        return (gr.skip(), gr.skip(), gr.Timer(active=False), 0) + tuple(gr.skip() for _ in range(7))
    views = train_open(run_dir)
    from workbench.jobs.train_job import TrainJob

    running = TrainJob.attach(run_dir).status()["state"] in ("pending", "running")
    return (run_dir, run_dir, gr.Timer(active=running), 0) + views


def cancel_ui(run_dir: str) -> str:
    if not (run_dir or "").strip():
        return progress_html(None)
    return progress_html(train_cancel(run_dir))


def build(ctx: Ctx) -> None:
    from dataclasses import fields

    from workbench.jobs.training import TrainConfig

    h = {f.name: f.metadata.get("help", "") for f in fields(TrainConfig)}
    with gr.Tab("Train", id="train", elem_id="tab-train") as tab:
        from workbench.app import badge

        badge.add(ctx, "train")
        gr.Markdown("Fine-tune the model on **the template in the editor** (named above) with LoRA (prompt-based: the loss is on the "
                    "gold verbalizer after the prompt), on this session's dataset. The model bar's model is copied for "
                    "training, so the other tabs keep working while it runs.")
        with gr.Row(equal_height=True):
            data_mode = gr.Radio([DATA_ALL, DATA_K], value=DATA_K, label="Training data", scale=2)
            k = gr.Number(16, label="k per class", precision=0, minimum=1, min_width=90, elem_id="train-k")
            mode = gr.Radio(MODES, value="lm", label="Mode", info="lm: answer-token loss · head: classifier", scale=2)
            seed = gr.Number(0, label="Seed", precision=0, min_width=90, info="sample, init, order")
        with gr.Accordion("LoRA", open=True):
            with gr.Row(equal_height=True):
                lora_r = gr.Number(8, label="Rank r", precision=0, minimum=1, min_width=90)
                lora_alpha = gr.Number(16, label="Alpha", precision=0, minimum=1, min_width=90, info="scale = alpha / r")
                lora_dropout = gr.Number(0.05, label="Dropout", minimum=0, maximum=0.99, step=0.01, min_width=90)
                targets = gr.Dropdown([], value=[], multiselect=True, allow_custom_value=True, scale=3,
                                      label="Target modules", info="empty = the architecture's default",
                                      elem_id="train-targets")
        with gr.Accordion("Optimisation and evaluation", open=True):
            with gr.Row(equal_height=True):
                lr = gr.Number(5e-4, label="Learning rate", minimum=0, step=1e-4, min_width=100, elem_id="train-lr")
                epochs = gr.Number(3, label="Epochs", minimum=0, min_width=90, info="if steps = 0")
                steps = gr.Number(60, label="Steps", precision=0, minimum=0, min_width=90, info="0 = use epochs",
                                  elem_id="train-steps")
                batch = gr.Number(4, label="Batch size", precision=0, minimum=1, min_width=90, elem_id="train-batch")
                accum = gr.Number(1, label="Grad accum", precision=0, minimum=1, min_width=90)
                max_len = gr.Number(256, label="Max length", precision=0, minimum=8, min_width=90, info="tokens, never cut",
                                    elem_id="train-maxlen")
                warmup = gr.Number(0.1, label="Warm-up", minimum=0, maximum=0.99, step=0.05, min_width=90,
                                   info="share of steps")
            with gr.Row(equal_height=True):
                eval_every = gr.Number(20, label="Eval every N steps", precision=0, minimum=0, min_width=100,
                                       info="0 = only at the end", elem_id="train-eval-every")
                patience = gr.Number(3, label="Patience", precision=0, minimum=0, min_width=90, info=h["patience"][:40])
                dev_limit = gr.Number(200, label="Dev rows", precision=0, minimum=0, min_width=90, info="0 = all",
                                      elem_id="train-dev-limit")
                test_limit = gr.Number(0, label="Test rows", precision=0, minimum=0, min_width=90, info="0 = all",
                                       elem_id="train-test-limit")
        with gr.Row():
            start_btn = gr.Button("▶ Start training", variant="primary", elem_id="train-start")
            stop_btn = gr.Button("■ Stop", variant="stop", elem_id="train-stop")
            cmd_btn = gr.Button("Show command", variant="secondary", elem_id="train-command-btn", scale=0, min_width=150)
        command = gr.Markdown("", elem_id="train-command")
        progress = gr.HTML(progress_html(None), elem_id="train-progress")
        curves = gr.Plot(label="Training loss and dev metrics", elem_id="train-curves")
        evals = gr.Dataframe(headers=["step", "dev acc", "dev macro-F1", "best"], label="Dev evaluations (per-class F1)", interactive=False, max_height=300,
                             elem_id="train-evals")
        result_md = gr.Markdown("*Start a run, or open a past one, to see its results.*", elem_id="train-result")
        per_class = gr.Plot(label="Per-class F1: base vs base + adapter (test)", elem_id="train-per-class")
        with gr.Row():
            conf_base = gr.Plot(label="Confusion: base", elem_id="train-conf-base")
            conf_adapter = gr.Plot(label="Confusion: base + adapter", elem_id="train-conf-adapter")
        with gr.Row(equal_height=True):
            attach_btn = gr.Button("Attach adapter to the session", variant="primary", elem_id="train-attach")
            detach_btn = gr.Button("Detach", elem_id="train-detach")
            attach_msg = gr.Markdown("", elem_id="train-attach-msg")
        with gr.Row(equal_height=True):
            past = gr.Dropdown([], label="Past training runs (open one to see or follow it)", scale=4,
                               elem_id="train-past")
            refresh = gr.Button("↻", scale=0, min_width=50)
        timer = gr.Timer(POLL_S, active=False)
        # The run folder in localStorage (reload reconnects). Gradio mounts a tab's components
        # only when the tab is first shown, so the page-load event may see the empty default:
        # showing the tab reconnects again, with the stored value.
        run_state = ctx.browser["train_run"]
        seen = gr.State(0)
        # plain endpoints for scripts (gradio_client cannot read localStorage)
        with gr.Row(visible=False):
            api_run = gr.Textbox()
            api_status_btn, api_cancel_btn, api_open_btn = gr.Button(), gr.Button(), gr.Button()
            api_runs_btn, api_defaults_btn, api_attach_btn = gr.Button(), gr.Button(), gr.Button()
            api_json = gr.JSON()

    views = [progress, curves, evals, result_md, per_class, conf_base, conf_adapter]
    from workbench.app import form_restore

    form_fields = [data_mode, k, lora_r, lora_alpha, lora_dropout, targets, lr, epochs, steps, batch, accum, max_len,
                   warmup, seed, eval_every, patience, mode, dev_limit, test_limit]   # form_restore.TRAIN_FIELDS
    inputs = [ctx.state, ctx.editor, ctx.model_name, data_mode, k, lora_r, lora_alpha, lora_dropout, targets, lr,
              epochs, steps, batch, accum, max_len, warmup, seed, eval_every, patience, mode, dev_limit, test_limit]
    cmd_btn.click(train_command, inputs, command, api_name="train_command")
    start_btn.click(train_start, inputs, [run_state, api_run, progress, timer], api_name="train_start").then(
        refresh_runs, run_state, past, api_name="train_runs_refresh_after_start", api_visibility="private")
    timer.tick(poll_train, [run_state, seen], [progress, timer, seen] + views[1:] + [past], api_name="train_poll",
               api_visibility="private", show_progress="hidden", concurrency_limit=None)
    # The live curves are under the settings: bring the progress line and the curves into view.
    start_btn.click(None, None, None, js="() => { setTimeout(() => document.querySelector('#train-progress')"
                    "?.scrollIntoView({behavior: 'smooth', block: 'start'}), 400); }", queue=False)
    stop_btn.click(cancel_ui, run_state, progress, api_name="train_cancel_ui", api_visibility="private",
                   concurrency_limit=None)
    attach_btn.click(train_attach, [ctx.model_name, run_state], [ctx.model_info, attach_msg], api_name="train_attach_ui",
                     api_visibility="private")
    detach_btn.click(train_detach, None, [ctx.model_info, attach_msg], api_name="train_detach")
    refresh.click(refresh_runs, run_state, past, api_name="train_runs_refresh", api_visibility="private")
    past.select(open_past, past, [run_state, api_run, timer, seen] + views, api_name="train_open_past",
                api_visibility="private")
    # Public, explicit-input versions for scripts.
    api_status_btn.click(train_status, api_run, api_json, api_name="train_status", concurrency_limit=None)
    api_cancel_btn.click(train_cancel, api_run, api_json, api_name="train_cancel", concurrency_limit=None)
    api_open_btn.click(train_open, api_run, views, api_name="train_open")
    # The UI's attach button reads localStorage; scripts pass the run folder.
    api_attach_btn.click(train_attach, [ctx.model_name, api_run], [ctx.model_info, attach_msg], api_name="train_attach")
    api_runs_btn.click(train_runs, None, api_json, api_name="train_runs")
    api_defaults_btn.click(train_defaults, ctx.model_name, api_json, api_name="train_defaults")
    tab.select(reconnect, run_state, [run_state, timer, seen] + views, api_name="train_reconnect_on_select",
               api_visibility="private", show_progress="hidden")
    loaded = ctx.demo.load(reconnect, run_state, [run_state, timer, seen] + views, api_name="train_reconnect",
                           api_visibility="private").then(
        refresh_runs, run_state, past, api_name="train_runs_on_load", api_visibility="private").then(
        show_defaults, ctx.model_name, targets, api_name="train_defaults_on_load", api_visibility="private").then(
        form_restore.train_form, run_state, form_fields, api_name="train_form_on_load", api_visibility="private",
        show_progress="hidden")
    # Without a running job, the form the user last edited comes back after a reload (issue 28, item 2).
    if "train_form" in ctx.browser:
        from workbench.app import form_keep

        form_keep.wire(ctx, form_restore.TRAIN_FIELDS, form_fields, ctx.browser["train_form"], run_state,
                       _running, "train", after=loaded)
    # The form shows the settings of the run it is attached to (issue 28, item 2): after a reload,
    # on opening a past run, and on showing the tab while that run still goes on.
    past.select(form_restore.train_form, past, form_fields, api_name="train_form_on_open",
                api_visibility="private", show_progress="hidden")
    tab.select(form_restore.train_form_if_running, run_state, form_fields, api_name="train_form_on_select",
               api_visibility="private", show_progress="hidden")
