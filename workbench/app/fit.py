"""Which templates fit the loaded data (issue 28, item 1).

A template fits when it validates against the data's columns without an error (every variable
it reads is a column; labels are not required to match, the editor's template may be a
draft). Pickers offer the fitting ones first (the editor's template, then the user's saved
ones, then the library's), and a preselected template that cannot render on the data is
replaced by the first one that can, or left empty with a note: never one that fails on Compare.
"""
from __future__ import annotations

import gradio as gr

from workbench.app.common import UIState, state_dataset


def _columns(state: UIState | None) -> list[str] | None:
    try:
        return [str(c) for c in state_dataset(state).df.columns]
    except Exception:  # noqa: BLE001 - no data loaded yet: everything "fits"
        return None


def fits(yaml_text: str, columns: list[str] | None, task: str | None = "classification") -> bool:
    """True when the YAML parses, is of `task` and reads only columns of the data."""
    from workbench.core.templates import load_template

    if not (yaml_text or "").strip():
        return False
    try:
        t = load_template(yaml_text if "\n" in yaml_text else yaml_text + "\n")
    except Exception:  # noqa: BLE001 - half-typed YAML
        return False
    if task and t.task != task:
        return False
    if columns is None:
        return True
    return not any(p.severity == "error" for p in t.validate(columns=columns))


def _ref_yaml(ref: str) -> str:
    from workbench.core.templates import load_template

    path, _, name = ref.rpartition("::")
    return load_template(path or ref, name=name or None).to_yaml()


def fitting(columns: list[str] | None, task: str | None = "classification") -> list[tuple[str, str, str]]:
    """[(label, ref, yaml)] of the saved and library templates that fit, the user's own first."""
    from workbench.app import template_list

    out = []
    for d in template_list.entries(task):
        if d.get("error"):
            continue
        try:
            y = _ref_yaml(d["ref"])
        except Exception:  # noqa: BLE001 - a file removed meanwhile
            continue
        if fits(y, columns, task):
            out.append((template_list.label(d), d["ref"], y))
    return out


def ordered_choices(columns: list[str] | None, task: str | None = "classification") -> list[tuple[str, str]]:
    """The picker's choices: those that fit the data first, then the rest marked as not fitting."""
    from workbench.app import template_list

    good = fitting(columns, task)
    refs = {r for _, r, _ in good}
    rest = [(f"{lab}  · does not fit the data", ref) for lab, ref in template_list.choices(task) if ref not in refs]
    return [(lab, ref) for lab, ref, _ in good] + rest


def fill_for_data(state: UIState | None, editor_yaml: str, n: int, current: list[tuple[str | None, str]],
                  task: str | None = "classification") -> list[tuple[str | None, str]]:
    """[(picker ref, yaml)] for `n` slots: each current template that fits stays; each that does
    not is replaced by the next fitting candidate not shown yet (the editor's template, then the
    user's saved ones, then the library's), else emptied."""
    cols = _columns(state)
    shown = {y.strip() for _, y in current if fits(y, cols, task)}
    pool: list[tuple[str | None, str]] = []
    if fits(editor_yaml, cols, task):
        pool.append((None, editor_yaml))
    pool += [(ref, y) for _, ref, y in fitting(cols, task)]
    # A template already in another slot is not offered twice.
    pool = [(r, y) for r, y in pool if y.strip() not in shown]
    out = []
    for i in range(n):
        ref, y = current[i] if i < len(current) else (None, "")
        if fits(y, cols, task):
            out.append((ref, y))
            continue
        while pool and any(pool[0][1].strip() == o[1].strip() for o in out):
            pool.pop(0)
        out.append(pool.pop(0) if pool else (None, ""))
    return out


def compare_fit_data(state: UIState, editor_yaml: str, n: float, *picks_and_codes: str):
    """UI glue (Compare): after data is loaded, the pickers list the fitting templates first and
    each visible column holds a template that renders on the data. Inputs: state, editor YAML,
    number of columns, then every picker and every code box; outputs: pickers, then code boxes."""
    half = len(picks_and_codes) // 2
    picks, codes = list(picks_and_codes[:half]), list(picks_and_codes[half:])
    cols = _columns(state)
    # Compare takes classification and generation templates alike (a generation pair gets its
    # per-metric and judge verdicts), so every task is offered
    choices = ordered_choices(cols, task=None)
    n_shown = max(2, int(n or 2))
    filled = fill_for_data(state, editor_yaml, min(n_shown, half), list(zip(picks, codes)), task=None)
    pick_out, code_out = [], []
    for i in range(half):
        if i < len(filled):
            ref, y = filled[i]
            changed = y != codes[i]
            pick_out.append(gr.update(choices=choices, value=ref if changed else picks[i]))
            code_out.append(y if changed else gr.skip())
        else:
            pick_out.append(gr.update(choices=choices))
            code_out.append(gr.skip())
    return pick_out + code_out


def search_fit_data(state: UIState, editor_yaml: str, start_yaml: str):
    """UI glue (Search): the start picker lists fitting templates first, and a start template
    that cannot render on the data is replaced by the editor's (or a saved one that fits).
    Returns (picker update, start YAML)."""
    cols = _columns(state)
    (ref, y), = fill_for_data(state, editor_yaml, 1, [(None, start_yaml)])
    return gr.update(choices=ordered_choices(cols), value=None), (gr.skip() if y == start_yaml else y)
