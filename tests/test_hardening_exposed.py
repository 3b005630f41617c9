"""Issue 29 (hardening, second pass), the exposed server: `hf:` names that are local folders,
the Host check against DNS rebinding, one decision of the bound address, and the allow-list of
inference-server URLs. Live tests bind 127.0.0.1 on a free port."""
from __future__ import annotations

import pytest

from remote_servers import free_port


@pytest.fixture
def restricted(workbench_home):
    from workbench import paths

    paths.restrict_server_paths()
    yield paths
    paths.unrestrict_server_paths()


# ---------------------------------------------------------------------------- item 1: hf: + local folder
def test_hf_name_of_a_local_folder_is_refused_when_restricted(tmp_path, monkeypatch, restricted):
    import gradio as gr

    from workbench.app.common import UIState
    from workbench.app.tab_data import load_data

    private = tmp_path / "private"
    private.mkdir()
    (private / "rows.csv").write_text("text,label\nthe secret row,x\nanother secret,y\n")
    monkeypatch.chdir(tmp_path)
    for name in (f"hf:{private}", "hf:private", "hf:./private", "hf:~/../" + str(private).lstrip("/"),
                 f"hf:{private}:default"):
        with pytest.raises(gr.Error) as e:
            load_data(UIState(), "file or path…", None, name, None, None, 0)
        assert "secret" not in str(e.value), name
        assert "hub dataset" in str(e.value), (name, str(e.value))
    # a well-formed hub id still goes to the hub (offline here: a hub error, not the path refusal)
    from workbench import paths

    assert paths.check_hub_id("hf:ag_news") == "hf:ag_news"
    assert paths.check_hub_id("hf:owner/name:config") == "hf:owner/name:config"


# ---------------------------------------------------------------------------- item 7: one bind decision
def test_bind_is_decided_after_every_source(monkeypatch):
    from workbench.app.exposure import decide_bind

    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    monkeypatch.delenv("GRADIO_SHARE", raising=False)
    assert decide_bind(None).host == "127.0.0.1" and not decide_bind(None).exposed
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    for flag in (None, "", "  "):
        b = decide_bind(flag)
        assert b.host == "0.0.0.0" and b.exposed and b.source == "GRADIO_SERVER_NAME"
    assert not decide_bind("127.0.0.1").exposed          # the flag wins over the environment
    monkeypatch.delenv("GRADIO_SERVER_NAME")
    monkeypatch.setenv("GRADIO_SHARE", "True")
    assert decide_bind("127.0.0.1").exposed              # Gradio would open a share link


def test_no_auth_guard_cannot_be_skipped_with_an_empty_host(monkeypatch):
    """Issue 29 item 7: `GRADIO_SERVER_NAME=0.0.0.0 workbench serve --host ""` bound every
    interface with no password; now the guard judges the address Gradio would really bind."""
    import argparse

    import workbench.app.main as main
    from workbench.commands import serve
    from workbench.errors import ConfigError

    def no_bind(**kw):
        raise AssertionError("the app must not be built, let alone bound")

    monkeypatch.setattr(main, "build_app", no_bind)
    monkeypatch.delenv("WORKBENCH_AUTH", raising=False)
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    with pytest.raises(ConfigError, match="--insecure"):
        main.launch(host="", port=free_port(), open_browser=False, block=False)
    p = argparse.ArgumentParser()
    serve.register(p.add_subparsers())
    args = p.parse_args(["serve", "--host", "", "--no-browser"])
    with pytest.raises(ConfigError, match="--insecure"):
        args.func(args)
    monkeypatch.delenv("GRADIO_SERVER_NAME")
    monkeypatch.setenv("GRADIO_SHARE", "true")
    with pytest.raises(ConfigError, match="--insecure"):
        main.launch(host="127.0.0.1", open_browser=False, block=False)


# ---------------------------------------------------------------------------- item 2: Host check
def test_host_policy_units():
    from workbench.app.exposure import Bind, host_policy

    loop = host_policy(Bind("127.0.0.1", False, "default"), ["wb.lan", ".corp.example"])
    for ok in ("127.0.0.1:7860", "localhost:7860", "[::1]:7860", "localhost", "wb.lan:7860", "a.corp.example",
               "LOCALHOST:1"):
        assert loop.allows(ok), ok
    for bad in ("evil.example:7860", "evil.example", "127.0.0.1.evil.example", "", None, "corp.example.evil",
                "10.0.0.5:7860", "wb.lan.evil:7860"):
        assert not loop.allows(bad), bad
    wild = host_policy(Bind("0.0.0.0", False, "--host"), [])
    assert wild.allows("192.168.1.5:7860") and wild.allows("[fe80::1]:7860")   # an address is not rebinding
    assert not wild.allows("evil.example:7860")
    assert host_policy(Bind("127.0.0.1", False, "x"), ["*"]).allows("anything:1")


@pytest.mark.slow
def test_live_loopback_server_refuses_a_foreign_host(tmp_path, monkeypatch):
    """Issue 29 item 2, as reproduced: a rebinding page's request (Host and Origin
    evil.example) read a private CSV through /load_data and /data_page. Now it gets 403
    before any route; the real address, localhost and --allowed-hosts names still work."""
    import requests

    import workbench.app.main as main

    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    secret = tmp_path / "private.csv"
    secret.write_text("text,label\nthe secret row,x\nanother,y\n")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    demo = main.launch(host="127.0.0.1", port=port, data="bbc", model="no-such-model", open_browser=False,
                       block=False, allowed_hosts=["wb.lan"])
    try:
        evil = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
        r = requests.post(f"{base}/gradio_api/call/load_data", headers=evil, timeout=30,
                          json={"data": ["file or path…", None, str(secret), None, None, 0]})
        assert r.status_code == 403, (r.status_code, r.text[:200])
        assert "the secret row" not in r.text
        assert requests.get(f"{base}/gradio_api/info", headers=evil, timeout=30).status_code == 403
        assert requests.get(f"{base}/", headers={"Host": "evil.example"}, timeout=30).status_code == 403
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"wb.lan:{port}"):
            r = requests.get(f"{base}/gradio_api/info", headers={"Host": host}, timeout=30)
            assert r.status_code == 200, (host, r.status_code)
    finally:
        demo.close()


# ---------------------------------------------------------------------------- item 5: inference-server URLs
class _Internal:
    """A fake internal endpoint on loopback that an exposed server must not be made to call."""

    def __init__(self, status=500, body=b"CANARY-SECRET-456 internal body", ctype="text/plain"):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        outer = self
        self.hits = []

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _answer(self):
                outer.hits.append((self.command, self.path, self.headers.get("authorization")))
                self.send_response(status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_exposed_server_connects_only_to_allow_listed_urls(restricted, monkeypatch):
    """Issue 29 item 5: save_engine + load_model made the restricted server request an internal
    URL and show its body. Now the URL is refused before any request."""
    import gradio as gr

    from workbench.app import model_bar
    from workbench.engine.remote import RemoteEngine
    from workbench.errors import ConfigError

    monkeypatch.delenv("WORKBENCH_ALLOWED_SERVERS", raising=False)
    srv = _Internal()
    try:
        internal = f"http://127.0.0.1:{srv.port}/internal/admin?token=x"
        with pytest.raises(gr.Error, match="list of inference servers"):
            model_bar.save_engine("x", internal, "", None)
        with pytest.raises(gr.Error, match="list of inference servers"):
            model_bar.load_model(f"openai:{internal}")
        with pytest.raises(ConfigError, match="list of inference servers"):
            RemoteEngine(f"openai:http://127.0.0.1:{srv.port}/v1")
        # allow-listed: that server's /v1 only, not its other paths or ports
        restricted.allow_server_urls([f"http://127.0.0.1:{srv.port}/v1"])
        assert RemoteEngine(f"openai:http://127.0.0.1:{srv.port}/v1#m").base_url.endswith("/v1")
        with pytest.raises(ConfigError):
            RemoteEngine(f"openai:http://127.0.0.1:{srv.port}/internal/admin")
        with pytest.raises(ConfigError):
            RemoteEngine(f"openai:http://127.0.0.1:{srv.port + 1}/v1")
        assert srv.hits == []
        monkeypatch.setenv("WORKBENCH_ALLOWED_SERVERS", f"http://localhost:{srv.port}")
        RemoteEngine(f"openai:http://localhost:{srv.port}/anything/v1")
    finally:
        srv.close()


@pytest.mark.parametrize("ctype,body", [("text/plain", b"CANARY-SECRET-456 internal body"),
                                        ("application/json", b'{"error": {"message": "CANARY-SECRET-456"}}')])
def test_server_errors_show_status_and_reason_never_the_body(restricted, ctype, body):
    from workbench.engine.remote import RemoteConfig, RemoteEngine
    from workbench.errors import ModelError

    for status in (500, 400):
        srv = _Internal(status=status, body=body, ctype=ctype)
        try:
            restricted.allow_server_urls([f"http://127.0.0.1:{srv.port}/v1"])
            eng = RemoteEngine(f"openai:http://127.0.0.1:{srv.port}/v1", RemoteConfig(max_retries=0, backoff_s=0.01))
            with pytest.raises(ModelError) as e:
                eng.connect()
            text = e.value.message + (e.value.hint or "")
            assert "CANARY" not in text and str(status) in text, text
        finally:
            srv.close()


def test_credentials_in_a_server_url_are_refused_not_forwarded():
    from workbench.engine.remote import parse_spec
    from workbench.errors import ModelError

    srv = _Internal(status=200, body=b'{"data": [{"id": "m"}]}', ctype="application/json")
    try:
        with pytest.raises(ModelError, match="user name or password") as e:
            parse_spec(f"openai:http://admin:hunter2@127.0.0.1:{srv.port}/v1")
        assert "hunter2" not in e.value.message
        assert srv.hits == []
    finally:
        srv.close()
