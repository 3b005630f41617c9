"""Hostile templates (issue 15, item 3): every runaway render ends quickly in a TemplateError.

Each payload runs in a forked child with a memory cap and a wall-clock limit, so a regression
fails the test instead of hanging or swapping the (shared) test machine."""
from __future__ import annotations

import multiprocessing as mp
import resource
import time

import pytest

from workbench.core.templates import PromptTemplate, render_string
from workbench.errors import TemplateError

CHILD_SECONDS = 12          # a child that runs longer has hung
CHILD_MEMORY = 3 << 30      # 3 GiB of address space


def _child(conn, kind: str, payload: str, row: dict) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY, CHILD_MEMORY))
    t0 = time.monotonic()
    try:
        if kind == "render":
            out = render_string(payload, row)
            conn.send(("ok", len(out), time.monotonic() - t0))
        elif kind == "choices":
            t = PromptTemplate(name="t", input="x", choices_expr=payload, target="0")
            conn.send(("ok", len(t.choices_for(row)), time.monotonic() - t0))
        elif kind == "yaml":
            from workbench.core.templates import load_templates
            load_templates(payload)
            conn.send(("ok", 0, time.monotonic() - t0))
    except TemplateError as e:
        conn.send(("TemplateError", e.message, time.monotonic() - t0))
    except MemoryError:
        conn.send(("MemoryError", "", time.monotonic() - t0))
    except BaseException as e:  # noqa: BLE001
        conn.send((type(e).__name__, str(e)[:300], time.monotonic() - t0))


def run_isolated(kind: str, payload: str, row: dict | None = None):
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_child, args=(child, kind, payload, row or {}))
    p.start()
    child.close()
    try:
        if not parent.poll(CHILD_SECONDS):
            return ("hung", "", CHILD_SECONDS)
        return parent.recv()
    finally:
        if p.is_alive():
            p.kill()
        p.join()


A40 = {"s": "a" * 40 + "!"}

HOSTILE = {
    "nested_loops": "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
    "nested_empty_loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "redos": "{{ s | regex_replace('(a|aa)+$', 'x') }}",
    "big_pow": "{{ 10**(10**10) }}",
    "pow_chain": "{{ 2**(2**(2**(2**2))) }}",
    "str_mul": "{{ 'a'*10**10 }}",
    "list_mul": "{{ ([1]*10**10) | length }}",
    "center": "{{ 'a' | center(10**10) }}",
    "indent": "{{ ('a\n' * 10) | indent(10**9) }}",
    "join_bomb": "{{ ('a'*10**6) | list | join('b'*1000) }}",
    "ljust": "{{ 'a'.ljust(10**10) }}",
    "zfill": "{{ 'a'.zfill(10**10) }}",
    "replace_bomb": "{{ ('a'*10**6) | replace('', 'b'*1000) }}",
    "str_replace_bomb": "{{ ('a'*10**6).replace('a', 'b'*1000) }}",
    "expandtabs": "{{ ('\t'*10**6).expandtabs(10**4) }}",
    "format_width": "{{ '%10000000000s' | format('a') }}",
    "percent_width": "{{ '%10000000000s' % 'a' }}",
    "str_format_width": "{{ '{:>10000000000}'.format('a') }}",
    "namespace_doubling": "{% set ns = namespace(x='a') %}{% for i in range(64) %}{% set ns.x = ns.x ~ ns.x %}{% endfor %}{{ ns.x|length }}",
    "list_doubling": "{% set l = [1] %}{% for i in range(64) %}{% set _ = l.extend(l) %}{% endfor %}{{ l|length }}",
    "nested_list_print": "{% set ns = namespace(l=['a'*1000]) %}{% for i in range(60) %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}{{ ns.l }}",
    "dag_tojson": "{% set ns = namespace(l=['a'*1000]) %}{% for i in range(40) %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}{{ ns.l | tojson | length }}",
    "dag_string": "{% set ns = namespace(l=['a'*1000]) %}{% for i in range(40) %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}{{ ns.l | string | length }}",
    "dag_concat": "{% set ns = namespace(l=['a'*1000]) %}{% for i in range(40) %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}{{ (ns.l ~ '') | length }}",
    "dag_format": "{% set ns = namespace(l=['a'*1000]) %}{% for i in range(40) %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}{{ ('%s' % [ns.l]) | length }}",
    "dag_compare": "{% set ns = namespace(a=['x'], b=['x']) %}{% for i in range(60) %}{% set ns.a = [ns.a, ns.a] %}{% set ns.b = [ns.b, ns.b] %}{% endfor %}{{ ns.a == ns.b }}",
    "dag_in": "{% set ns = namespace(a=['x'], b=['x']) %}{% for i in range(60) %}{% set ns.a = [ns.a, ns.a] %}{% set ns.b = [ns.b, ns.b] %}{% endfor %}{{ ns.a in [ns.b] }}",
    "dag_test_eq": "{% set ns = namespace(a=['x'], b=['x']) %}{% for i in range(60) %}{% set ns.a = [ns.a, ns.a] %}{% set ns.b = [ns.b, ns.b] %}{% endfor %}{{ ns.a is eq(ns.b) }}",
    "regex_compile_bomb": "{{ s | regex_replace('(a{60000}){60000}', 'x') }}",
    "regex_compile_bomb_nested": "{{ s | regex_replace('((a{100}){100}){100}', 'x') }}",
    "batch_fill": "{{ [1] | batch(10**10, 0) | list | length }}",
    "macro_output": "{% macro m() %}{% for i in range(100000) %}{{ 'a'*100000 }}{% endfor %}{% endmacro %}{{ m() | length }}",
    "set_block": "{% set x %}{% for i in range(100000) %}{{ 'a'*1000 }}{% endfor %}{% endset %}{{ x|length }}",
    "recursive_loop": "{% for i in range(1000) recursive %}{% if loop.depth < 4 %}{{ loop(range(1000)) }}{% endif %}{% endfor %}",
    "concat_accumulate": "{% set l = [] %}{% for i in range(100000) %}{% set _ = l.append(('a'*100000) ~ i) %}{% endfor %}{{ l|length }}",
    "slice_accumulate": "{% set s = 'a'*1000000 %}{% set l = [] %}{% for i in range(100000) %}{% set _ = l.append(s[i:]) %}{% endfor %}{{ l|length }}",
    "wordwrap": "{{ ('a '*10**6) | wordwrap(1, wrapstring='x'*10**4) }}",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_render_stops_with_template_error(name):
    kind, msg, took = run_isolated("render", HOSTILE[name], A40)
    assert kind == "TemplateError", (kind, msg)
    assert took < 6, f"{name} took {took:.1f} s"


def test_hostile_choices_expression_is_budgeted():
    kind, msg, took = run_isolated("choices", "['a'*10**10]")
    assert kind == "TemplateError", (kind, msg)


def test_yaml_alias_bomb_refused_quickly():
    lines = ["name: bomb", "input: '{{ text }}'", "answer_choices:", "  x0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 10):
        prev = f"*a{i - 1}"
        lines.append(f"  x{i}: &a{i} [{', '.join([prev] * 9)}]")
    kind, msg, took = run_isolated("yaml", "\n".join(lines) + "\n")
    assert kind == "TemplateError", (kind, msg)
    assert "alias" in msg.lower()
    assert took < 3


def test_legitimate_templates_still_render():
    # loops, filters, regex and arithmetic within the limits keep their exact output
    row = {"title": "Hello World", "choices": ["a", "b", "c"], "n": 3}
    assert render_string("{% for c in choices %}{{ loop.index }}. {{ c }}\n{% endfor %}", row) == "1. a\n2. b\n3. c\n"
    assert render_string("{{ title | regex_replace('o', '0') }}", row) == "Hell0 W0rld"
    assert render_string("{{ title | regex_replace('(\\\\w+) (\\\\w+)', '\\\\2 \\\\1') }}", row) == "World Hello"
    assert render_string("{{ 2**10 }} {{ 'ab'*3 }} {{ [1,2]*2 }} {{ '%05d' % n }}", row) == "1024 ababab [1, 2, 1, 2] 00003"
    assert render_string("{{ title | center(15) }}|{{ title|indent(2, true) }}", row) == "  Hello World  |  Hello World"
    assert render_string("{{ '{:>5}'.format(n) }}{{ choices|join(', ') }}", row) == "    3a, b, c"
    long = "x" * 1_000_000   # a 1 MB cell renders (the model window truncates it later)
    assert len(render_string("{{ t }}", {"t": long})) == 1_000_000


def test_time_limit_applies_per_job(monkeypatch):
    from workbench.core import render_budget as render

    monkeypatch.setattr(render, "MAX_ITERATIONS", 10 ** 9)
    t0 = time.monotonic()
    with render.limits(seconds=0.5):
        with pytest.raises(TemplateError, match="time limit"):
            render_string("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", {})
    assert time.monotonic() - t0 < 2.5


def test_issue_redos_payload_is_quick():
    # the issue's own payload: the regex engine does not backtrack catastrophically on it
    t0 = time.monotonic()
    assert render_string("{{ s | regex_replace('(a+)+$', 'x') }}", A40) == A40["s"]
    assert time.monotonic() - t0 < 2


def test_generation_extract_regex_has_timeout():
    from workbench.core.records import extract_answer

    t0 = time.monotonic()
    with pytest.raises(TemplateError, match="took too long"):
        extract_answer("a" * 40 + "!", r"(a|aa)+$")
    assert time.monotonic() - t0 < 4
    assert extract_answer("The answer is: 42", r"answer is:\s*(\d+)") == "42"
    with pytest.raises(TemplateError, match="too large"):
        extract_answer("aaa", r"(a{60000}){60000}")


def test_server_validation_of_runaway_templates_answers_quickly(tmp_path):
    """Four runaway /validate_template requests at once (the issue's server hang): each answers
    within the request's render deadline, and a fifth, ordinary request is not held up."""
    import threading

    from workbench.app.common import UIState
    from workbench.app.tab_templates import VALIDATE_SECONDS, validate_template

    csv = tmp_path / "d.csv"
    csv.write_text("text,label\nhello,a\nworld,b\n")
    state = UIState(data_spec=str(csv))
    runaway = ("name: t\ninput: \"{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
               "{{ text }}\"\nanswer_choices: {a: [yes], b: [no]}\n")
    fine = "name: ok\ninput: \"Text: {{ text }}\"\nanswer_choices: {a: [yes], b: [no]}\n"
    validate_template(state, fine)   # warm the dataset cache
    out: dict[int, tuple[str, float]] = {}

    def call(i: int, text: str) -> None:
        t0 = time.monotonic()
        out[i] = (validate_template(state, text), time.monotonic() - t0)

    threads = [threading.Thread(target=call, args=(i, runaway)) for i in range(4)]
    for th in threads:
        th.start()
    time.sleep(0.2)
    call(99, fine)
    for th in threads:
        th.join(60)
    assert out[99][0].startswith("✓"), out[99][0]
    assert out[99][1] < 5, f"an ordinary request waited {out[99][1]:.1f} s"
    for i in range(4):
        msg, took = out[i]
        assert "stopped" in msg, msg
        assert took < VALIDATE_SECONDS + 4, f"runaway request {i} took {took:.1f} s"
