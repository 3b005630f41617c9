"""A cache around any engine: a request already answered for the same model identity is not run again.

    eng = CachingEngine(session.engine)                      # in memory, for one job
    eng = CachingEngine(session.engine, ResponseCache())     # kept in SQLite across runs
    eng.score(pairs); eng.generate(prompts, GenOptions())    # misses go to the inner engine, once each
    cached = CachedSession(session)                          # the session's API, its requests through the cache

The key is the inner engine's `identity()` (model, adapter hash, dtype, scoring version: what can
change a result) plus the exact request: token ids for a score, the prompt (and a chat prompt's
messages) and the result-changing settings for a generation. Only greedy generations are cached:
a sampled one is meant to differ between calls. The identity is read on every call, so attaching
an adapter never hits entries of the bare model. As lm-eval's CachingLM, this is a wrapper, not a
feature of any engine. (A server engine also caches its raw HTTP answers, remote.py, so that a
run that died halfway resumes request by request; this cache is a level above, in results.)
"""
from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import asdict
from typing import Callable, Sequence

from workbench.engine.protocol import (CancelFn, Engine, GenOptions, Generation, LogLik, ProgressFn,
                                       TokenPair)


class MemoryStore:
    """The store interface (get, put) in a dict: for one job's run."""

    def __init__(self):
        self._d: dict[str, dict] = {}
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: str) -> dict | None:
        with self._lock:
            out = self._d.get(key)
            if out is None:
                self.misses += 1
            else:
                self.hits += 1
            return out

    def put(self, key: str, identity: str, endpoint: str, value: dict) -> None:
        with self._lock:
            self._d[key] = value

    def __len__(self) -> int:
        return len(self._d)


def _key(identity: str, kind: str, request) -> str:
    blob = json.dumps([identity, kind, request], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


class CachingEngine:
    """An Engine whose answers come from `store` (MemoryStore, or storage.response_cache.ResponseCache)
    when it has them, and from `inner` otherwise."""

    def __init__(self, inner: Engine, store=None):
        self.inner = inner
        self.store = store if store is not None else MemoryStore()
        self.kind = inner.kind

    @property
    def tokenizer(self):
        return self.inner.tokenizer

    def identity(self) -> dict:
        return self.inner.identity()

    def _ident(self) -> str:
        return json.dumps(self.inner.identity(), sort_keys=True)

    def _through(self, what: str, ident: str, keys: list[str], items: Sequence, make: Callable, run: Callable,
                 progress: ProgressFn | None) -> list:
        """The one cache walk of score and generate: answer hits from the store, run each missing
        key once (a request asked twice runs once) through `run`, store what it gives, and fill
        every position; `make` rebuilds a stored entry's result object."""
        out: list = [None] * len(items)
        todo: dict[str, list[int]] = {}     # key -> positions
        for i, k in enumerate(keys):
            hit = self.store.get(k) if k not in todo else None
            if hit is not None:
                out[i] = make(**hit)
            else:
                todo.setdefault(k, []).append(i)
        if todo:
            fresh = run([items[pos[0]] for pos in todo.values()])
            for (k, pos), r in zip(todo.items(), fresh):
                self.store.put(k, ident, what, asdict(r))
                for i in pos:
                    out[i] = r
        elif progress:
            progress(len(items), len(items))
        return out

    def score(self, requests: Sequence[TokenPair], *, progress: ProgressFn | None = None,
              cancel: CancelFn | None = None, prefix_cache: bool = True) -> list[LogLik]:
        ident = self._ident()
        keys = [_key(ident, "score", [list(c), list(x)]) for c, x in requests]
        return self._through("score", ident, keys, requests, LogLik, lambda todo: self.inner.score(
            todo, progress=progress, cancel=cancel, prefix_cache=prefix_cache), progress)

    def generate(self, prompts: Sequence[str], options: GenOptions, *, progress: ProgressFn | None = None,
                 cancel: CancelFn | None = None) -> list[Generation]:
        if not options.deterministic:
            return self.inner.generate(prompts, options, progress=progress, cancel=cancel)
        ident = self._ident()
        fields = options.result_fields()
        keys = [_key(ident, "generate", [str(p), getattr(p, "messages", None), fields]) for p in prompts]
        return self._through("generate", ident, keys, prompts, Generation, lambda todo: self.inner.generate(
            todo, options, progress=progress, cancel=cancel), progress)


class CachedSession:
    """A session whose loglikelihood and generate go through a CachingEngine over its engine; every
    other attribute is the session's. For a job that asks the same requests again (a search's
    candidates that differ only in calibration), with any engine."""

    def __init__(self, session, store=None):
        self._inner = session
        self._store = store if store is not None else MemoryStore()

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def _engine(self) -> CachingEngine:
        # built per call: the session's engine changes with its adapter (and the key with it)
        return CachingEngine(self._inner.engine, self._store)

    def loglikelihood(self, requests: Sequence[tuple[str, str]], *, progress: ProgressFn | None = None,
                      cancel: CancelFn | None = None, prefix_cache: bool = True) -> list[LogLik]:
        pairs = self._inner.encode_pairs(requests)
        return self._engine().score(pairs, progress=progress, cancel=cancel, prefix_cache=prefix_cache)

    def generate(self, prompts: Sequence[str], *, max_new_tokens: int = 32, temperature: float = 0.0,
                 top_p: float = 1.0, stop: Sequence[str] | None = None, seed: int = 0, batch_size: int = 8,
                 progress: ProgressFn | None = None, cancel: CancelFn | None = None,
                 prefix_reuse: bool = True) -> list[Generation]:
        options = GenOptions(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                             stop=tuple(s for s in (stop or []) if s), seed=seed, batch_size=batch_size,
                             prefix_reuse=prefix_reuse)
        return self._engine().generate(prompts, options, progress=progress, cancel=cancel)

