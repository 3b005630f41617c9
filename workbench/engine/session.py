"""ModelSession: the only module that calls the model.

    s = get_session("default")                        # loaded once, kept, shared by UI/CLI/API
    s.loglikelihood([("Topic of 'Oil prices rise':", " business"), ...])   # -> [LogLik(logprob, greedy, n_tokens)]
    s.generate(["Q: ...\nA:"], max_new_tokens=32, stop=["\n"])              # -> [Generation(text, ...)]
    s.attach_adapter("runs/x/adapter"); s.detach_adapter()
    get_session("openai:http://gpu:8000/v1#name", tokenizer="default")   # an inference server (remote.py)

Scoring follows lm-evaluation-harness's conventions exactly (see docs/SCORING.md): a pair is
tokenized as a whole, the continuation is what follows the context's own tokens, and trailing
whitespace of the context moves to the continuation. On top of that, for speed, scoring runs
over the requests' prefix tree (prefix_tree.py plans it, prefix_scoring.py runs it):
  * a prefix shared by many contexts (few-shot demonstrations, an instruction) runs once and
    its key/value cache is reused; each distinct context runs once for all of its choices, and
    multi-token choices run only their own tokens on top of the context's cache;
  * the LM head runs only at the positions whose log-probabilities are needed
    (hidden [N, H] @ W^T [H, V] instead of [B, L, H] @ W^T);
  * sequences are sorted longest-first and batched under a token budget, so padding is small
    and an out-of-memory error shows up in the first batch.
"""
from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from workbench.errors import Cancelled, ModelBusy, ModelError

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]   # (done, total)
CancelFn = Callable[[], bool]

# Part of every model identity, so of every reuse key: bump it whenever a change to the scoring
# code (tokenization, truncation, normalisation, calibration) can change a prediction, and stored
# results from the older code are never reused for the newer.
SCORING_VERSION = 2


@dataclass
class LogLik:
    logprob: float      # sum of log p(continuation token | prefix), natural log
    greedy: bool        # every continuation token was the argmax
    n_tokens: int       # continuation length in tokens


@dataclass
class Generation:
    text: str           # decoded continuation, cut before the first stop string
    n_tokens: int       # generated tokens (before cutting)
    stop_reason: str    # "stop" (a stop string), "eos", or "length"


class ChatPrompt(str):
    """A chat template's prompt: the text the local tokenizer's chat template renders, which is
    what scoring tokenizes and what is stored and shown, plus the `messages` it was rendered
    from. A str subclass, so every consumer of prompts (scoring, token counts, records) works
    unchanged; only remote generation looks at `messages`, to send them to the server's
    /v1/chat/completions (the server applies its own chat template, as a served chat model
    expects). Anything built from it (`prompt + output` in a self-ask chain) is a plain str
    again and goes out as a text completion, which is right: a chat endpoint cannot continue
    a half-written assistant turn portably."""

    messages: list[dict]

    def __new__(cls, text: str, messages: Sequence[dict]):
        obj = super().__new__(cls, text)
        obj.messages = [dict(m) for m in messages]
        return obj

    def __reduce__(self):   # pickles (and copies) with its messages
        return (ChatPrompt, (str(self), self.messages))


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


class ModelSession:
    """Model + tokenizer, loaded once; scoring, generation and adapters."""

    def __init__(self, model: str = "default", **kwargs):
        self.config = SessionConfig(model=model, **kwargs)
        self.lock = threading.RLock()   # one model call at a time: UI events and jobs share the session
        self._model = None
        self._base = None               # the model without adapters
        self._tok = None
        # Fast path (see fastpath.py): the built-in decoder and the raw tokenizer, used for scoring
        # when verified; transformers' model/tokenizer then load only when something needs them.
        self._native = None
        self._fast_tok = None
        self._cfg: dict = {}
        self.adapter: str | None = None
        self.adapter_sha256: str | None = None   # content hash of the attached adapter's files
        # Jobs holding this session (see `hold_session`): while any does, the model cannot be
        # unloaded or swapped and its adapter cannot change, except by the holder itself.
        self.holders: dict[int, str] = {}        # holding thread -> what holds it ("eval of T on bbc")
        self.remote = None              # a RemoteEngine when the model is "openai:URL" (remote.py)
        self.resolved = None
        self.device: str | None = None
        self.dtype = None
        self.load_seconds: float | None = None
        self._prefix_cache_hits = 0
        from workbench.engine.prefix_generate import PrefixCache
        self._gen_prefix = PrefixCache()   # generation's shared prompt prefix (prefix_generate.py)
        # Counters for benchmarks (FLOP/s, padding): tokens through the decoder, padded slots,
        # positions that went through the LM head, and seconds spent in forward passes; and the
        # work efficiency: tokens forwarded (= tokens) against the distinct (prefix, token)
        # positions the requests needed (tokens_minimal, see prefix_tree.py).
        self.stats = {"tokens": 0, "padded": 0, "head_positions": 0, "forward_s": 0.0,
                      "tokens_forwarded": 0, "tokens_minimal": 0}

    @classmethod
    def from_model(cls, model, tokenizer, *, name: str, identity: str, path: str = "", device: str = "cpu",
                   dtype=None, adapter: str | None = None) -> "ModelSession":
        """A session over an in-memory model (e.g. the peft model being trained), so dev/test
        evaluation goes through exactly the same scoring code as everything else."""
        import torch

        from workbench.engine.models import ResolvedModel

        s = cls(name, device=device)
        s._model = s._base = model
        s._tok = tokenizer
        s.device, s.dtype = device, dtype or torch.float32
        s.resolved = ResolvedModel(name=name, path=path, identity=identity, source="in-memory")
        s.adapter = adapter
        s.load_seconds = 0.0
        return s

    # ------------------------------------------------------------------ loading
    def load(self, progress: Callable[[str], None] | None = None) -> "ModelSession":
        if self.loaded:
            return self
        with self.lock:
            if self.loaded:
                return self
            t0 = time.perf_counter()
            from workbench.engine.models import resolve_model

            say = progress or (lambda msg: None)
            from workbench.engine.remote import is_remote

            if is_remote(self.config.model):
                self._load_remote(say)
                self.load_seconds = time.perf_counter() - t0
                return self
            say(f"resolving {self.config.model}")
            self.resolved = resolve_model(self.config.model, revision=self.config.revision)
            self.device = pick_device(self.config.device)
            self.dtype = pick_dtype(self.device, self.config.dtype)
            self._cfg = _read_config(self.resolved.path)
            if not self._load_native(say):
                self._load_hf(say)
                self._verify_native()
            self.load_seconds = time.perf_counter() - t0
            say(f"loaded in {self.load_seconds:.1f}s")
        return self

    def _load_remote(self, say) -> None:
        """Connect to an OpenAI-compatible server; only the tokenizer is loaded here."""
        from workbench.engine.models import ResolvedModel
        from workbench.engine.remote import RemoteConfig, RemoteEngine, tokenizer_folder

        cfg = self.config
        eng = RemoteEngine(cfg.model, RemoteConfig(concurrency=cfg.concurrency, timeout_s=cfg.request_timeout,
                                                    max_retries=cfg.max_retries, cache=cfg.response_cache))
        say(f"connecting to {eng.base_url}")
        eng.connect()
        folder = tokenizer_folder(cfg.tokenizer, eng)
        self.resolved = ResolvedModel(name=cfg.model, path=folder, identity=eng.identity, source="remote")
        self.device, self.dtype = "remote", "server"
        self._cfg = _read_config(folder)
        say(f"loading the tokenizer from {folder}")
        self._load_hf_tokenizer()
        self.remote = eng                 # `loaded` from here on, so encode() works for the checks
        try:
            eng.check_tokenizer(self.encode)
            eng.check_echo(self.encode, lambda text: self._tok.encode(text, add_special_tokens=False))
        except BaseException:
            self.remote = None
            eng.close()
            raise

    def _dtype_name(self) -> str:
        return str(self.dtype).replace("torch.", "")

    def _load_native(self, say) -> bool:
        """Load only the built-in decoder and raw tokenizer, if this model passed the check."""
        if not self.config.native:
            return False
        from workbench.engine import fastpath

        verdict = fastpath.lookup(self.resolved.path, self._dtype_name(), self.device)
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
        verdict = fastpath.lookup(self.resolved.path, self._dtype_name(), self.device)
        if verdict is None:
            verdict = fastpath.verify(self._base, self._tok, self.resolved.path, self._dtype_name(), self.device)
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

    def _ensure_hf(self):
        """The transformers model, loaded on first need when the session started on the fast path."""
        self.load()
        if self.remote is not None:
            raise ModelError(f"'{self.config.model}' runs on an inference server: this needs the model's weights "
                             "on this machine (LoRA training, merged export).",
                             hint="Use a local model for it (--model default, a folder or a hub id).")
        if self._model is None:
            with self.lock:
                if self._model is None:
                    self._load_hf()
                    if self._native is not None:
                        self._use_native_from_hf()   # drop the fast path's own copy of the weights
        return self._model

    @property
    def model(self):
        return self._ensure_hf()

    @property
    def tokenizer(self):
        self.load()
        if self._tok is None:
            with self.lock:
                self._load_hf_tokenizer()
        return self._tok

    @property
    def loaded(self) -> bool:
        return self._model is not None or self._native is not None or self.remote is not None

    @property
    def backend(self) -> str:
        """What scores: "native" (the verified built-in decoder), "transformers" or "remote"."""
        self.load()
        if self.remote is not None:
            return "remote"
        return "native" if self._scores_native() else "transformers"

    def _scores_native(self) -> bool:
        return self._native is not None and self.adapter is None

    def scoring_tokenizer(self):
        """The tokenizer scoring uses: the raw one on the fast path (verified to give the
        transformers tokenizer's ids and decodings), else transformers'. It offers encode,
        batch __call__, decode and the special-token ids."""
        self.load()
        return self._fast_tok if self._fast_tok is not None else self.tokenizer

    def unload(self) -> None:
        """Free the model (switching models in the UI)."""
        with self.lock:
            self._model = self._base = self._tok = None
            self._native = self._fast_tok = None
            self.adapter = None
            if self.remote is not None:
                self.remote.close()
                self.remote = None
            gc.collect()
            with contextlib.suppress(Exception):
                import torch
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()

    def info(self) -> dict:
        out = {"model": self.config.model, "loaded": self.loaded, "adapter": self.adapter}
        if not self.loaded:
            return out
        if self.remote is not None:
            out.update(identity=self.resolved.identity, tokenizer=self.resolved.path, device="remote",
                       dtype="server", max_length=self.max_length, backend="remote", server=self.remote.describe())
            return out
        import torch

        if self._base is not None:
            params = sum(p.numel() for p in self._base.parameters())
            weight_bytes = sum(p.numel() * p.element_size() for p in self._base.parameters())
        else:
            params, weight_bytes = self._native.num_parameters(), self._native.weight_bytes()
        out.update(identity=self.resolved.identity, path=self.resolved.path, device=self.device,
                   dtype=self._dtype_name(), params_m=round(params / 1e6, 1),
                   weights_mb=round(weight_bytes / 2**20, 1), load_seconds=round(self.load_seconds or 0, 2),
                   max_length=self.max_length, backend=self.backend)
        if self.device.startswith("cuda"):
            out["gpu_mem_mb"] = round(torch.cuda.memory_allocated() / 2**20, 1)
        with contextlib.suppress(Exception):
            import psutil
            out["rss_mb"] = round(psutil.Process().memory_info().rss / 2**20, 1)
        return out

    @property
    def identity(self) -> str:
        return self.load().resolved.identity

    def model_identity(self) -> dict:
        """Everything about the model that can change a prediction: part of every reuse key
        (workbench.core.spec.eval_key). The scoring path (built-in decoder or transformers) is
        left out on purpose: fastpath.py verifies per model that both give the same log-probs."""
        self.load()
        # a remote engine's identity names its URL and served model (remote.py)
        return {"engine": "openai" if self.remote is not None else "local", "model": self.resolved.identity,
                "dtype": self._dtype_name(),
                "device_kind": (self.device or "cpu").split(":")[0], "adapter_sha256": self.adapter_sha256,
                "scoring_version": SCORING_VERSION}

    @property
    def token_budget(self) -> int:
        if self.config.token_budget:
            return self.config.token_budget
        from workbench.engine.device_memory import bytes_per_token, token_budget_for

        if not str(self.device or "cpu").startswith("cuda"):
            return token_budget_for(self.device, 1)
        import torch

        cfg = self._cfg or (self.model.config.to_dict() if self._base is not None else {})
        elt = torch.empty((), dtype=self.dtype).element_size() if self.dtype is not None else 2
        return token_budget_for(self.device, bytes_per_token(cfg, elt))

    @property
    def max_batch(self) -> int:
        if self.config.max_batch:
            return self.config.max_batch
        return 256 if str(self.device or "cpu").startswith("cuda") else 64

    @property
    def max_length(self) -> int:
        self.load()
        if self.remote is not None and self.remote.max_model_len:
            return self.remote.max_model_len
        cfg = self._cfg or self.model.config.to_dict()
        for attr in ("max_position_embeddings", "n_positions", "max_seq_len"):
            v = cfg.get(attr)
            if isinstance(v, int) and v > 0:
                return v
        return 2048

    # ------------------------------------------------------------------ adapters
    def _check_free(self, what: str) -> None:
        me = threading.get_ident()
        others = [desc for tid, desc in self.holders.items() if tid != me]
        if others:
            raise ModelBusy(f"Cannot {what}: the model {self.config.model} is in use by {others[0]}.",
                            hint="Wait for that job to finish, or cancel it, then try again.")

    def attach_adapter(self, path: str) -> None:
        """Attach a peft adapter (LoRA); every later score and generation uses it.

        Refuses an adapter trained on another base model (its train_config.json names it): every
        door (UI, CLI --adapter, Python, bundles) gets this check here."""
        from pathlib import Path

        p = Path(path)
        if self.remote is not None:
            raise ModelError(f"Adapters cannot be attached to '{self.config.model}': it runs on an inference server.",
                             hint="Serve the adapter there (`vllm serve BASE --enable-lora --lora-modules NAME=FOLDER`) "
                                  "and select it with #NAME in the URL (docs/SERVING.md).")
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
        self.load()
        base = adapter_base_model(p)
        if base and self.resolved is not None and base != self.resolved.identity:
            raise ModelError(f"The adapter at {p} was trained on {base}, but the loaded model is "
                             f"{self.resolved.identity}.",
                             hint="Load the model it was trained on (the model bar, or --model) and attach it again.")
        digest = adapter_content_hash(p)
        from peft import PeftModel

        with _SESSIONS_LOCK:
            self._check_free("attach an adapter")
        with self.lock:
            self.detach_adapter()
            try:
                self._model = PeftModel.from_pretrained(self.model, str(p), is_trainable=False)
            except Exception as exc:  # noqa: BLE001 - shape mismatch, missing keys, ...
                raise ModelError(f"Adapter {p} does not fit model {self.config.model}: {exc}",
                                 hint="Use the base model the adapter was trained on.") from exc
            self._model.to(self.device)
            self._model.eval()
            self.adapter = str(p)
            self.adapter_sha256 = digest
            self._gen_prefix.clear()   # the kept prefix was computed with other weights

    def detach_adapter(self) -> None:
        with _SESSIONS_LOCK:
            if self.adapter is not None:
                self._check_free("detach the adapter")
        with self.lock:
            if self._model is not None and self._model is not self._base:
                # unload() removes the LoRA layers without merging them into the base weights.
                self._base = self._model.unload()
                self._model = self._base
            self.adapter = None
            self.adapter_sha256 = None
            self._gen_prefix.clear()   # the kept prefix was computed with other weights

    # ------------------------------------------------------------------ chat
    def apply_chat(self, text: str, system: str | None = None) -> ChatPrompt:
        """`text` as one user turn in the tokenizer's chat template (ready for the assistant's
        answer); the result also carries the messages, for a server's chat endpoint."""
        tok = self.tokenizer
        if not getattr(tok, "chat_template", None):
            raise ModelError(f"Model '{self.config.model}' has no chat template, but the template asks for chat: true.",
                             hint="Set chat: false in the template, or use an instruct/chat model.")
        msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
        return ChatPrompt(tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True), msgs)

    # ------------------------------------------------------------------ tokenization
    def _prefix_token_id(self) -> int:
        tok = self.scoring_tokenizer()
        return tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id

    def encode(self, text: str) -> list[int]:
        """Encode like lm-evaluation-harness's HFLM.tok_encode: the tokenizer's own special-token
        default, except that a string already starting with the prefix (BOS) token gets none added."""
        tok = self.scoring_tokenizer()
        kw = {}
        prefix = tok.decode([self._prefix_token_id()])
        if prefix and text.startswith(prefix):
            kw["add_special_tokens"] = False
        return tok.encode(text, **kw)

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        if context == "":
            cont = self.scoring_tokenizer().encode(continuation, add_special_tokens=False)
            pid = self._prefix_token_id()
            return ([pid], cont) if cont[:1] != [pid] else (cont[:1], cont[1:])
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces:
            continuation = context[-n_spaces:] + continuation
            context = context[:-n_spaces]
        whole = self.encode(context + continuation)
        ctx = self.encode(context)
        return ctx, whole[len(ctx):]

    def encode_pairs(self, requests: Sequence[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
        """`encode_pair` for many requests at once, with the same result: each distinct context is
        encoded once (a classification prompt has one context and several choices), and the
        whole strings go through the tokenizer's batch encoder."""
        tok = self.scoring_tokenizer()
        prefix = tok.decode([self._prefix_token_id()])
        out: list = [None] * len(requests)
        ctx_ids: dict[str, list[int]] = {}
        groups: dict[bool, list[tuple[int, str, int]]] = {True: [], False: []}   # add_special -> (i, whole, ctx len)
        for i, (context, continuation) in enumerate(requests):
            if context == "":
                out[i] = self.encode_pair(context, continuation)
                continue
            n_spaces = len(context) - len(context.rstrip())
            if n_spaces:
                continuation = context[-n_spaces:] + continuation
                context = context[:-n_spaces]
            if context not in ctx_ids:
                ctx_ids[context] = self.encode(context)
            whole = context + continuation
            groups[not (prefix and whole.startswith(prefix))].append((i, whole, context))
        for add_special, items in groups.items():
            if not items:
                continue
            encoded = tok([w for _, w, _ in items], add_special_tokens=add_special)["input_ids"]
            for (i, _, context), ids in zip(items, encoded):
                ctx = ctx_ids[context]
                out[i] = (ctx, ids[len(ctx):])
        return out

    # ------------------------------------------------------------------ scoring
    def loglikelihood(self, requests: Sequence[tuple[str, str]], *, progress: ProgressFn | None = None,
                      cancel: CancelFn | None = None, prefix_cache: bool = True) -> list[LogLik]:
        """Sum of continuation log-probs for each (context, continuation), lm-eval conventions."""
        pairs = self.encode_pairs(requests)
        if self.remote is not None:
            return self._remote_loglikelihood(pairs, progress=progress, cancel=cancel)
        return self.loglikelihood_tokens(pairs, progress=progress, cancel=cancel, prefix_cache=prefix_cache)

    def loglikelihood_tokens(self, pairs: Sequence[tuple[list[int], list[int]]], *, progress: ProgressFn | None = None,
                             cancel: CancelFn | None = None, prefix_cache: bool = True,
                             head_positions_only: bool = True) -> list[LogLik]:
        """Score token pairs over their prefix tree (prefix_scoring.py): each distinct context
        once for all of its continuations, a prefix shared by many contexts once, the LM head only
        where a log-prob is needed. `prefix_cache=False` gives each context its own full pass;
        `head_positions_only=False` runs the whole transformers model (full logits)."""
        import torch

        from workbench.engine import prefix_scoring

        # The verified built-in decoder when it applies (no adapter), else transformers; both
        # compute the same log-probs (fastpath.py checks it per model).
        if self._scores_native() and head_positions_only:
            runner = prefix_scoring.NativeRunner(self._native)
        else:
            model = self.model
            lm = model.get_base_model() if hasattr(model, "get_base_model") else model
            decoder, head = _split_decoder_head(lm) if head_positions_only else (None, None)
            runner = prefix_scoring.HFRunner(lm, decoder, head, device=self.device)
        with self.lock, torch.inference_mode():
            out, info = prefix_scoring.score(
                pairs, runner, max_len=self.max_length, token_budget=self.token_budget,
                max_batch=self.max_batch, pad_id=self.scoring_tokenizer().pad_token_id,
                share_prefixes=prefix_cache, stats=self.stats, progress=progress, cancel=cancel)
        self._prefix_cache_hits += info["prefix_runs"]
        return [LogLik(*r) for r in out]

    # ------------------------------------------------------------------ generation
    def generate(self, prompts: Sequence[str], **kwargs) -> list[Generation]:
        """Generate for each prompt (see `_generate` for the options); counts the generated tokens in
        `stats["tokens_generated"]`, which a job's cost reads (jobs/usage.py)."""
        outs = self._generate(prompts, **kwargs)
        self.stats["tokens_generated"] = self.stats.get("tokens_generated", 0) + sum(o.n_tokens for o in outs)
        return outs

    def _generate(self, prompts: Sequence[str], *, max_new_tokens: int = 32, temperature: float = 0.0,
                  top_p: float = 1.0, stop: Sequence[str] | None = None, seed: int = 0, batch_size: int = 8,
                  progress: ProgressFn | None = None, cancel: CancelFn | None = None,
                  prefix_reuse: bool = True) -> list[Generation]:
        if self.load().remote is not None:
            return self._remote_generate(prompts, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                         stop=stop, seed=seed, progress=progress, cancel=cancel)
        import torch

        from workbench.engine import prefix_generate as pg

        tok = self.tokenizer
        stop = [s for s in (stop or []) if s]
        outs: list[Generation | None] = [None] * len(prompts)
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        enc_all = [self.encode(p) for p in prompts]
        # The token prefix every prompt shares (instruction, demonstrations) runs once and is
        # kept across batches and calls (Self-Ask rounds); see prefix_generate.py.
        P = pg.common_prefix_len(enc_all) if prefix_reuse else 0
        P = P if P >= pg.MIN_PREFIX else 0
        done = 0
        with self.lock, torch.inference_mode():
            layers = None
            if P:
                layers = pg.prefix_layers(self.model, enc_all[0][:P], self._gen_prefix,
                                          (id(self.model), self.adapter_sha256), self.device, self.stats)
            old_side = tok.padding_side
            tok.padding_side = "left"   # decoder-only generation needs the prompt flush right
            try:
                for s in range(0, len(order), batch_size):
                    if cancel and cancel():
                        raise Cancelled()
                    idx = order[s:s + batch_size]
                    enc_ids = [enc_all[i] for i in idx]
                    extra = {}
                    if P:
                        ids, mask = pg.batch_inputs(enc_ids, P, tok.pad_token_id)
                        extra[pg.cache_kwarg(self.model)] = pg.expanded_cache(layers, len(idx))
                        self.stats["gen_prefix_saved"] = self.stats.get("gen_prefix_saved", 0) + P * len(idx)
                    else:
                        L = max(len(e) for e in enc_ids)
                        ids = torch.full((len(idx), L), tok.pad_token_id, dtype=torch.long)
                        mask = torch.zeros((len(idx), L), dtype=torch.long)
                        for b, e in enumerate(enc_ids):
                            ids[b, L - len(e):] = torch.tensor(e)
                            mask[b, L - len(e):] = 1
                    L = ids.shape[1]
                    torch.manual_seed(seed)
                    gen_kwargs = dict(max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id,
                                      do_sample=temperature > 0)
                    if temperature > 0:
                        gen_kwargs.update(temperature=temperature, top_p=top_p)
                    else:
                        gen_kwargs.update(temperature=None, top_p=None, top_k=None)
                    if stop:
                        # stop_strings handles a stop string split across token boundaries.
                        gen_kwargs.update(stop_strings=list(stop), tokenizer=tok)
                    seqs = self.model.generate(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                               **gen_kwargs, **extra)
                    new = seqs[:, L:]
                    for b, i in enumerate(idx):
                        toks = new[b].tolist()
                        eos_hit = False
                        if tok.eos_token_id is not None and tok.eos_token_id in toks:
                            toks = toks[:toks.index(tok.eos_token_id)]
                            eos_hit = True
                        # strip trailing pads (left-padded batch: finished rows are padded on the right)
                        while toks and toks[-1] == tok.pad_token_id and tok.pad_token_id != tok.eos_token_id:
                            toks.pop()
                        text = tok.decode(toks, skip_special_tokens=True)
                        text, reason = cut_at_stop(text, stop)
                        if reason != "stop":
                            reason = "eos" if eos_hit else ("length" if len(toks) >= max_new_tokens else "eos")
                        outs[i] = Generation(text=text, n_tokens=len(toks), stop_reason=reason)
                    done += len(idx)
                    if progress:
                        progress(done, len(prompts))
            finally:
                tok.padding_side = old_side
        return outs  # type: ignore[return-value]

    # ------------------------------------------------------------------ remote (remote.py)
    def _remote_loglikelihood(self, pairs, *, progress=None, cancel=None) -> list[LogLik]:
        for i, (_, cont) in enumerate(pairs):
            if not cont:
                raise ModelError(f"Request {i} has an empty continuation after tokenization.",
                                 hint="Every answer choice must contain some text.")
        scored = self.remote.score(pairs, progress=progress, cancel=cancel)
        return [LogLik(lp, greedy, len(cont)) for (lp, greedy), (_, cont) in zip(scored, pairs)]

    def _remote_generate(self, prompts, *, max_new_tokens, temperature, top_p, stop, seed, progress=None,
                         cancel=None) -> list[Generation]:
        # Chat prompts go to /v1/chat/completions with their messages, the rest to /v1/completions.
        # (Scoring never does: chat endpoints cannot echo prompt log-probs, so a chat template is
        # scored over the locally rendered text's token ids; docs/SERVING.md.)
        stop = [s for s in (stop or []) if s]
        kw = dict(max_tokens=max_new_tokens, temperature=temperature, top_p=top_p, stop=stop,
                  seed=seed if temperature > 0 else None, cancel=cancel)
        chat = [i for i, p in enumerate(prompts) if isinstance(p, ChatPrompt)]
        plain = [i for i, p in enumerate(prompts) if not isinstance(p, ChatPrompt)]
        outs: list[dict | None] = [None] * len(prompts)
        batches = [(plain, [str(prompts[i]) for i in plain], self.remote.complete, 0),
                   (chat, [prompts[i].messages for i in chat], self.remote.chat, len(plain))]
        for idx, payload, send, start in batches:
            if not idx:
                continue
            bar = (lambda n, _t, start=start: progress(start + n, len(prompts))) if progress else None
            for i, o in zip(idx, send(payload, progress=bar, **kw)):
                outs[i] = o
        return [_remote_generation(o, stop, self.tokenizer) for o in outs]


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


def _remote_generation(o: dict, stop: list[str], tok) -> Generation:
    """A server's completion -> Generation. Servers cut at the stop string and call both a stop
    string and end-of-text "stop"; vLLM's `stop_reason` (the string, or the EOS id) tells them apart."""
    text, reason = cut_at_stop(o["text"], stop)
    n = o.get("completion_tokens")
    if n is None:
        n = len(tok.encode(o["text"], add_special_tokens=False))
    if reason != "stop":
        if o.get("finish_reason") == "length":
            reason = "length"
        elif stop and (isinstance(o.get("stop_reason"), str) or o.get("stop_reason") is None and
                       "stop_reason" not in o):
            reason = "stop"
        else:
            reason = "eos"
    return Generation(text=text, n_tokens=int(n), stop_reason=reason)


def _read_config(folder: str) -> dict:
    import json
    from pathlib import Path

    try:
        return json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError):
        return {}


def cut_at_stop(text: str, stop: Iterable[str]) -> tuple[str, str]:
    """Cut `text` before the earliest stop string; return (text, "stop" | "")."""
    cut = None
    for s in stop:
        j = text.find(s)
        if j != -1 and (cut is None or j < cut):
            cut = j
    return (text[:cut], "stop") if cut is not None else (text, "")


def _split_decoder_head(lm):
    """(decoder, lm_head) so the head can run only at needed positions; (None, None) if the
    architecture hides them (we then fall back to full logits)."""
    try:
        decoder = lm.get_decoder()
        head = lm.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return None, None
    if decoder is None or head is None or decoder is lm:
        return None, None
    return decoder, head


# ---------------------------------------------------------------------- session cache
_SESSIONS: dict[str, ModelSession] = {}
_SESSIONS_LOCK = threading.Lock()


def current_session() -> ModelSession | None:
    """The loaded session, if any, without loading one (for status displays)."""
    with _SESSIONS_LOCK:
        for s in _SESSIONS.values():
            if s.loaded:
                return s
    return None


def _key(model: str, kwargs: dict) -> str:
    return f"{model}|{sorted(kwargs.items())}"


def _explicit(kwargs: dict) -> dict:
    """Session options that differ from SessionConfig's defaults: `device=None` and no device
    name the same session."""
    from dataclasses import fields

    defaults = {f.name: f.default for f in fields(SessionConfig)}
    return {k: v for k, v in kwargs.items() if k not in defaults or v != defaults[k]}


def _get_locked(model: str, keep_others: bool, kwargs: dict) -> ModelSession:
    """The session for `model` (not yet loaded); the caller holds _SESSIONS_LOCK. Loading
    another model frees the previous one, unless a job holds it: then ModelBusy."""
    key = _key(model, kwargs)
    s = _SESSIONS.get(key)
    if s is None:
        if not keep_others:
            me = threading.get_ident()
            for other in _SESSIONS.values():
                held = [d for tid, d in other.holders.items() if tid != me]
                if held:
                    desc = held[0]
                    raise ModelBusy(f"Cannot load {model}: the model {other.config.model} is in use by {desc}.",
                                    hint="Wait for that job to finish, or cancel it, then load the other model.")
            for other in list(_SESSIONS.values()):
                other.unload()
            _SESSIONS.clear()
        s = ModelSession(model, **kwargs)
        _SESSIONS[key] = s
    return s


def get_session(model: str = "default", *, keep_others: bool = False, **kwargs) -> ModelSession:
    """The process-wide session for `model`, loaded once. Loading another model frees the
    previous one unless keep_others=True (small machines rarely hold two), and is refused with
    ModelBusy while a job holds the previous one (`hold_session`)."""
    with _SESSIONS_LOCK:
        s = _get_locked(model, keep_others, _explicit(kwargs))
    return s.load()


@contextlib.contextmanager
def hold_session(model: str, holder: str, *, keep_others: bool = False, **kwargs):
    """Hold the session of `model` for the duration of a job, in the job's thread:

        with hold_session("default", "eval of T on bbc") as session:
            session.attach_adapter(path)   # the holding thread may change its own adapter

    While held, `get_session` of another model, and adapter changes from any other thread, raise
    ModelBusy naming `holder`, so nothing is unloaded or changed from under the job.
    `keep_others`: do not free the other sessions (an inference server holds no weights here,
    so holding one need not unload the local model)."""
    me = threading.get_ident()
    with _SESSIONS_LOCK:
        s = _get_locked(model, keep_others, _explicit(kwargs))
        if me in s.holders:
            raise ModelBusy(f"This thread already holds {model} ({s.holders[me]}).")
        s.holders[me] = holder
    try:
        s.load()
        yield s
    finally:
        with _SESSIONS_LOCK:
            s.holders.pop(me, None)


def session_holders() -> list[str]:
    """What holds the loaded model now (running jobs), for status displays."""
    with _SESSIONS_LOCK:
        return [d for s in _SESSIONS.values() for d in s.holders.values()]
