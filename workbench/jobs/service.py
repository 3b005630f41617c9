"""The model service: the one owner of the model in a server process.

    job_id = service.submit(spec)            # queued; runs when the model is free
    service.status(job_id); service.cancel(job_id)
    s = service.interactive(model_ref)       # Preview and other quick calls: the loaded session
    service.load_model("HuggingFaceTB/...")  # the model bar; ModelBusy while a job holds the model
    run_dir = service.start_training(spec)   # the training lane: one run at a time

How the model is shared (one mechanism, not five):
  * model jobs (eval, compare, export, search) run one at a time from a single queue
    (`workbench.jobs.queue`, resource "model"), each holding the session with
    `engine.session.hold_session` for its whole run; a comparison of several models holds
    each model in turn (loading the next frees the previous local one);
  * while a job holds it, loading another model or changing the adapter from anywhere else
    raises ModelBusy naming the job ("eval of T on bbc"), so the user can wait or cancel; a
    Preview on the same model goes ahead (it only tokenizes and reads the chat template);
  * training runs apart, like LlamaBoard's runner: its own model copy, a run folder with a
    JSONL log the UI polls (workbench.jobs.training), started here one at a time.
"""
from __future__ import annotations

import threading
from pathlib import PurePath
from dataclasses import replace
from typing import Any

from workbench.core.spec import ModelRef, RunSpec
from workbench.errors import ConfigError
from workbench.jobs import queue
from workbench.storage.data_load import load_data_ref

MODEL = "model"     # the queue resource every model job shares


def submit(spec: RunSpec, *, dataset=None, meta: dict | None = None) -> str:
    """Queue a model job for `spec`: `runner.execute` runs it holding the spec's model with the spec's
    adapter applied, and the job's result is the registry id the UI opens (or the result itself). A
    model comparison (several models) holds each model in turn, while that model's columns are scored
    (runner.held_session). There is no other way in: every kind is a spec that `execute` runs."""
    from workbench.core.progress import Nested
    from workbench.jobs.runner import describe, execute, held_session

    if spec.kind == "train":
        raise ConfigError("Training runs in its own lane.", hint="Use service.start_training(spec).")
    # several models, or an lm-eval task comparison (which opens its model(s) itself): the job
    # holds each model in turn while its arms are scored
    several = len(spec.models) > 1 or bool(spec.kind == "compare" and spec.options.task)

    def job(ctx):
        if several:
            out = execute(spec, None, dataset=dataset, progress=ctx.progress, cancel=ctx.cancelled)
            return out.run_id if out.run_id else out.result
        ctx.message("loading the model")
        # an eval or an export reports stages (rendering, scoring); one overall count keeps its bar moving
        staged = {"eval": "", "export": "the test split"}
        progress = Nested(ctx.progress, 0, 1, staged[spec.kind]) if spec.kind in staged else ctx.progress
        with held_session(spec.model, describe(spec)) as session:
            out = execute(spec, session, dataset=dataset, progress=progress, cancel=ctx.cancelled,
                          on_run=ctx.found)
        # the registry id the UI opens; an export's bundle folder (a path, as text: the job's result id)
        return out.run_id or (str(out.result) if isinstance(out.result, PurePath) else out.result)

    info = {"template": " vs ".join(t.name for t in spec.templates), "data": spec.data.name,
            "model": " vs ".join(m.model for m in spec.models), "command": spec.command(),
            "spec": spec.to_dict(),   # a reloaded page restores its form from it (issue 28, item 2)
            **(meta or {})}
    return queue.start(spec.kind, job, resource=MODEL, meta=info)


def status(job_id: str) -> dict:
    return queue.status(job_id or "")


def cancel(job_id: str) -> bool:
    return queue.cancel(job_id)


def busy() -> list[str]:
    """What holds the model now (running jobs), e.g. ["the eval of T on bbc"]."""
    from workbench.engine.session import session_holders

    return session_holders()


def interactive(ref: ModelRef | str):
    """The session for a quick call (Preview, token counts): the loaded one when it is this
    model, else this model loaded, which raises ModelBusy while a job holds another model."""
    from workbench.engine.session import current_session, get_session

    ref = ModelRef(model=ref) if isinstance(ref, str) else ref
    s = current_session()
    if s is not None and s.config.model == ref.model:
        return s
    return get_session(ref.model, **ref.session_kwargs())


def load_model(name: str):
    """Switch the server's model (the model bar): a model, or a saved engine's name
    (storage/engines.py). ModelBusy while a job holds the current one."""
    from workbench.engine.session import get_session
    from workbench.storage.engines import resolve

    ref = resolve(ModelRef(model=(name or "").strip() or "default"))
    return get_session(ref.model, **ref.session_kwargs())


def current_model_ref(name: str | None) -> ModelRef:
    """The ModelRef a UI job should use for model `name`: with the adapter the model bar has
    attached to it, so the job scores what the user sees in the bar."""
    from workbench.engine.session import current_session

    from workbench.storage.engines import resolve

    ref = resolve(ModelRef(model=(name or "").strip() or "default"))     # a saved engine's name -> its URL
    s = current_session()
    adapter = s.adapter if s is not None and s.config.model == ref.model else None
    return replace(ref, adapter=adapter)


# ------------------------------------------------------------------------------ training lane
_TRAIN_LOCK = threading.Lock()
_TRAINING: dict[str, Any] = {"job": None}


def start_training(spec: RunSpec, *, dataset=None):
    """Start a LoRA run of a train spec in the background; one run at a time per server (the
    run trains a private copy of the model: two at once would halve each other's speed and double
    the memory). Validation (data, lengths, modules) raises at once. Returns the TrainJob."""
    from workbench.jobs.train_job import TrainJob

    if spec.kind != "train" or spec.train is None:
        raise ConfigError(f"Not a train spec (kind {spec.kind}).")
    if not _TRAIN_LOCK.acquire(blocking=False):
        raise ConfigError("Another training run is being started.", hint="Wait a few seconds and try again.")
    try:
        cur = _TRAINING["job"]
        if cur is not None and cur.running:
            raise ConfigError(f"A training run is already going ({cur.run_dir.name}).",
                              hint="Stop it first, or wait for it to finish: one run at a time per server.")
        ds = dataset if dataset is not None else load_data_ref(spec.data)
        # the whole ModelRef: its device and trust_remote_code are used, an adapter or a server refused
        job = TrainJob.start(spec.model, spec.template.load(), ds, spec.train, spec.options.out)
        _TRAINING["job"] = job
        return job
    finally:
        _TRAIN_LOCK.release()
