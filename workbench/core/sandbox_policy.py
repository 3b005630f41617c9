"""What the template sandbox lets a template call, and the size checks run before each call.

    method_allowed(obj, "translate")   # False: str.translate is not reachable from a template
    FILTER_CHECKS["tojson"](budget, [value], {"indent": 3_000_000})   # RenderLimitError before dumping

Jinja's `SandboxedEnvironment` blocks Python internals, not work. Every public method of the
built-in types it hands a template is reachable, and some allocate far more than their input
before the render budget can look (issue 29, item 4: `str.translate` to 1.1 GB, `bytes.center`
to 1.6 GB). So the methods of `str`, `list`, `dict`, `tuple`, `set`, `bytes`, `int` and `float`
are an allow-list here: each listed method either returns at most a small multiple of its
input, or has a check in render.py (`_check_call`) that bounds its output *before* it runs.
What is not listed (`translate`, `maketrans`, `encode`, every `bytes` method but `decode`,
`int.to_bytes`, `dict.fromkeys`, ...) is refused by the sandbox as an unsafe attribute: no
prompt needs it. The filters that could run long or large get a check here (`FILTER_CHECKS`),
and the few that cannot be bounded cheaply are removed (`DROPPED_FILTERS`, `DROPPED_GLOBALS`).
tests/test_sandbox_surface.py enumerates all of them and runs each with a hostile argument.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from workbench.core.render_errors import RenderLimitError

# ---------------------------------------------------------------------------- methods
_STR = frozenset("""capitalize casefold center count endswith expandtabs find format format_map index isalnum
isalpha isascii isdecimal isdigit isidentifier islower isnumeric isprintable isspace istitle isupper join ljust
lower lstrip partition removeprefix removesuffix replace rfind rindex rjust rpartition rsplit rstrip split
splitlines startswith strip swapcase title upper zfill striptags unescape""".split())
_LIST = frozenset("append clear copy count extend index insert pop remove reverse sort".split())
_DICT = frozenset("clear copy get items keys pop popitem setdefault update values".split())
_TUPLE = frozenset("count index".split())
_SET = frozenset("""add clear copy difference discard intersection isdisjoint issubset issuperset pop remove
symmetric_difference union""".split())
_BYTES = frozenset({"decode"})
_INT = frozenset("bit_length bit_count conjugate as_integer_ratio is_integer".split())
_FLOAT = frozenset("conjugate as_integer_ratio is_integer hex".split())

# Checked in this order: bool is an int, a Markup is a str.
_ALLOWED: tuple[tuple[type, frozenset], ...] = (
    (bool, _INT), (str, _STR), (bytes, _BYTES), (bytearray, _BYTES), (list, _LIST), (dict, _DICT),
    (tuple, _TUPLE), (set, _SET), (frozenset, _SET), (int, _INT), (float, _FLOAT),
)

# Items a sorting filter or method may sort: n log n comparisons of Python objects (a
# case-insensitive sort of millions of strings took 9.7 s in the issue).
MAX_SORT_ITEMS = 200_000
# `slice(n)` makes n lists; `batch` is bounded by its input.
MAX_SLICES = 100_000
# characters a filter may create from its arguments' product (e.g. groupby's default per item)
MAX_CHARS_WORK = 20_000_000
# textwrap copies the rest of a long word for every line it breaks off: L**2 / width work.
MAX_WRAP_WORK = 200_000_000
# markupsafe's striptags rebuilds the string for every comment it removes.
MAX_STRIPTAGS_WORK = 200_000_000
MAX_JSON_INDENT = 64

DROPPED_FILTERS = ("urlize", "xmlattr", "filesizeformat", "pprint")
DROPPED_GLOBALS = ("lipsum",)


def method_allowed(obj: Any, attr: str) -> bool:
    """Whether a template may read the method `attr` of `obj` (non-method attributes, and
    objects of other types, are left to the sandbox's own rules)."""
    for typ, allowed in _ALLOWED:
        if isinstance(obj, typ):
            return attr in allowed or not callable(getattr(type(obj), attr, None))
    return True


def sort_check(b, n: int, what: str) -> None:
    if n > MAX_SORT_ITEMS:
        raise RenderLimitError(f"template rendering stopped: {what} of {n:,} items (limit {MAX_SORT_ITEMS:,})",
                               "sort, group or de-duplicate smaller lists")


# ---------------------------------------------------------------------------- filter checks
def _arg(vals: list, kwargs: dict, i: int, key: str, default: Any = None) -> Any:
    if key in kwargs:
        return kwargs[key]
    return vals[i] if len(vals) > i else default


def _int(v: Any, default: int = 0) -> int:
    try:
        return int(v)
    except (TypeError, ValueError, OverflowError):
        return default


def nesting(value: Any, limit: int = 200) -> int:
    """How deep containers nest in `value` (shared parts visited once)."""
    seen: dict[int, int] = {}

    def d(v: Any, depth: int) -> int:
        if depth > limit:
            return depth
        if isinstance(v, (list, tuple, dict, set, frozenset)) or isinstance(v, Mapping):
            k = id(v)
            if k in seen:
                return seen[k]
            seen[k] = depth + 1
            items = list(v.values()) if isinstance(v, Mapping) else list(v)
            out = 1 + max((d(x, depth + 1) for x in items), default=0)
            seen[k] = out
            return out
        return 0

    return d(value, 0)


def _tojson_check(b, vals: list, kwargs: dict) -> None:
    indent = _arg(vals, kwargs, 1, "indent", None)
    e = b.expanded(vals[0] if vals else None)
    if indent is None:
        b.size(6 * e, "the result of the filter `tojson`")   # '<' and '&' are escaped as \\u003c
        return
    width = len(indent) if isinstance(indent, str) else _int(indent)
    if width > MAX_JSON_INDENT:
        raise RenderLimitError(f"template rendering stopped: tojson(indent={width:,}) (limit {MAX_JSON_INDENT})",
                               "use a small indent such as 2")
    depth = nesting(vals[0] if vals else None)
    b.size(6 * e + e * max(0, width) * max(1, depth), "the result of the filter `tojson`")


def _sum_check(b, vals: list, kwargs: dict) -> None:
    start = _arg(vals, kwargs, 2, "start", 0)
    if isinstance(start, bool) or not isinstance(start, (int, float)):
        # sum(start=[]) concatenates lists, copying the total for every item (quadratic)
        raise RenderLimitError("the filter `sum` adds numbers: its start must be a number",
                               "to join lists, loop over them or use `join` for strings")


def _slice_check(b, vals: list, kwargs: dict) -> None:
    n = _int(_arg(vals, kwargs, 1, "slices", 0))
    if n > MAX_SLICES:
        raise RenderLimitError(f"template rendering stopped: slice({n:,}) (limit {MAX_SLICES:,} slices)",
                               "use fewer slices")


def _sort_like(name: str):
    def check(b, vals: list, kwargs: dict) -> None:
        v = vals[0] if vals else None
        if hasattr(v, "__len__"):
            sort_check(b, len(v), f"the filter `{name}`")
    return check


def _groupby_check(b, vals: list, kwargs: dict) -> None:
    """groupby(attribute, default): every item whose attribute is missing gets `default` as its key, and
    case-insensitive grouping (the default) lower-cases each key, so a long string default costs
    items x len(default) characters: bound that product before Jinja allocates it."""
    _sort_like("groupby")(b, vals, kwargs)
    v = vals[0] if vals else None
    default = _arg(vals, kwargs, 2, "default", None)
    if hasattr(v, "__len__") and isinstance(default, (str, bytes)) and len(v) * len(default) > MAX_CHARS_WORK:
        raise RenderLimitError(f"template rendering stopped: groupby of {len(v):,} items with a "
                               f"{len(default):,}-character default (limit {MAX_CHARS_WORK:,} characters)",
                               "use a short default, or group a smaller list")


_WORD = re.compile(r"\S+")


def _wordwrap_work(b, vals: list, kwargs: dict) -> None:
    s = str(vals[0]) if vals else ""
    width = max(1, _int(_arg(vals, kwargs, 1, "width", 79), 79))
    breaks = _arg(vals, kwargs, 2, "break_long_words", True)
    if not breaks or len(s) <= width:
        return
    longest = max((m.end() - m.start() for m in _WORD.finditer(s)), default=0)
    work = longest * longest // width + len(s)
    if work > MAX_WRAP_WORK:
        raise RenderLimitError(f"template rendering stopped: wordwrap({width}) of a {longest:,}-character word "
                               f"would take {work:,} steps (limit {MAX_WRAP_WORK:,})",
                               "wrap shorter text, use a larger width, or break_long_words=false")


def _striptags_check(b, vals: list, kwargs: dict) -> None:
    s = str(vals[0]) if vals else ""
    work = (s.count("<!--") + s.count("<")) * len(s) // 8
    if work > MAX_STRIPTAGS_WORK:
        raise RenderLimitError(f"template rendering stopped: striptags on {len(s):,} characters with "
                               f"{s.count('<'):,} tags (limit {MAX_STRIPTAGS_WORK:,} steps)", "strip fewer tags")


def _grow_check(factor: int, name: str):
    def check(b, vals: list, kwargs: dict) -> None:
        s = vals[0] if vals else ""
        n = len(s) if isinstance(s, str) else 0
        b.size(n * factor, f"the result of the filter `{name}`")
    return check


FILTER_CHECKS = {
    "tojson": _tojson_check,
    "sum": _sum_check,
    "slice": _slice_check,
    "sort": _sort_like("sort"),
    "dictsort": _sort_like("dictsort"),
    "groupby": _groupby_check,
    "unique": _sort_like("unique"),
    "striptags": _striptags_check,
    "wordwrap": _wordwrap_work,
    "escape": _grow_check(6, "escape"),       # '"' becomes '&#34;'
    "e": _grow_check(6, "e"),
    "forceescape": _grow_check(6, "forceescape"),
    "urlencode": _grow_check(9, "urlencode"),  # a 3-byte UTF-8 character becomes 9 characters
}


# ---------------------------------------------------------------------------- str.format
_NESTED_SPEC = re.compile(r"\{[^{}]*:[^{}]*\{")
_DIGITS = re.compile(r"\d+")


def nested_format_widths(fmt: str, args) -> int:
    """`'{:{}}'.format('a', '1500000000')`: a replacement field inside a format spec takes its
    width from an argument, also a *string* argument; count such digits as widths."""
    if not _NESTED_SPEC.search(fmt):
        return 0
    total = 0
    for a in args:
        if isinstance(a, str):
            for n in _DIGITS.findall(a):
                total += int(n) if len(n) < 12 else 10 ** 12
    return total
