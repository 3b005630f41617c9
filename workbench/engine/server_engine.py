"""The engine for an OpenAI-compatible inference server (vLLM, SGLang, llama-cpp-python).

    ServerEngine(client, tokenizer, name=..., hf_tokenizer=...).score([(ctx_ids, cont_ids)])

`client` is remote.RemoteEngine (HTTP, retries, the response cache, the connect-time checks);
this class turns its answers into the protocol's LogLik and Generation. Scoring sends the
locally tokenized ids (the server echoes their log-probs); generation sends chat prompts to
/v1/chat/completions with their messages and the rest to /v1/completions.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

from workbench.engine.protocol import (CancelFn, ChatPrompt, GenOptions, Generation, LogLik, ProgressFn, TokenPair,
                                       cut_at_stop, model_identity)
from workbench.errors import ModelError


class ServerEngine:
    kind = "remote"

    @classmethod
    def connect(cls, model: str, cfg, load_tokenizer: Callable[[str], Any], say=lambda msg: None) -> "ServerEngine":
        """Connect to the server `model` names ("openai:URL[#name]") with a session's options
        `cfg` (SessionConfig); `load_tokenizer(folder)` loads the local tokenizer. Runs the
        tokenizer and echo checks (remote.py), so a wrong tokenizer fails here, not in a job."""
        from workbench.engine.encoding import encode
        from workbench.engine.remote import RemoteConfig, RemoteEngine, tokenizer_folder

        client = RemoteEngine(model, RemoteConfig(concurrency=cfg.concurrency, timeout_s=cfg.request_timeout,
                                                  max_retries=cfg.max_retries, cache=cfg.response_cache))
        say(f"connecting to {client.base_url}")
        try:
            client.connect()
            folder = tokenizer_folder(cfg.tokenizer, client)
            say(f"loading the tokenizer from {folder}")
            tok = load_tokenizer(folder)
            client.check_tokenizer(lambda text: encode(tok, text))
            client.check_echo(lambda text: encode(tok, text), lambda text: tok.encode(text, add_special_tokens=False))
        except BaseException:
            client.close()
            raise
        eng = cls(client, tok, name=client.identity, hf_tokenizer=lambda: tok)
        eng.folder = folder
        return eng

    def __init__(self, client, tokenizer, *, name: str, hf_tokenizer: Callable[[], Any]):
        self.client = client            # remote.RemoteEngine
        self._tok = tokenizer           # the local scoring tokenizer
        self._hf_tokenizer = hf_tokenizer
        self.name = name                # the served model's identity (URL#served-name)
        self.folder: str | None = None  # the local tokenizer's folder

    @property
    def max_length(self) -> int | None:
        return self.client.max_model_len

    def describe(self) -> dict:
        return self.client.describe()

    def close(self) -> None:
        self.client.close()

    @property
    def tokenizer(self):
        return self._tok

    def identity(self) -> dict:
        # no adapter (a served adapter is its own served name) and no local device or dtype
        return model_identity(self.kind, self.name, dtype="server", device="remote", adapter_sha256=None)

    def score(self, requests: Sequence[TokenPair], *, progress: ProgressFn | None = None,
              cancel: CancelFn | None = None, prefix_cache: bool = True) -> list[LogLik]:
        for i, (_, cont) in enumerate(requests):
            if not cont:
                raise ModelError(f"Request {i} has an empty continuation after tokenization.",
                                 hint="Every answer choice must contain some text.")
        scored = self.client.score(requests, progress=progress, cancel=cancel)
        return [LogLik(lp, greedy, len(cont)) for (lp, greedy), (_, cont) in zip(scored, requests)]

    def generate(self, prompts: Sequence[str], options: GenOptions, *, progress: ProgressFn | None = None,
                 cancel: CancelFn | None = None) -> list[Generation]:
        # Chat prompts go to /v1/chat/completions with their messages, the rest to /v1/completions.
        # (Scoring never does: chat endpoints cannot echo prompt log-probs, so a chat template is
        # scored over the locally rendered text's token ids; docs/SERVING.md.)
        o = options
        stop = [s for s in o.stop if s]
        kw = dict(max_tokens=o.max_new_tokens, temperature=o.temperature, top_p=o.top_p, stop=stop,
                  seed=o.seed if o.temperature > 0 else None, cancel=cancel)
        chat = [i for i, p in enumerate(prompts) if isinstance(p, ChatPrompt)]
        plain = [i for i, p in enumerate(prompts) if not isinstance(p, ChatPrompt)]
        outs: list[dict | None] = [None] * len(prompts)
        batches = [(plain, [str(prompts[i]) for i in plain], self.client.complete, 0),
                   (chat, [prompts[i].messages for i in chat], self.client.chat, len(plain))]
        for idx, payload, send, start in batches:
            if not idx:
                continue
            bar = (lambda n, _t, start=start: progress(start + n, len(prompts))) if progress else None
            for i, out in zip(idx, send(payload, progress=bar, **kw)):
                outs[i] = out
        tok = self._hf_tokenizer()
        return [server_generation(out, stop, tok) for out in outs]


def server_generation(o: dict, stop: list[str], tok) -> Generation:
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
