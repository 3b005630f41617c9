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

import contextlib
import contextvars
import functools
import operator
import os
import re
import time
from collections.abc import Mapping
from typing import Any, Iterable, Iterator

from workbench.errors import TemplateError


def _env_num(name: str, default: float, kind=float):
    try:
        return kind(os.environ.get(name, default))
    except ValueError:
        return kind(default)


RENDER_SECONDS = _env_num("WORKBENCH_RENDER_SECONDS", 3.0)
MAX_CHARS = _env_num("WORKBENCH_RENDER_MAX_CHARS", 8_000_000, int)
MAX_ITERATIONS = _env_num("WORKBENCH_RENDER_MAX_ITERATIONS", 1_000_000, int)
ALLOC_FACTOR = 4                  # a render may create at most 4 x MAX_CHARS of strings and lists in all
MAX_INT_BITS = 1 << 16            # ~19,700 decimal digits; Python refuses int->str beyond 4,300 anyway
# One Jinja field. A template is a prompt, not a program; compiling costs ~7 s and ~140 MB per
# million characters (a 992,000-character template took 13.5 s and 1.39 GB to validate).
MAX_SOURCE_CHARS = _env_num("WORKBENCH_TEMPLATE_MAX_CHARS", 100_000, int)
CACHE_SOURCE_CHARS = 20_000       # longer fields are compiled each time, not kept (512 of them in memory)
REGEX_SECONDS = 0.5               # one regex call's timeout (the engine overshoots ~3x on a loaded CPU)

_HINT = ("templates render under limits (docs/SECURITY.md): simplify the template, or raise the limit "
         "with the environment variable {var} if this is legitimate")


from workbench.core.render_errors import RenderLimitError  # noqa: E402,F401 (re-exported)


# ---------------------------------------------------------------------------- the budget
class Budget:
    __slots__ = ("allocated", "deadline", "iterations", "max_alloc", "max_iterations", "max_chars", "seconds")

    def __init__(self, seconds: float, deadline: float | None = None):
        now = time.monotonic()
        self.seconds = seconds
        self.deadline = now + seconds if deadline is None else min(deadline, now + seconds)
        self.iterations = 0
        self.max_iterations = MAX_ITERATIONS
        self.max_chars = MAX_CHARS
        self.allocated = 0
        self.max_alloc = ALLOC_FACTOR * MAX_CHARS

    def charge(self, n: int, what: str) -> None:
        """Count `n` newly created characters/items against this render's total."""
        self.size(n, what)
        self.allocated += n
        if self.allocated > self.max_alloc:
            raise RenderLimitError(f"template rendering stopped: it created more than {self.max_alloc:,} characters "
                                   "of text and data in total", _HINT.format(var="WORKBENCH_RENDER_MAX_CHARS"))

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise RenderLimitError(f"template rendering stopped after {self.seconds:g} s (time limit)",
                                   _HINT.format(var="WORKBENCH_RENDER_SECONDS"))

    def loop_step(self) -> None:
        self.iterations += 1
        if self.iterations > self.max_iterations:
            raise RenderLimitError(f"template rendering stopped: more than {self.max_iterations:,} loop iterations",
                                   _HINT.format(var="WORKBENCH_RENDER_MAX_ITERATIONS"))
        self.tick()

    def size(self, n: int, what: str) -> None:
        if n > self.max_chars:
            raise RenderLimitError(f"template rendering stopped: {what} would be {n:,} characters/items "
                                   f"(limit {self.max_chars:,})", _HINT.format(var="WORKBENCH_RENDER_MAX_CHARS"))

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def expanded(self, value: Any) -> int:
        """expanded_size(value) up to this budget's size limit."""
        return expanded_size(value, self.max_chars)


_current: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("wb_render_budget", default=None)
_outer_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("wb_render_deadline", default=None)


def _budget() -> Budget:
    b = _current.get()
    if b is None:   # code run outside a render (e.g. a filter called directly): a fresh budget
        b = Budget(RENDER_SECONDS, _outer_deadline.get())
        _current.set(b)
    return b


def _start() -> Budget:
    b = Budget(RENDER_SECONDS, _outer_deadline.get())
    _current.set(b)
    return b


@contextlib.contextmanager
def limits(seconds: float):
    """One deadline for every render inside the block (e.g. a server request that validates a
    template: all its renders together stop after `seconds`)."""
    d = time.monotonic() + seconds
    outer = _outer_deadline.get()
    token = _outer_deadline.set(d if outer is None else min(d, outer))
    try:
        yield
    finally:
        _outer_deadline.reset(token)


# ---------------------------------------------------------------------------- sizes
def expanded_size(value: Any, limit: int | None = None) -> int:
    """Characters/items `value` would take when printed: strings by length, containers by the
    sum of their parts (shared parts counted every time they appear, memoized so a nested
    self-referencing structure costs one visit per distinct object). Stops counting past `limit`."""
    limit = MAX_CHARS if limit is None else limit
    memo: dict[int, int] = {}

    def size(v: Any, depth: int) -> int:
        if isinstance(v, str):
            return len(v)
        if isinstance(v, (bytes, bytearray)):
            return len(v)
        if isinstance(v, bool) or v is None or isinstance(v, float):
            return 5
        if isinstance(v, int):
            return max(1, v.bit_length() // 3)
        if isinstance(v, (list, tuple, set, frozenset, dict, range)) or isinstance(v, Mapping):
            k = id(v)
            if k in memo:
                return memo[k]
            if depth > 200:
                raise RenderLimitError("template rendering stopped: a value is nested more than 200 levels deep",
                                       "simplify the template's data structures")
            memo[k] = limit + 1   # a cycle counts as too big
            if isinstance(v, range):
                total = len(v) * 2
            else:
                items = v.items() if isinstance(v, Mapping) else v
                total = len(v) * 2
                for it in items:
                    total += size(it, depth + 1)
                    if total > limit:
                        break
            memo[k] = total
            return total
        return 8

    return size(value, 0)


def _check_value(value: Any, what: str) -> Any:
    b = _budget()
    if isinstance(value, str):
        b.charge(len(value), what)
    elif isinstance(value, (list, tuple, dict, set, frozenset)):
        b.charge(expanded_size(value, b.max_chars), what)
    elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise RenderLimitError(f"template rendering stopped: {what} is a number of {value.bit_length():,} bits "
                               f"(limit {MAX_INT_BITS:,})", "templates format text; use smaller numbers")
    return value


def _lenient_len(v: Any) -> int:
    try:
        return expanded_size(v, MAX_CHARS) if not isinstance(v, str) else len(v)
    except TypeError:
        return 0


# ---------------------------------------------------------------------------- operators
def _int_bits(v: Any) -> int:
    return abs(int(v)).bit_length() if isinstance(v, int) and not isinstance(v, bool) else 0


def _checked_pow(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int) and not isinstance(a, bool):
        if b > 0 and abs(a) > 1 and _int_bits(a) * b > MAX_INT_BITS:
            raise RenderLimitError(f"template rendering stopped: {a if _int_bits(a) < 64 else '(big number)'} ** {b} "
                                   f"would have more than {MAX_INT_BITS:,} bits", "templates format text; use smaller numbers")
    elif isinstance(a, (int, float)) and isinstance(b, int) and b > MAX_INT_BITS:
        if isinstance(a, float) and abs(a) not in (0.0, 1.0):
            raise RenderLimitError(f"template rendering stopped: exponent {b} is too large", "use smaller numbers")
    return operator.pow(a, b)


def _repeat_count(v: Any) -> int | None:
    if isinstance(v, bool):
        return int(v)
    return v if isinstance(v, int) else None


def _checked_mul(a: Any, b: Any) -> Any:
    b_ = _budget()
    for seq, n in ((a, _repeat_count(b)), (b, _repeat_count(a))):
        if isinstance(seq, (str, list, tuple, bytes)) and n is not None:
            if n > 0:
                b_.charge(n * max(1, expanded_size(seq, b_.max_chars)), "the result of `*`")
            return operator.mul(a, b)
    if isinstance(a, int) and isinstance(b, int) and _int_bits(a) + _int_bits(b) > MAX_INT_BITS:
        raise RenderLimitError(f"template rendering stopped: a product would have more than {MAX_INT_BITS:,} bits",
                               "templates format text; use smaller numbers")
    return operator.mul(a, b)


def _checked_add(a: Any, b: Any) -> Any:
    if isinstance(a, (str, list, tuple)) and isinstance(b, (str, list, tuple)):
        b_ = _budget()
        b_.charge(expanded_size(a, b_.max_chars) + expanded_size(b, b_.max_chars), "the result of `+`")
    return operator.add(a, b)


_FMT_NUM = re.compile(r"\d+")


def _check_format(fmt: str, args: Iterable[Any], what: str) -> None:
    """printf / str.format output is bounded by the format, the arguments and the widths in both."""
    b = _budget()
    widths = sum(int(n) for n in _FMT_NUM.findall(fmt) if len(n) < 12) + sum(
        10 ** 12 for n in _FMT_NUM.findall(fmt) if len(n) >= 12)
    args = list(args)
    ints = sum(abs(a) for a in args if isinstance(a, int) and not isinstance(a, bool) and _int_bits(a) < 64)
    from workbench.core.sandbox_policy import nested_format_widths

    widths += nested_format_widths(fmt, args)   # '{:{}}'.format('a', '1500000000')
    b.charge(len(fmt) + widths + min(ints, 10 ** 12) + sum(_lenient_len(a) for a in args), what)


def _checked_mod(a: Any, b: Any) -> Any:
    if isinstance(a, str):
        args = list(b.values()) if isinstance(b, Mapping) else list(b) if isinstance(b, tuple) else [b]
        _check_format(a, args, "the result of `%`")
    return operator.mod(a, b)


_COMPARE_OPS = {"eq": "==", "ne": "!=", "gt": ">", "gteq": ">=", "lt": "<", "lteq": "<=", "in": "in", "notin": "not in"}

_BINOPS = {"**": _checked_pow, "*": _checked_mul, "+": _checked_add, "%": _checked_mod}


# ---------------------------------------------------------------------------- filters
def _wrap_filter(name: str, fn):
    from workbench.core.sandbox_policy import FILTER_CHECKS

    checks = [c for c in (_FILTER_CHECKS.get(name), FILTER_CHECKS.get(name)) if c is not None]
    pre = (lambda b, vals, kwargs: [c(b, vals, kwargs) for c in checks]) if checks else None

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        b = _budget()
        b.tick()
        # skip a leading Context / EvalContext / Environment passed by Jinja's pass_* decorators
        vals = [a for a in args if not isinstance(a, _jinja_internals())]
        for i, v in enumerate((*vals, *kwargs.values())):
            if isinstance(v, str):
                b.size(len(v), f"an argument of the filter `{name}`")
            elif isinstance(v, (list, tuple, dict)):
                # the filtered value deeply (tojson, string, pprint... print all of it, and a list
                # nested in itself n times prints 2**n copies); other arguments shallowly
                b.size(expanded_size(v, b.max_chars) if i == 0 else len(v), f"an argument of the filter `{name}`")
        if pre is not None:
            pre(b, vals, kwargs)
        out = fn(*args, **kwargs)
        if isinstance(out, Iterator) and not isinstance(out, (str, list, tuple, dict)):
            return _counted(out, b)
        return _check_value(out, f"the result of the filter `{name}`")

    return wrapper


@functools.lru_cache(maxsize=1)
def _jinja_internals() -> tuple:
    from jinja2 import Environment
    from jinja2.nodes import EvalContext
    from jinja2.runtime import Context

    return (Environment, EvalContext, Context)


def _wrap_test(fn):
    """Tests (`is eq(x)`, `is in(y)`, ...) compare their arguments: size-check them first."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        for v in (*args, *kwargs.values()):
            _operand(v)
        return fn(*args, **kwargs)

    return wrapper


def _arg(vals: list, kwargs: dict, i: int, key: str, default: Any = None) -> Any:
    if key in kwargs:
        return kwargs[key]
    return vals[i] if len(vals) > i else default


def _width_check(i: int, key: str, scale_by_lines: bool = False):
    def check(b: Budget, vals: list, kwargs: dict) -> None:
        s = str(vals[0]) if vals and isinstance(vals[0], str) else ""
        w = _arg(vals, kwargs, i, key, 0)
        width = len(w) if isinstance(w, str) else (int(w) if isinstance(w, (int, float)) and not isinstance(w, bool) else 0)
        lines = (s.count("\n") + 1) if scale_by_lines else 1
        b.size(len(s) + lines * max(0, width), f"the result of the filter with {key}={width:,}")
    return check


def _replace_check(b: Budget, vals: list, kwargs: dict) -> None:
    s = str(vals[0]) if vals else ""
    old, new = str(_arg(vals, kwargs, 1, "old", "")), str(_arg(vals, kwargs, 2, "new", ""))
    n = (len(s) + 1) if old == "" else s.count(old)
    b.size(len(s) + n * max(0, len(new) - len(old)), "the result of the filter `replace`")


def _join_check(b: Budget, vals: list, kwargs: dict) -> None:
    items = vals[0] if vals else []
    sep = str(_arg(vals, kwargs, 1, "d", ""))
    if isinstance(items, (list, tuple, str)):
        n = len(items)
        b.size(expanded_size(items if not isinstance(items, str) else list(items[:0]), b.max_chars)
               + len(items if isinstance(items, str) else "") + max(0, n - 1) * len(sep), "the result of the filter `join`")
    elif hasattr(items, "__len__"):   # a dict joins its keys, bytes their numbers (up to 3 digits each)
        n = len(items)
        b.size(expanded_size(items, b.max_chars) + n * (len(sep) + 3), "the result of the filter `join`")


def _wordwrap_check(b: Budget, vals: list, kwargs: dict) -> None:
    s = str(vals[0]) if vals else ""
    wrap = _arg(vals, kwargs, 3, "wrapstring", None) or "\n"
    width = _arg(vals, kwargs, 1, "width", 79)
    if isinstance(width, int) and width < 1:
        return
    b.size(len(s) + (len(s) + 1) * len(str(wrap)), "the result of the filter `wordwrap`")


def _batch_check(b: Budget, vals: list, kwargs: dict) -> None:
    n = _arg(vals, kwargs, 1, "linecount", 0)
    fill = _arg(vals, kwargs, 2, "fill_with", None)
    if fill is not None and isinstance(n, int):
        b.size(n, "a batch padded with fill_with")


def _format_check(b: Budget, vals: list, kwargs: dict) -> None:
    if vals and isinstance(vals[0], str):
        _check_format(vals[0], [*vals[1:], *kwargs.values()], "the result of the filter `format`")


def _truncate_check(b: Budget, vals: list, kwargs: dict) -> None:
    end = _arg(vals, kwargs, 3, "end", "...")
    b.size(len(str(vals[0]) if vals else "") + len(str(end)), "the result of the filter `truncate`")


_FILTER_CHECKS = {
    "center": _width_check(1, "width"),
    "indent": _width_check(1, "width", scale_by_lines=True),
    "replace": _replace_check,
    "join": _join_check,
    "wordwrap": _wordwrap_check,
    "batch": _batch_check,
    "format": _format_check,
    "truncate": _truncate_check,
}

# Filters that have no use in a prompt and do work out of proportion to their input
# (pprint: pure-Python formatting of millions of items took 50 s in issue 29).
from workbench.core.sandbox_policy import DROPPED_FILTERS as _DROPPED_FILTERS, DROPPED_GLOBALS  # noqa: E402


def _counted(it: Iterable[Any], b: Budget | None = None) -> Iterator[Any]:
    b = b or _budget()
    for x in it:
        b.loop_step()
        yield x


def loop_iter(it: Any) -> Iterator[Any]:
    """Every `{% for %}` iterates through this (see `_BudgetCodeGenerator`)."""
    return _counted(it if it is not None else ())


# ---------------------------------------------------------------------------- regular expressions
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
    b = _current.get()
    left = b.remaining() if b is not None else REGEX_SECONDS
    return max(0.01, min(REGEX_SECONDS, left))


def _regex_timed_out(pattern: str, e: Exception) -> RenderLimitError:
    return RenderLimitError(f"the regular expression {pattern[:80]!r} took too long (over {REGEX_SECONDS:g} s; "
                            "catastrophic backtracking?)",
                            "rewrite the pattern without nested repetition such as (a+)+ or (a|a)*")


def regex_sub(pattern: str, repl: str, text: str, count: int = 0, flags: int = 0) -> str:
    """re.sub with a timeout (the `regex` engine) and a size check of the result."""
    rx = _regex_compile(str(pattern), flags)
    text, repl = str(text), str(repl)
    b = _budget()
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
        return rx.search(str(text), timeout=REGEX_SECONDS)
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
                self.write(f" {_COMPARE_OPS[op.op]} environment.wb_operand(")
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
            _start()   # every render / generate / expression starts with a fresh budget
            return super().new_context(vars, shared, locals)

    class BudgetedSandbox(SandboxedEnvironment):
        code_generator_class = _BudgetCodeGenerator
        template_class = _BudgetTemplate
        intercepted_binops = frozenset(_BINOPS)

        wb_loop_iter = staticmethod(loop_iter)
        wb_str_join = staticmethod(_str_join)
        wb_slice = staticmethod(_slice)
        wb_operand = staticmethod(_operand)

        def call_binop(self, context, op, left, right):
            _budget().tick()
            return _BINOPS[op](left, right) if op in _BINOPS else super().call_binop(context, op, left, right)

        def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805,B902 - Jinja's calling convention
            b = _budget()
            b.tick()
            if isinstance(__obj, LoopContext) and args:   # recursive loop: loop(children)
                args = (_counted(args[0], b), *args[1:])
            _check_call(b, __obj, args, kwargs)
            out = SandboxedEnvironment.call(__self, __context, __obj, *args, **kwargs)
            owner = getattr(__obj, "__self__", None)
            if isinstance(owner, (list, dict, set)):
                b.size(len(owner), f"a {type(owner).__name__} changed by .{getattr(__obj, '__name__', '?')}()")
            return _check_value(out, "the result of a call")

        def is_safe_attribute(self, obj, attr, value):
            # methods of built-in types: an allow-list (core/sandbox_policy.py), so e.g.
            # str.translate or bytes.center cannot allocate gigabytes before a check
            return super().is_safe_attribute(obj, attr, value) and method_allowed(obj, attr)

        def getattr(self, obj, attribute):
            _budget().tick()
            return _check_read(super().getattr(obj, attribute))

        def getitem(self, obj, argument):
            _budget().tick()
            return _check_read(super().getitem(obj, argument))

        @staticmethod
        def concat(parts):
            # the output of a render, a macro, a {% set %} block or a {% filter %} block
            b = _budget()
            total, out = 0, []
            for p in parts:
                total += len(p)
                b.size(total, "the rendered text")
                out.append(p)
            b.tick()
            return "".join(out)

    def _finalize(value):
        # every {{ ... }}: the printed text counts, also inside macros and {% set %} blocks
        b = _budget()
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
    env.filters = {k: _wrap_filter(k, f) for k, f in env.filters.items()}
    env.tests = {k: _wrap_test(f) for k, f in env.tests.items()}
    return env


def _str_join(parts) -> str:
    b = _budget()
    b.tick()
    strs = [p if isinstance(p, str) else str(_finalize_size(p)) for p in parts]
    b.charge(sum(map(len, strs)), "the result of `~`")
    return "".join(strs)


def _operand(value: Any) -> Any:
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        b = _budget()
        b.tick()
        b.size(expanded_size(value, b.max_chars), "a compared value")
    return value


def _slice(obj: Any, sl: slice) -> Any:
    b = _budget()
    b.tick()
    out = obj[sl]
    if isinstance(out, (str, list, tuple)):
        b.charge(len(out), "a slice")
    return out


def _finalize_size(value: Any) -> Any:
    if not isinstance(value, (str, int, float, bool)) and value is not None:
        _budget().size(expanded_size(value, MAX_CHARS), "a printed value")
    return value


def _check_read(value: Any) -> Any:
    # A string grown by `~` in a loop (namespace attribute) is caught on its next read.
    if isinstance(value, str) and len(value) > MAX_CHARS:
        _budget().size(len(value), "a value read by the template")
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
        _check_format(wrapped_owner, vals, f"the result of .{name}()")
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
    if len(source) > MAX_SOURCE_CHARS:
        raise RenderLimitError(f"a Jinja field is {len(source):,} characters long (limit {MAX_SOURCE_CHARS:,})",
                               "keep templates short; put long text in the data, not in the template "
                               "(or raise WORKBENCH_TEMPLATE_MAX_CHARS)")
    if len(source) > CACHE_SOURCE_CHARS:
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
    if len(expr) > MAX_SOURCE_CHARS:
        raise RenderLimitError(f"an expression is {len(expr):,} characters long (limit {MAX_SOURCE_CHARS:,})",
                               "keep expressions short")
    compiled = _compile_expression(expr) if len(expr) > CACHE_SOURCE_CHARS else _compiled_expression(expr)
    value = compiled(**dict(variables))
    # an expression's value is data (e.g. the choices); check it as we check printed values
    _start()
    return _check_value(value, "the value of the expression")


@functools.lru_cache(maxsize=512)
def _compiled_expression(expr: str):
    return _compile_expression(expr)


def _compile_expression(expr: str):
    try:
        return sandbox().compile_expression(expr, undefined_to_none=False)
    except RecursionError:
        raise TemplateError("a Jinja expression is nested too deeply to compile",
                            "split it into smaller expressions") from None
