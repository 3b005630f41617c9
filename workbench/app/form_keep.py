"""A tab's form kept across page reloads when no job holds it (issue 28, item 2, second half).

form_restore.py sets a form from the job it is attached to (a reload during a run shows that
run's settings). Without a running job, a reload used to rebuild the form from the page's
defaults (Train: 60 steps, eval every 20; Search: 600 s), dropping what the user had typed for
the next run. Here every user edit of the form writes its values to the browser's
localStorage (a gr.BrowserState created in main.py), and the page load puts them back, unless
a job of that tab is running: then the job's own settings (form_restore) win.

The stored value is {"fields": {name: value}}, by field name, so a form that gains or loses a
field later restores the fields it still has and leaves the others at their defaults.
"""
from __future__ import annotations

from typing import Any, Callable

import gradio as gr


def snapshot(names: list[str]) -> Callable[..., dict]:
    """The handler that turns the form's current values into the stored dict."""
    def keep(*values: Any) -> dict:
        return {"fields": dict(zip(names, values))}
    return keep


def restore_values(names: list[str], stored: dict | None, job_running: bool) -> tuple:
    """The form's values from `stored` (gr.skip() for a field not stored), or all skips when a
    job is running (its settings are the form's) or nothing was stored."""
    fields = (stored or {}).get("fields") if isinstance(stored, dict) else None
    if job_running or not isinstance(fields, dict):
        return tuple(gr.skip() for _ in names)
    return tuple(fields[n] if n in fields else gr.skip() for n in names)


def wire(ctx, names: list[str], comps: list, store, job_state, running: Callable[[str], bool], prefix: str,
         after=None) -> None:
    """Keep `comps` (named `names`) in `store` on every user edit, and restore them on page load
    (chained after `after`, the tab's own reconnect, when given) unless `running(job_state)`.
    `.input` fires on user edits only, so a restore does not write itself back."""
    assert len(names) == len(comps)
    keep = snapshot(names)
    for comp in comps:
        comp.input(keep, comps, store, api_name=None, api_visibility="private", show_progress="hidden", queue=False)

    def restore(stored, job):
        try:
            busy = bool((job or "").strip()) and running(job)
        except Exception:  # noqa: BLE001 - an unknown or vanished job holds nothing
            busy = False
        return restore_values(names, stored, busy)

    load = after.then if after is not None else ctx.demo.load
    load(restore, [store, job_state], comps, api_name=f"{prefix}_form_kept", api_visibility="private",
         show_progress="hidden")
