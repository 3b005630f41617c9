"""Fast stand-ins for `engine.session.ModelSession` in unit tests: the real session's method
names, keyword-only arguments and result types (LogLik, Generation), with deterministic numbers
instead of a model. Every behaviour checked with a fake also has a real-model test beside it.

    FakeSession()                          # pseudo log-likelihoods from a hash of (context, continuation)
    FakeSession(table={(ctx, cont): p})    # log p looked up in a table (worked-out cases by hand)
    FakeSession(batch=7)                   # progress after every 7 requests, as the prefix-tree scorer reports
    FakeSession(logprob_fn=lambda ctx, cont: -len(cont), encode_fn=list)   # any scoring rule, tokens
    FakeSession(generate_fn=lambda prompt: " the whole continuation")   # scripted generation
    FakeSession("stand-in-model")          # what export and bundles read: identity, tokenizer, dtype, resolved
    s.calls, s.requests, s.prompts, s.max_tokens   # what was asked
    FakeEngine(...)                        # the same rules behind the engine protocol (engine/protocol.py);
                                           # FakeSession runs its requests through one (`s.engine`)

Generation follows ModelSession.generate's contract with one "token" per whitespace-led word: the
continuation is cut before the earliest stop string ("stop"), after max_new_tokens words ("length"),
or ends on its own ("eos"), so a job sees the stop reasons and token counts it would see on a model.
"""
from __future__ import annotations

import hashlib
import math
import re
import threading
import types
from typing import Callable, Sequence

from workbench.engine.protocol import GenOptions, Generation, LogLik, cut_at_stop, model_identity


class FakeTokenizer:
    """Just enough of a transformers tokenizer for `jobs.export.tokenizer_fingerprint`."""

    all_special_tokens = ["<s>"]
    bos_token = eos_token = "<s>"
    chat_template = None

    bos_token_id = eos_token_id = pad_token_id = 0

    def get_vocab(self) -> dict:
        return {"<s>": 0, "a": 1}

    def encode(self, text: str, add_special_tokens: bool = True) -> list:
        return [text]          # one "token": the whole string (what FakeEngine scores on)

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return "".join(i for i in ids if isinstance(i, str))


def hashed_logprob(context: str, continuation: str) -> float:
    """A deterministic pseudo log-probability in (-5, 0] for one request."""
    h = int(hashlib.sha256(f"{context}|{continuation}".encode()).hexdigest()[:8], 16) / 2**32
    return -5 * h


class FakeEngine:
    """The engine protocol (engine/protocol.py) without a model. A score request is a pair of
    token sequences; FakeSession sends ([context], [continuation]), one whole-string "token" a side,
    so the rules below see the strings. Generation has one "token" per whitespace-led word."""

    kind = "fake"

    def __init__(self, identity: str = "fake-model@1", *, table=None, batch: int | None = None, generate_fn=None,
                 logprob_fn=None):
        self.name, self.table, self.batch = identity, table, batch
        self.generate_fn, self.logprob_fn = generate_fn, logprob_fn
        self.tokenizer = FakeTokenizer()
        self.adapter_sha256: str | None = None

    def identity(self) -> dict:
        return model_identity(self.kind, self.name, dtype="float32", device="cpu", adapter_sha256=self.adapter_sha256)

    def logprob(self, context: str, continuation: str) -> float:
        if self.logprob_fn is not None:
            return self.logprob_fn(context, continuation)
        if self.table is not None:
            return math.log(self.table[(context, continuation)])
        return hashed_logprob(context, continuation)

    def score(self, requests, *, progress=None, cancel=None, prefix_cache: bool = True) -> list[LogLik]:
        out = [LogLik(self.logprob("".join(map(str, c)), "".join(map(str, x))), False, 1) for c, x in requests]
        if progress:
            n = len(requests)
            step = self.batch or n or 1
            for i in range(n):
                if (i + 1) % step == 0 or i + 1 == n:
                    progress(i + 1, n)
        return out

    def generate(self, prompts, options: GenOptions, *, progress=None, cancel=None) -> list[Generation]:
        out = []
        for p in prompts:
            words = re.findall(r"\s*\S+|\s+$", self.generate_fn(p) if self.generate_fn else " fake")
            text, reason, n = "", "eos", 0
            for n in range(1, len(words) + 1):
                text, hit = cut_at_stop("".join(words[:n]), options.stop)
                if hit:
                    reason = "stop"
                    break
                if n >= options.max_new_tokens:
                    reason = "length"
                    break
            out.append(Generation(text=text, n_tokens=n, stop_reason=reason))
        if progress:
            progress(len(prompts), len(prompts))
        return out


class FakeSession:
    """The ModelSession protocol the jobs use (load, model_identity, identity, encode,
    encode_pair, apply_chat, loglikelihood, generate, attach/detach_adapter, and the attributes
    export reads: identity, tokenizer, dtype, resolved, lock) without a model."""

    def __init__(self, identity: str = "fake-model@1", *, table: dict[tuple[str, str], float] | None = None,
                 batch: int | None = None, generate_fn: Callable[[str], str] | None = None,
                 logprob_fn: Callable[[str, str], float] | None = None, encode_fn: Callable[[str], list] | None = None):
        self.config = types.SimpleNamespace(model="fake")
        self.identity = identity
        self.adapter = None
        self.device, self.dtype = "cpu", "float32"
        self.backend = "fake"
        self.tokenizer = FakeTokenizer()
        self.resolved = types.SimpleNamespace(source="local", path=None)
        self.lock = threading.RLock()
        self.table, self.batch, self.generate_fn = table, batch, generate_fn
        self.logprob_fn, self.encode_fn = logprob_fn, encode_fn
        self.engine = FakeEngine(identity, table=table, batch=batch, generate_fn=generate_fn, logprob_fn=logprob_fn)
        self.calls = 0
        self.requests: list[tuple[str, str]] = []
        self.prompts: list[str] = []
        self.max_tokens: list[int] = []

    # --- what a loaded session offers
    def load(self, progress=None) -> "FakeSession":
        return self

    def model_identity(self) -> dict:
        return {"engine": "fake", "model": self.identity, "adapter_sha256": None}

    def encode(self, text: str) -> list:
        return self.encode_fn(text) if self.encode_fn else text.split()

    def encode_pair(self, context: str, continuation: str) -> tuple[list, list]:
        return self.encode(context), self.encode(continuation)

    def apply_chat(self, text: str, system: str | None = None) -> str:
        return text

    def attach_adapter(self, path: str) -> None:
        self.adapter = path

    def detach_adapter(self) -> None:
        self.adapter = None

    # --- scoring and generation, through the engine protocol
    def logprob(self, context: str, continuation: str) -> float:
        return self.engine.logprob(context, continuation)

    def encode_pairs(self, requests: Sequence[tuple[str, str]]) -> list[tuple[list, list]]:
        return [([c], [x]) for c, x in requests]

    def loglikelihood(self, requests: Sequence[tuple[str, str]], *, progress=None, cancel=None,
                      prefix_cache: bool = True) -> list[LogLik]:
        self.calls += 1
        self.requests += list(requests)
        return self.engine.score(self.encode_pairs(requests), progress=progress, cancel=cancel)

    def generate(self, prompts: Sequence[str], *, max_new_tokens: int = 32, temperature: float = 0.0,
                 top_p: float = 1.0, stop: Sequence[str] | None = None, seed: int = 0, batch_size: int = 8,
                 progress=None, cancel=None, prefix_reuse: bool = True) -> list[Generation]:
        self.prompts += list(prompts)
        self.max_tokens += [max_new_tokens] * len(prompts)
        options = GenOptions(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                             stop=tuple(stop or ()), seed=seed, batch_size=batch_size, prefix_reuse=prefix_reuse)
        return self.engine.generate(prompts, options, progress=progress, cancel=cancel)
