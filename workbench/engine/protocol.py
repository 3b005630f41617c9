"""The engine protocol: what every way of running a model offers, in the style of lm-eval's `LM`.

    eng.score([(ctx_ids, cont_ids), ...])            # -> [LogLik(logprob, greedy, n_tokens)]
    eng.generate(["Q: ...\\nA:"], GenOptions(max_new_tokens=32, stop=["\\n"]))   # -> [Generation]
    eng.tokenizer                                    # the scoring tokenizer (encode, decode, special ids)
    eng.identity()                                   # model_identity(...): part of every reuse key

Engines (one class each): `NativeEngine` (the verified built-in Llama decoder, local_engines.py),
`TransformersEngine` (transformers, with a peft adapter if one is attached, local_engines.py) and
`ServerEngine` (an OpenAI-compatible server, server_engine.py). `CachingEngine` (caching.py) wraps
any of them. `ModelSession` (session.py) owns loading, the session cache and adapters, and hands
every score and generation to its current engine; it never branches on which engine that is.

Score requests are token pairs, not strings: tokenization follows lm-eval's conventions once, in
encoding.py, for every engine (a server engine tokenizes locally too, so the continuation's
boundary is exact).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol, Sequence, runtime_checkable

ProgressFn = Callable[[int, int], None]   # (done, total)
CancelFn = Callable[[], bool]
TokenPair = tuple[Sequence[int], Sequence[int]]   # (context ids, continuation ids)

# Part of every model identity, so of every reuse key: bump it whenever a change to the scoring
# code (tokenization, truncation, normalisation, calibration) can change a prediction, and stored
# results from the older code are never reused for the newer.
SCORING_VERSION = 2

# The identity's "engine" field per engine kind. The built-in decoder and transformers share
# "local" on purpose: fastpath.py verifies per model that both give the same log-probs, so a
# result of one may be reused for the other. These values are in stored reuse keys: keep them.
IDENTITY_FAMILY = {"native": "local", "transformers": "local", "remote": "openai"}


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


@dataclass(frozen=True)
class GenOptions:
    """One generation request's settings (the same for every prompt of a call)."""

    max_new_tokens: int = 32
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = field(default=())
    seed: int = 0
    batch_size: int = 8            # local engines: prompts per generate() batch
    prefix_reuse: bool = True      # local engines: run the prompts' shared token prefix once

    @property
    def deterministic(self) -> bool:
        """Greedy decoding: the same prompt always gives the same text (what a cache may keep)."""
        return self.temperature <= 0

    def result_fields(self) -> dict:
        """The settings that can change a generation (a cache key's part): not batching or reuse."""
        return {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature, "top_p": self.top_p,
                "stop": list(self.stop), "seed": self.seed}


class ChatPrompt(str):
    """A chat template's prompt: the text the local tokenizer's chat template renders, which is
    what scoring tokenizes and what is stored and shown, plus the `messages` it was rendered
    from. A str subclass, so every consumer of prompts (scoring, token counts, records) works
    unchanged; only the server engine looks at `messages`, to send them to the server's
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


@runtime_checkable
class Engine(Protocol):
    """What ModelSession (and a test fake) needs from a way of running a model."""

    kind: str   # "native" | "transformers" | "remote" | "fake": what runs the requests (session.backend)

    @property
    def tokenizer(self): ...   # the scoring tokenizer: encode, batch __call__, decode, special-token ids

    def identity(self) -> dict: ...   # model_identity(...) of what this engine runs now

    def score(self, requests: Sequence[TokenPair], *, progress: ProgressFn | None = None,
              cancel: CancelFn | None = None, prefix_cache: bool = True) -> list[LogLik]: ...

    def generate(self, prompts: Sequence[str], options: GenOptions, *, progress: ProgressFn | None = None,
                 cancel: CancelFn | None = None) -> list[Generation]: ...


def model_identity(kind: str, model: str, *, dtype: str, device: str | None, adapter_sha256: str | None) -> dict:
    """Everything about the model that can change a prediction: part of every reuse key
    (workbench.core.spec.eval_key). The one place an identity is built, for every engine."""
    return {"engine": IDENTITY_FAMILY.get(kind, kind), "model": model, "dtype": dtype,
            "device_kind": (device or "cpu").split(":")[0], "adapter_sha256": adapter_sha256,
            "scoring_version": SCORING_VERSION}


def cut_at_stop(text: str, stop: Iterable[str]) -> tuple[str, str]:
    """Cut `text` before the earliest stop string; return (text, "stop" | "")."""
    cut = None
    for s in stop:
        j = text.find(s)
        if j != -1 and (cut is None or j < cut):
            cut = j
    return (text[:cut], "stop") if cut is not None else (text, "")
