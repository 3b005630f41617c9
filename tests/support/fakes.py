"""Fast stand-ins for `engine.session.ModelSession` in unit tests: the real session's method
names, keyword-only arguments and result types (LogLik, Generation), with deterministic numbers
instead of a model. Every behaviour checked with a fake also has a real-model test beside it.

    FakeSession()                          # pseudo log-likelihoods from a hash of (context, continuation)
    FakeSession(table={(ctx, cont): p})    # log p looked up in a table (worked-out cases by hand)
    FakeSession(batch=7)                   # progress after every 7 requests, as the prefix-tree scorer reports
    FakeSession(logprob_fn=lambda ctx, cont: -len(cont), encode_fn=list)   # any scoring rule, tokens
    s.calls, s.requests                    # what was asked
"""
from __future__ import annotations

import hashlib
import math
import types
from typing import Callable, Sequence

from workbench.engine.session import Generation, LogLik


def hashed_logprob(context: str, continuation: str) -> float:
    """A deterministic pseudo log-probability in (-5, 0] for one request."""
    h = int(hashlib.sha256(f"{context}|{continuation}".encode()).hexdigest()[:8], 16) / 2**32
    return -5 * h


class FakeSession:
    """The ModelSession protocol the jobs use (load, model_identity, identity, encode,
    encode_pair, apply_chat, loglikelihood, generate) without a model."""

    def __init__(self, identity: str = "fake-model@1", *, table: dict[tuple[str, str], float] | None = None,
                 batch: int | None = None, generate_fn: Callable[[str], str] | None = None,
                 logprob_fn: Callable[[str, str], float] | None = None, encode_fn: Callable[[str], list] | None = None):
        self.config = types.SimpleNamespace(model="fake")
        self.identity = identity
        self.adapter = None
        self.device, self.dtype = "cpu", "float32"
        self.backend = "fake"
        self.table, self.batch, self.generate_fn = table, batch, generate_fn
        self.logprob_fn, self.encode_fn = logprob_fn, encode_fn
        self.calls = 0
        self.requests: list[tuple[str, str]] = []
        self.prompts: list[str] = []

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

    # --- scoring and generation
    def logprob(self, context: str, continuation: str) -> float:
        if self.logprob_fn is not None:
            return self.logprob_fn(context, continuation)
        if self.table is not None:
            return math.log(self.table[(context, continuation)])
        return hashed_logprob(context, continuation)

    def loglikelihood(self, requests: Sequence[tuple[str, str]], *, progress=None, cancel=None,
                      prefix_cache: bool = True) -> list[LogLik]:
        self.calls += 1
        self.requests += list(requests)
        out = [LogLik(self.logprob(c, x), False, 1) for c, x in requests]
        if progress:
            n = len(requests)
            step = self.batch or n or 1
            for i in range(n):
                if (i + 1) % step == 0 or i + 1 == n:
                    progress(i + 1, n)
        return out

    def generate(self, prompts: Sequence[str], *, max_new_tokens: int = 32, temperature: float = 0.0,
                 top_p: float = 1.0, stop: Sequence[str] | None = None, seed: int = 0, batch_size: int = 8,
                 progress=None, cancel=None, prefix_reuse: bool = True) -> list[Generation]:
        self.prompts += list(prompts)
        out = []
        for p in prompts:
            text = self.generate_fn(p) if self.generate_fn else " fake"
            reason = "length"
            for s in stop or []:
                if s and s in text:
                    text, reason = text[:text.index(s)], "stop"
            out.append(Generation(text, len(text.split()), reason))
        if progress:
            progress(len(prompts), len(prompts))
        return out
