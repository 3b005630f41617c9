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
        from workbench.core.spec import ModelRef
        from workbench.storage.engines import resolve

        cur = current_session()
        if cur is not None and cur.config.model == resolve(ModelRef(model=name)).model:
            return _info_markdown(cur.info(), "already loaded")
        progress(0.1, desc=f"loading {name}…")
        s = service.load_model(name)   # ModelBusy (named job) while a job holds the current model
        progress(1.0, desc="loaded")
        return _info_markdown(s.info(), f"loaded in {s.load_seconds:.1f}s")


def engines_markdown() -> str:
    """The saved inference-server entries, as the model bar lists them."""
    from workbench.storage.engines import list_engines

    rows = list_engines()
    if not rows:
        return "*No saved servers yet. Save one below, then type its name in Model.*"
    lines = ["| name | server | tokenizer | settings |", "|---|---|---|---|"]
    for e in rows:
        settings = ", ".join(f"{k}={v}" for k, v in sorted((e.get("engine") or {}).items())) or "defaults"
        lines.append(f"| **{e['name']}** | `{e['model']}` | {e.get('tokenizer') or 'default'} | {settings} |")
    return "\n".join(lines)


def save_engine(name: str, url: str, tokenizer: str, concurrency: float | None) -> str:
    """Save an inference server under a short name; the Model box (and the CLI's --model, and
    Compare's model columns) then accept that name. The API key is never saved: it is read from
    WORKBENCH_API_KEY or OPENAI_API_KEY when the server is used."""
    from workbench.core.spec import ModelRef
    from workbench.storage import engines

    with user_errors("Saving the server"):
        url = (url or "").strip()
        if url and not url.startswith("openai:"):
            url = "openai:" + url
        engine = {"concurrency": int(concurrency)} if concurrency else {}
        engines.save_engine(name, ModelRef(model=url, tokenizer=(tokenizer or "").strip() or None, engine=engine))
    return engines_markdown()


def delete_engine(name: str) -> str:
    """Forget a saved server entry (runs that used it keep its URL and settings in their spec)."""
    from workbench.errors import ConfigError
    from workbench.storage import engines

    with user_errors("Deleting the server"):
        if not engines.delete_engine(name):
            raise ConfigError(f"No saved server is named '{(name or '').strip()}'.",
                              hint="The table above lists the saved names.")
    return engines_markdown()


def build(ctx: Ctx, model: str = "default") -> None:
    with gr.Row(elem_id="model-bar", equal_height=True):
        ctx.model_name = gr.Textbox(value=model, label="Model", scale=2, max_lines=1,
                                    placeholder="default · a hub id like HuggingFaceTB/SmolLM2-360M · /path/to/folder or .gguf"
                                                " · openai:http://HOST:PORT/v1 (an inference server)")
        load_btn = gr.Button("Load", variant="secondary", scale=0, min_width=90)
        ctx.model_info = gr.Markdown(_info_markdown({"model": model}), elem_id="model-info")
    with gr.Accordion("Inference servers (vLLM, SGLang, llama.cpp): save one under a name", open=False,
                      elem_id="engines"):
        engines_md = gr.Markdown(engines_markdown(), elem_id="engines-list")
        with gr.Row():
            e_name = gr.Textbox(label="Name", placeholder="vllm-70b", max_lines=1, elem_id="engine-name")
            e_url = gr.Textbox(label="Server URL", placeholder="http://HOST:PORT/v1#SERVED_NAME", max_lines=1, scale=2,
                               elem_id="engine-url")
            e_tok = gr.Textbox(label="Tokenizer", placeholder="the served model's: hub id or folder (default: the URL's)",
                               max_lines=1, elem_id="engine-tokenizer")
            e_conc = gr.Number(None, label="Requests in flight", precision=0, minimum=1, elem_id="engine-concurrency")
        with gr.Row():
            e_save = gr.Button("Save server", elem_id="engine-save")
            e_del = gr.Button("Delete by name", variant="stop", elem_id="engine-delete")
        gr.Markdown("The API key is never saved: set `WORKBENCH_API_KEY` (or `OPENAI_API_KEY`) where the workbench "
                    "runs. See docs/SERVING.md.")
    e_save.click(save_engine, [e_name, e_url, e_tok, e_conc], engines_md, api_name="save_engine")
    e_del.click(delete_engine, e_name, engines_md, api_name="delete_engine")
    ctx.demo.load(engines_markdown, None, engines_md, api_name="list_engines", queue=False)
    load_btn.click(load_model, ctx.model_name, ctx.model_info, api_name="load_model")
    ctx.model_name.submit(load_model, ctx.model_name, ctx.model_info, api_name="load_model_submit", api_visibility="private")
    ctx.demo.load(model_status, None, ctx.model_info, api_name="model_status", queue=False)
