"""Real server processes for the remote-engine tests: started on 127.0.0.1 free ports, stopped after.

    with ServerProcess.reference(delay=0.1) as srv:     # the protocol reference server (tests/reference_server.py)
        srv.url                                         # "openai:http://127.0.0.1:PORT/v1"
        srv.set_faults(fail_429=3)
    with ServerProcess.llama_cpp() as srv: ...          # llama-cpp-python's OpenAI-compatible server
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The reference server's fault settings at rest: what a test sharing the server may assume at its start.
NO_FAULTS = dict(delay=0, fail_429=0, fail_500=0, drop=0, no_echo=False, offset=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, cmd: list[str], port: int, *, name: str, ready_timeout: float = 600.0, log: Path | None = None):
        self.cmd, self.port, self.name = cmd, port, name
        self.base = f"http://127.0.0.1:{port}"
        self.url = f"openai:{self.base}/v1"
        self.ready_timeout = ready_timeout
        self.log_path = log or Path(os.environ.get("TMPDIR", "/tmp")) / f"wb-{name}-{port}.log"
        self.proc: subprocess.Popen | None = None
        self._stopping = False
        self.probe: dict | None = None    # a request sent once after start: a server that crashes on its first
                                          # real request fails here, at fixture setup, with how it died

    @classmethod
    def reference(cls, *, port: int | None = None, **faults) -> "ServerProcess":
        port = port or free_port()
        cmd = [sys.executable, str(HERE / "reference_server.py"), "--port", str(port), "--threads", "1"]
        for k, v in faults.items():
            flag = "--" + k.replace("_", "-")
            cmd += [flag] if v is True else ([flag, str(v)] if v not in (False, None) else [])
        return cls(cmd, port, name="reference")

    @classmethod
    def llama_cpp(cls, gguf: str, *, port: int | None = None) -> "ServerProcess":
        port = port or free_port()
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", gguf, "--logits_all", "true", "--host", "127.0.0.1",
               "--port", str(port), "--n_threads", "1", "--n_ctx", "2048"]
        srv = cls(cmd, port, name="llama-cpp")
        srv.probe = {"prompt": "Hello", "max_tokens": 1, "echo": True, "logprobs": 1, "temperature": 0}
        return srv

    def start(self) -> "ServerProcess":
        env = dict(os.environ, PYTHONPATH=str(HERE.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} server exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.base + "/v1/models", timeout=5) as r:
                    ready = r.status == 200
            except OSError:
                ready = False
            if ready:
                self._send_probe()
                return self
            time.sleep(0.1)   # a refused connection answers at once: poll often, the model load takes seconds
        self.stop()
        raise RuntimeError(f"{self.name} server not ready after {self.ready_timeout:.0f}s:\n{self.log_tail()}")

    def _send_probe(self) -> None:
        if self.probe is None:
            return
        try:
            self._json("/v1/completions", self.probe)
        except OSError as exc:
            time.sleep(0.5)   # let a crashing process be reaped, so the message can say how it died
            raise RuntimeError(self.died() or f"{self.name} server did not answer its first completion ({exc}):\n"
                               f"{self.log_tail()}") from exc

    def died(self) -> str | None:
        """Why the server process ended on its own (exit code or signal, and its log's last lines), or None while
        it runs or when the test stopped it. Tests report this instead of the clients' 'connection refused'."""
        if self.proc is None or self._stopping or self.proc.poll() is None:
            return None
        code = self.proc.returncode
        how = f"exit code {code}"
        if code < 0:
            try:
                how = f"killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"killed by signal {-code}"
        return f"the {self.name} server process died ({how}); last lines of {self.log_path}:\n{self.log_tail(2000)}"

    def kill(self) -> None:
        """SIGKILL, as a crash would (requests in flight are cut)."""
        self._stopping = True
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        self._stopping = True
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        if getattr(self, "_log", None):
            self._log.close()

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text()[-n:]
        except OSError:
            return ""

    def _json(self, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def set_faults(self, **kw) -> dict:
        return self._json("/faults", kw)

    def faults(self) -> dict:
        return self._json("/faults")

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
