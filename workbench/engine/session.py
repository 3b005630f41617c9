"""ModelSession: a model loaded once, its adapters, and the engine that runs its requests.

    s = get_session("default")                        # loaded once, kept, shared by UI/CLI/API
    s.loglikelihood([("Topic of 'Oil prices rise':", " business"), ...])   # -> [LogLik(logprob, greedy, n_tokens)]
    s.generate(["Q: ...\\nA:"], max_new_tokens=32, stop=["\\n"])              # -> [Generation(text, ...)]
    s.attach_adapter("runs/x/adapter"); s.detach_adapter()
    get_session("openai:http://gpu:8000/v1#name", tokenizer="default")   # an inference server
    s.engine                                          # the protocol.Engine that runs requests now

The session owns loading (loading.py: device, dtype, the fast-path check), the process-wide
session cache (the end of this file) and adapters. Every score and generation goes to `self.engine`
(protocol.py): the built-in decoder or transformers (local_engines.py) or a server
(server_engine.py). `_pick_engine` is the one place that chooses among them. Tokenization
follows lm-evaluation-harness's conventions (encoding.py, docs/SCORING.md) for every engine.
"""
from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from typing import Callable, Sequence

from workbench.engine.encoding import encode as _encode
from workbench.engine.encoding import encode_pair as _encode_pair
from workbench.engine.encoding import encode_pairs as _encode_pairs
from workbench.engine.encoding import prefix_token_id
from workbench.engine.loading import (LocalLoading, SessionConfig, adapter_base_model,  # noqa: F401 (public)
                                      adapter_content_hash, check_adapter_folder, pick_device, pick_dtype, read_config)
from workbench.engine.local_engines import LocalWeights, NativeEngine, TransformersEngine, split_decoder_head
from workbench.engine.protocol import (SCORING_VERSION, CancelFn, ChatPrompt, Engine, GenOptions,  # noqa: F401
                                       Generation, LogLik, ProgressFn, cut_at_stop)
from workbench.engine.server_engine import server_generation
from workbench.errors import ModelBusy, ModelError

log = logging.getLogger(__name__)

# Old private names, kept one stop for other branches: use the public ones.
_split_decoder_head = split_decoder_head
_remote_generation = server_generation
_read_config = read_config


class ModelSession(LocalLoading):
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
        self._server = None             # a ServerEngine when the model is "openai:URL" (server_engine.py)
        self.resolved = None
        self.device: str | None = None
        self.dtype = None
        self.load_seconds: float | None = None
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
            say = progress or (lambda msg: None)
            from workbench.engine.remote import is_remote

            if is_remote(self.config.model):
                self._connect_server(say)
                self.load_seconds = time.perf_counter() - t0
                return self
            from workbench.engine.models import resolve_model

            say(f"resolving {self.config.model}")
            self.resolved = resolve_model(self.config.model, revision=self.config.revision)
            self.device = pick_device(self.config.device)
            self.dtype = pick_dtype(self.device, self.config.dtype)
            self._cfg = read_config(self.resolved.path)
            if not self._load_native(say):
                self._load_hf(say)
                self._verify_native()
            self.load_seconds = time.perf_counter() - t0
            say(f"loaded in {self.load_seconds:.1f}s")
        return self

    def _connect_server(self, say) -> None:
        """Connect to an OpenAI-compatible server; only the tokenizer is loaded here."""
        from workbench.engine.models import ResolvedModel
        from workbench.engine.server_engine import ServerEngine

        def load_tokenizer(folder: str):
            self.resolved = ResolvedModel(name=self.config.model, path=folder, identity="?", source="remote")
            self._cfg = read_config(folder)
            return self._load_hf_tokenizer()

        try:
            eng = ServerEngine.connect(self.config.model, self.config, load_tokenizer, say)
        except BaseException:
            self.resolved, self._tok = None, None
            raise
        self.resolved = ResolvedModel(name=self.config.model, path=eng.folder, identity=eng.name, source="remote")
        self.device, self.dtype = "remote", "server"
        self._server = eng

    def dtype_name(self) -> str:
        return str(self.dtype).replace("torch.", "")

    _dtype_name = dtype_name   # old private name (commands/models.py)

    def _need_weights(self) -> None:
        """Refuse what needs the model's weights on this machine when a server runs the model."""
        if self._server is not None:
            raise ModelError(f"'{self.config.model}' runs on an inference server: this needs the model's weights "
                             "on this machine (LoRA training, merged export).",
                             hint="Use a local model for it (--model default, a folder or a hub id).")

    def _ensure_hf(self):
        """The transformers model, loaded on first need when the session started on the fast path."""
        self.load()
        self._need_weights()
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
        return self._model is not None or self._native is not None or self._server is not None

    @property
    def remote(self):
        """The server's client (remote.RemoteEngine: requests sent, retries, checks), or None."""
        return self._server.client if self._server is not None else None

    # ------------------------------------------------------------------ the engine
    @property
    def engine(self) -> Engine:
        """The engine that runs this session's requests now (see `_pick_engine`)."""
        self.load()
        return self._pick_engine()

    def _pick_engine(self, *, full_logits: bool = False) -> Engine:
        """The one place an engine is chosen: the server for a served model; else the verified
        built-in decoder while no adapter is attached (fastpath.py checks it gives transformers'
        log-probs); else transformers, with the adapter."""
        if self._server is not None:
            return self._server
        if self._native is not None and self.adapter is None and not full_logits:
            return NativeEngine(self._weights(hf=False), self._transformers)
        return TransformersEngine(self._weights(hf=True), full_logits=full_logits)

    def _transformers(self) -> TransformersEngine:
        return TransformersEngine(self._weights(hf=True))

    def _weights(self, *, hf: bool) -> LocalWeights:
        return LocalWeights(
            model=self.model if hf else self._model, native=self._native, tokenizer=self.scoring_tokenizer(),
            hf_tokenizer=lambda: self.tokenizer, name=self.resolved.identity, device=self.device,
            dtype_name=self.dtype_name(), adapter_sha256=self.adapter_sha256, max_length=self.max_length,
            token_budget=self.token_budget, max_batch=self.max_batch, lock=self.lock, stats=self.stats,
            gen_prefix=self._gen_prefix)

    @property
    def backend(self) -> str:
        """What runs the requests: "native" (the verified built-in decoder), "transformers" or "remote"."""
        return self.engine.kind

    @property
    def _prefix_cache_hits(self) -> int:
        """Shared prefixes scoring ran once and reused (tests read it)."""
        return self.stats.get("prefix_runs", 0)

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
            if self._server is not None:
                self._server.close()
                self._server = None
            gc.collect()
            with contextlib.suppress(Exception):
                import torch
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()

    def info(self) -> dict:
        out = {"model": self.config.model, "loaded": self.loaded, "adapter": self.adapter}
        if not self.loaded:
            return out
        out.update(identity=self.resolved.identity, max_length=self.max_length, backend=self.backend)
        if self._server is not None:
            out.update(tokenizer=self.resolved.path, device="remote", dtype="server", server=self._server.describe())
            return out
        import torch

        if self._base is not None:
            params = sum(p.numel() for p in self._base.parameters())
            weight_bytes = sum(p.numel() * p.element_size() for p in self._base.parameters())
        else:
            params, weight_bytes = self._native.num_parameters(), self._native.weight_bytes()
        out.update(path=self.resolved.path, device=self.device, dtype=self.dtype_name(),
                   params_m=round(params / 1e6, 1), weights_mb=round(weight_bytes / 2**20, 1),
                   load_seconds=round(self.load_seconds or 0, 2))
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
        (workbench.core.spec.eval_key); built by protocol.model_identity for every engine. The
        scoring path (built-in decoder or transformers) is left out on purpose: fastpath.py
        verifies per model that both give the same log-probs."""
        return self.engine.identity()

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
        served = self._server.max_length if self._server is not None else None
        if served:
            return served
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
        if self._server is not None:   # a served model takes its adapters on the server, by name
            raise ModelError(f"Adapters cannot be attached to '{self.config.model}': it runs on an inference server.",
                             hint="Serve the adapter there (`vllm serve BASE --enable-lora --lora-modules NAME=FOLDER`) "
                                  "and select it with #NAME in the URL (docs/SERVING.md).")
        check_adapter_folder(p)
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


    # ------------------------------------------------------------------ tokenization (encoding.py)
    def prefix_token_id(self) -> int:
        return prefix_token_id(self.scoring_tokenizer())

    _prefix_token_id = prefix_token_id   # old private name (jobs/lmeval_outputs.py)

    def encode(self, text: str) -> list[int]:
        """Encode like lm-evaluation-harness's HFLM.tok_encode (encoding.encode)."""
        return _encode(self.scoring_tokenizer(), text)

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        return _encode_pair(self.scoring_tokenizer(), context, continuation)

    def encode_pairs(self, requests: Sequence[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
        """`encode_pair` for many requests at once, each distinct context encoded once."""
        return _encode_pairs(self.scoring_tokenizer(), requests)

    # ------------------------------------------------------------------ scoring and generation
    def loglikelihood(self, requests: Sequence[tuple[str, str]], *, progress: ProgressFn | None = None,
                      cancel: CancelFn | None = None, prefix_cache: bool = True) -> list[LogLik]:
        """Sum of continuation log-probs for each (context, continuation), lm-eval conventions."""
        pairs = self.encode_pairs(requests)
        return self.loglikelihood_tokens(pairs, progress=progress, cancel=cancel, prefix_cache=prefix_cache)

    def loglikelihood_tokens(self, pairs: Sequence[tuple[list[int], list[int]]], *, progress: ProgressFn | None = None,
                             cancel: CancelFn | None = None, prefix_cache: bool = True,
                             head_positions_only: bool = True) -> list[LogLik]:
        """Score token pairs with the current engine (local engines: over their prefix tree, each
        distinct context once, the LM head only where a log-prob is needed). `prefix_cache=False`
        gives each context its own full pass; `head_positions_only=False` runs the whole
        transformers model (full logits), a reference for tests."""
        self.load()
        engine = self._pick_engine(full_logits=not head_positions_only)
        return engine.score(pairs, progress=progress, cancel=cancel, prefix_cache=prefix_cache)

    def generate(self, prompts: Sequence[str], *, max_new_tokens: int = 32, temperature: float = 0.0,
                 top_p: float = 1.0, stop: Sequence[str] | None = None, seed: int = 0, batch_size: int = 8,
                 progress: ProgressFn | None = None, cancel: CancelFn | None = None,
                 prefix_reuse: bool = True) -> list[Generation]:
        """Generate for each prompt with the current engine; counts the generated tokens in
        `stats["tokens_generated"]`, which a job's cost reads (jobs/usage.py)."""
        options = GenOptions(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                             stop=tuple(s for s in (stop or []) if s), seed=seed, batch_size=batch_size,
                             prefix_reuse=prefix_reuse)
        outs = self.engine.generate(prompts, options, progress=progress, cancel=cancel)
        self.stats["tokens_generated"] = self.stats.get("tokens_generated", 0) + sum(o.n_tokens for o in outs)
        return outs


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

