"""The results matrix (promptfoo's core view): one row per example, one column per template
(or model, or run), each cell the prediction coloured right / wrong. Click a cell for the
exact prompt, every choice's score and the tokens; filter by class, by disagreement and by
errors; mark examples with human notes (kept in the run registry, keyed by the data's
fingerprint); download it all as CSV or JSON.

A matrix is described by a small spec, so every tab can show one:

    {"runs": ["20250101-...", ...]}      # stored eval runs, one column each (same rows)
    {"compare": "20250101-..."}          # a stored comparison: its templates' evals

    m = load_matrix(spec)                # Matrix(columns, rows, labels, fingerprint)
    add(ctx, "run", trigger, inputs, spec_fn)   # the UI block, inside a tab's layout
"""
from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from functools import partial

import gradio as gr

from workbench.app.common import user_errors

ALL = "all classes"
TEXT_CHARS = 120


@dataclass
class Matrix:
    columns: list[dict]                  # [{"name", "run_id", "template", "model", "accuracy"}]
    rows: list[dict]                     # [{"row", "gold", "text", "cells": {col: {pred, correct, scores, prompt}}}]
    labels: list[str] = field(default_factory=list)
    fingerprint: str | None = None
    title: str = ""


# ------------------------------------------------------------------------------------ loading
def _eval_column(payload: dict, run_id: str | None) -> tuple[dict, dict]:
    prov = payload.get("provenance", {})
    col = {"name": prov.get("template", {}).get("name", run_id or "?"), "run_id": run_id,
           "template": prov.get("template", {}).get("name"), "model": prov.get("model", {}).get("name"),
           "adapter": prov.get("model", {}).get("adapter"),
           "accuracy": (payload.get("metrics") or {}).get("accuracy",
                                                        (payload.get("metrics") or {}).get("exact_match"))}
    cells = {}
    for r in payload.get("records", []):
        cells[str(r["index"])] = {"pred": r.get("pred"), "correct": r.get("correct"), "gold": r.get("gold"),
                                  "scores": r.get("scores") or {}, "prompt": r.get("prompt", ""),
                                  "output": r.get("output"), "judge": r.get("judge"),
                                  "judge_prompt": r.get("judge_prompt"), "metrics": r.get("metrics")}
    return col, cells


def _unique(cols: list[dict]) -> None:
    """Columns named by template; the same template on two models (or twice) gets the model
    (or the run id) added, so every column has its own name."""
    names = [c["name"] for c in cols]
    for c in cols:
        if names.count(c["name"]) > 1:
            c["name"] = f"{c['name']} · {str(c.get('model') or '').split('/')[-1]}"
    names = [c["name"] for c in cols]
    for c in cols:
        if names.count(c["name"]) > 1:
            c["name"] = f"{c['name']} · {c['run_id']}"


def load_matrix(spec: dict | None) -> Matrix:
    """The matrix of a spec (see the module doc)."""
    if not spec:
        return Matrix([], [])
    return _load(json.dumps(spec, sort_keys=True))


def _load(key: str) -> Matrix:
    # Runs are immutable once stored, so loading them again is only I/O: small, and it keeps
    # notes (which change) out of any cache.
    from workbench.errors import ConfigError
    from workbench.app.common import run_payload

    spec = json.loads(key)
    texts: dict[str, str] = {}
    title = ""
    if spec.get("compare"):
        from workbench.jobs.compare import open_run

        res = open_run(spec["compare"])
        if getattr(res, "type", "comparison") != "comparison":
            raise ConfigError(f"run {spec['compare']} is a {res.type} study, not a comparison",
                              "open a side-by-side comparison")
        run_ids = [t.get("eval_run_id") for t in res.templates]
        texts = {str(ex["index"]): ex.get("text") for ex in res.examples if ex.get("text") is not None}
        title = f"comparison {res.run_id}"
        if not all(run_ids):
            # Without the evals (not stored), the comparison's own per-example table is enough
            # for predictions and scores; the prompts are then missing.
            cols = [{"name": n, "run_id": None, "template": n, "model": res.provenance.get("model", {}).get("name"),
                     "accuracy": res.metrics.get(n, {}).get("accuracy")} for n in res.names]
            rows = [{"row": str(ex["index"]), "gold": ex["gold"], "text": texts.get(str(ex["index"])),
                     "cells": {n: {"pred": ex["preds"][n], "correct": ex["correct"][n],
                                   "scores": (ex.get("scores") or {}).get(n) or {}, "prompt": ""} for n in res.names}}
                    for ex in res.examples]
            return Matrix(cols, rows, list(res.labels), (res.provenance.get("data") or {}).get("fingerprint"), title)
        names = list(res.names)
    else:
        run_ids = list(spec.get("runs") or [])
        names = None
    if not run_ids:
        return Matrix([], [])
    cols, per = [], []
    fp = None
    for i, rid in enumerate(run_ids):
        payload = run_payload(rid)
        col, cells = _eval_column(payload, rid)
        if names:
            col["name"] = names[i]
        cols.append(col)
        per.append(cells)
        fp = fp or (payload.get("provenance", {}).get("data") or {}).get("fingerprint")
    if not names:
        _unique(cols)
    order = list(per[0])
    for cells in per[1:]:
        order += [k for k in cells if k not in set(order)]
    rows = []
    labels: set[str] = set()
    for k in order:
        gold = next((c[k]["gold"] for c in per if k in c), None)
        row = {"row": k, "gold": gold, "text": texts.get(k), "cells": {}}
        for col, cells in zip(cols, per):
            if k in cells:
                row["cells"][col["name"]] = cells[k]
                if cells[k].get("pred") is not None and not isinstance(cells[k]["pred"], list):
                    labels.add(str(cells[k]["pred"]))
        if gold is not None and not isinstance(gold, list):
            labels.add(str(gold))
        rows.append(row)
    return Matrix(cols, rows, sorted(labels), fp, title or ", ".join(c["name"] for c in cols))


# ------------------------------------------------------------------------------------ views
def _notes(m: Matrix) -> dict:
    from workbench.storage.runs import RunRegistry

    return RunRegistry().notes(m.fingerprint) if m.fingerprint else {}


def _filtered(m: Matrix, label: str | None, only_disagree: bool, only_errors: bool, notes: dict,
              only_notes: bool = False) -> list[dict]:
    out = []
    label = None if label in (None, "", ALL) else str(label)
    for r in m.rows:
        preds = [str(c.get("pred")) for c in r["cells"].values()]
        if label is not None and str(r["gold"]) != label and label not in preds:
            continue
        if only_disagree and len(set(preds)) < 2:
            continue
        if only_errors and all(c.get("correct") for c in r["cells"].values()):
            continue
        if only_notes and r["row"] not in notes:
            continue
        out.append(r)
    return out


def _cell_text(c: dict | None) -> str:
    if not c:
        return ""
    mark = "✓" if c.get("correct") else ("✗" if c.get("correct") is False else "·")
    pred = " | ".join(map(str, c["pred"])) if isinstance(c.get("pred"), list) else str(c.get("pred"))
    judge = f" · judge {float(c['judge']['score']):.2f}" if isinstance(c.get("judge"), dict) else ""
    return f"{mark} {pred}{judge}"


def frame(m: Matrix, label=None, only_disagree=False, only_errors=False, only_notes=False):
    """The matrix as a DataFrame (row, gold, text?, one column per template, note), filtered."""
    import pandas as pd

    notes = _notes(m)
    rows = []
    has_text = any(r.get("text") for r in m.rows)
    for r in _filtered(m, label, only_disagree, only_errors, notes, only_notes):
        d = {"row": r["row"], "gold": " | ".join(map(str, r["gold"])) if isinstance(r["gold"], list) else r["gold"]}
        if has_text:
            t = str(r.get("text") or "")
            d["text"] = t[:TEXT_CHARS] + ("…" if len(t) > TEXT_CHARS else "")
        for c in m.columns:
            d[c["name"]] = _cell_text(r["cells"].get(c["name"]))
        n = notes.get(r["row"])
        d["note"] = (f"[{n['tag']}] " if n and n["tag"] else "") + (n["comment"] if n else "")
        rows.append(d)
    cols = ["row", "gold"] + (["text"] if has_text else []) + [c["name"] for c in m.columns] + ["note"]
    return pd.DataFrame(rows, columns=cols)


def styled(df, m: Matrix):
    """Green cells for right predictions, red for wrong (a pandas Styler gr.Dataframe shows)."""
    names = [c["name"] for c in m.columns]

    def colour(v):
        s = str(v)
        if s.startswith("✓"):
            return "background-color: #dcfce7; color: #14532d"
        if s.startswith("✗"):
            return "background-color: #fee2e2; color: #7f1d1d"
        return ""
    if df.empty or not names:
        return df
    sub = [n for n in names if n in df.columns]
    try:
        return df.style.map(colour, subset=sub)
    except AttributeError:   # pandas < 2.1
        return df.style.applymap(colour, subset=sub)


def summary_markdown(m: Matrix, shown: int) -> str:
    if not m.columns:
        return "*No results yet: run an evaluation or a comparison to fill the matrix.*"
    parts = []
    for c in m.columns:
        acc = c.get("accuracy")
        parts.append(f"**{html.escape(c['name'])}**" + (f" {acc * 100:.1f}%" if isinstance(acc, (int, float)) else "")
                     + (f" · `{str(c.get('model') or '').split('/')[-1]}`" if c.get("model") else ""))
    return (f"{len(m.rows)} examples × {len(m.columns)} column(s) · showing {shown} · " + " · ".join(parts)
            + "  \n<small>Click a cell for its prompt, scores and tokens; click a row's note to mark it.</small>")


def matrix_view(spec: dict | None, label: str = ALL, only_disagree: bool = False, only_errors: bool = False,
                only_notes: bool = False):
    """(summary markdown, styled table, class filter choices) of the spec's matrix."""
    with user_errors("Showing the results matrix"):
        m = load_matrix(spec)
        df = frame(m, label, only_disagree, only_errors, only_notes)
        classes = [ALL] + list(m.labels)
        return (summary_markdown(m, len(df)), styled(df, m),
                gr.update(choices=classes, value=label if label in classes else ALL))


def matrix_view_files(spec: dict | None, label: str = ALL, only_disagree: bool = False, only_errors: bool = False,
                      only_notes: bool = False):
    """matrix_view plus the CSV and JSON files for the two download buttons, written now so
    that one click downloads them (all rows, with the notes as they are now)."""
    out = matrix_view(spec, label, only_disagree, only_errors, only_notes)
    try:
        files = (download_csv(spec), download_json(spec))
    except gr.Error:   # nothing to download yet
        files = (None, None)
    return out + files


# ------------------------------------------------------------------------------------ a cell
def tokens_text(prompt: str) -> str:
    """The prompt's tokens with the loaded model's scoring tokenizer (no model is loaded for this)."""
    from workbench.engine.session import current_session

    s = current_session()
    if s is None or not prompt:
        return "*Load the model (model bar) to see the tokens.*" if prompt else ""
    try:
        tok = s.scoring_tokenizer()
        ids = s.encode(prompt)
    except Exception as e:  # noqa: BLE001 - a display detail must not fail the panel
        return f"*tokens unavailable: {type(e).__name__}*"
    shown = ids[-80:]
    pieces = " ".join(f"<code>{html.escape(repr(tok.decode([i]))[1:-1])}</code>" for i in shown)
    more = f" (last {len(shown)} shown)" if len(ids) > len(shown) else ""
    return f"**{len(ids)} tokens**{more}: {pieces}"


def cell_detail(spec: dict | None, row: str, column: str | None) -> str:
    """Markdown: one example in one column (or all columns): prompt, every choice's score, tokens."""
    m = load_matrix(spec)
    r = next((x for x in m.rows if x["row"] == str(row)), None)
    if r is None:
        return "*Click a cell of the matrix.*"
    cols = [column] if column in r["cells"] else list(r["cells"])
    out = [f"### Row {html.escape(str(row))} · gold `{html.escape(str(r['gold']))}`"]
    n = _notes(m).get(str(row))
    if n:
        out.append(f"Note: **{html.escape(n['tag'] or '')}** {html.escape(n['comment'] or '')}")
    for name in cols:
        c = r["cells"][name]
        out.append(f"#### {html.escape(name)}: {_cell_text(c)}")
        scores = c.get("scores") or {}
        if scores:
            best = max(scores.values())
            out.append("| choice | score | |\n|---|---|---|\n" + "\n".join(
                f"| {html.escape(str(k))} | {float(v):.4f} | {'← predicted' if float(v) == best else ''} |"
                for k, v in sorted(scores.items(), key=lambda kv: -float(kv[1]))))
        if c.get("output"):
            out.append(f"Output: `{html.escape(str(c['output'])[:400])}`")
        if c.get("metrics"):
            out.append("Reference metrics: " + ", ".join(f"{html.escape(k)} {float(v):.3f}"
                                                         for k, v in c["metrics"].items()))
        if c.get("judge"):
            j = c["judge"]
            dist = ", ".join(f"{k}: {float(v):.3f}" for k, v in (j.get("dist") or {}).items())
            out.append(f"**Judge score {float(j['score']):.3f}** (verdict {j.get('verdict')}; P per value {dist})")
            if c.get("judge_prompt"):
                out.append("Judge prompt (exactly as scored; the verdict word follows it):\n\n```text\n"
                           + c["judge_prompt"].replace("```", "`​``") + "\n```")
                out.append(tokens_text(c["judge_prompt"]))
        if c.get("prompt"):
            out.append("Prompt (exactly as scored):\n\n```text\n" + c["prompt"].replace("```", "`​``") + "\n```")
            out.append(tokens_text(c["prompt"]))
        else:
            out.append("*The prompt was not stored with this comparison.*")
    return "\n\n".join(out)


def select_cell(spec: dict | None, evt: gr.SelectData):
    """Clicking a cell: (detail markdown, row id, the row's note tag, comment)."""
    with user_errors("Opening the cell"):
        try:
            row = str(evt.row_value[0])
            col_idx = evt.index[1] if isinstance(evt.index, (list, tuple)) else None
        except Exception:  # noqa: BLE001 - a click outside the cells
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        m = load_matrix(spec)
        df = frame(m)
        column = df.columns[col_idx] if col_idx is not None and col_idx < len(df.columns) else None
        n = _notes(m).get(row) or {}
        return cell_detail(spec, row, column), row, n.get("tag") or None, n.get("comment") or ""


def save_note(spec: dict | None, row: str, tag: str | None, comment: str | None) -> str:
    """Mark example `row` of the matrix's data with a tag and a short comment (both empty:
    remove the note). Notes live in the run registry, keyed by the data's fingerprint."""
    from workbench.errors import ConfigError
    from workbench.storage.runs import RunRegistry

    with user_errors("Saving the note"):
        m = load_matrix(spec)
        if not m.fingerprint:
            raise ConfigError("No results are shown, so there is no example to mark.",
                              hint="Run an evaluation or a comparison first, then click a cell.")
        if not (row or "").strip():
            raise ConfigError("No example is picked.", hint="Click a cell of the matrix first.")
        n = RunRegistry().set_note(m.fingerprint, row, tag or "", comment or "")
        return (f"Note on row {row} saved: **{html.escape(n['tag'])}** {html.escape(n['comment'])}" if n
                else f"Note on row {row} removed.")


# ------------------------------------------------------------------------------------ export
def records(m: Matrix) -> list[dict]:
    """One dict per example with every column's prediction, correctness and scores, and the note."""
    notes = _notes(m)
    out = []
    for r in m.rows:
        d = {"row": r["row"], "gold": r["gold"], "text": r.get("text"), "note": notes.get(r["row"])}
        d["cells"] = {name: {"pred": c.get("pred"), "correct": c.get("correct"), "scores": c.get("scores"),
                             "prompt": c.get("prompt")} for name, c in r["cells"].items()}
        out.append(d)
    return out


def to_csv(m: Matrix, path) -> str:
    """Flat CSV: row, gold, text, note tag, note comment, then per column pred / correct / score·label."""
    import pandas as pd

    rows = []
    for r in records(m):
        d = {"row": r["row"], "gold": r["gold"], "text": r["text"],
             "note_tag": (r["note"] or {}).get("tag", ""), "note_comment": (r["note"] or {}).get("comment", "")}
        for name, c in r["cells"].items():
            d[f"{name} · pred"] = c["pred"]
            d[f"{name} · correct"] = c["correct"]
            for lab, s in (c["scores"] or {}).items():
                d[f"{name} · score · {lab}"] = s
        rows.append(d)
    from workbench.core.csv_safe import spreadsheet_safe

    spreadsheet_safe(pd.DataFrame(rows)).to_csv(path, index=False)   # formula cells escaped (OWASP)
    return str(path)


def to_json(m: Matrix, path, extra: dict | None = None) -> str:
    from pathlib import Path

    doc = {"title": m.title, "data_fingerprint": m.fingerprint, "columns": m.columns, "labels": m.labels,
           **(extra or {}), "rows": records(m)}
    Path(path).write_text(json.dumps(doc, indent=1, ensure_ascii=False, default=str))
    return str(path)


def download(spec: dict | None, fmt: str) -> str:
    """Write the matrix (all rows, with notes) as `fmt` ("csv" or "json"); returns the file path."""
    import re
    import tempfile
    from pathlib import Path

    from workbench.errors import ConfigError

    with user_errors("Downloading the matrix"):
        m = load_matrix(spec)
        if not m.columns:
            raise ConfigError("There are no results to download yet.", hint="Run an evaluation or a comparison first.")
        stem = re.sub(r"[^\w.-]+", "_", m.title)[:60] or "matrix"
        path = Path(tempfile.mkdtemp(prefix="wb-matrix-")) / f"results_{stem}.{fmt}"
        if fmt == "csv":
            return to_csv(m, path)
        from workbench.app.download_doc import results_doc

        # what the screen shows beside the rows: metrics, verdicts, intervals, provenance, spec (issue 28, item 8)
        return to_json(m, path, results_doc(spec))


def download_csv(spec: dict | None) -> str:
    return download(spec, "csv")


def download_json(spec: dict | None) -> str:
    return download(spec, "json")


# ------------------------------------------------------------------------------------ specs
def run_spec(state) -> dict | None:
    """The Run tab's matrix: the run it shows."""
    rid = getattr(state, "last_run_id", None)
    return {"runs": [rid]} if rid else None


def compare_spec(run_id: str | None) -> dict | None:
    """The Compare tab's matrix: the comparison it shows."""
    return {"compare": run_id} if run_id else None


def runs_spec(run_ids) -> dict | None:
    """Any stored eval runs side by side (templates and/or models as columns)."""
    ids = [str(r).strip() for r in (run_ids or []) if str(r).strip()]
    return {"runs": ids} if ids else None


def matrix_json(spec_json: str) -> dict:
    """For scripts: the matrix of a spec given as JSON ('{"runs": [id, ...]}' or
    '{"compare": id}'): {"columns", "labels", "data_fingerprint", "rows": [{row, gold, note,
    cells: {column: {pred, correct, scores, prompt}}}]}."""
    from workbench.errors import ConfigError

    with user_errors("Reading the results matrix"):
        try:
            spec = json.loads(spec_json or "{}")
        except ValueError:
            raise ConfigError("The matrix spec is not JSON.", hint='e.g. {"runs": ["<run id>"]}') from None
        m = load_matrix(spec)
        return {"columns": m.columns, "labels": m.labels, "data_fingerprint": m.fingerprint, "rows": records(m)}


# ------------------------------------------------------------------------------------ UI block
@dataclass
class Block:
    """One matrix block's wiring, so that `follow` can chain a resync after another event."""
    prefix: str
    spec: object            # gr.State: the spec shown
    inputs: list            # what spec_fn reads
    filters: list           # [spec, class, disagree, errors, noted]
    view_out: list          # [summary, table, class, csv, json]
    spec_fn: object
    followed: dict = None   # {"on": bool}: a resync follows this block (then the trigger leaves empty specs to it)


def matrix_sync(spec_fn, n_inputs: int, current: dict | None, *rest):
    """(spec, view...) when spec_fn now gives another spec than the one shown; all skips otherwise.
    rest = spec_fn's inputs, then the four filters."""
    new = spec_fn(*rest[:n_inputs])
    if new == current:
        return tuple(gr.skip() for _ in range(6))
    return (new,) + matrix_view_files(new, *rest[n_inputs:])


def matrix_auto(spec_fn, n_inputs: int, followed: dict, current: dict | None, *rest):
    """The trigger's redraw (results shown changed): the spec and the view in one event, from the
    inputs as they are when it runs, never a step apart. An empty spec draws nothing here: a
    change event that ran late (the metrics cleared at a run's start, processed after the run's
    last poll) drew "No results yet" over the finished run's matrix, and no later poll redrew it.
    A spec that really becomes empty (a failed run) is drawn by `follow`'s resync; a block
    without one (`followed["on"]` false: the Runs tab's picker) draws it here."""
    new = spec_fn(*rest[:n_inputs])
    if new is None and followed.get("on"):
        return tuple(gr.skip() for _ in range(6))
    return (new,) + matrix_view_files(new, *rest[n_inputs:])


def follow(block: Block, dependency) -> None:
    """Resync the block after `dependency` (e.g. a job poll's tick). `trigger.change` alone is
    not enough: the browser can drop or reorder a change event that lands while an earlier one
    is pending (seen under load: the metrics showed a finished run, the matrix "No results yet")."""
    if block.followed is not None:
        block.followed["on"] = True
    dependency.then(partial(matrix_sync, block.spec_fn, len(block.inputs)),
                    [block.spec] + block.inputs + block.filters[1:], [block.spec] + block.view_out,
                    api_name=f"{block.prefix}_matrix_sync", api_visibility="private", show_progress="hidden",
                    concurrency_limit=None)


def add(ctx, prefix: str, trigger, inputs: list, spec_fn, open_: bool = True) -> Block:
    """The matrix block inside the current layout. `trigger.change` (a component showing new
    results) calls `spec_fn(*inputs)` for the spec, then redraws. Returns the block's wiring
    (see `follow`)."""
    from workbench.storage.runs import NOTE_TAGS

    spec = gr.State(None)
    with gr.Accordion("Results matrix: every example × every template (click a cell)", open=open_,
                      elem_id=f"{prefix}-matrix-block"):
        with gr.Row(equal_height=True):
            cls = gr.Dropdown([ALL], value=ALL, label="Class", scale=1, min_width=160, elem_id=f"{prefix}-matrix-class")
            dis = gr.Checkbox(False, label="only disagreements", min_width=150, elem_id=f"{prefix}-matrix-disagree")
            err = gr.Checkbox(False, label="only errors", min_width=120, elem_id=f"{prefix}-matrix-errors")
            noted = gr.Checkbox(False, label="only noted", min_width=120)
            csv_btn = gr.DownloadButton("Download CSV", size="sm", elem_id=f"{prefix}-matrix-csv", min_width=140)
            json_btn = gr.DownloadButton("Download JSON", size="sm", elem_id=f"{prefix}-matrix-json", min_width=140)
        summary = gr.Markdown("*No results yet.*", elem_id=f"{prefix}-matrix-summary")
        table = gr.Dataframe(headers=["row", "gold", "note"], interactive=False, wrap=True, max_height=420, elem_id=f"{prefix}-matrix",
                             elem_classes=["wb-matrix"])
        with gr.Row():
            with gr.Column(scale=3):
                detail = gr.Markdown("*Click a cell to see its prompt, every choice's score and the tokens.*",
                                     elem_id=f"{prefix}-matrix-detail")
            with gr.Column(scale=2, min_width=260):
                row_box = gr.Textbox(label="Example (row)", max_lines=1, elem_id=f"{prefix}-note-row")
                tag = gr.Dropdown(list(NOTE_TAGS), value=None, label="Note", allow_custom_value=True,
                                  elem_id=f"{prefix}-note-tag")
                comment = gr.Textbox(label="Comment", max_lines=3, placeholder="why this example is special",
                                     elem_id=f"{prefix}-note-comment")
                note_btn = gr.Button("Save note", size="sm", elem_id=f"{prefix}-note-save")
                note_md = gr.Markdown("")
    filters = [spec, cls, dis, err, noted]
    view_out = [summary, table, cls, csv_btn, json_btn]
    followed = {"on": False}     # set by `follow`
    trigger.change(partial(matrix_auto, spec_fn, len(inputs), followed), [spec] + list(inputs) + filters[1:], [spec] + view_out,
                   api_name=f"{prefix}_matrix_view_auto", api_visibility="private", show_progress="hidden")
    for i, comp in enumerate((cls, dis, err, noted)):
        comp.input(matrix_view_files, filters, view_out, api_name=f"{prefix}_matrix_filter_{i}", api_visibility="private",
                   show_progress="hidden")
    table.select(select_cell, spec, [detail, row_box, tag, comment], api_name=f"{prefix}_matrix_cell",
                 api_visibility="private")
    note_btn.click(save_note, [spec, row_box, tag, comment], note_md, api_name=f"{prefix}_matrix_note",
                   api_visibility="private").success(
        matrix_view_files, filters, view_out, api_name=f"{prefix}_matrix_after_note", api_visibility="private")
    return Block(prefix, spec, list(inputs), filters, view_out, spec_fn, followed)
