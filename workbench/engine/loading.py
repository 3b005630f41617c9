"""What a session is made of and how it loads: options, device and dtype, adapter files.

    SessionConfig(model="default", device="cpu")      # every option, with help text
    pick_device(None), pick_dtype("cpu", None)         # cuda, then mps, then cpu; bf16/fp16/fp32
    adapter_content_hash(folder)                       # the adapter's part of a model identity
"""
from __future__ import annotations

from dataclasses import dataclass, field

from workbench.errors import ModelError


@dataclass
class SessionConfig:
    model: str = field(default="default", metadata={"help": "'default', a hub id, a local folder or a .gguf file"})
    device: str | None = field(default=None, metadata={"help": "cuda, mps or cpu; None picks cuda, then mps, then cpu"})
    dtype: str | None = field(default=None, metadata={
        "help": "float32, bfloat16 or float16; None = bf16 on a GPU that supports it, fp16 on other GPUs, fp32 on CPU"})
    trust_remote_code: bool = field(default=False, metadata={"help": "run model code from the hub (off unless asked)"})
    revision: str | None = field(default=None, metadata={"help": "hub revision"})
    token_budget: int | None = field(default=None, metadata={
        "help": "max padded tokens per scoring batch; None = 2048 on CPU (small batches stay in cache: "
                "measured fastest, see BENCHMARKS.md), on a GPU from its free memory "
                "(engine/device_memory.py; an out-of-memory batch halves it)"})
    max_batch: int | None = field(default=None, metadata={
        "help": "max sequences per scoring batch; None = 64 on CPU, 256 on a GPU (wide matrix products)"})
    native: bool = field(default=True, metadata={
        "help": "score Llama-family models with the built-in decoder (llama_native.py) once fastpath.py has "
                "verified it against transformers for this model; False always scores through transformers"})
    # Remote models (model = "openai:http://HOST:PORT/v1[#served-name]", see remote.py).
    tokenizer: str | None = field(default=None, metadata={
        "help": "remote models: the local tokenizer ('default', a folder or hub id); None tries the served name"})
    concurrency: int = field(default=8, metadata={"help": "remote models: requests in flight at once"})
    request_timeout: float = field(default=300.0, metadata={"help": "remote models: seconds one request may take"})
    max_retries: int = field(default=5, metadata={
        "help": "remote models: retries of a request on 429, 5xx, timeouts and dropped connections (backoff doubles)"})
    response_cache: bool = field(default=True, metadata={
        "help": "remote models: reuse responses stored for the same served model and request"})


def pick_device(requested: str | None = None) -> str:
    import torch

    if requested and requested != "auto":
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise ModelError(f"Device '{requested}' was requested but CUDA is not available here.",
                             hint="Use --device cpu, or leave the device unset to pick automatically.")
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(device: str, requested: str | None = None):
    import torch

    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if requested and requested != "auto":
        if requested not in names:
            raise ModelError(f"Unknown dtype '{requested}'.", hint="Use float32, bfloat16 or float16.")
        return names[requested]
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.float16
    # CPU: fp32 by default. bf16 is faster on CPUs with AVX512-BF16/AMX but changes scores
    # slightly, so it is only used when asked for (see BENCHMARKS.md for the accuracy change).
    return torch.float32


def adapter_content_hash(folder) -> str:
    """sha256 over the adapter folder's files (names and bytes): retraining into the same folder
    gives a new hash, so stale predictions of the old adapter are never reused."""
    import hashlib
    from pathlib import Path

    h = hashlib.sha256()
    root = Path(folder)
    for f in sorted(q for q in root.rglob("*") if q.is_file()):
        h.update(str(f.relative_to(root)).encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def adapter_base_model(folder) -> str | None:
    """The base model identity a workbench-trained adapter records (train_config.json), if any."""
    import json
    from pathlib import Path

    try:
        return json.loads((Path(folder) / "train_config.json").read_text()).get("base_model")
    except (OSError, ValueError, AttributeError):
        return None


def read_config(folder: str) -> dict:
    import json
    from pathlib import Path

    try:
        return json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError):
        return {}


