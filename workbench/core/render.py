"""The template sandbox with a budget: hostile Jinja cannot hang the process or exhaust memory.

    from workbench.core.render import sandbox, limits
    sandbox().from_string("{{ text | upper }}").render(text="hi")   # budgeted on every render
    with limits(seconds=3):                                          # one budget for a whole job
        ...several renders...

Jinja's `SandboxedEnvironment` stops escapes to Python internals, not runaway work. Every
template compiled here renders under a `Budget`, started by the template itself
(`new_context`), so no caller can forget it:

- time: each render stops after `RENDER_SECONDS` (and inside `limits(seconds=...)`, at that
  job's deadline), checked at every loop iteration, call, filter, attribute read and output;
- loops: at most `MAX_ITERATIONS` loop iterations per render, counting nested and recursive
  loops together (each `for` iterable is wrapped by the code generator);
- size: no string, list or number may grow beyond `MAX_CHARS` characters / items
  (`MAX_INT_BITS` bits) — `*`, `**`, `+`, `%`, `~` (checked on read), the filters and the
  `str` / `list` methods that multiply sizes (`center`, `indent`, `ljust`, `replace`, `join`,
  `format`, `batch`, …) are checked *before* they allocate; the output of a render, of a
  macro and of a `{% set %}` block is capped at `MAX_CHARS`;
- regular expressions (`regex_replace`, `generation.extract`) run on the `regex` engine with a
  timeout, so catastrophic backtracking (`(a+)+$`) ends in a clear error.

Each of these raises `RenderLimitError` (a `TemplateError`) naming the limit and how to change
it. The limits are module constants, read from the environment at import
(`WORKBENCH_RENDER_SECONDS`, `WORKBENCH_RENDER_MAX_CHARS`, `WORKBENCH_RENDER_MAX_ITERATIONS`).
The budget is cooperative but complete: every operation that runs between two checks is
bounded in size, so one check can be late by at most one bounded operation. See
docs/SECURITY.md for the threat model.
"""
from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from workbench.errors import TemplateError
from workbench.core import render_budget as rb
# Filters that have no use in a prompt and do work out of proportion to their input
# (pprint: pure-Python formatting of millions of items took 50 s in issue 29).
from workbench.core.sandbox_policy import DROPPED_FILTERS as _DROPPED_FILTERS, DROPPED_GLOBALS  # noqa: E402
# Re-exported: the budget's public names were this module's before the split (#23).
from workbench.core.render_budget import (ALLOC_FACTOR, CACHE_SOURCE_CHARS, MAX_CHARS, MAX_INT_BITS,  # noqa: F401
                                          MAX_ITERATIONS, MAX_SOURCE_CHARS, REGEX_SECONDS, RENDER_SECONDS, Budget,
                                          RenderLimitError, active_budget, check_format, check_value, counted,
                                          expanded_size, limits, loop_iter, start_budget, wrap_filter, wrap_test,
                                          BINOPS, COMPARE_OPS, CURRENT_BUDGET, check_operand)


MAX_REGEX_CHARS = 10_000
MAX_REGEX_EXPANSION = 100_000   # nested counted repeats: (a{1000}){1000} is a million states
_COUNTED = re.compile(r"\{(\d*)(?:,(\d*))?\}")


def _regex_expansion(pattern: str) -> int:
    """How far the regex engine unrolls the pattern's counted repeats when it compiles it (the
    `regex` module compiles (a{60000}){60000} for minutes, with no timeout). Measured on
    Python's own parse tree; a pattern only `regex` can parse gets a cruder upper bound."""
    try:
        from re import _constants as C, _parser as P   # Python 3.11+
    except ImportError:  # pragma: no cover - Python 3.10
        import sre_constants as C  # noqa: N812
        import sre_parse as P  # noqa: N812

    repeats = {C.MAX_REPEAT, C.MIN_REPEAT, getattr(C, "POSSESSIVE_REPEAT", C.MAX_REPEAT)}

    def size(items) -> int:
        total = 0
        for op, av in items:
            if op in repeats:
                lo, hi, sub = av
                total += max(1, hi if hi != C.MAXREPEAT else lo) * size(sub)
            elif op is C.SUBPATTERN:
                total += size(av[-1])
            elif op is C.BRANCH:
                total += sum(size(b) for b in av[1])
            elif op in (C.ASSERT, C.ASSERT_NOT):
                total += size(av[1])
            else:
                total += 1
            if total > MAX_REGEX_EXPANSION:
                return total
        return total

    try:
        return size(P.parse(pattern))
    except Exception:  # noqa: BLE001 - syntax only `regex` knows: multiply every count in it
        n = 1
        for lo, hi in _COUNTED.findall(pattern):
            n *= max(1, int((hi or lo or "1")[:7]))
        return n * max(1, len(pattern))


@functools.lru_cache(maxsize=256)
def _regex_compile(pattern: str, flags: int):
    import regex

    if len(pattern) > MAX_REGEX_CHARS or _regex_expansion(pattern) > MAX_REGEX_EXPANSION:
        raise RenderLimitError(f"the regular expression {pattern[:80]!r} is too large (over {MAX_REGEX_CHARS:,} characters "
                               f"or {MAX_REGEX_EXPANSION:,} states once its counted repeats are unrolled)",
                               "use smaller repeat counts such as {1,100}, or + and *")
    try:
        return regex.compile(pattern, flags | regex.VERSION0)
    except regex.error as e:
        raise TemplateError(f"invalid regular expression {pattern[:80]!r}: {e}", "check the pattern's syntax") from e


def _regex_timeout() -> float:
    b = CURRENT_BUDGET.get()
    left = b.remaining() if b is not None else rb.REGEX_SECONDS
    return max(0.01, min(rb.REGEX_SECONDS, left))


def _regex_timed_out(pattern: str, e: Exception) -> RenderLimitError:
    return RenderLimitError(f"the regular expression {pattern[:80]!r} took too long (over {rb.REGEX_SECONDS:g} s; "
                            "catastrophic backtracking?)",
                            "rewrite the pattern without nested repetition such as (a+)+ or (a|a)*")


def regex_sub(pattern: str, repl: str, text: str, count: int = 0, flags: int = 0) -> str:
    """re.sub with a timeout (the `regex` engine) and a size check of the result."""
    rx = _regex_compile(str(pattern), flags)
    text, repl = str(text), str(repl)
    b = active_budget()
    b.size(len(text) + (len(text) + 1) * len(repl), "the result of regex_replace")
    try:
        return rx.sub(repl, text, count=int(count or 0), timeout=_regex_timeout())
    except TimeoutError as e:
        raise _regex_timed_out(pattern, e) from e
    except (IndexError, ValueError) as e:  # a bad group reference in repl
        raise TemplateError(f"regex_replace: {e}", "check the group references (\\1, \\g<name>) in the replacement") from e


def regex_search(pattern: str, text: str, flags: int = 0):
    """re.search with a timeout (the `regex` engine); None when nothing matches. Used outside
    renders (answer extraction), so it has its own timeout rather than a render's deadline."""
    import regex

    rx = _regex_compile(str(pattern), flags)
    try:
        return rx.search(str(text), timeout=rb.REGEX_SECONDS)
    except TimeoutError as e:
        raise _regex_timed_out(pattern, e) from e
    except regex.error as e:  # pragma: no cover - compile errors are raised above
        raise TemplateError(f"invalid regular expression {pattern[:80]!r}: {e}", "check the pattern") from e


def _regex_replace_filter(s: Any, pattern: str, repl: str, count: int = 0) -> str:
    # lm-eval registers this filter; templates imported from it use it.
    return regex_sub(pattern, repl, s, count)


# ---------------------------------------------------------------------------- the environment
def _make_env():
    from jinja2 import StrictUndefined, nodes
    from jinja2.compiler import CodeGenerator
    from jinja2.runtime import LoopContext
    from jinja2.environment import Template
    from jinja2.sandbox import SandboxedEnvironment

    from workbench.core.sandbox_policy import method_allowed

    class _BudgetCodeGenerator(CodeGenerator):
        """Wraps every for-loop's iterable in `environment.wb_loop_iter(...)`."""

        def visit_Concat(self, node, frame):
            # `a ~ b`: through environment.wb_str_join, which checks and counts the result
            self.write("environment.wb_str_join((")
            for arg in node.nodes:
                self.visit(arg, frame)
                self.write(", ")
            self.write("))")

        def visit_Compare(self, node, frame):
            # ==, <, in ... on containers walk them in C: each operand is size-checked first,
            # so two separately built self-nested lists cannot take 2**n steps to compare
            self.write("(environment.wb_operand(")
            self.visit(node.expr, frame)
            self.write(")")
            for op in node.ops:
                self.write(f" {COMPARE_OPS[op.op]} environment.wb_operand(")
                self.visit(op.expr, frame)
                self.write(")")
            self.write(")")

        def visit_Getitem(self, node, frame):
            if not isinstance(node.arg, nodes.Slice):
                return super().visit_Getitem(node, frame)
            # Jinja slices bypass environment.getitem; a slice is a copy, so count it
            self.write("environment.wb_slice(")
            self.visit(node.node, frame)
            self.write(", slice(")
            for part in (node.arg.start, node.arg.stop, node.arg.step):
                if part is None:
                    self.write("None")
                else:
                    self.visit(part, frame)
                self.write(", ")
            self.write("))")

        def visit_For(self, node, frame):
            wrapped = nodes.Call(nodes.EnvironmentAttribute("wb_loop_iter"), [node.iter], [], None, None,
                                 lineno=node.lineno)
            wrapped.set_environment(self.environment)
            new = nodes.For(node.target, wrapped, node.body, node.else_, node.test, node.recursive, lineno=node.lineno)
            new.set_environment(self.environment)
            return super().visit_For(new, frame)

    class _BudgetTemplate(Template):
        def new_context(self, vars=None, shared=False, locals=None):  # noqa: A002 - Jinja's signature
            start_budget()   # every render / generate / expression starts with a fresh budget
            return super().new_context(vars, shared, locals)

    class BudgetedSandbox(SandboxedEnvironment):
        code_generator_class = _BudgetCodeGenerator
        template_class = _BudgetTemplate
        intercepted_binops = frozenset(BINOPS)

        wb_loop_iter = staticmethod(loop_iter)
        wb_str_join = staticmethod(_str_join)
        wb_slice = staticmethod(_slice)
        wb_operand = staticmethod(check_operand)

        def call_binop(self, context, op, left, right):
            active_budget().tick()
            return BINOPS[op](left, right) if op in BINOPS else super().call_binop(context, op, left, right)

        def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805,B902 - Jinja's calling convention
            b = active_budget()
            b.tick()
            if isinstance(__obj, LoopContext) and args:   # recursive loop: loop(children)
                args = (counted(args[0], b), *args[1:])
            _check_call(b, __obj, args, kwargs)
            out = SandboxedEnvironment.call(__self, __context, __obj, *args, **kwargs)
            owner = getattr(__obj, "__self__", None)
            if isinstance(owner, (list, dict, set)):
                b.size(len(owner), f"a {type(owner).__name__} changed by .{getattr(__obj, '__name__', '?')}()")
            return check_value(out, "the result of a call")

        def is_safe_attribute(self, obj, attr, value):
            # methods of built-in types: an allow-list (core/sandbox_policy.py), so e.g.
            # str.translate or bytes.center cannot allocate gigabytes before a check
            return super().is_safe_attribute(obj, attr, value) and method_allowed(obj, attr)

        def getattr(self, obj, attribute):
            active_budget().tick()
            return _check_read(super().getattr(obj, attribute))

        def getitem(self, obj, argument):
            active_budget().tick()
            return _check_read(super().getitem(obj, argument))

        @staticmethod
        def concat(parts):
            # the output of a render, a macro, a {% set %} block or a {% filter %} block
            b = active_budget()
            total, out = 0, []
            for p in parts:
                total += len(p)
                b.size(total, "the rendered text")
                out.append(p)
            b.tick()
            return "".join(out)

    def _finalize(value):
        # every {{ ... }}: the printed text counts, also inside macros and {% set %} blocks
        b = active_budget()
        b.tick()
        if isinstance(value, str):
            b.charge(len(value), "a printed value")
        elif not isinstance(value, (int, float, bool)) and value is not None:
            b.charge(expanded_size(value, b.max_chars), "a printed value")
        return value

    # keep_trailing_newline matches lm-eval's environment, so a trailing newline in a template
    # reaches the prompt exactly as it does there. No autoescape: prompts are text.
    env = BudgetedSandbox(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False,
                          finalize=_finalize)
    for name in _DROPPED_FILTERS:
        env.filters.pop(name, None)
    for name in DROPPED_GLOBALS:
        # lipsum(30000000, False, -5, 0) ran 27 s: random text has no place in a prompt
        env.globals.pop(name, None)
    env.filters["regex_replace"] = _regex_replace_filter
    env.filters = {k: wrap_filter(k, f) for k, f in env.filters.items()}
    env.tests = {k: wrap_test(f) for k, f in env.tests.items()}
    return env


def _str_join(parts) -> str:
    b = active_budget()
    b.tick()
    strs = [p if isinstance(p, str) else str(_finalize_size(p)) for p in parts]
    b.charge(sum(map(len, strs)), "the result of `~`")
    return "".join(strs)


def _slice(obj: Any, sl: slice) -> Any:
    b = active_budget()
    b.tick()
    out = obj[sl]
    if isinstance(out, (str, list, tuple)):
        b.charge(len(out), "a slice")
    return out


def _finalize_size(value: Any) -> Any:
    if not isinstance(value, (str, int, float, bool)) and value is not None:
        active_budget().size(expanded_size(value, rb.MAX_CHARS), "a printed value")
    return value


def _check_read(value: Any) -> Any:
    # A string grown by `~` in a loop (namespace attribute) is caught on its next read.
    if isinstance(value, str) and len(value) > rb.MAX_CHARS:
        active_budget().size(len(value), "a value read by the template")
    return value


_AMPLIFYING_STR = {"center", "ljust", "rjust", "zfill"}


def _check_call(b: Budget, fn: Any, args: tuple, kwargs: dict) -> None:
    for v in (*args, *kwargs.values()):
        if isinstance(v, (str, list, tuple, dict)):
            b.size(len(v), "a call argument")   # shallow: results are checked deeply
    owner = getattr(fn, "__self__", None)
    name = getattr(fn, "__name__", "")
    if isinstance(owner, str):
        if name in _AMPLIFYING_STR and args and isinstance(args[0], int):
            b.size(len(owner) + args[0], f"the result of .{name}()")
        elif name == "expandtabs":
            size = args[0] if args and isinstance(args[0], int) else kwargs.get("tabsize", 8)
            b.size(len(owner) + owner.count("\t") * max(0, int(size)), "the result of .expandtabs()")
        elif name == "replace" and len(args) >= 2:
            old, new = str(args[0]), str(args[1])
            n = (len(owner) + 1) if old == "" else owner.count(old)
            b.size(len(owner) + n * max(0, len(new) - len(old)), "the result of .replace()")
        elif name == "join" and args:
            items = args[0]
            if isinstance(items, (list, tuple)):
                b.size(expanded_size(items, b.max_chars) + len(items) * len(owner), "the result of .join()")
            elif isinstance(items, str):   # ('x'*8000).join('a'*1000000): a separator between characters
                b.size(len(items) + max(0, len(items) - 1) * len(owner), "the result of .join()")
            elif hasattr(items, "__len__"):
                b.size(len(items) * (len(owner) + 1), "the result of .join()")
    # the sandbox hands out str.format as its own wrapper around the bound method
    wrapped_owner = getattr(getattr(fn, "__wrapped__", None), "__self__", None)
    if name in ("format", "format_map") and isinstance(wrapped_owner, str):
        vals = [*args, *kwargs.values()]
        if name == "format_map" and args and isinstance(args[0], Mapping):
            vals = list(args[0].values())
        check_format(wrapped_owner, vals, f"the result of .{name}()")
    if isinstance(owner, list) and name == "sort":
        from workbench.core.sandbox_policy import sort_check

        sort_check(b, len(owner), ".sort()")
    if isinstance(owner, list) and name in ("extend", "__iadd__") and args:
        b.size(len(owner) + (len(args[0]) if hasattr(args[0], "__len__") else 0), f"a list grown by .{name}()")


@functools.lru_cache(maxsize=1)
def sandbox():
    """The one shared environment every template is compiled in."""
    return _make_env()


def compile_template(source: str):
    if len(source) > rb.MAX_SOURCE_CHARS:
        raise RenderLimitError(f"a Jinja field is {len(source):,} characters long (limit {rb.MAX_SOURCE_CHARS:,})",
                               "keep templates short; put long text in the data, not in the template "
                               "(or raise WORKBENCH_TEMPLATE_MAX_CHARS)")
    if len(source) > rb.CACHE_SOURCE_CHARS:
        return _compile(source)
    return _compile_cached(source)


@functools.lru_cache(maxsize=512)
def _compile_cached(source: str):
    return _compile(source)


def _compile(source: str):
    try:
        return sandbox().from_string(source)
    except RecursionError:
        raise TemplateError("a Jinja expression is nested too deeply to compile",
                            "split it into smaller expressions or {% set %} steps") from None


def render(source: str, variables: Mapping) -> str:
    """Render `source` with `variables` under a fresh budget (raises Jinja's own errors and
    `RenderLimitError`; templates.py turns the former into TemplateError)."""
    return compile_template(source).render(**dict(variables))


def evaluate_expression(expr: str, variables: Mapping) -> Any:
    if len(expr) > rb.MAX_SOURCE_CHARS:
        raise RenderLimitError(f"an expression is {len(expr):,} characters long (limit {rb.MAX_SOURCE_CHARS:,})",
                               "keep expressions short")
    compiled = _compile_expression(expr) if len(expr) > rb.CACHE_SOURCE_CHARS else _compiled_expression(expr)
    value = compiled(**dict(variables))
    # an expression's value is data (e.g. the choices); check it as we check printed values
    start_budget()
    return check_value(value, "the value of the expression")


@functools.lru_cache(maxsize=512)
def _compiled_expression(expr: str):
    return _compile_expression(expr)


def _compile_expression(expr: str):
    try:
        return sandbox().compile_expression(expr, undefined_to_none=False)
    except RecursionError:
        raise TemplateError("a Jinja expression is nested too deeply to compile",
                            "split it into smaller expressions") from None
