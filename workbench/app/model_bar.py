"""The model bar (always visible): model name, load button, device / dtype / memory / adapter.

There is one model in memory for the whole server, owned by `workbench.jobs.service`: loading
another frees the old one, so every user sees the same model here; while a job holds the model,
loading another is refused with the job's name (ModelBusy), and the user can wait or cancel it.
"""
from __future__ import annotations

import gradio as gr

from workbench.app.common import Ctx, user_errors


def current_session():
    """The loaded session, if any, without loading one."""
    from workbench.engine.session import current_session as _current

    return _current()


def _info_markdown(info: dict | None, note: str = "") -> str:
    if not info or not info.get("loaded"):
        return ("○ **no model loaded yet** · the model named on the left loads on first use (preview or run), "
                "or press *Load*") + (f" · {note}" if note else "")
    if info.get("backend") == "remote":
        # an inference server (docs/SERVING.md): no weights here, only the tokenizer
        srv = info.get("server") or {}
        ok = "scoring ✓" if srv.get("scoring_ok") else f"generation only ({srv.get('scoring_problem')})"
        return " · ".join([f"● **{info['model']}**", f"serves `{srv.get('served_name')}`",
                           f"context {info.get('max_length', '?')}", ok]) + (f" · {note}" if note else "")
    mem = f"{info['rss_mb'] / 1024:.1f} GB RAM" if info.get("rss_mb") else ""
    if info.get("gpu_mem_mb"):
        mem = f"{info['gpu_mem_mb'] / 1024:.1f} GB GPU" + (f" · {mem}" if mem else "")
    parts = [f"● **{info['model']}**", f"{info.get('params_m', '?')}M params", f"`{info.get('device')}` · `{info.get('dtype')}`",
             f"weights {info.get('weights_mb', 0):.0f} MB"]
    if mem:
        parts.append(mem)
    parts.append(f"context {info.get('max_length', '?')}")
    parts.append(f"adapter `{info['adapter']}`" if info.get("adapter") else "no adapter")
    if info.get("backend"):
        # "native": the built-in decoder scores (checked against transformers for this model).
        parts.append(f"scoring: {info['backend']}")
    return " · ".join(parts) + (f" · {note}" if note else "")


def model_info() -> dict:
    """The current model's state: {"model", "loaded", "device", "dtype", "adapter", "rss_mb", ...}."""
    s = current_session()
    return s.info() if s is not None else {"model": None, "loaded": False, "adapter": None}


def model_status() -> str:
    """The model bar's text (markdown)."""
    return _info_markdown(model_info())


def load_model(name: str, progress=gr.Progress()) -> str:  # noqa: B008 - Gradio's progress idiom
    """Load `name` ('default', a hub id, a folder or a .gguf) and free the previous model."""
    from workbench.jobs import service

    name = (name or "").strip() or "default"
    with user_errors("Loading the model"):
        cur = current_session()
        if cur is not None and cur.config.model == name:
            return _info_markdown(cur.info(), "already loaded")
        progress(0.1, desc=f"loading {name}…")
        s = service.load_model(name)   # ModelBusy (named job) while a job holds the current model
        progress(1.0, desc="loaded")
        return _info_markdown(s.info(), f"loaded in {s.load_seconds:.1f}s")


def build(ctx: Ctx, model: str = "default") -> None:
    with gr.Row(elem_id="model-bar", equal_height=True):
        ctx.model_name = gr.Textbox(value=model, label="Model", scale=2, max_lines=1,
                                    placeholder="default · a hub id like HuggingFaceTB/SmolLM2-360M · /path/to/folder or .gguf"
                                                " · openai:http://HOST:PORT/v1 (an inference server)")
        load_btn = gr.Button("Load", variant="secondary", scale=0, min_width=90)
        ctx.model_info = gr.Markdown(_info_markdown({"model": model}), elem_id="model-info")
    load_btn.click(load_model, ctx.model_name, ctx.model_info, api_name="load_model")
    ctx.model_name.submit(load_model, ctx.model_name, ctx.model_info, api_name="load_model_submit", api_visibility="private")
    ctx.demo.load(model_status, None, ctx.model_info, api_name="model_status", queue=False)
