"""Gradio's start-up reachability check (one HEAD request, 3 s timeout) fails on a busy machine
although the server is fine; `launch_demo` launches again, and names the cause when it gives up."""
from __future__ import annotations

import pytest

import workbench.app.main as main
from workbench.errors import ConfigError

GRADIO_MSG = ("When localhost is not accessible, a shareable link must be created. Please set share=True "
              "or check your proxy settings to allow access to localhost.")


class Demo:
    """Records launches and closes; fails its first `fails` launches with `error`."""

    def __init__(self, fails: int, error: Exception | None = None):
        self.fails, self.error = fails, error or ValueError(GRADIO_MSG)
        self.launches, self.closes = [], 0

    def launch(self, **kw):
        self.launches.append(kw)
        if len(self.launches) <= self.fails:
            raise self.error

    def close(self):
        self.closes += 1


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(main.time, "sleep", lambda s: None)


def test_a_slow_first_page_is_launched_again():
    d = Demo(fails=2)
    main.launch_demo(d, server_name="127.0.0.1", server_port=1234)
    assert len(d.launches) == 3 and d.closes == 2
    assert all(kw == {"server_name": "127.0.0.1", "server_port": 1234} for kw in d.launches)


def test_it_gives_up_with_the_cause_and_a_hint():
    d = Demo(fails=99)
    with pytest.raises(ConfigError, match="did not answer its own first request") as e:
        main.launch_demo(d, server_port=1)
    assert len(d.launches) == main.LAUNCH_TRIES and d.closes == main.LAUNCH_TRIES
    assert "NO_PROXY" in e.value.hint


@pytest.mark.parametrize("demo, kw", [(Demo(fails=1, error=ValueError("some other problem")), {}),
                                      (Demo(fails=1), {"share": True})])
def test_other_errors_and_share_links_are_not_retried(demo, kw):
    with pytest.raises(ValueError):
        main.launch_demo(demo, **kw)
    assert len(demo.launches) == 1
