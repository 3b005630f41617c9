"""Issue 29 item 4, the server side: a template's validation and preview run in a forked child
with hard memory and CPU limits, killed at the deadline, so runaways cannot starve the server."""
from __future__ import annotations

import time

import pytest
from support import load_data

from remote_servers import free_port


def _spin(seconds: float) -> str:
    # a C-level loop the cooperative budget never sees: only a kill stops it
    import re

    re.match(r"(a?){30}a{30}", "a" * 30)   # ~2**30 steps of backtracking in C
    return "finished"


def _hog() -> int:
    return len(bytearray(8 << 30))          # 8 GiB


def test_isolated_kills_at_the_deadline_and_caps_memory():
    from workbench.app.isolate import isolated
    from workbench.core.render import RenderLimitError
    from workbench.errors import TemplateError

    t0 = time.monotonic()
    with pytest.raises(RenderLimitError, match="killed"):
        isolated(_spin, 60, seconds=1.0)
    assert time.monotonic() - t0 < 3
    with pytest.raises(RenderLimitError, match="memory"):
        isolated(_hog, seconds=5.0, memory_mb=256)
    assert isolated(len, "abc", seconds=5.0) == 3
    with pytest.raises(TemplateError) as e:   # the child's error comes back with its hint
        isolated(_raise, seconds=5.0)
    assert e.value.hint == "the hint"


def _raise():
    from workbench.errors import TemplateError

    raise TemplateError("the message", "the hint")


# Each step is one sort in C that holds the GIL for tens of milliseconds: in a server thread,
# four of these left other requests a sliver of the interpreter.
RUNAWAY = ("name: t\ninput: \"{% set l = range(100000) | map('string') | list %}{% for i in range(100000) %}"
           "{{ l | sort(case_sensitive=false) | first }}{% endfor %}{{ title }}\"\n"
           "answer_choices: {business: [b], tech: [t], entertainment: [e], politics: [p], sports: [s]}\n")
FINE = "name: ok\ninput: \"Headline: {{ title }}\"\nanswer_choices: {business: [b], tech: [t], entertainment: [e], politics: [p], sports: [s]}\n"


@pytest.mark.slow
def test_four_runaway_validations_do_not_hold_up_the_server(monkeypatch):
    """The issue: with four runaway validations in flight, an ordinary one took 14.5-54 s and a
    new client's config request timed out. Now both answer while the four are still running.

    The runaways get a 12 s limit here (5 s in the product), so that a server that queued the
    ordinary request behind them would answer it only after >= 11 s: the check is "answered while
    all four still run, in under half their limit", which machine load cannot turn into a pass or
    a failure (on a loaded 2-core box the ordinary child, sharing the cores with four runaway
    children, took 3.8 s; a queued one takes the runaways' whole limit)."""
    import requests
    from gradio_client import Client

    import workbench.app.main as main
    import workbench.app.template_form as template_form

    limit = 12.0
    monkeypatch.setattr(template_form, "VALIDATE_SECONDS", limit)
    port = free_port()
    demo = main.build_app(model="no-such-model", data="bbc")
    main.launch_demo(demo, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, show_error=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        c = Client(url, verbose=False)
        load_data(c, "bbc")
        assert c.predict(FINE, api_name="/validate_template").startswith("✓")
        jobs = [c.submit(RUNAWAY, api_name="/validate_template") for _ in range(4)]
        time.sleep(1.0)   # the four are running
        t0 = time.monotonic()
        ok = c.predict(FINE, api_name="/validate_template")
        took = time.monotonic() - t0
        t1 = time.monotonic()
        info = requests.get(f"{url}gradio_api/info", timeout=30)
        took_info = time.monotonic() - t1
        still_running = sum(not j.done() for j in jobs)
        assert ok.startswith("✓"), ok
        assert info.status_code == 200
        assert still_running == 4, f"only {still_running} of the 4 runaways were still running: the check came too late"
        assert took < limit / 2, f"an ordinary validation waited {took:.1f} s behind the runaways"
        assert took_info < limit / 2, f"/gradio_api/info waited {took_info:.1f} s behind the runaways"
        for j in jobs:
            msg = j.result(timeout=60)
            assert "stopped" in msg, msg
    finally:
        demo.close()
