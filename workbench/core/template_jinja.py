"""The Jinja side of prompt templates: rendering in the one budgeted sandbox, turning Jinja's
failures into TemplateErrors that name the variable and the fix, and the small helpers that
quote columns and string literals. Split out of core/templates.py (#23)."""
from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from typing import Any

from workbench.core.render import compile_template, evaluate_expression, render, sandbox
from workbench.errors import TemplateError

ROW_VARIABLE = "row"          # the whole row, for columns whose names are not identifiers
IDENT = re.compile(r"^[A-Za-z_]\w*$")


# --------------------------------------------------------------------------------------------
# Sandboxed Jinja
# --------------------------------------------------------------------------------------------
def jinja_env():
    # The one budgeted sandbox (workbench.core.render): every render has time, loop and size limits.
    return sandbox()


def compile_source(source: str):
    return compile_template(source)


def wrap_jinja_error(e: Exception, what: str, variables: Mapping | None = None) -> TemplateError:
    from jinja2 import TemplateSyntaxError, UndefinedError
    from jinja2.exceptions import SecurityError

    if isinstance(e, TemplateError):
        return e
    if isinstance(e, SecurityError):
        return TemplateError(f"{what}: blocked by the sandbox: {e}",
                             "templates may only read row values and call safe filters; access to Python internals is not allowed")
    if isinstance(e, TemplateSyntaxError):
        return TemplateError(f"{what}: Jinja syntax error at line {e.lineno}: {e.message}",
                             "check the matching of {{ }}, {% %} and quotes on that line")
    if isinstance(e, UndefinedError):
        # a pandas Series iterates over its values; the hint must list column names, never data
        keys = variables.keys() if hasattr(variables, "keys") else (variables or [])
        avail = sorted(map(str, keys))
        m = re.search(r"'([^']+)' is undefined", str(e))
        sug = ""
        if m and avail:
            close = difflib.get_close_matches(m.group(1), avail, n=1)
            sug = f"; did you mean {quoted_ref(close[0])}?" if close else ""
        shown = [column_ref(a) for a in avail[:50]] + ([f"… ({len(avail)} in all)"] if len(avail) > 50 else [])
        return TemplateError(f"{what}: {e}", f"available variables: {', '.join(shown) or '(none)'}{sug}")
    return TemplateError(f"{what}: render failed: {type(e).__name__}: {e}",
                         "check the filters and expressions used on this row's values")


def render_string(source: str, variables: Mapping) -> str:
    """Render Jinja `source` with `variables` in the shared sandboxed, strict environment."""
    try:
        return render(source, variables)
    except Exception as e:  # noqa: BLE001 - every failure becomes an actionable TemplateError
        raise wrap_jinja_error(e, "template", variables) from e


def with_row(row: Mapping) -> dict:
    """The variables of a render: every column by name, and `row`, the whole row as a mapping,
    so a column whose name is not an identifier is reachable as row['my title']. `row` is
    always the whole row: a column named `row` is row['row']."""
    d = dict(row)
    d[ROW_VARIABLE] = dict(row)
    return d


def column_ref(name: str) -> str:
    """How a template refers to a column: its name, or row['...'] when it is not an identifier
    (or is `row` itself)."""
    if IDENT.match(name) and name != ROW_VARIABLE:
        return name
    return f"{ROW_VARIABLE}[{name!r}]"   # a Python str literal is a Jinja one


def quoted_ref(name: str) -> str:
    ref = column_ref(name)
    return f"'{ref}'" if ref == name else ref


def eval_expression(expr: str, variables: Mapping) -> Any:
    try:
        return evaluate_expression(expr, with_row(variables))
    except Exception as e:  # noqa: BLE001
        raise wrap_jinja_error(e, "choices_expr", variables) from e


def is_template_form(s: str) -> bool:
    return "{{" in s or "{%" in s


def jinja_str(s: str) -> str:
    """A Jinja string literal for `s` (JSON escaping is valid Jinja string syntax)."""
    return json.dumps(s, ensure_ascii=False)


def undeclared_names(ast_) -> set[str]:
    from jinja2 import meta, nodes
    from jinja2.exceptions import TemplateAssertionError

    try:
        return set(meta.find_undeclared_variables(ast_))
    except TemplateAssertionError:
        # An unknown filter stops Jinja's own analysis; approximate with loaded minus stored names.
        loaded = {n.name for n in ast_.find_all(nodes.Name) if n.ctx == "load"}
        stored = {n.name for n in ast_.find_all(nodes.Name) if n.ctx in ("store", "param")}
        return loaded - stored
