"""The render budget: the limits (time, loop iterations, sizes), the per-render `Budget` that
enforces them, and the size-checked operators and filters the sandbox installs. Split out of
core/render.py (#23), which builds the sandbox on top of this; see its docstring for the rules.

The limits are this module's constants, read from the environment at import; a test that
changes one patches it here."""
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


CURRENT_BUDGET: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("wb_render_budget", default=None)
_outer_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("wb_render_deadline", default=None)


def active_budget() -> Budget:
    b = CURRENT_BUDGET.get()
    if b is None:   # code run outside a render (e.g. a filter called directly): a fresh budget
        b = Budget(RENDER_SECONDS, _outer_deadline.get())
        CURRENT_BUDGET.set(b)
    return b


def start_budget() -> Budget:
    b = Budget(RENDER_SECONDS, _outer_deadline.get())
    CURRENT_BUDGET.set(b)
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


def check_value(value: Any, what: str) -> Any:
    b = active_budget()
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
    b_ = active_budget()
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
        b_ = active_budget()
        b_.charge(expanded_size(a, b_.max_chars) + expanded_size(b, b_.max_chars), "the result of `+`")
    return operator.add(a, b)


_FMT_NUM = re.compile(r"\d+")


def check_format(fmt: str, args: Iterable[Any], what: str) -> None:
    """printf / str.format output is bounded by the format, the arguments and the widths in both."""
    b = active_budget()
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
        check_format(a, args, "the result of `%`")
    return operator.mod(a, b)


COMPARE_OPS = {"eq": "==", "ne": "!=", "gt": ">", "gteq": ">=", "lt": "<", "lteq": "<=", "in": "in", "notin": "not in"}

BINOPS = {"**": _checked_pow, "*": _checked_mul, "+": _checked_add, "%": _checked_mod}


# ---------------------------------------------------------------------------- filters
def wrap_filter(name: str, fn):
    from workbench.core.sandbox_policy import FILTER_CHECKS

    checks = [c for c in (_FILTER_CHECKS.get(name), FILTER_CHECKS.get(name)) if c is not None]
    pre = (lambda b, vals, kwargs: [c(b, vals, kwargs) for c in checks]) if checks else None

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        b = active_budget()
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
            return counted(out, b)
        return check_value(out, f"the result of the filter `{name}`")

    return wrapper


@functools.lru_cache(maxsize=1)
def _jinja_internals() -> tuple:
    from jinja2 import Environment
    from jinja2.nodes import EvalContext
    from jinja2.runtime import Context

    return (Environment, EvalContext, Context)


def wrap_test(fn):
    """Tests (`is eq(x)`, `is in(y)`, ...) compare their arguments: size-check them first."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        for v in (*args, *kwargs.values()):
            check_operand(v)
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
        check_format(vals[0], [*vals[1:], *kwargs.values()], "the result of the filter `format`")


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

def counted(it: Iterable[Any], b: Budget | None = None) -> Iterator[Any]:
    b = b or active_budget()
    for x in it:
        b.loop_step()
        yield x


def loop_iter(it: Any) -> Iterator[Any]:
    """Every `{% for %}` iterates through this (see `_BudgetCodeGenerator`)."""
    return counted(it if it is not None else ())


def check_operand(value: Any) -> Any:
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        b = active_budget()
        b.tick()
        b.size(expanded_size(value, b.max_chars), "a compared value")
    return value
