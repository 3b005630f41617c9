"""The exposed server (issue 15, item 5): beyond loopback, server-side paths are confined to
the configured data folders; `serve --host 0.0.0.0` without --auth refuses unless --insecure;
failed logins are rate-limited. The live tests bind 127.0.0.1 with the restriction switched
on, and drive the app with gradio_client and plain HTTP as a remote user would."""
from __future__ import annotations

import asyncio
import time

import pytest
from support import load_data as api_load_data  # the /load_data endpoint (tab_data.load_data is the handler)

from workbench.errors import ConfigError, DataError
from remote_servers import free_port


@pytest.fixture
def restricted(workbench_home):
    from workbench import paths

    paths.restrict_server_paths()
    yield paths
    paths.unrestrict_server_paths()


# ---------------------------------------------------------------------------- path policy (units)
def test_paths_outside_the_data_folders_are_refused(tmp_path, restricted):
    paths = restricted
    secret = tmp_path / "secret.csv"
    secret.write_text("text,label\nroot password,x\n")
    data = paths.home() / "data"
    data.mkdir(exist_ok=True)
    ok = data / "mine.csv"
    ok.write_text("text,label\na,b\n")
    assert paths.check_server_path(str(ok)) == str(ok.resolve())
    for bad in (str(secret), "/etc/passwd", str(data / ".." / ".." / "secret.csv"), "~/.bashrc", "../../etc/passwd"):
        with pytest.raises(DataError, match="data folders"):
            paths.check_server_path(bad)
    # a link inside the data folder that points outside is judged by its target
    (data / "link.csv").symlink_to(secret)
    with pytest.raises(DataError, match="data folders"):
        paths.check_server_path(str(data / "link.csv"))


def test_unrestricted_by_default(tmp_path):
    from workbench import paths

    p = tmp_path / "x.csv"
    assert not paths.server_paths_restricted()
    assert paths.check_server_path(str(p)) == str(p)


def test_extra_data_dirs_from_the_environment(tmp_path, monkeypatch, restricted):
    paths = restricted
    extra = tmp_path / "shared-data"
    extra.mkdir()
    monkeypatch.setenv("WORKBENCH_DATA_DIRS", str(extra))
    assert paths.check_server_path(str(extra / "a.csv"))


def test_load_data_refuses_server_files_when_restricted(tmp_path, restricted):
    import gradio as gr

    from workbench.app.common import UIState
    from workbench.app.tab_data import load_data

    secret = tmp_path / "secret.csv"
    secret.write_text("text,label\nthe secret row,x\nanother,y\n")
    with pytest.raises(gr.Error) as e:
        load_data(UIState(), "file or path…", None, str(secret), None, None, 0)
    assert "the secret row" not in str(e.value) and "data folders" in str(e.value)
    # built-in datasets still load
    out = load_data(UIState(), "bbc", None, "", None, None, 0)
    assert out[0].data_spec == "bbc"
    # bigbench task names may not climb out of the task folder
    with pytest.raises(gr.Error, match="data folders|not a task name"):
        load_data(UIState(), "file or path…", None, "bigbench:../../etc", None, None, 0)


def test_model_paths_are_refused_when_restricted(tmp_path, restricted):
    from workbench.engine.models import resolve_model

    fake = tmp_path / "m.gguf"
    fake.write_bytes(b"GGUF")
    with pytest.raises(DataError, match="data folders"):
        resolve_model(str(fake))


def test_train_run_folders_must_be_under_train_when_restricted(tmp_path, restricted):
    import gradio as gr

    from workbench.app.tab_train import train_status

    run = tmp_path / "elsewhere"
    run.mkdir()
    (run / "log.jsonl").write_text('{"event": "start", "t": 0}\n')
    with pytest.raises(gr.Error, match="No training run|data folders"):
        train_status(str(run))


# ---------------------------------------------------------------------------- serve refuses
def test_serve_beyond_loopback_without_auth_refuses(monkeypatch):
    import workbench.app.main as main

    def no_bind(**kw):
        raise AssertionError("the app must not be built, let alone bound")

    monkeypatch.setattr(main, "build_app", no_bind)
    monkeypatch.delenv("WORKBENCH_AUTH", raising=False)
    with pytest.raises(ConfigError, match="--insecure"):
        main.launch(host="0.0.0.0", open_browser=False, block=False)
    with pytest.raises(ConfigError, match="--insecure"):
        main.launch(host="127.0.0.1", share=True, open_browser=False, block=False)


def test_serve_cli_has_insecure_and_data_dir():
    import argparse

    from workbench.commands import serve

    p = argparse.ArgumentParser()
    serve.register(p.add_subparsers())
    a = p.parse_args(["serve", "--host", "0.0.0.0", "--insecure", "--data-dir", "/srv/data"])
    assert a.insecure and a.data_dir == ["/srv/data"]


# ---------------------------------------------------------------------------- login rate limit
def test_login_limiter_locks_after_failures():
    from workbench.app.main import LoginLimiter

    lim = LoginLimiter("alice", "s3cret", max_failures=3, window_s=60, delay_s=0.0)
    import inspect

    assert inspect.iscoroutinefunction(lim.check)   # else Gradio would not await it, and a coroutine is truthy
    run = asyncio.run
    assert run(lim.check("alice", "s3cret"))
    assert not run(lim.check("bob", "s3cret"))
    for _ in range(2):
        assert not run(lim.check("alice", "wrong"))
    assert not run(lim.check("alice", "s3cret")), "locked: even the right password waits for the window"
    lim.failures.clear()
    assert run(lim.check("alice", "s3cret"))


@pytest.mark.slow
def test_live_server_rate_limits_logins(monkeypatch):
    """100 wrong passwords used to take 1 s; now the 6th attempt within a minute is refused
    without checking (so brute force gets 5 guesses a minute), even with the right password."""
    import requests

    import workbench.app.main as main

    monkeypatch.setenv("WORKBENCH_LOGIN_DELAY_S", "0.2")
    port = free_port()
    # a model name that fails at once: the warm-up thread must not load the real model here
    demo = main.launch(host="127.0.0.1", port=port, auth="alice:s3cret", data="bbc", model="no-such-model",
                       open_browser=False,
                       block=False)
    try:
        url = f"http://127.0.0.1:{port}/login"
        t0 = time.monotonic()
        codes = [requests.post(url, data={"username": "alice", "password": f"guess{i}"}, timeout=30).status_code
                 for i in range(8)]
        assert all(c == 400 for c in codes)
        assert time.monotonic() - t0 >= 8 * 0.2
        r = requests.post(url, data={"username": "alice", "password": "s3cret"}, timeout=30)
        assert r.status_code == 400        # locked out for the window
        # a fresh server (a fresh window) lets the right password in: the lock is what refused it
    finally:
        demo.close()
    port = free_port()
    demo = main.launch(host="127.0.0.1", port=port, auth="alice:s3cret", data="bbc", model="no-such-model",
                       open_browser=False, block=False)
    try:
        r = requests.post(f"http://127.0.0.1:{port}/login", data={"username": "alice", "password": "s3cret"}, timeout=30)
        assert r.status_code == 200, r.text
    finally:
        demo.close()


@pytest.mark.slow
def test_live_restricted_server_refuses_load_data_of_a_server_file(tmp_path, restricted):
    """A remote client asks /load_data for a file outside the data folders: an error, not its rows."""
    from gradio_client import Client

    import workbench.app.main as main

    secret = tmp_path / "secret.csv"
    secret.write_text("text,label\nthe secret row,x\nanother,y\n")
    port = free_port()
    demo = main.build_app(model="default", data="bbc")
    main.launch_demo(demo, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, show_error=True)
    try:
        c = Client(f"http://127.0.0.1:{port}/", verbose=False)
        with pytest.raises(Exception) as e:
            api_load_data(c, "file or path…", path=str(secret))
        assert "the secret row" not in str(e.value)
        assert "data folders" in str(e.value)
    finally:
        demo.close()


def test_template_refs_must_be_library_or_user_templates(tmp_path, restricted):
    """The library dropdowns send 'path::name'; a client may send any path. Restricted, only
    the template library and the user's template folder are read."""
    import gradio as gr

    from workbench.app.common import UIState
    from workbench.app.tab_compare import library_yaml
    from workbench.app.tab_templates import load_template_into_editor
    from workbench.paths import library_dir

    secret = tmp_path / "secret.yaml"
    secret.write_text("name: leak\ninput: 'the secret {{ x }}'\nanswer_choices: {a: [a], b: [b]}\n")
    with pytest.raises(gr.Error, match="data folders") as e:
        load_template_into_editor(UIState(), f"{secret}::leak", "", True)
    assert "the secret" not in str(e.value)
    with pytest.raises(gr.Error, match="data folders"):
        library_yaml(f"{secret}::leak")
    lib = library_dir() / "bbc_headline_topic.yaml"
    assert "Headline" in load_template_into_editor(UIState(), str(lib), "", True)[1]
    assert "Headline" in library_yaml(f"{lib}::bbc_headline_topic")
