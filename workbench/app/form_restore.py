"""A tab's form restored from the job it is attached to (issue 28, item 2).

After a reload, the Train and Search tabs reconnect to their running (or last) job; their
forms used to show the page's defaults under it, so pressing the button again started a
different job. These handlers read the job's own record (the training run's `start` log row,
the search's registry checkpoint) and return the form's values in the order the tab wires
them; with no job, every value is left as it is (gr.skip()).
"""
from __future__ import annotations

import gradio as gr

# Train form, in tab_train's input order after (state, editor, model).
TRAIN_FIELDS = ["data_mode", "k", "lora_r", "lora_alpha", "lora_dropout", "targets", "lr", "epochs", "steps",
                "batch", "accum", "max_len", "warmup", "seed", "eval_every", "patience", "mode", "dev_limit",
                "test_limit"]
# Search form, in tab_search's order after (state, model).
# the Train form's data choices (tab_train shows them; the restore maps a run's settings back to them)
DATA_ALL, DATA_K = "all of the train split", "k per class"
SEARCH_FIELDS = ["start_yaml", "axes", "budget_tokens", "budget_seconds", "max_dev", "test_limit", "shots",
                 "selections", "calibrations", "propose", "evaluate_test", "winner_name", "plain_words",
                 "metric", "racing", "alpha"]


def train_values(run_dir: str | None) -> dict | None:
    """The Train form's values of a run, from its `start` log row; None without one."""
    from workbench.jobs.training import read_log

    if not (run_dir or "").strip():
        return None
    try:
        start = next((r for r in read_log(run_dir) if r.get("event") == "start"), None)
    except Exception:  # noqa: BLE001 - the folder is gone
        return None
    c = (start or {}).get("config")
    if not c:
        return None
    k = c.get("shots_per_class")
    return {"data_mode": DATA_K if k else DATA_ALL, "k": k or gr.skip(), "lora_r": c.get("lora_r"),
            "lora_alpha": c.get("lora_alpha"), "lora_dropout": c.get("lora_dropout"),
            "targets": c.get("target_modules") or [], "lr": c.get("lr"), "epochs": c.get("epochs"),
            "steps": c.get("max_steps") or 0, "batch": c.get("batch_size"), "accum": c.get("grad_accum"),
            "max_len": c.get("max_length"), "warmup": c.get("warmup_ratio"), "seed": c.get("seed"),
            "eval_every": c.get("eval_every"), "patience": c.get("patience"), "mode": c.get("mode"),
            "dev_limit": c.get("dev_limit") or 0, "test_limit": c.get("test_limit") or 0}


def train_form(run_dir: str | None):
    """UI glue: the Train form's components set from the attached run (else unchanged)."""
    v = train_values(run_dir)
    return tuple(gr.skip() for _ in TRAIN_FIELDS) if v is None else tuple(v[f] for f in TRAIN_FIELDS)


def train_form_if_running(run_dir: str | None):
    """UI glue (tab shown): restore the form only while its run still goes on, so edits made
    for the next run are not undone by switching tabs."""
    from workbench.jobs.train_job import TrainJob

    try:
        running = bool((run_dir or "").strip()) and TrainJob.attach(run_dir).status()["state"] in ("pending", "running")
    except Exception:  # noqa: BLE001
        running = False
    return train_form(run_dir) if running else tuple(gr.skip() for _ in TRAIN_FIELDS)


def search_values(job_id: str | None = None, run_id: str | None = None) -> dict | None:
    """The Search form's values of a search (by its job, or its run id), from its checkpoint."""
    from workbench.jobs.search import open_search

    if not run_id and (job_id or "").strip():
        from workbench.app.search_live import run_id_of

        run_id = run_id_of(job_id)
    if not run_id:
        return None
    try:
        p = open_search(run_id).payload
    except Exception:  # noqa: BLE001 - no checkpoint yet, or removed
        return None
    s = p.get("settings") or {}
    if not s or not (p.get("start") or {}).get("yaml"):
        return None
    return {"start_yaml": p["start"]["yaml"], "axes": s.get("axes"), "budget_tokens": s.get("budget_tokens") or 0,
            "budget_seconds": s.get("budget_seconds") or 0, "max_dev": s.get("max_dev_rows") or 0,
            "test_limit": s.get("test_limit") or 0, "shots": ",".join(str(x) for x in s.get("shots") or [0]),
            "selections": s.get("selections"), "calibrations": s.get("calibrations"),
            "propose": s.get("propose_instructions") or 0, "evaluate_test": bool(s.get("evaluate_test", True)),
            "winner_name": s.get("winner_name") or "", "plain_words": bool(s.get("plain_label_words")),
            "metric": s.get("metric") or "", "racing": s.get("racing") or "halving", "alpha": s.get("alpha", 0.05)}


def search_form(job_id: str | None):
    """UI glue: the Search form's components set from the attached search (else unchanged)."""
    v = search_values(job_id)
    return tuple(gr.skip() for _ in SEARCH_FIELDS) if v is None else tuple(v[f] for f in SEARCH_FIELDS)


def search_form_if_running(job_id: str | None):
    """UI glue (tab shown): restore the Search form only while its search still goes on, so
    edits made for the next search are not undone by switching tabs."""
    from workbench.jobs import queue as jobs

    try:
        running = bool((job_id or "").strip()) and jobs.status(job_id)["state"] in ("queued", "running")
    except Exception:  # noqa: BLE001
        running = False
    return search_form(job_id) if running else tuple(gr.skip() for _ in SEARCH_FIELDS)


def compare_values(job_id: str | None) -> dict | None:
    """Compare's form of a comparison job, from the spec its job carries: {"settings": [shots,
    seed, method, calibration, split, limit], "models": text, "n": columns, "yamls": [...]}."""
    from workbench.jobs import service

    if not (job_id or "").strip():
        return None
    st = service.status(job_id)
    spec = (st.get("meta") or {}).get("spec")
    if st.get("state") == "unknown" or not spec or spec.get("kind") != "compare":
        return None
    e = spec.get("eval") or {}
    models = [m.get("model") for m in spec.get("models") or []][1:]   # the first is the model bar's
    return {"settings": [e.get("shots", 0), e.get("seed", 0), e.get("method", "acc"), e.get("calibration", "none"),
                         e.get("split", "test"), e.get("limit") or 0],
            "models": "\n".join(m for m in models if m), "n": len(spec.get("templates") or []),
            "yamls": [t.get("yaml", "") for t in spec.get("templates") or []]}


def compare_form(job_id: str | None, n_codes: int):
    """UI glue: Compare's settings, models, column count and column YAMLs from its job."""
    v = compare_values(job_id)
    if v is None:
        return tuple(gr.skip() for _ in range(8 + n_codes))
    yamls = v["yamls"] + [gr.skip()] * (n_codes - len(v["yamls"]))
    return tuple(v["settings"]) + (v["models"], max(1, v["n"])) + tuple(yamls[:n_codes])
