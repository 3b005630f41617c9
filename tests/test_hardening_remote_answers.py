"""Issue 29 item 3: the remote engine checks every answer before using or caching it.

A fake OpenAI-compatible server, started in the test on loopback, answers scoring requests
right, or wrong in each of the ways the issue found (a list one short, one extra entry at the
front, NaN, -inf, +7.5, `true`, a string). Each wrong answer must be refused with the server's
URL and what was wrong, and must not poison the response cache."""
from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from workbench.errors import ModelError

# log p(token j | tokens < j) of the fake model: position j of any prompt
TRUE_LP = {1: -0.5, 2: -1.0, 3: -2.5}


class FakeServer:
    def __init__(self):
        self.mode = "good"
        self.requests = 0
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def _send(self, obj):
                raw = json.dumps(obj).encode()   # json writes NaN / -Infinity as Python reads them
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self):
                self._send({"data": [{"id": "fake", "root": "fake", "owned_by": "test"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                outer.requests += 1
                prompts = body["prompt"] if body["prompt"] and isinstance(body["prompt"][0], list) else [body["prompt"]]
                self._send({"choices": [{"index": i, "text": "x", "logprobs": outer.logprobs(p)}
                                        for i, p in enumerate(prompts)]})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def logprobs(self, ids):
        tl = [None] + [TRUE_LP[j] for j in range(1, len(ids))] + [-0.1]   # the prompt, then one generated token
        m = self.mode
        if m == "short":
            tl = tl[:-2]
        elif m == "front":
            tl = [-3.5] + tl
        elif m in ("nan", "neginf", "positive", "true", "string"):
            tl[-2] = {"nan": math.nan, "neginf": -math.inf, "positive": 7.5, "true": True, "string": "-1.0"}[m]
        return {"token_logprobs": tl, "tokens": [f"t{i}" for i in range(len(tl))]}

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake():
    srv = FakeServer()
    yield srv
    srv.close()


PAIRS = [([5, 6, 7], [8]), ([5, 6], [7])]
TRUE = [TRUE_LP[3], TRUE_LP[2]]


def _engine(url):
    from workbench.engine.remote import RemoteEngine

    return RemoteEngine(f"openai:{url}").connect()


@pytest.mark.parametrize("mode,what", [("short", "log-probabilities for"), ("front", "null|log-probabilities for"),
                                       ("nan", "NaN"), ("neginf", "infinity"), ("positive", "at most 0"),
                                       ("true", "not a number"), ("string", "not a number")])
def test_wrong_scores_are_refused_and_not_cached(fake, mode, what):
    eng = _engine(fake.url)
    assert [round(s, 6) for s, _ in eng.score(PAIRS)] == TRUE        # a right server: the true scores
    eng.close()
    from workbench.storage.response_cache import ResponseCache

    ResponseCache().clear()
    fake.mode = mode
    eng = _engine(fake.url)
    with pytest.raises(ModelError) as e:
        eng.score(PAIRS)
    assert fake.url in e.value.message, e.value.message
    import re

    assert re.search(what, e.value.message), e.value.message
    eng.close()
    # the server fixed: the same request gets the true scores, nothing wrong came from the cache
    fake.mode = "good"
    eng = _engine(fake.url)
    before = fake.requests
    assert [round(s, 6) for s, _ in eng.score(PAIRS)] == TRUE
    assert fake.requests > before
    eng.close()


def test_a_wrong_answer_already_in_the_cache_is_asked_again(fake):
    """An older version cached answers unchecked: such an entry is not reused."""
    fake.mode = "nan"
    eng = _engine(fake.url)
    # poison the cache as the old code did: store the server's raw (NaN) answer under the request's key
    body = eng._score_body([5, 6, 7, 8])
    raw = {"choices": [{"index": 0, "text": "x", "logprobs": fake.logprobs([5, 6, 7, 8])}]}
    cache = eng._cache_store()
    cache.put(cache.key(f"{eng.identity}|{eng.root}", "/v1/completions", body), f"{eng.identity}|{eng.root}",
              "/v1/completions", raw)
    fake.mode = "good"
    before = fake.requests
    assert round(eng.score([([5, 6, 7], [8])])[0][0], 6) == TRUE_LP[3]
    assert fake.requests == before + 1
    eng.close()


def test_completion_answers_are_checked(fake):
    from workbench.engine.remote_checks import check_completion_response

    with pytest.raises(ModelError, match="not a string"):
        check_completion_response({"choices": [{"index": 0, "text": 5}]}, 1, fake.url)
    with pytest.raises(ModelError, match="2 choices for 1"):
        check_completion_response({"choices": [{"text": "a"}, {"text": "b"}]}, 1, fake.url)
    assert check_completion_response({"choices": [{"index": 0, "text": "ok"}]}, 1, fake.url)[0]["text"] == "ok"
