"""Data tab: pick a built-in dataset, upload a file or give a path; map the text and label
columns; see the rows (paged), the class balance and the split sizes with their seed."""
from __future__ import annotations

import math

import gradio as gr

from workbench.app.common import Ctx, UIState, get_dataset, state_dataset, user_errors

PAGE_SIZE = 20
OTHER = "file or path…"
FILE_TYPES = [".csv", ".tsv", ".jsonl", ".json", ".parquet"]


def builtin_choices() -> list[tuple[str, str]]:
    """(label, name) of the built-in datasets that are installed here."""
    from workbench.storage.data_builtins import builtin_datasets

    return [(f"{b['name']} — {b['description'].split(':')[0]}", b["name"]) for b in builtin_datasets()
            if b.get("available")]


def _spec(source: str | None, upload: str | None, path: str | None) -> str:
    from workbench.errors import DataError

    if upload:
        return upload if isinstance(upload, str) else getattr(upload, "name", str(upload))
    if path and path.strip():
        return path.strip()
    if source and source != OTHER:
        return source
    raise DataError("No dataset chosen.", hint="Pick a built-in dataset, upload a file, or type a path.")


def check_spec(spec: str) -> str:
    """Refuse server files outside the data folders when the app is served beyond loopback
    (built-in datasets, BIG-bench task names and hub ids are not server paths)."""
    from workbench import paths
    from workbench.storage.data_builtins import builtin_datasets
    from workbench.errors import DataError

    if not paths.server_paths_restricted():
        return spec
    if spec in {b["name"] for b in builtin_datasets()}:
        return spec
    if spec.startswith("hf:"):
        return paths.check_hub_id(spec)
    if spec.startswith("bigbench:"):
        task = spec[len("bigbench:"):]
        if ".." in task.split("/") or task.startswith(("/", "~")):
            raise DataError(f"{spec!r} is not a task name (this server reads only its data folders).",
                            hint="Write bigbench:TASK or bigbench:TASK/SUBTASK.")
        return spec
    paths.check_server_path(spec, "data file")
    return spec


def split_sizes(ds, seed: int = 0) -> str:
    """Markdown: the train/dev/test split sizes (the Run tab uses the same split)."""
    from workbench.core.data import split_dataset

    sp = split_dataset(ds, seed=int(seed), dev=0.1, test=0.2)
    n = len(ds.df)
    cells = " · ".join(f"{k} **{v}** ({v / max(1, n):.0%})" for k, v in sp.sizes().items())
    how = "stratified" if sp.stratified else "not stratified"
    return f"**Splits** ({how}, seed {int(seed)}): {cells}" + (f"  \n*{sp.note}*" if sp.note else "")


def label_note(ds) -> str:
    """A warning when the label column was guessed from the values, or not found at all."""
    det = (ds.meta or {}).get("label_detection") or {}
    if not det or det.get("sure"):
        return ""
    others = [c for c in det.get("candidates", []) if c != det.get("column")]
    alt = f" Other candidates: {', '.join(f'`{c}`' for c in others)}." if others else ""
    if det.get("column") is None:
        return ("\n\n<div class='wb-warn' id='label-warning'>⚠ <b>No label column found</b> "
                f"({det.get('reason')}). Pick the column with the gold labels under <i>Label column</i> and press "
                "<i>Load data</i>; without one you can preview and generate, but not score accuracy.</div>")
    return (f"\n\n<div class='wb-warn' id='label-warning'>⚠ <b>Is <code>{det['column']}</code> the label column?</b> "
            f"It was guessed because {det.get('reason')}.{alt} If not, pick the right one under "
            "<i>Label column</i> and press <i>Load data</i>.</div>")


def _summary(ds) -> str:
    from workbench.core.templates import column_ref

    labels = list(ds.labels)
    # as a template refers to them: a name with spaces is row['my title']
    cols = ", ".join(f"`{column_ref(str(c))}`" for c in ds.df.columns)
    shown = ", ".join(f"`{x}`" for x in labels[:12]) + (" …" if len(labels) > 12 else "")
    return (f"### {ds.name}\n**{len(ds.df)} rows** · {len(labels)} classes: {shown}  \n"
            f"text column `{ds.text_column}` · label column `{ds.label_column}` · columns: {cols}  \n"
            f"fingerprint `{ds.fingerprint()[:12]}` · source `{ds.source}`" + label_note(ds))


def _balance(ds):
    from workbench.core import plots
    from workbench.app.common import empty_figure

    if not ds.label_column:
        return empty_figure("no label column")
    counts = ds.df[ds.label_column].astype(str).value_counts()
    return plots.class_balance({str(k): int(v) for k, v in counts.sort_index().items()})


def page_rows(ds, page: int) -> tuple:
    pages = max(1, math.ceil(len(ds.df) / PAGE_SIZE))
    page = min(max(1, int(page or 1)), pages)
    start = (page - 1) * PAGE_SIZE
    df = ds.df.iloc[start:start + PAGE_SIZE].copy()
    df.insert(0, "row", df.index)
    return df, f"page {page} of {pages} · rows {start}–{min(start + PAGE_SIZE, len(ds.df)) - 1}", page


def failed_load_note(error: str, state: UIState | None) -> str:
    """The Data panel's lasting note after a failed load (issue 28, item 3): what failed, and
    that the previous dataset is still the one every tab uses."""
    import html

    kept = (f"The previous dataset is still loaded and used by every tab: <code>{html.escape(str(state.data_spec))}</code>."
            if state is not None and state.data_spec else "No dataset is loaded.")
    return (f"<div class='wb-warn' id='data-load-error'>⚠ <b>Loading failed</b>: {html.escape(error)}<br>"
            f"{kept}</div>\n\n")


def load_data(state: UIState, source: str, upload: str | None, path: str, text_column: str | None,
              label_column: str | None, split_seed: float):
    """Load a dataset for this session. Returns (state, summary, splits, class-balance plot,
    first page of rows, page label, text-column choice, label-column choice)."""
    try:
        return _load_data(state, source, upload, path, text_column, label_column, split_seed)
    except gr.Error as e:
        # A failed load leaves the previous dataset fully in place (state, pickers, rows) and
        # says so in the panel itself, not only in a toast that fades (issue 28, item 3).
        if state is None or not state.data_spec:
            raise
        gr.Warning(str(e.message), title=e.title)
        try:
            ds = state_dataset(state)
        except Exception:  # noqa: BLE001 - the previous file went away too
            raise e from None
        df, label, _ = page_rows(ds, 1)
        summary = failed_load_note(str(e.message).split("\n\n")[0], state) + _summary(ds)
        return (state, summary, split_sizes(ds, state.split_seed), _balance(ds), df, label,
                ds.text_column, ds.label_column, 1)


def is_upload(spec: str) -> bool:
    """True for a file in Gradio's temporary upload folder."""
    import os

    from workbench import paths

    real, root = os.path.realpath(spec), os.path.realpath(paths.upload_dir())
    return os.path.isfile(real) and real.startswith(root + os.sep)


def keep_upload(spec: str) -> str:
    """Copy an upload out of Gradio's temporary folder into $WORKBENCH_HOME/data/ as
    NAME-HASH12.EXT (its own name, a content hash so two files of one name never clash), and
    return the copy's path: commands, cards and reloads then name a file that stays (issue 28,
    item 9). The same content gives the same file, so uploading twice copies once."""
    import hashlib
    import re
    import shutil
    from pathlib import Path

    from workbench import paths

    src = Path(spec)
    h = hashlib.sha256()
    with open(src, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    stem = re.sub(r"[^\w.-]+", "_", src.stem)[:80] or "data"
    dest = paths.home() / "data" / f"{stem}-{h.hexdigest()[:12]}{src.suffix.lower()}"
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        shutil.copyfile(src, tmp)
        tmp.replace(dest)
    return str(dest)


def _load_data(state: UIState, source: str, upload: str | None, path: str, text_column: str | None,
               label_column: str | None, split_seed: float):
    with user_errors("Loading the data"):
        spec = check_spec(_spec(source, upload, path))
        if upload and is_upload(spec):
            spec = keep_upload(spec)
        ds = get_dataset(spec, text_column or None, label_column or None)
        state = state or UIState()
        state.data_spec, state.text_column, state.label_column = spec, ds.text_column, ds.label_column
        state.split_seed = int(split_seed or 0)
        df, label, _ = page_rows(ds, 1)
        return (state, _summary(ds), split_sizes(ds, state.split_seed), _balance(ds), df, label,
                ds.text_column, ds.label_column, 1)


def column_choices(state: UIState):
    """UI glue: offer the loaded dataset's columns in the two mapping dropdowns."""
    try:
        ds = state_dataset(state)
    except Exception:  # noqa: BLE001
        return gr.skip(), gr.skip()
    cols = [str(c) for c in ds.df.columns]
    return gr.update(choices=cols, value=ds.text_column), gr.update(choices=cols, value=ds.label_column)


def data_page(state: UIState, page: float):
    """Rows of page `page` (1-based, 20 rows each): (table, page label, page number)."""
    with user_errors("Showing rows"):
        return page_rows(state_dataset(state), page)


def data_prev_page(state: UIState, page: float):
    return data_page(state, int(page or 1) - 1)


def data_next_page(state: UIState, page: float):
    return data_page(state, int(page or 1) + 1)


def data_info(state: UIState) -> dict:
    """The loaded dataset: {"name", "rows", "columns", "labels", "text_column", "label_column", "fingerprint"}."""
    with user_errors("Reading the data"):
        ds = state_dataset(state)
        return {"name": ds.name, "rows": len(ds.df), "columns": [str(c) for c in ds.df.columns],
                "labels": [str(x) for x in ds.labels], "text_column": ds.text_column,
                "label_column": ds.label_column, "fingerprint": ds.fingerprint(), "spec": state.data_spec}


def remember(state: UIState) -> dict:
    """UI glue: what to reopen after a page reload (kept in the browser's localStorage)."""
    if not state or not state.data_spec:
        return gr.skip()
    return {"spec": state.data_spec, "text": state.text_column, "label": state.label_column,
            "seed": state.split_seed}


def _stored_spec(stored: dict | None) -> dict | None:
    import os

    if not isinstance(stored, dict) or not stored.get("spec"):
        return None
    spec = str(stored["spec"])
    # A file that is gone (server restarted and cleaned its uploads) falls back to the default.
    if ("/" in spec or os.sep in spec) and not os.path.exists(spec):
        return None
    return stored


def load_data_on_start(state: UIState, stored: dict | None, source: str, upload: str | None, path: str,
                       text_column: str | None, label_column: str | None, split_seed: float):
    """Page load: reopen the dataset this browser had loaded (an upload or a path), else the
    default one. Returns load_data's outputs plus the source, upload and path boxes."""
    import tempfile

    st = _stored_spec(stored)
    if st is None:
        return load_data(state, source, upload, path, text_column, label_column, split_seed) + (
            gr.skip(), gr.skip(), gr.skip())
    spec = st["spec"]
    try:
        out = load_data(state, OTHER, None, spec, st.get("text"), st.get("label"), st.get("seed") or 0)
    except gr.Error:
        return load_data(state, source, upload, path, text_column, label_column, split_seed) + (
            gr.skip(), gr.skip(), gr.skip())
    if spec in [v for _, v in builtin_choices()]:
        return out + (spec, gr.skip(), "")
    # Gradio keeps uploads in its temp folder: show them in the upload box, other paths in the path box
    # (an upload kept in $WORKBENCH_HOME/data by keep_upload is a server path from now on).
    is_upload = spec.startswith(tempfile.gettempdir()) or "gradio" in spec
    return out + (OTHER, spec if is_upload else gr.skip(), "" if is_upload else spec)


def upload_started():
    """UI glue: an upload replaces the built-in choice, and its columns are picked afresh."""
    return (OTHER,) + reset_columns()


def reset_columns():
    # A new source has other columns: let the loader pick them again.
    return gr.update(value=None, choices=[]), gr.update(value=None, choices=[])


def build(ctx: Ctx, data: str = "bbc") -> None:
    choices = builtin_choices()
    initial = data if data in [v for _, v in choices] else OTHER
    with gr.Tab("Data", id="data", elem_id="tab-data") as tab:
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                source = gr.Dropdown(choices + [(OTHER, OTHER)], value=initial, label="Built-in dataset",
                                     info="or upload a file / give a path below")
                upload = gr.File(label="Upload CSV / TSV / JSONL / Parquet", file_types=FILE_TYPES, type="filepath",
                                 height=110)
                path = gr.Textbox(label="…or a path on the server", value="" if initial != OTHER else data,
                                  placeholder="/data/reviews.csv, a datasets folder, bigbench:TASK", max_lines=1)
                with gr.Row():
                    text_col = gr.Dropdown([], value=None, label="Text column", allow_custom_value=True,
                                           info="auto-detected if empty")
                    label_col = gr.Dropdown([], value=None, label="Label column", allow_custom_value=True,
                                            info="auto-detected if empty")
                split_seed = gr.Number(0, label="Split seed", precision=0,
                                       info="train/dev/test = 70/10/20, stratified by label")
                load_btn = gr.Button("Load data", variant="primary")
            with gr.Column(scale=2):
                summary = gr.Markdown("*Loading…*", elem_id="data-summary")
                splits = gr.Markdown("")
                balance = gr.Plot(label="Class balance", elem_id="class-balance")
        with gr.Row(equal_height=True):
            prev_btn = gr.Button("◀ Prev", size="sm", scale=0, min_width=80)
            page = gr.Number(1, label="Page", precision=0, scale=0, min_width=90, show_label=False)
            next_btn = gr.Button("Next ▶", size="sm", scale=0, min_width=80)
            page_label = gr.Markdown("")
        table = gr.Dataframe(headers=["row"], label="Rows", interactive=False, wrap=True, max_chars=240, max_height=520,
                             elem_id="data-table")

    inputs = [ctx.state, source, upload, path, text_col, label_col, split_seed]
    outputs = [ctx.state, summary, splits, balance, table, page_label, text_col, label_col, page]
    stored = ctx.browser.get("data_choice")
    dep = load_btn.click(load_data, inputs, outputs, api_name="load_data").then(
        column_choices, ctx.state, [text_col, label_col], api_name="column_choices", api_visibility="private")
    source.input(reset_columns, None, [text_col, label_col], api_name="reset_columns", api_visibility="private",
                 queue=False)
    # An upload is loaded at once (the column pickers fill with its columns, the label column
    # is detected or asked for); a cleared upload lets the loader pick columns again.
    up = upload.upload(upload_started, None, [source, text_col, label_col], api_name="reset_columns_upload",
                       api_visibility="private", queue=False).then(
        load_data, inputs, outputs, api_name="load_data_on_upload", api_visibility="private").then(
        column_choices, ctx.state, [text_col, label_col], api_name="column_choices_upload", api_visibility="private")
    # Clearing the upload box loads nothing: the pickers keep the loaded dataset's columns (issue 28, item 3).
    upload.clear(column_choices, ctx.state, [text_col, label_col], api_name="reset_columns_clear",
                 api_visibility="private", queue=False)
    if stored is not None:
        for d in (dep, up):
            d.then(remember, ctx.state, stored, api_name=None, api_visibility="private", queue=False)
    ctx.events["data_loaded"] = dep
    ctx.events["data_io"] = (inputs, outputs)          # the Tour loads the demo data through these
    ctx.events["column_choices"] = (column_choices, [text_col, label_col])
    ctx.events["data_uploaded"] = up
    page.submit(data_page, [ctx.state, page], [table, page_label, page], api_name="data_page")
    prev_btn.click(data_prev_page, [ctx.state, page], [table, page_label, page], api_name="data_prev_page")
    next_btn.click(data_next_page, [ctx.state, page], [table, page_label, page], api_name="data_next_page")
    # Hidden from the page, there for scripts: what is loaded in this session.
    with tab:
        info_btn = gr.Button(visible=False)
        info_out = gr.JSON(visible=False)
    info_btn.click(data_info, ctx.state, info_out, api_name="data_info")
    # Open the default dataset when the page loads, so the first screen is never empty.
    if stored is not None:
        first = ctx.demo.load(load_data_on_start, [ctx.state, stored] + inputs[1:], outputs + [source, upload, path],
                              api_name="load_data_on_start", api_visibility="private")
    else:
        first = ctx.demo.load(load_data, inputs, outputs, api_name="load_data_on_start", api_visibility="private")
    ctx.events["page_load_data"] = first.then(
        column_choices, ctx.state, [text_col, label_col], api_name="column_choices_on_start", api_visibility="private")
