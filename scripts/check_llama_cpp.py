"""Prove that the installed llama-cpp-python server runs on this CPU: start it on the default model's GGUF and
send the request the remote-engine tests depend on (a completion with echo + logprobs).

    python scripts/check_llama_cpp.py        # exit 0: it answered; exit 1: why not, and what to do

`make test` runs this right after installing llama-cpp-python, so a build that cannot run here (for example
a native build that uses AMX on a machine whose kernel or sandbox does not allow it) stops the run in
seconds with the reason, instead of failing three tests 15 minutes later with "connection refused".
"""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _fail(what: str, proc: subprocess.Popen | None, log: Path) -> int:
    tail = log.read_text(errors="replace")[-2500:] if log.exists() else ""
    died = f" (the server process died: {_exit_reason(proc.returncode)})" if proc and proc.poll() is not None else ""
    print(f"error: llama-cpp-python's server does not work on this machine: {what}{died}.\n"
          f"--- last lines of its log ({log}) ---\n{tail}\n---\n"
          "hint: rebuild it portably with `rm -rf $WORKBENCH_CACHE/wheels/llama-cpp-python-* && "
          "scripts/build_llama_cpp.sh .venv`; a general protection fault in libggml-cpu.so means the library was "
          "built for instructions this CPU or its sandbox refuses (see `dmesg | tail`).", file=sys.stderr)
    return 1


def main() -> int:
    from workbench.engine.models import default_gguf_path

    port = _free_port()
    log = Path(tempfile.gettempdir()) / f"wb-llama-check-{port}.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(default_gguf_path()), "--logits_all", "true",
           "--host", "127.0.0.1", "--port", str(port), "--n_threads", "1", "--n_ctx", "512"]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                return _fail("it exited while starting", proc, log)
            try:
                with urllib.request.urlopen(base + "/v1/models", timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    return _fail("it was not ready after 120 s", proc, log)
                time.sleep(0.5)
        body = json.dumps({"prompt": "The capital of France is", "max_tokens": 1, "echo": True, "logprobs": 1,
                           "temperature": 0}).encode()
        req = urllib.request.Request(base + "/v1/completions", data=body, headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                answer = json.loads(r.read())
        except OSError as exc:
            time.sleep(0.5)   # let a crashed process be reaped, so the report can say how it died
            proc.poll()
            return _fail(f"a completion request with echo + logprobs failed ({exc})", proc, log)
        lp = (answer.get("choices") or [{}])[0].get("logprobs") or {}
        if not lp.get("token_logprobs"):
            return _fail(f"the answer has no echoed token_logprobs: {json.dumps(answer)[:300]}", proc, log)
        print(f"llama-cpp-python server ok on this CPU: echo + logprobs answered "
              f"({len(lp['token_logprobs'])} tokens)")
        return 0
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    sys.exit(main())
