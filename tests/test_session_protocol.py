"""The engine protocol (engine/protocol.py): every engine class satisfies it, the caching wrapper
works for any engine, and a model identity is built in one place. Fast tests with fakes, and one
real-model test: the session's engine and the cache give the session's own numbers."""
from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from tests.support.fakes import FakeEngine, FakeSession, FakeTokenizer
from workbench.engine.caching import CachedSession, CachingEngine, MemoryStore
from workbench.engine.local_engines import LocalWeights, NativeEngine, TransformersEngine
from workbench.engine.protocol import Engine, GenOptions, LogLik, model_identity
from workbench.engine.server_engine import ServerEngine
from workbench.errors import ModelError


class Counting:
    """An engine that counts what reaches it (wrapped around a FakeEngine)."""

    def __init__(self, inner):
        self.inner, self.kind, self.scored, self.generated = inner, inner.kind, [], []

    @property
    def tokenizer(self):
        return self.inner.tokenizer

    def identity(self):
        return self.inner.identity()

    def score(self, requests, **kw):
        self.scored += list(requests)
        return self.inner.score(requests, **kw)

    def generate(self, prompts, options, **kw):
        self.generated += list(prompts)
        return self.inner.generate(prompts, options, **kw)


def _weights() -> LocalWeights:
    return LocalWeights(model=None, native=None, tokenizer=FakeTokenizer(), hf_tokenizer=FakeTokenizer,
                        name="m@1", device="cuda:0", dtype_name="float32", adapter_sha256="abc", max_length=2048,
                        token_budget=2048, max_batch=64)


class StubClient:
    """The few remote.RemoteEngine calls ServerEngine makes, answered from a table."""

    max_model_len = 4096

    def score(self, pairs, progress=None, cancel=None):
        return [(-1.5 * len(x), True) for _, x in pairs]

    def complete(self, prompts, progress=None, **kw):
        return [{"text": f"{p} out\nmore", "finish_reason": "stop", "completion_tokens": 3} for p in prompts]

    def chat(self, convs, progress=None, **kw):
        return [{"text": "chat", "finish_reason": "stop"} for _ in convs]


def test_every_engine_class_satisfies_the_protocol():
    w = _weights()
    engines = [NativeEngine(w, lambda: TransformersEngine(w)), TransformersEngine(w),
               ServerEngine(StubClient(), FakeTokenizer(), name="openai:http://h/v1#m", hf_tokenizer=FakeTokenizer),
               FakeEngine(), CachingEngine(FakeEngine())]
    for eng in engines:
        assert isinstance(eng, Engine), type(eng).__name__
        for name in ("score", "generate"):   # the protocol's keywords, same in every class
            params = inspect.signature(getattr(eng, name)).parameters
            assert {"progress", "cancel"} <= set(params), (type(eng).__name__, name)
    assert [e.kind for e in engines[:4]] == ["native", "transformers", "remote", "fake"]
    assert isinstance(FakeSession().engine, Engine)


def test_one_identity_builder_for_every_engine():
    w = _weights()
    native, hf = NativeEngine(w, lambda: None).identity(), TransformersEngine(w).identity()
    # the built-in decoder and transformers share an identity: fastpath.py verifies they agree
    assert native == hf == model_identity("native", "m@1", dtype="float32", device="cuda:0", adapter_sha256="abc")
    assert native["engine"] == "local" and native["device_kind"] == "cuda" and native["adapter_sha256"] == "abc"
    server = ServerEngine(StubClient(), FakeTokenizer(), name="openai:http://h/v1#m", hf_tokenizer=FakeTokenizer)
    ident = server.identity()
    assert ident["engine"] == "openai" and ident["model"] == "openai:http://h/v1#m" and ident["adapter_sha256"] is None
    assert set(ident) == set(native)


def test_server_client_describes_itself_with_the_identity_engine_name():
    from workbench.engine.remote import RemoteEngine

    assert RemoteEngine("openai:http://127.0.0.1:9/v1#m").describe()["engine"] == "openai"


def test_session_module_has_no_engine_branches():
    src = Path(__file__).resolve().parents[1].joinpath("workbench/engine/session.py").read_text()
    assert "self.remote" not in src and "remote_generate" not in src and "remote_loglikelihood" not in src
    assert src.count("self._server is not None") <= 8   # chosen once; the rest are "needs local weights"


def test_server_engine_turns_answers_into_the_protocol_types():
    eng = ServerEngine(StubClient(), FakeTokenizer(), name="openai:http://h/v1#m", hf_tokenizer=FakeTokenizer)
    assert eng.score([([1, 2], [3, 4])]) == [LogLik(-3.0, True, 2)]
    with pytest.raises(ModelError, match="empty continuation"):
        eng.score([([1], [])])
    from workbench.engine.protocol import ChatPrompt

    outs = eng.generate(["a", ChatPrompt("b", [{"role": "user", "content": "b"}])], GenOptions(stop=("\n",)))
    assert [(o.text, o.stop_reason) for o in outs] == [("a out", "stop"), ("chat", "stop")]


def test_caching_engine_runs_each_request_once_per_identity():
    inner = Counting(FakeEngine())
    cached = CachingEngine(inner)
    reqs = [(["ctx"], [" a"]), (["ctx"], [" b"]), (["ctx"], [" a"])]      # one request asked twice
    first = cached.score(reqs)
    assert len(inner.scored) == 2                                        # the duplicate ran once
    assert cached.score(reqs) == first and len(inner.scored) == 2        # all hits
    assert first == FakeEngine().score(reqs)                             # the inner engine's numbers
    inner.inner.adapter_sha256 = "new adapter"                           # another identity: no hits
    cached.score(reqs[:1])
    assert len(inner.scored) == 3


def test_caching_engine_keeps_greedy_generations_only():
    inner = Counting(FakeEngine(generate_fn=lambda p: " one two three"))
    cached = CachingEngine(inner)
    greedy, sampled = GenOptions(max_new_tokens=2), GenOptions(max_new_tokens=2, temperature=0.7)
    a = cached.generate(["p", "q"], greedy)
    assert cached.generate(["q", "p"], greedy) == a[::-1] and inner.generated == ["p", "q"]
    cached.generate(["p"], GenOptions(max_new_tokens=3))                  # another setting: a miss
    cached.generate(["p"], sampled), cached.generate(["p"], sampled)      # sampling: never cached
    assert inner.generated == ["p", "q", "p", "p", "p"]
    assert a[0].text == " one two" and a[0].stop_reason == "length"


def test_caching_engine_persists_in_the_response_cache(tmp_path):
    from workbench.storage.response_cache import ResponseCache

    reqs = [(["ctx"], [" a"]), (["ctx"], [" b"])]
    store = ResponseCache(tmp_path / "r.sqlite")
    first = CachingEngine(FakeEngine(), store).score(reqs)
    store.close()
    inner = Counting(FakeEngine())
    again = ResponseCache(tmp_path / "r.sqlite")
    assert CachingEngine(inner, again).score(reqs) == first and inner.scored == []
    assert again.hits == 2
    again.close()


def test_cached_session_is_the_session_with_repeats_free():
    s = FakeSession()
    inner = Counting(s.engine)
    s.engine = inner
    cached = CachedSession(s, MemoryStore())
    reqs = [("Topic:", " a"), ("Topic:", " b")]
    assert cached.loglikelihood(reqs) == s.loglikelihood(reqs)           # the session's own numbers
    cached.loglikelihood(reqs)
    assert len(inner.scored) == 2 + 2                                    # once via the cache, once direct
    assert cached.identity == s.identity and cached.model_identity() == s.model_identity()


@pytest.mark.model
def test_real_session_engine_and_cache_give_the_session_numbers(session):
    eng = session.engine
    assert isinstance(eng, Engine) and eng.kind == session.backend
    assert session.model_identity() == eng.identity()
    reqs = [("Headline: Oil prices rise\nTopic:", " business"), ("Headline: Oil prices rise\nTopic:", " sport")]
    direct = session.loglikelihood(reqs)
    cached = CachedSession(session)
    assert cached.loglikelihood(reqs) == direct
    before = session.stats["tokens"]
    assert cached.loglikelihood(reqs) == direct and session.stats["tokens"] == before   # no forward pass
    full = session._pick_engine(full_logits=True)
    assert isinstance(full, TransformersEngine)
    assert [round(r.logprob, 3) for r in full.score(session.encode_pairs(reqs))] == \
        [round(r.logprob, 3) for r in direct]
