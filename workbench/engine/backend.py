"""The scoring-backend protocol: what every engine that scores and generates provides.

    b = backend_for(get_session("default"))               # native fast path or transformers+peft
    b = backend_for(get_session("openai:http://h:8000/v1"))   # remote (vLLM, SGLang, ...)
    b.loglikelihood([("Topic:", " sport"), ...])          # -> [LogLik]
    b.generate([GenRequest("Q: ...\\nA:", max_new_tokens=16, stop=["\\n"])])   # -> [Generation]
    b.tokenizer                                            # the tokenizer scoring uses
    b.identity()   # {"engine", "model", "dtype", "device_kind", "adapter", ...}: part of a run's identity

Three implementations, one per engine:
  * NativeBackend: the built-in Llama decoder (llama_native.py), verified against transformers
    per model and dtype (fastpath.py), fp32; scoring only, generation goes through transformers;
  * TransformersBackend: transformers + peft (adapters attach here);
  * RemoteBackend: an OpenAI-compatible server (remote.py), tokenizer local.
They are thin: `ModelSession` (session.py) owns the model, the lock and the scoring conventions
(lm-eval's tokenization of context/continuation), so the jobs, which take a session, work
unchanged on every engine. `backend_for` says which one a session is using right now (a
session on the fast path becomes a transformers one while an adapter is attached).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence, runtime_checkable

from workbench.engine.session import Generation, LogLik, ModelSession


@dataclass
class GenRequest:
    prompt: str = field(metadata={"help": "the full prompt text"})
    max_new_tokens: int = field(default=32, metadata={"help": "most tokens to generate"})
    stop: list[str] = field(default_factory=list, metadata={"help": "cut before the first of these"})
    temperature: float = field(default=0.0, metadata={"help": "0 = greedy"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling when temperature > 0"})
    seed: int = field(default=0, metadata={"help": "sampling seed"})


@runtime_checkable
class Backend(Protocol):
    def loglikelihood(self, requests: Sequence[tuple[str, str]], *, progress=None, cancel=None) -> list[LogLik]: ...

    def generate(self, requests: Sequence[GenRequest], *, progress=None, cancel=None) -> list[Generation]: ...

    @property
    def tokenizer(self): ...

    def identity(self) -> dict: ...


class _SessionBackend:
    engine = "?"

    def __init__(self, session: ModelSession):
        self.session = session.load()

    def loglikelihood(self, requests, *, progress=None, cancel=None, prefix_cache: bool = True) -> list[LogLik]:
        return self.session.loglikelihood(requests, progress=progress, cancel=cancel, prefix_cache=prefix_cache)

    def generate(self, requests: Sequence[GenRequest], *, progress=None, cancel=None) -> list[Generation]:
        """Requests with the same settings go to the session together (one batch each)."""
        out: list[Generation | None] = [None] * len(requests)
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault((r.max_new_tokens, tuple(r.stop), r.temperature, r.top_p, r.seed), []).append(i)
        for (mnt, stop, temp, top_p, seed), idx in groups.items():
            gens = self.session.generate([requests[i].prompt for i in idx], max_new_tokens=mnt, stop=list(stop),
                                         temperature=temp, top_p=top_p, seed=seed, cancel=cancel)
            for i, g in zip(idx, gens):
                out[i] = g
        if progress:
            progress(len(requests), len(requests))
        return out  # type: ignore[return-value]

    @property
    def tokenizer(self):
        return self.session.scoring_tokenizer()

    def identity(self) -> dict:
        # the session's reuse identity (adapter by content hash, scoring version), this backend's name
        return {**self.session.model_identity(), "backend": self.engine}


class NativeBackend(_SessionBackend):
    engine = "native"


class TransformersBackend(_SessionBackend):
    engine = "transformers"


class RemoteBackend(_SessionBackend):
    engine = "remote"

    def identity(self) -> dict:
        eng = self.session.remote
        return {"engine": "remote", "model": self.session.identity, "dtype": "server", "device_kind": "remote",
                "adapter": None, "base_url": eng.base_url, "served_name": eng.served_name, "root": eng.root,
                "tokenizer": self.session.resolved.path}

    def chat(self, conversations: Sequence[list[dict]], *, max_new_tokens: int = 32, stop=None,
             temperature: float = 0.0, progress=None, cancel=None) -> list[Generation]:
        """Chat completions: the server applies its own chat template to the messages."""
        from workbench.engine.session import _remote_generation

        stop = [s for s in (stop or []) if s]
        outs = self.session.remote.chat(conversations, max_tokens=max_new_tokens, stop=stop, temperature=temperature,
                                        progress=progress, cancel=cancel)
        return [_remote_generation(o, stop, self.session.tokenizer) for o in outs]


def backend_for(session: ModelSession) -> Backend:
    """The backend a session scores with now: remote, native (fast path) or transformers."""
    kind = session.load().backend
    return {"remote": RemoteBackend, "native": NativeBackend}.get(kind, TransformersBackend)(session)


def model_identity(session: ModelSession) -> dict:
    """The engine-aware model identity of a session (for run specs and reuse keys)."""
    return backend_for(session).identity()


def _device_kind(device: str | None) -> str:
    d = (device or "cpu").split(":")[0]
    return d
