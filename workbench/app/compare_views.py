"""The Compare tab's handlers for a comparison on screen: open it (a stored run or the job's
result), filter its disagreements, draw a confusion matrix, mark the winner and put it in the editor,
poll the running job, list the stored runs. Rendering is `app/compare_render.py`.
"""
from __future__ import annotations

import gradio as gr

from workbench.app.common import UIState, empty_figure, user_errors
from workbench.app.compare_render import (ALL_CLASSES, cleared_views, confusion, disagreements_frame,
                                          disagreements_frame_empty, leader_pairs, leaderboard_frame, progress_html,
                                          verdict_markdown)
from workbench.jobs import queue as jobs


def load_run(run_id: str):
    """A stored comparison or study as its typed result (jobs.compare.open_run)."""
    from workbench.jobs.compare import open_run

    return open_run(run_id)


def compare_open(run_id: str, label: str = ALL_CLASSES):
    """Show a stored comparison. Returns (verdict markdown, leaderboard table, accuracy-CI
    plot, per-class F1 plot, left template name, its confusion matrix, right template name,
    its confusion matrix, class filter, disagreements table, winner name) (the page also keeps
    the run id for the filters below)."""
    from workbench.core import plots

    with user_errors("Opening the comparison"):
        res = load_run(run_id)
        if getattr(res, "type", "comparison") != "comparison":
            raise gr.Error(f"Run {run_id} is a {res.type.replace('_', ' ')} study; open it under Robustness.",
                           print_exception=False)
        seq = (res.settings or {}).get("sequential")
        # a sequential comparison shows its confidence sequence narrowing, batch by batch
        lb = (plots.confidence_sequence(leader_pairs(seq["pairs"], res.leaderboard[0]["name"]), seq.get("margin") or 0.0)
              if seq
              else plots.leaderboard_ci(res.leaderboard, title="Accuracy with 95% Wilson CI"))
        f1 = (plots.grouped_f1({nm: res.metrics[nm] for nm in res.names}) if res.task == "classification"
              else empty_figure("no per-class F1 for generation"))
        left = res.reference
        right = next((r["name"] for r in res.leaderboard if r["name"] != left), left)
        classes = [ALL_CLASSES] + list(res.labels)
        label = label if label in classes else ALL_CLASSES
        return (res.run_id, verdict_markdown(res), leaderboard_frame(res), lb, f1, left, confusion(res, left),
                right, confusion(res, right), label, disagreements_frame(res, label),
                res.winner or res.leaderboard[0]["name"])


def view_choices(run_id: str):
    """UI glue: the template and class dropdowns offer the shown comparison's names/classes."""
    try:
        res = load_run(run_id)
    except Exception:  # noqa: BLE001 - nothing shown yet, or a study: leave the pickers alone
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    if getattr(res, "type", "comparison") != "comparison":
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    names = gr.update(choices=res.names)
    return names, names, gr.update(choices=[ALL_CLASSES] + list(res.labels)), names


def compare_disagreements(run_id: str, label: str = ALL_CLASSES):
    """Examples where the templates' predictions differ, optionally only those whose gold or
    any prediction is `label`: row, gold, text, each template's ✓/✗ prediction and scores."""
    with user_errors("Filtering the disagreements"):
        if not run_id:
            return disagreements_frame_empty()
        return disagreements_frame(load_run(run_id), label)


def compare_confusion(run_id: str, name: str):
    """The confusion matrix of template `name` in comparison `run_id`."""
    with user_errors("Drawing the confusion matrix"):
        if not run_id:
            return empty_figure("run a comparison first")
        return confusion(load_run(run_id), name)


def compare_mark_winner(run_id: str, name: str) -> str:
    """Mark template `name` of comparison `run_id` as the winner (what Export uses by default)."""
    from workbench.jobs.compare import mark_winner

    with user_errors("Marking the winner"):
        if not run_id:
            raise gr.Error("Run or open a comparison first.", print_exception=False)
        mark_winner(run_id, name)
        return (f"<span class='wb-mark win'>winner</span> **{name}** of comparison `{run_id}`. To run, train or export "
                "it, press *Open the winner in the editor*: every tab uses the editor's template (Export can also "
                "take the winner directly: What to export → winner).")


def winner_to_editor(state: UIState, run_id: str, name: str, current_yaml: str):
    """Put template `name` of comparison `run_id` into the Templates editor, where Run, Train
    and Export take it from (asks before replacing unsaved edits). Returns (state, YAML, status)."""
    from workbench.app.editor_state import edit_status as _edit_status, guard as _guard

    state = state or UIState()
    with user_errors("Opening the winner"):
        if not run_id or not name:
            raise gr.Error("Run or open a comparison, and pick the winner first.", print_exception=False)
        text = load_run(run_id).template_yaml(name)
        if not _guard(state, current_yaml, False):
            return state, current_yaml, _edit_status(state, current_yaml)
        state.saved_yaml, state.template_path = "", None
        gr.Info(f"{name} is now in the editor: Run, Train and Export use it.")
        return state, text, _edit_status(state, text)


def poll_compare(shown: str, job_id: str, label: str):
    """Timer tick: progress, then the comparison once the job is done."""
    st = jobs.status(job_id or "")
    keep = tuple(gr.skip() for _ in range(12))
    if st["state"] in ("queued", "running"):
        return (progress_html(st), gr.Timer(active=True)) + keep
    if st["state"] == "done" and st.get("result_id") and st["result_id"] != shown:
        return (progress_html(st), gr.Timer(active=False)) + compare_open(st["result_id"], label)
    if st["state"] in ("failed", "cancelled"):
        if st.get("error"):
            gr.Warning(st["error"], title="Comparison failed")
        if shown:   # an earlier comparison is on screen: do not let it pass for this one
            return (progress_html(st), gr.Timer(active=False)) + cleared_views(
                f"*The comparison {st['state']}; no verdict.*")[:12]
    return (progress_html(st if st["state"] != "unknown" else None), gr.Timer(active=False)) + keep


def list_stored() -> list[dict]:
    """Stored comparisons and studies, newest first: [{"id", "name", "created_at", "data",
    "type", "best", "winner"}]."""
    from workbench.jobs.compare import list_comparisons

    with user_errors("Listing comparisons"):
        return list_comparisons()


def stored_choices(items: list[dict] | None):
    """UI glue: the "open" picker offers the listed comparisons."""
    choices = [(f"{c['created_at'][:16].replace('T', ' ')} · {c['name']}"
                + (f" · winner {c['winner']}" if c.get("winner") else ""), c["id"]) for c in (items or [])]
    return gr.update(choices=choices, value=choices[0][1] if choices else None)
