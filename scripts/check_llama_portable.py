"""Run llama.cpp's CPU library (as built by scripts/build_llama_cpp.sh) in-process on this machine: load a GGUF
and answer one echo + logprobs completion, the request the remote-engine tests rely on. Used to prove the
portable build on CPUs the dev machines lack, e.g. the Intel Xeon (AVX-512 + AMX) host of a lent GPU machine.

    PYTHONPATH=DIR_WITH_llama_cpp python scripts/check_llama_portable.py MODEL.gguf [LABEL]

Prints one JSON line: the CPU model, whether it advertises AMX, and the result (or how the child died: the
check runs in a child process, so a general protection fault is reported, not fatal)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys


def cpu() -> dict:
    info = {"model": "?", "amx": False, "avx512f": False}
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return info
    for line in text.splitlines():
        if line.startswith("model name"):
            info["model"] = line.split(":", 1)[1].strip()
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            info["amx"] = bool({"amx_tile", "amx_int8", "amx_bf16"} & flags)
            info["avx512f"] = "avx512f" in flags
            break
    return info


CHILD = """
import sys, llama_cpp
llm = llama_cpp.Llama(model_path=sys.argv[1], logits_all=True, n_ctx=256, n_threads=2, verbose=False)
out = llm.create_completion("The capital of France is", max_tokens=1, echo=True, logprobs=1, temperature=0)
lp = out["choices"][0]["logprobs"]["token_logprobs"]
print("TOKENS", len(lp), llama_cpp.__file__)
"""


def ensure_sonames() -> None:
    """A carried copy keeps one file per library (links do not travel); recreate the `.so.0` names the
    libraries ask each other for (DT_NEEDED), next to them."""
    import importlib.util

    spec = importlib.util.find_spec("llama_cpp")
    lib = os.path.join(os.path.dirname(spec.origin), "lib") if spec and spec.origin else None
    if not lib or not os.path.isdir(lib):
        return
    for name in os.listdir(lib):
        if name.endswith(".so") and not os.path.exists(os.path.join(lib, name + ".0")):
            os.symlink(name, os.path.join(lib, name + ".0"))


def main() -> int:
    ensure_sonames()
    gguf, label = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "llama.cpp")
    p = subprocess.run([sys.executable, "-c", CHILD, gguf], capture_output=True, text=True, timeout=300)
    if p.returncode < 0:
        try:
            how = f"killed by {signal.Signals(-p.returncode).name}"
        except ValueError:
            how = f"killed by signal {-p.returncode}"
    else:
        how = f"exit code {p.returncode}"
    ok = p.returncode == 0 and "TOKENS" in p.stdout
    print(json.dumps({"check": label, "ok": ok, "how": how, "cpu": cpu(), "stdout": p.stdout[-300:],
                      "stderr": p.stderr[-600:], "pythonpath": os.environ.get("PYTHONPATH", "")}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
