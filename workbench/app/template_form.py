"""The Templates tab's structured fields (input Jinja, answer choices, instruction, few-shot) kept in
sync with the YAML, and the live validation of the editor's template with line and column. Every
render of one validation request runs in an isolated child under one deadline (docs/SECURITY.md).
"""
from __future__ import annotations

import re

import gradio as gr

from workbench.app.common import UIState, parse_template, state_dataset, user_errors

VALIDATE_SECONDS = 5.0   # every render of one validation request together (docs/SECURITY.md)


def template_fields(yaml_text: str):
    """The structured fields of the editor's template: (name, input, instruction, answer
    choices table [label, verbalizers], few-shot k, per_class, balanced, sampling, task).
    Leaves the fields alone while the YAML does not parse."""
    try:
        t = parse_template(yaml_text)
    except Exception:  # noqa: BLE001 - half-typed YAML is normal; validation reports it
        return tuple(gr.skip() for _ in range(13))
    rows = [[k, ", ".join(v)] for k, v in t.answer_choices.items()]
    return (t.name, t.input, t.instruction, rows or [["", ""]], t.fewshot.k, t.fewshot.per_class,
            t.fewshot.balanced, t.fewshot.sampling, t.target or "", t.label_column, t.demo_format or "",
            t.choices_expr or "", t.task)


def apply_fields(yaml_text: str, name: str, input_: str, instruction: str, choices, k: float, per_class: bool,
                 balanced: bool, sampling: str, target: str | None = None, label_column: str | None = None,
                 demo_format: str | None = None, choices_expr: str | None = None) -> str:
    """Write the structured fields into the editor's template and return the new YAML.
    `target`, `label_column`, `demo_format`, `choices_expr`: None keeps the template's value,
    "" clears it (label_column falls back to "label")."""
    import pandas as pd

    with user_errors("Updating the template"):
        try:
            t = parse_template(yaml_text)
        except Exception:  # noqa: BLE001
            raise gr.Error("Fix the YAML first (see Problems); field edits are kept in the fields.",
                           title="YAML does not parse", print_exception=False) from None
        t.name = (name or "").strip() or t.name
        t.input = input_ or ""
        t.instruction = instruction or ""
        rows = choices.values.tolist() if isinstance(choices, pd.DataFrame) else (choices or [])
        if not t.choices_expr and t.task == "classification":
            ac = {}
            for row in rows:
                label = str(row[0]).strip() if row and row[0] is not None else ""
                if label:
                    words = [w.strip() for w in str(row[1] if len(row) > 1 and row[1] is not None else "").split(",")]
                    ac[label] = [w for w in words if w]
            t.answer_choices = ac
        t.fewshot.k = int(k or 0)
        t.fewshot.per_class, t.fewshot.balanced = bool(per_class), bool(balanced)
        t.fewshot.sampling = sampling or "fixed"
        if target is not None:
            t.target = target if target.strip() else None
        if label_column is not None:
            t.label_column = label_column.strip() or "label"
        if demo_format is not None:
            t.demo_format = demo_format if demo_format.strip() else None
        if choices_expr is not None:
            t.choices_expr = choices_expr.strip() or None
        return t.to_yaml()


def _yaml_line(yaml_text: str, field: str, line: int | None) -> int | None:
    """Where a field's line lands in the YAML: block scalars (`key: |`) start on the next line."""
    lines = yaml_text.splitlines()
    parts = field.split(".")
    start, indent = 0, ""
    key_line = None
    for depth, part in enumerate(parts):
        pat = re.compile(rf"^{indent}{re.escape(part)}\s*:(.*)$" if depth == 0 else rf"^(\s+){re.escape(part)}\s*:(.*)$")
        for i in range(start, len(lines)):
            m = pat.match(lines[i])
            if m:
                key_line, start = i, i + 1
                break
        else:
            return None
    if key_line is None:
        return None
    rest = lines[key_line].split(":", 1)[1].strip()
    if rest[:1] in ("|", ">"):
        return key_line + 1 + (line or 1)
    return key_line + 1


def validate_template(state: UIState, yaml_text: str) -> str:
    """Every problem of the editor's template against the loaded data (columns, labels, a
    sample row, and the tokenizer when a model is loaded), as markdown with line and column."""
    from workbench.errors import WorkbenchError
    from workbench.app.model_bar import current_session

    try:
        t = parse_template(yaml_text)
    except WorkbenchError as e:
        return f"✗ **{e.message}**" + (f"  \n{e.hint}" if e.hint else "")
    columns = labels = sample = None
    note = ""
    try:
        ds = state_dataset(state)
        columns, labels = [str(c) for c in ds.df.columns], list(ds.labels)
        sample = ds.df.iloc[0].to_dict()
    except WorkbenchError:
        note = "  \n*Load a dataset to also check column names and labels.*"
    s = current_session()
    from workbench.app.isolate import isolated

    try:
        # the renders run in a child with hard memory/CPU limits, killed at the deadline, so a
        # runaway template cannot starve the server (app/isolate.py); inside it, one
        # cooperative deadline for all of this request's renders
        return isolated(_validate_markdown, t, yaml_text, columns, labels, sample, s.tokenizer if s else None, note,
                        seconds=VALIDATE_SECONDS)
    except WorkbenchError as e:
        return f"✗ **{e.message}**" + (f"  \n{e.hint}" if e.hint else "")
    except Exception as e:  # noqa: BLE001 - validation must never take the page down
        return f"✗ validation failed: {type(e).__name__}: {e}"


def _validate_markdown(t, yaml_text: str, columns, labels, sample, tokenizer, note: str) -> str:
    from workbench.core.render import limits as render_limits

    try:
        with render_limits(seconds=VALIDATE_SECONDS):
            probs = t.validate(columns=columns, labels=labels, tokenizer=tokenizer, sample_row=sample)
    except Exception as e:  # noqa: BLE001 - validation must never take the page down
        return f"✗ validation failed: {type(e).__name__}: {e}"
    if not probs:
        return f"✓ **No problems.** `{t.name}` · {t.task} · {len(t.answer_choices)} labels" + note
    out = []
    for p in probs:
        icon = "✗" if p.severity == "error" else "⚠"
        where = ""
        if p.line:
            where = f", line {p.line}" + (f", column {p.column}" if p.column else "")
            yl = _yaml_line(yaml_text, p.field, p.line)
            if yl:
                where += f" (YAML line {yl})"
        out.append(f"{icon} **{p.field}**{where}: {p.message}")
    n_err = sum(p.severity == "error" for p in probs)
    head = f"**{n_err} error(s), {len(probs) - n_err} warning(s)**"
    return head + "\n\n" + "\n".join(f"- {x}" for x in out) + note
