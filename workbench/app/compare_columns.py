"""The Compare tab's columns and model list: the template pickers (the user's own templates first,
then the library), each column's label naming what its YAML holds, how many columns show, the
extra models, and the baseline choices (the columns' names, template @ model with models).
"""
from __future__ import annotations

import gradio as gr

MAX_COLUMNS = 8
BEST = "best (highest accuracy)"


def library_choices() -> list[tuple[str, str]]:
    """(label, value) of every template (classification and generation: a generation comparison gives
    per-metric and judge verdicts), the user's own first; value is 'path::name'."""
    from workbench.app import template_list

    return template_list.choices()


def library_yaml(choice: str) -> str:
    """The YAML of a template chosen (or typed by name) in a column ('path::name' or a name)."""
    from workbench.app import template_list

    return template_list.template_yaml(choice)


def refresh_pickers(*current: str):
    """UI glue: every column's picker with the fresh template list (after a save, an import
    or a page reload), each keeping its pick."""
    from workbench.app import template_list

    return [template_list.refreshed(c) for c in current]


def column_picker(i: int):
    """UI glue: the picker of column `i` names what the column's YAML holds (its name, and
    "edited" when it no longer equals the picked file)."""
    def fn(yaml_text: str, current: str | None):
        from workbench.app import template_list
        from workbench.core.templates import load_template

        try:
            t = load_template(yaml_text)
        except Exception:  # noqa: BLE001 - half-typed YAML
            return gr.update(label=f"Template {i + 1}: (YAML does not parse)")
        ref = template_list.resolve(current) if current else None
        same = False
        if ref:
            try:
                path, _, name = ref.rpartition("::")
                same = load_template(path, name=name or None).content_hash() == t.content_hash()
            except Exception:  # noqa: BLE001 - the file was removed meanwhile
                same = False
        if same:
            return gr.update(label=f"Template {i + 1}: {t.name}")
        match = template_list.resolve(t.name)
        if match:
            try:
                p, _, n = match.rpartition("::")
                if load_template(p, name=n or None).content_hash() == t.content_hash():
                    return gr.update(label=f"Template {i + 1}: {t.name}", value=match)
            except Exception:  # noqa: BLE001
                pass
        return gr.update(label=f"Template {i + 1}: {t.name} (edited, not saved)", value=None)
    fn.__name__ = f"column_picker_{i + 1}"
    return fn


def show_columns(n: float):
    # one template is enough when models are compared (build_spec says so when it is not)
    n = max(1, min(MAX_COLUMNS, int(n or 2)))
    return [gr.Column(visible=i < n) for i in range(MAX_COLUMNS)]


def initial_columns() -> list[tuple[str | None, str]]:
    """Two bbc library templates in the first columns, so the tab works on first open."""
    choices = library_choices()
    wanted = ["bbc_headline_topic", "bbc_headline_question"]
    out = []
    for w in wanted:
        v = next((val for _, val in choices if val.endswith("::" + w)), None)
        out.append((v, library_yaml(v) if v else ""))
    return out


def extra_models(models) -> list[str]:
    """The Models box: the models to compare besides the model bar's, one per line or
    comma-separated (a list is taken as it is)."""
    import re

    items = models if isinstance(models, (list, tuple)) else re.split(r"[\n,]+", str(models or ""))
    return [m.strip() for m in items if m and str(m).strip()]


def baseline_choices(model: str, models: str, n: float, *yamls: str):
    """'best' plus the names of the visible columns: the templates' names, or with extra models
    the grid's column names (template @ model, as compare_models names them)."""
    import yaml as _yaml

    from workbench.jobs.compare_models import column_name, model_label

    names = []
    for text in list(yamls)[: max(1, int(n or 2))]:
        try:
            d = _yaml.safe_load(text or "")
            if isinstance(d, dict) and d.get("name"):
                names.append(str(d["name"]))
        except _yaml.YAMLError:
            continue
    labels = [model_label(m) for m in [(model or "").strip() or "default"] + extra_models(models)]
    if len(labels) > 1:
        names = [column_name(t, lab, len(labels), len(names)) for lab in labels for t in names]
    return gr.Dropdown(choices=[BEST] + names)
