"""A server that a test starts and that dies must be reported as dead (how, and its log), not as the clients'
'connection refused' after retries (issue 22). The dying server here is a few lines of stdlib HTTP that
answers /v1/models and crashes itself with SIGSEGV on its first completion, as the natively built
llama-cpp-python did on an AMX Xeon."""
from __future__ import annotations

import sys
import textwrap

import pytest

from tests.remote_servers import ServerProcess, free_port

CRASHER = textwrap.dedent('''
    import http.server, os, signal, sys
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.send_header("content-type", "application/json"); self.end_headers()
            self.wfile.write(b'{"data": []}')
        def do_POST(self):
            print("about to crash on", self.path, flush=True)
            os.kill(os.getpid(), signal.SIGSEGV)
        def log_message(self, *a):
            pass
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
''')


def _crasher(tmp_path, probe: bool) -> ServerProcess:
    script = tmp_path / "crasher.py"
    script.write_text(CRASHER)
    port = free_port()
    srv = ServerProcess([sys.executable, str(script), str(port)], port, name="crasher", ready_timeout=30,
                        log=tmp_path / "crasher.log")
    if probe:
        srv.probe = {"prompt": "x", "max_tokens": 1}
    return srv


def test_a_server_dying_on_its_first_request_fails_at_start_saying_how(tmp_path):
    srv = _crasher(tmp_path, probe=True)
    with pytest.raises(RuntimeError) as err:
        srv.start()
    msg = str(err.value)
    assert "crasher server process died (killed by SIGSEGV)" in msg
    assert "about to crash on /v1/completions" in msg      # the log's last lines come with it
    srv.stop()


def test_died_names_the_signal_and_is_silent_while_running_or_after_stop(tmp_path):
    import urllib.request

    srv = _crasher(tmp_path, probe=False).start()
    try:
        assert srv.died() is None
        with pytest.raises(OSError):
            urllib.request.urlopen(urllib.request.Request(srv.base + "/v1/completions", data=b"{}"), timeout=10)
        srv.proc.wait(10)
        assert "killed by SIGSEGV" in srv.died()
    finally:
        srv.stop()
    assert srv.died() is None                            # a stop the test asked for is not a death
