"""The remote engine: score and generate through an OpenAI-compatible inference server.

    eng = RemoteEngine("openai:http://127.0.0.1:8000/v1#my-model").connect()
    eng.check_tokenizer(encode)                  # the server tokenizes a probe as we do
    eng.check_echo(encode, encode_plain)         # prompt log-probs are there and not off by one
    eng.score([(ctx_ids, cont_ids), ...])        # -> [(sum logprob, greedy), ...]
    eng.complete(["Q: ...\\nA:"], max_tokens=32, stop=["\\n"])   # -> [{"text", "finish_reason", ...}]

Users select it with `--model openai:http://HOST:PORT/v1[#served-name]` (server_engine.ServerEngine wraps it;
the tokenizer stays local, `--tokenizer`). The servers it is written for are vLLM and SGLang
(GPU engines: tensor parallelism, Ray across nodes) and llama-cpp-python (generation only).
The workbench writes no serving code: scale comes from the engine.

Scoring follows what vLLM documents for `/v1/completions` and what lm-eval's `local-completions`
does: the prompt is sent as **token ids** (context + continuation, tokenized locally with the
model's tokenizer so the continuation boundary is exact), with `echo: true`, `logprobs: 1`,
`max_tokens: 1`, `temperature: 0`; `choices[i].logprobs.token_logprobs[j]` is log p(token j |
tokens < j), so the continuation's log-probability is the sum over its positions. Servers that
return only the prompt (vLLM with max_tokens=0) or the prompt plus one generated token are both
read the same way: only the prompt's positions are used.

Two checks run when the engine connects, without a local copy of the model (remote_connect.py):
  * tokenization: the server's `/tokenize` (vLLM, SGLang) or `/extras/tokenize` (llama-cpp-python)
    of a probe string must equal the local tokenizer's ids;
  * echo log-probs: greedily generate one token after a probe, then echo-score probe + that
    token; the two log-probabilities of that token must agree. llama-cpp-python 0.3.x shifts
    echo log-probs by one position (token j gets the distribution that predicts j+1), which
    gives chance-level scores silently; such a server, or one that returns no prompt
    log-probs at all, is refused for scoring with a message naming the cause. Generation still works.

Throughput: requests run `concurrency` at a time, and several prompts go in one request where
the server takes a list of prompts (found out at connect time). Faults: each request has a
timeout; 429, 5xx, dropped connections and timeouts are retried with exponential backoff
(honouring Retry-After); what cannot be retried raises ModelError naming the cause and the fix.
The API key is read from WORKBENCH_API_KEY or OPENAI_API_KEY for each request and kept nowhere
else: not in identities, configs, caches, runs, logs or bundles.
"""
from __future__ import annotations

import logging
import os
import random
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable, Sequence
from urllib.parse import urlsplit

from workbench.engine.remote_checks import BadResponse, check_completion_response, check_score_response
from workbench.engine.remote_connect import ECHO_TOLERANCE, PROBE, PROBES, ConnectChecks, ServerError  # noqa: F401
from workbench.engine.remote_tokenizer import tokenizer_folder  # noqa: F401 (re-exported)
from workbench.engine.protocol import IDENTITY_FAMILY
from workbench.errors import Cancelled, ModelError

log = logging.getLogger(__name__)

PREFIX = "openai:"



def is_remote(model: str | None) -> bool:
    return bool(model) and str(model).startswith(PREFIX)


def parse_spec(spec: str) -> tuple[str, str | None]:
    """'openai:http://host:port/v1#name' -> ('http://host:port/v1', 'name' or None)."""
    rest = spec[len(PREFIX):] if spec.startswith(PREFIX) else spec
    url, _, name = rest.partition("#")
    url = url.rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ModelError(f"'{spec}' is not a server URL.",
                         hint="Write --model openai:http://HOST:PORT/v1 (optionally #SERVED-NAME), e.g. "
                              "openai:http://127.0.0.1:8000/v1 for `vllm serve`.")
    if parts.username is not None or parts.password is not None:
        # httpx would send them as Basic auth, and the URL is the engine's identity: it would
        # land in run records, caches and bundles too. Refuse instead of forwarding silently.
        raise ModelError(f"The server URL {parts.scheme}://…@{parts.hostname} holds a user name or password.",
                         hint="Remove them from the URL; put an API key in WORKBENCH_API_KEY (sent as a Bearer "
                              "token, never stored).")
    return url, (name or None)


def api_key() -> str | None:
    return os.environ.get("WORKBENCH_API_KEY") or os.environ.get("OPENAI_API_KEY") or None


@dataclass
class RemoteConfig:
    concurrency: int = field(default=8, metadata={"help": "requests in flight at once"})
    prompts_per_request: int = field(default=8, metadata={
        "help": "prompts sent in one request where the server takes a list (found at connect time)"})
    timeout_s: float = field(default=300.0, metadata={"help": "seconds one request may take"})
    max_retries: int = field(default=5, metadata={"help": "retries of one request on 429, 5xx, timeouts, drops"})
    backoff_s: float = field(default=0.5, metadata={"help": "first retry delay; doubles on each retry (max 30 s)"})
    cache: bool = field(default=True, metadata={"help": "keep responses in the SQLite response cache"})


class _Retryable(Exception):
    def __init__(self, cause: str, retry_after: float | None = None):
        super().__init__(cause)
        self.cause = cause
        self.retry_after = retry_after


class RemoteEngine(ConnectChecks):
    """The HTTP client of one served model (server_engine.ServerEngine is its protocol engine)."""

    def __init__(self, spec: str, config: RemoteConfig | None = None):
        self.spec = spec
        self.base_url, self.requested_name = parse_spec(spec)
        from workbench.paths import check_server_url

        check_server_url(self.base_url)   # an exposed server connects only to the operator's allow-list
        self.config = config or RemoteConfig()
        self.served_name: str | None = None
        self.root: str | None = None           # what the server says it serves (vLLM: path / hub id)
        self.owned_by: str | None = None
        self.max_model_len: int | None = None
        self.batch_prompts = False             # the server takes a list of prompts in one request
        self.token_prompts = True              # the server takes token-id prompts
        self.scoring_ok: bool | None = None    # None: not checked yet
        self.scoring_problem: str | None = None
        self.echo_extra: int | None = None     # generated entries the server appends to echoed log-probs
        self.checks: dict = {}
        self.requests_sent = 0
        self.sent_by_path: dict[str, int] = {}   # requests per endpoint (which route a job really took)
        self.retries = 0
        self._client = None
        self._cache = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ identity
    @property
    def identity(self) -> str:
        """The served model: server URL and served name (what run records and the cache key use)."""
        return f"{PREFIX}{self.base_url}#{self.served_name or self.requested_name or '?'}"

    def describe(self) -> dict:
        return {"engine": IDENTITY_FAMILY["remote"], "api": "openai-completions", "base_url": self.base_url,
                "served_name": self.served_name, "root": self.root, "owned_by": self.owned_by,
                "max_model_len": self.max_model_len, "batch_prompts": self.batch_prompts,
                "scoring_ok": self.scoring_ok, "scoring_problem": self.scoring_problem, "checks": self.checks}

    # ------------------------------------------------------------------ http
    def _http(self):
        if self._client is None:
            import httpx

            limits = httpx.Limits(max_connections=max(4, self.config.concurrency * 2),
                                  max_keepalive_connections=max(4, self.config.concurrency))
            # no redirects: a redirect could lead an exposed server past its URL allow-list
            self._client = httpx.Client(timeout=httpx.Timeout(self.config.timeout_s, connect=10.0), limits=limits,
                                        follow_redirects=False)
        return self._client

    def _headers(self) -> dict:
        key = api_key()
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _url(self, path: str) -> str:
        if path.startswith("/v1/") or path.startswith("/"):
            # /tokenize and /extras/tokenize live at the server root, not under /v1
            if path.startswith("/v1/"):
                return self.base_url + path[3:]
            root = self.base_url[:-3] if self.base_url.endswith("/v1") else self.base_url
            return root + path
        return f"{self.base_url}/{path}"

    def _cache_store(self):
        if self._cache is None and self.config.cache:
            from workbench.storage.response_cache import ResponseCache

            self._cache = ResponseCache()
        return self._cache

    def _once(self, method: str, path: str, body: dict | None):
        import httpx

        url = self._url(path)
        try:
            with self._lock:
                self.requests_sent += 1
                self.sent_by_path[path] = self.sent_by_path.get(path, 0) + 1
            r = self._http().request(method, url, json=body, headers=self._headers())
        except httpx.ConnectError as exc:
            raise _Retryable(f"connection refused ({exc})") from exc
        except httpx.TimeoutException as exc:
            raise _Retryable(f"no answer within {self.config.timeout_s:g} s ({type(exc).__name__})") from exc
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            raise _Retryable(f"connection dropped ({type(exc).__name__}: {exc})") from exc
        if r.status_code == 429 or r.status_code >= 500:
            ra = r.headers.get("retry-after")
            try:
                ra_s = float(ra) if ra else None
            except ValueError:
                ra_s = None
            raise _Retryable(f"HTTP {r.status_code}: {_error_text(r)}", ra_s)
        if r.status_code in (401, 403):
            raise ServerError(f"The server at {self.base_url} refused the request (HTTP {r.status_code}: "
                              f"{_error_text(r)}).",
                              hint="Set its API key in WORKBENCH_API_KEY (or OPENAI_API_KEY); it is sent as a "
                                   "Bearer token and never stored.")
        if r.status_code == 404:
            raise ServerError(f"{url} does not exist on the server (HTTP 404: {_error_text(r)}).",
                              hint="The URL must be the API root of an OpenAI-compatible server, usually ending "
                                   "in /v1: --model openai:http://HOST:PORT/v1")
        if r.status_code >= 400:
            raise ServerError(f"The server rejected the request to {path} (HTTP {r.status_code}: {_error_text(r)}).",
                              hint="See the server's log; check the served model name (#NAME) and its limits.")
        try:
            return r.json()
        except ValueError as exc:
            raise ServerError(f"{url} did not answer with JSON (HTTP {r.status_code}, "
                              f"{r.headers.get('content-type', '?')}).",
                              hint="The URL must be the API root of an OpenAI-compatible server, usually ending "
                                   "in /v1.") from exc

    def request(self, method: str, path: str, body: dict | None = None, *, retries: int | None = None,
                cacheable: bool = False, cancel: Callable[[], bool] | None = None,
                validate: Callable[[dict], object] | None = None) -> dict:
        """One API call with retries and backoff; cached by served model + exact body if asked.
        `validate(answer)` raises BadResponse for a wrong answer: it runs before the answer is
        used or cached, and on cache hits too (a wrong answer cached by an older version is
        asked again rather than reused)."""
        cache = self._cache_store() if cacheable else None
        key = None
        if cache is not None:
            key = cache.key(f"{self.identity}|{self.root}", path, body or {})
            hit = cache.get(key)
            if hit is not None:
                try:
                    if validate is not None:
                        validate(hit)
                    return hit
                except BadResponse:
                    log.warning("%s: a cached answer for %s fails its checks; asking the server again", self.base_url,
                                path)
        retries = self.config.max_retries if retries is None else retries
        attempt = 0
        while True:
            try:
                out = self._once(method, path, body)
                break
            except _Retryable as exc:
                if attempt >= retries:
                    raise ModelError(
                        f"The inference server at {self.base_url} failed {attempt + 1} times on {path}: {exc.cause}.",
                        hint=_fix_for(exc.cause, self.config)) from None
                delay = min(30.0, self.config.backoff_s * (2 ** attempt)) * (0.75 + 0.5 * random.random())
                if exc.retry_after is not None:
                    delay = max(delay, min(exc.retry_after, 60.0))
                log.warning("%s %s: %s; retry %d/%d in %.1fs", method, path, exc.cause, attempt + 1, retries, delay)
                with self._lock:
                    self.retries += 1
                attempt += 1
                end = time.monotonic() + delay
                while time.monotonic() < end:
                    if cancel and cancel():
                        raise Cancelled()
                    time.sleep(min(0.1, max(0.0, end - time.monotonic())))
        if validate is not None:
            validate(out)          # raises before the answer is used or cached
        if cache is not None:
            cache.put(key, f"{self.identity}|{self.root}", path, out)
        return out

    # ------------------------------------------------------------------ connect
    def connect(self) -> "RemoteEngine":
        """Reach the server, pick the served model; a dead server or a wrong URL fails here."""
        try:
            models = self.request("GET", "/v1/models", retries=1)
        except ModelError as exc:
            if "connection refused" in exc.message:
                raise ModelError(f"Cannot reach an inference server at {self.base_url}: connection refused.",
                                 hint="Start the server first (e.g. `vllm serve MODEL --port 8000`) or fix the URL "
                                      "in --model openai:http://HOST:PORT/v1") from None
            raise
        data = models.get("data") if isinstance(models, dict) else None
        if not isinstance(data, list) or not data:
            raise ModelError(f"{self.base_url}/models lists no models, so this is not an OpenAI-compatible server "
                             "with a model loaded.", hint="Check the URL (it usually ends in /v1) and the server's log.")
        ids = [m.get("id") for m in data if isinstance(m, dict)]
        name = self.requested_name
        if name is None:
            entry = data[0]
        elif name in ids:
            entry = data[ids.index(name)]
        else:
            raise ModelError(f"The server at {self.base_url} does not serve '{name}'.",
                             hint=f"It serves: {', '.join(map(str, ids))}. Write --model "
                                  f"openai:{self.base_url}#{ids[0]}")
        self.served_name = entry.get("id")
        self.root = entry.get("root") or None
        self.owned_by = entry.get("owned_by")
        mml = entry.get("max_model_len")
        self.max_model_len = mml if isinstance(mml, int) and mml > 0 else None
        return self

    # ------------------------------------------------------------------ scoring
    def score(self, pairs: Sequence[tuple[list[int], list[int]]], *, progress=None, cancel=None) -> list[tuple[float, bool]]:
        """[(context ids, continuation ids)] -> [(sum of continuation log-probs, all greedy)]."""
        if self.scoring_ok is False:
            raise ModelError(f"The server at {self.base_url} cannot score: {self.scoring_problem}.",
                             hint="Scoring needs correct prompt log-probabilities (echo + logprobs), as vLLM and "
                                  "SGLang return them. Generation tasks work with this server.")
        if not self.token_prompts:
            raise ModelError(f"The server at {self.base_url} does not take token-id prompts, so scores could "
                             "not be tied to the continuation's tokens.", hint="Score with vLLM or SGLang.")
        max_len = self.max_model_len
        feeds: dict[tuple[int, ...], int] = {}
        plan = []
        for ctx, cont in pairs:
            full = list(ctx) + list(cont)
            if max_len and len(full) > max_len - 1:      # left-truncate as lm-eval does (room for 1 token)
                full = full[-(max_len - 1):]
            key = tuple(full)
            feeds.setdefault(key, len(feeds))
            plan.append((key, len(cont)))
        keys = list(feeds)
        # Longest first: an over-long request fails at once, not at the end.
        order = sorted(range(len(keys)), key=lambda i: -len(keys[i]))
        per = self.config.prompts_per_request if self.batch_prompts else 1
        chunks = [order[i:i + per] for i in range(0, len(order), per)]
        rows: list[dict | None] = [None] * len(keys)

        def work(chunk):
            prompts = [list(keys[i]) for i in chunk]
            body = self._score_body(prompts if self.batch_prompts else prompts[0])
            checked: list = []

            def validate(answer):
                checked[:] = check_score_response(answer, prompts, self.base_url, self.echo_extra)

            self.request("POST", "/v1/completions", body, cacheable=True, cancel=cancel, validate=validate)
            for i, lp in zip(chunk, checked):
                rows[i] = lp
            return len(chunk)

        self._run(chunks, work, total=len(keys), progress=progress, cancel=cancel)
        out = []
        for key, k in plan:
            lp = rows[feeds[key]]
            tl = lp.get("token_logprobs") or []
            tops = lp.get("top_logprobs") or []
            start = len(key) - k
            vals = tl[start:start + k]
            if len(vals) != k or any(v is None for v in vals):
                raise ModelError(f"The server at {self.base_url} did not return the prompt's log-probabilities "
                                 "(echo + logprobs).", hint="Use a server that supports echo with logprobs "
                                                            "(vLLM, SGLang).")
            greedy = True
            for j in range(start, start + k):
                top = tops[j] if j < len(tops) and isinstance(tops[j], dict) else None
                if top:
                    greedy = greedy and max(top.values()) <= tl[j] + 1e-4
            out.append((float(sum(float(v) for v in vals)), greedy))
        return out

    def _run(self, chunks, work, *, total: int, progress=None, cancel=None) -> None:
        """Run work(chunk) for every chunk, `concurrency` at a time; the first error stops the rest."""
        done = 0
        if progress:
            progress(0, total)
        with ThreadPoolExecutor(max_workers=max(1, self.config.concurrency), thread_name_prefix="remote") as pool:
            pending = set()
            it = iter(chunks)
            try:
                while True:
                    while len(pending) < max(1, self.config.concurrency):
                        if cancel and cancel():
                            raise Cancelled()
                        chunk = next(it, None)
                        if chunk is None:
                            break
                        pending.add(pool.submit(work, chunk))
                    if not pending:
                        break
                    finished, pending = wait(pending, return_when=FIRST_EXCEPTION, timeout=0.5)
                    for f in finished:
                        done += f.result()      # re-raises the worker's error
                    if finished and progress:
                        progress(min(done, total), total)
                    if cancel and cancel():
                        raise Cancelled()
            except BaseException:
                for f in pending:
                    f.cancel()
                raise

    # ------------------------------------------------------------------ generation
    def complete(self, prompts: Sequence[str], *, max_tokens: int = 32, temperature: float = 0.0, top_p: float = 1.0,
                 stop: Sequence[str] | None = None, seed: int | None = None, progress=None, cancel=None) -> list[dict]:
        """Text completions: [{"text", "finish_reason", "stop_reason", "n_tokens"}] in prompt order."""
        outs: list[dict | None] = [None] * len(prompts)
        per = self.config.prompts_per_request if self.batch_prompts else 1
        chunks = [list(range(i, min(i + per, len(prompts)))) for i in range(0, len(prompts), per)]

        def work(chunk):
            body = {"model": self.served_name, "prompt": [prompts[i] for i in chunk] if self.batch_prompts
                    else prompts[chunk[0]], "max_tokens": max_tokens, "temperature": temperature}
            body.update(_sampling_fields(temperature, top_p, seed, stop))
            out = self.request("POST", "/v1/completions", body, cacheable=temperature == 0 or seed is not None,
                               cancel=cancel, validate=lambda a: check_completion_response(a, len(chunk), self.base_url))
            choices = check_completion_response(out, len(chunk), self.base_url)
            usage = out.get("usage") or {}
            for i, ch in zip(chunk, choices):
                outs[i] = {"text": ch.get("text") or "", "finish_reason": ch.get("finish_reason"),
                           "completion_tokens": usage.get("completion_tokens") if len(chunk) == 1 else None}
                if "stop_reason" in ch:    # vLLM: the stop string, the EOS id, or None
                    outs[i]["stop_reason"] = ch["stop_reason"]
            return len(chunk)

        self._run(chunks, work, total=len(prompts), progress=progress, cancel=cancel)
        return outs  # type: ignore[return-value]

    def chat(self, conversations: Sequence[list[dict]], *, max_tokens: int = 32, temperature: float = 0.0,
             top_p: float = 1.0, stop: Sequence[str] | None = None, seed: int | None = None, progress=None,
             cancel=None) -> list[dict]:
        """Chat completions (the server applies its chat template): one conversation per request."""
        outs: list[dict | None] = [None] * len(conversations)

        def work(chunk):
            i = chunk[0]
            body = {"model": self.served_name, "messages": conversations[i], "max_tokens": max_tokens,
                    "temperature": temperature}
            body.update(_sampling_fields(temperature, top_p, seed, stop))
            out = self.request("POST", "/v1/chat/completions", body, cacheable=temperature == 0 or seed is not None,
                               cancel=cancel,
                               validate=lambda a: check_completion_response(a, 1, self.base_url, chat=True))
            ch = (out.get("choices") or [{}])[0]
            usage = out.get("usage") or {}
            outs[i] = {"text": (ch.get("message") or {}).get("content") or "", "finish_reason": ch.get("finish_reason"),
                       "completion_tokens": usage.get("completion_tokens")}
            if "stop_reason" in ch:
                outs[i]["stop_reason"] = ch["stop_reason"]
            return 1

        self._run([[i] for i in range(len(conversations))], work, total=len(conversations), progress=progress,
                  cancel=cancel)
        return outs  # type: ignore[return-value]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cache is not None:
            self._cache.close()
            self._cache = None


def _error_text(r) -> str:
    """A short, sanitised reason for an HTTP error: the standard reason phrase, plus the `error`
    message of a JSON error object (as vLLM and OpenAI send) cut to 120 printable characters.
    Never the raw body: it may hold whatever an internal endpoint returns (issue 29, item 5).
    On an exposed server (paths restricted) only the reason phrase is shown."""
    from workbench.paths import server_paths_restricted

    phrase = r.reason_phrase or "error"
    if server_paths_restricted():
        return phrase
    try:
        d = r.json()
    except ValueError:
        return phrase
    e = d.get("error", d.get("detail", d.get("message"))) if isinstance(d, dict) else None
    if isinstance(e, dict):
        e = e.get("message")
    if not isinstance(e, str) or not e.strip():
        return phrase
    clean = "".join(ch if ch.isprintable() else " " for ch in e).strip()
    return f"{phrase}: {clean[:120]}{'…' if len(clean) > 120 else ''}"


def _fix_for(cause: str, cfg: RemoteConfig) -> str:
    if "connection refused" in cause:
        return "The server stopped or was never started: (re)start it and run again; finished requests are " \
               "in the response cache, so a re-run continues where this one stopped."
    if "no answer within" in cause:
        return f"The server is overloaded or the prompts are long: lower --concurrency (now {cfg.concurrency}) " \
               f"or raise --request-timeout (now {cfg.timeout_s:g} s)."
    if "429" in cause:
        return f"The server is rate-limiting: lower --concurrency (now {cfg.concurrency}) and run again; " \
               "finished requests are cached."
    return "See the server's log. Finished requests are in the response cache, so a re-run continues."


def _sampling_fields(temperature: float, top_p: float, seed: int | None, stop) -> dict:
    """The request fields of a completion's sampling settings (completions and chat alike):
    top_p and seed only when sampling, stop only when given."""
    out: dict = {}
    if temperature > 0:
        out["top_p"] = top_p
        if seed is not None:
            out["seed"] = seed
    if stop:
        out["stop"] = list(stop)
    return out
