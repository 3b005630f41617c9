"""The server client's connect-time checks (a mixin of remote.RemoteEngine).

    client.check_tokenizer(encode)                # the server tokenizes a probe as we do
    client.check_echo(encode, encode_plain)       # prompt log-probs are there and not off by one

  * tokenization: the server's `/tokenize` (vLLM, SGLang) or `/extras/tokenize` (llama-cpp-python)
    of a probe string must equal the local tokenizer's ids;
  * echo log-probs: greedily generate one token after a probe, then echo-score probe + that
    token; the two log-probabilities of that token must agree. llama-cpp-python 0.3.x shifts
    echo log-probs by one position (token j gets the distribution that predicts j+1), which
    gives chance-level scores silently; such a server, or one that returns no prompt
    log-probs at all, is refused for scoring with a message naming the cause. Generation still works.
"""
from __future__ import annotations

import logging
from typing import Callable

from workbench.engine.remote_checks import BadResponse, logprob
from workbench.errors import ModelError

log = logging.getLogger("workbench.engine.remote")

PROBE = "The capital of France is"
# Extra probes for the echo check, in case the greedy token after the first one is not a
# single token of the local tokenizer (then its id cannot be known without the server's help).
PROBES = (PROBE, "One, two, three, four,", "The sun rises in the")
ECHO_TOLERANCE = 0.05   # nats; a shifted server is off by several nats (-14.1 vs -0.14 in the issue)


class ServerError(ModelError):
    """The server answered with an error that retrying will not fix."""



class ConnectChecks:
    """The checks, on top of the client's `request` (remote.RemoteEngine)."""

    def check_tokenizer(self, encode: Callable[[str], list[int]], probe: str = PROBE) -> dict:
        """The server's ids for `probe` must equal the local tokenizer's (a leading BOS aside)."""
        theirs = None
        for path, body in (("/tokenize", {"model": self.served_name, "prompt": probe}),
                           ("/extras/tokenize", {"input": probe})):
            try:
                out = self.request("POST", path, body, retries=1)
            except ModelError:
                continue
            toks = out.get("tokens") if isinstance(out, dict) else None
            if isinstance(toks, list) and all(isinstance(t, int) for t in toks):
                theirs = toks
                break
        ours = list(encode(probe))
        if theirs is None:
            self.checks["tokenizer"] = "unavailable (the server has no /tokenize); the echo check still runs"
            log.warning("%s: cannot check the tokenizer (no /tokenize endpoint)", self.base_url)
            return {"checked": False}
        # A leading BOS added by one side only does not matter: scoring sends token ids.
        if theirs != ours and theirs[1:] != ours and ours[1:] != theirs:
            raise ModelError(
                f"The server tokenizes {probe!r} as {theirs[:12]}, the local tokenizer as {ours[:12]}: "
                "scores would be computed on the wrong tokens.",
                hint="Pass the served model's own tokenizer: --tokenizer HUB_ID_OR_FOLDER (the folder or hub id "
                     "of the model the server runs).")
        self.checks["tokenizer"] = "agrees"
        return {"checked": True, "ids": theirs}

    def check_echo(self, encode: Callable[[str], list[int]], encode_plain: Callable[[str], list[int]]) -> dict:
        """Prompt log-probs present and aligned? Sets scoring_ok / scoring_problem; never raises for
        a server that merely cannot score (generation still works)."""
        result = {}
        for probe in PROBES:
            ids = list(encode(probe))
            try:
                gen = self._probe_generate(ids, probe)
            except ServerError as exc:
                self._refuse(f"it rejected a token-id completion request ({exc.message})")
                return {"ok": False}
            choice = (gen.get("choices") or [{}])[0]
            lp = choice.get("logprobs") or {}
            g_lps = lp.get("token_logprobs") or []
            g_toks = lp.get("tokens") or []
            if not g_lps or g_lps[0] is None:
                self._refuse("it returns no log-probabilities for generated tokens (logprobs=1 ignored)")
                return {"ok": False}
            tok_id = _token_id(g_toks[0] if g_toks else None)
            if tok_id is None:
                plain = encode_plain(choice.get("text") or "")
                if len(plain) != 1:
                    continue          # not a single local token: try another probe
                tok_id = plain[0]
            try:
                g = logprob(g_lps[0], self.base_url, "the log-probability of the probe's generated token")
            except BadResponse as exc:
                self._refuse(exc.message)
                return {"ok": False}
            try:
                echo = self._echo(ids + [tok_id], probe + (choice.get("text") or ""))
            except ServerError as exc:
                self._refuse(f"it rejected an echo request ({exc.message})")
                return {"ok": False}
            e_lps = ((echo.get("choices") or [{}])[0].get("logprobs") or {}).get("token_logprobs") or []
            if len(e_lps) <= len(ids) or e_lps[len(ids)] is None or all(x is None for x in e_lps[:len(ids)]):
                self._refuse("it does not return log-probabilities of the prompt tokens with echo=true")
                return {"ok": False}
            try:
                e = logprob(e_lps[len(ids)], self.base_url, "the echoed log-probability of the probe's token")
            except BadResponse as exc:
                self._refuse(exc.message)
                return {"ok": False}
            extra = len(e_lps) - (len(ids) + 1)
            if extra not in (0, 1):
                self._refuse(f"it echoed {len(e_lps)} log-probabilities for {len(ids) + 1} prompt tokens")
                return {"ok": False}
            self.echo_extra = extra
            result = {"probe": probe, "token_id": tok_id, "generated_logprob": g, "echo_logprob": e}
            self.checks["echo"] = result
            if abs(e - g) > max(ECHO_TOLERANCE, 0.02 * abs(g)):
                self._refuse(f"its echo log-probabilities are misaligned: the token it generated after {probe!r} "
                             f"had log-prob {g:.3f}, but echo-scoring the same text gives {e:.3f} for it "
                             "(llama-cpp-python shifts them by one position)")
                return {"ok": False, **result}
            self.scoring_ok, self.scoring_problem = True, None
            return {"ok": True, **result}
        self._refuse("the echo check could not map a generated token to a local token id")
        return {"ok": False}

    def _refuse(self, why: str) -> None:
        self.scoring_ok = False
        self.scoring_problem = why
        self.checks["echo"] = why
        log.warning("%s cannot score: %s", self.base_url, why)

    def _probe_generate(self, ids: list[int], text: str) -> dict:
        body = {"model": self.served_name, "prompt": ids, "max_tokens": 1, "temperature": 0, "logprobs": 1,
                "return_tokens_as_token_ids": True}
        try:
            return self.request("POST", "/v1/completions", body, retries=1)
        except ModelError:
            # A server that takes text prompts only (its tokenization was checked to agree);
            # llama-cpp-python answers a token-id prompt with a validation error as HTTP 500.
            self.token_prompts = False
            body["prompt"] = text
            return self.request("POST", "/v1/completions", body)

    def _echo(self, ids: list[int], text: str) -> dict:
        body = self._score_body([ids, ids[:-1]] if self.token_prompts else [text])
        try:
            out = self.request("POST", "/v1/completions", body)
            self.batch_prompts = self.token_prompts and len(out.get("choices") or []) == 2
        except ServerError:
            out = None
        if out is None or not self.batch_prompts:
            body = self._score_body([ids] if self.token_prompts else [text])
            body["prompt"] = body["prompt"][0]
            out = self.request("POST", "/v1/completions", body)
        return out

    def _score_body(self, prompts: list) -> dict:
        return {"model": self.served_name, "prompt": prompts, "echo": True, "logprobs": 1, "max_tokens": 1,
                "temperature": 0}


def _token_id(token: str | None) -> int | None:
    """vLLM's `return_tokens_as_token_ids` writes tokens as 'token_id:123'."""
    if isinstance(token, str) and token.startswith("token_id:"):
        try:
            return int(token.split(":", 1)[1])
        except ValueError:
            return None
    return None


