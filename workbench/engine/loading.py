"""What a session is made of and how it loads: options, device and dtype, adapter files.

    SessionConfig(model="default", device="cpu")      # every option, with help text
    pick_device(None), pick_dtype("cpu", None)         # cuda, then mps, then cpu; bf16/fp16/fp32
    adapter_content_hash(folder)                       # the adapter's part of a model identity
    class ModelSession(LocalLoading)                   # how local weights load (built-in decoder or transformers)
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field

from workbench.errors import ModelError

log = logging.getLogger("workbench.engine.session")


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


def check_adapter_folder(p) -> None:
    """A peft adapter folder with safetensors weights, or a ModelError naming what is missing."""
    if not (p / "adapter_config.json").exists():
        raise ModelError(f"No adapter at {p}: adapter_config.json is missing.",
                         hint="Pass the folder that holds adapter_config.json and adapter_model.safetensors.")
    if not (p / "adapter_model.safetensors").exists():
        pickled = (p / "adapter_model.bin").exists()
        raise ModelError(f"No safetensors adapter at {p}" + (": it holds a pickled adapter_model.bin. Only "
                         "safetensors adapters are loaded, because unpickling a .bin file can run any code its "
                         "author put in it." if pickled else ": adapter_model.safetensors is missing."),
                         hint="Save the adapter with safetensors (peft: model.save_pretrained(dir, "
                              "safe_serialization=True), the default since peft 0.6), where you trust its source.")


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




class LocalLoading:
    """How a ModelSession loads local weights: the built-in decoder and raw tokenizer when this
    model passed the fast-path check (fastpath.py), else transformers' model and tokenizer, and the
    check itself after a transformers load. A mixin: these fill the session's own fields."""

    def _load_native(self, say) -> bool:
        """Load only the built-in decoder and raw tokenizer, if this model passed the check."""
        if not self.config.native:
            return False
        from workbench.engine import fastpath

        verdict = fastpath.lookup(self.resolved.path, self.dtype_name(), self.device)
        if not verdict or not verdict.get("ok"):
            return False
        from workbench.engine.fast_tokenizer import RawTokenizer
        from workbench.engine.llama_native import NativeLlama

        say(f"loading weights ({self.dtype}) on {self.device} (built-in decoder, verified against transformers)")
        try:
            self._fast_tok = RawTokenizer(self.resolved.path)
            self._native = NativeLlama.from_folder(self.resolved.path, dtype=self.dtype, device=self.device,
                                                   config=self._cfg)
        except Exception as exc:  # noqa: BLE001 - the transformers path is always there to fall back on
            log.warning("built-in decoder failed to load (%s); using transformers", exc)
            self._fast_tok = self._native = None
            return False
        return True

    def _verify_native(self) -> None:
        """After a transformers load: check the fast path once for this model, then share weights."""
        if not self.config.native or self.resolved.source == "in-memory":
            return
        from workbench.engine import fastpath

        # An unsupported architecture gets a stored "off" verdict too, so it is not re-checked.
        verdict = fastpath.lookup(self.resolved.path, self.dtype_name(), self.device)
        if verdict is None:
            verdict = fastpath.verify(self._base, self._tok, self.resolved.path, self.dtype_name(), self.device)
        if verdict.get("ok"):
            self._use_native_from_hf()

    def _use_native_from_hf(self) -> None:
        from workbench.engine.fast_tokenizer import RawTokenizer
        from workbench.engine.llama_native import NativeLlama

        self._native = NativeLlama.from_hf(self._base)     # shares the tensors: no second copy
        self._fast_tok = self._fast_tok or RawTokenizer(self.resolved.path)

    @contextlib.contextmanager
    def _load_errors(self, what: str, needs: str):
        """transformers' load errors → ModelError naming the model, the folder and the fix."""
        try:
            yield
        except ValueError as exc:
            if "trust_remote_code" in str(exc):
                raise ModelError(f"Model '{self.config.model}' needs custom code from its repository.",
                                 hint="Only if you trust it: pass --trust-remote-code.") from exc
            raise ModelError(f"Could not load {what} of '{self.config.model}': {exc}") from exc
        except OSError as exc:
            raise ModelError(f"Could not load {what} from {self.resolved.path}: {exc}",
                             hint=f"Check that the folder has {needs}.") from exc

    def _load_hf_tokenizer(self):
        if self._tok is None:
            from transformers import AutoTokenizer

            with self._load_errors("the tokenizer", "tokenizer files (tokenizer.json)"):
                tok = AutoTokenizer.from_pretrained(self.resolved.path, trust_remote_code=self.config.trust_remote_code)
            if tok.pad_token_id is None:
                tok.pad_token = tok.eos_token
            self._tok = tok
        return self._tok

    def _load_hf(self, say=lambda msg: None) -> None:
        """Load transformers' model and tokenizer (everything but fast-path scoring uses them)."""
        import torch

        say(f"loading tokenizer from {self.resolved.path}")
        self._load_hf_tokenizer()
        from transformers import AutoModelForCausalLM

        say(f"loading weights ({self.dtype}) on {self.device}")
        with self._load_errors("the model", "config.json, tokenizer files and weights"):
            model = AutoModelForCausalLM.from_pretrained(
                self.resolved.path, dtype=self.dtype, trust_remote_code=self.config.trust_remote_code,
                attn_implementation="sdpa")
        model.to(self.device)
        model.eval()
        self._base = self._model = model
        torch.set_grad_enabled(True)   # keep global grad mode untouched; scoring uses inference_mode


