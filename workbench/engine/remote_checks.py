"""What an inference server's answer must look like before the workbench uses or caches it.

    choices = check_score_response(out, prompts, url, extra=engine.echo_extra)   # or BadResponse
    check_completion_response(out, n_prompts, url)

A server with a bug (or a hostile one) can answer well-formed JSON with wrong numbers: a list of
log-probs one entry short or one too long, NaN, -inf, a positive log-prob, `true` or a string.
Read as they come, those give wrong scores silently, and the response cache would keep them for
every later run (issue 29, item 3). So every answer is checked here first, and one that fails
is refused with the server's URL and what was wrong; it is never cached.

The rules, for a scoring request (`echo: true, logprobs: 1`) with a prompt of n token ids:
  * `choices` holds one entry per prompt, with `logprobs.token_logprobs` a list;
  * that list has n entries (the prompt) plus the generated tokens the server is known to add
    (`extra`, measured by the echo check at connect: 0 for vLLM with max_tokens=0, else 1);
    unknown, 0 or 1 is accepted;
  * `tokens` and `top_logprobs`, when present, are as long as `token_logprobs`;
  * every entry is a number (not a bool or a string), finite and <= 0 (a log-probability),
    except the first prompt position and generated positions, which may be null.
"""
from __future__ import annotations

import math
from typing import Any

from workbench.errors import ModelError

# A log-probability above this is not one (float noise around log 1 = 0 is allowed).
LOGPROB_SLACK = 1e-4


class BadResponse(ModelError):
    """The server answered, but not with what was asked: refused, not used, not cached."""


def _refuse(url: str, what: str) -> BadResponse:
    return BadResponse(f"The inference server at {url} sent a wrong answer: {what}. Nothing of it was used or cached.",
                       hint="The server (or a proxy in front of it) is misbehaving: check its version and log. "
                            "Scores need echo log-probabilities as vLLM and SGLang return them.")


def logprob(v: Any, url: str, where: str) -> float:
    """`v` as a log-probability, or BadResponse saying what it was."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _refuse(url, f"{where} is {_show(v)}, not a number")
    f = float(v)
    if math.isnan(f):
        raise _refuse(url, f"{where} is NaN")
    if math.isinf(f):
        raise _refuse(url, f"{where} is {'-' if f < 0 else '+'}infinity")
    if f > LOGPROB_SLACK:
        raise _refuse(url, f"{where} is {f:g}, but a log-probability is at most 0")
    return f


def _show(v: Any) -> str:
    if isinstance(v, str):
        return f"the string {v[:30]!r}"
    return f"{type(v).__name__} {str(v)[:30]}" if v is not None else "null"


def check_score_response(out: Any, prompts: list[list[int]], url: str, extra: int | None = None) -> list[dict]:
    """The `logprobs` objects of a scoring answer, in prompt order, each checked (module doc)."""
    if not isinstance(out, dict) or not isinstance(out.get("choices"), list):
        raise _refuse(url, "the answer has no list of choices")
    choices = out["choices"]
    if len(choices) != len(prompts):
        raise _refuse(url, f"{len(choices)} choices for {len(prompts)} prompts")
    if not all(isinstance(c, dict) for c in choices):
        raise _refuse(url, "a choice is not an object")
    idx = [c.get("index", i) for i, c in enumerate(choices)]
    if any(isinstance(i, bool) or not isinstance(i, int) for i in idx) or sorted(idx) != list(range(len(prompts))):
        raise _refuse(url, f"the choices' indexes are {str(idx[:10])[:80]}, not 0..{len(prompts) - 1}")
    ordered = [c for _, c in sorted(zip(idx, choices), key=lambda t: t[0])]
    # `extra` generated entries follow the prompt's (learned at connect time); none when the model stopped
    # at once on a stop token, which servers leave out of the echo (the reference server does)
    allowed = tuple(sorted({0, extra})) if extra is not None else (0, 1)
    result = []
    for p, (ids, ch) in enumerate(zip(prompts, ordered)):
        lp = ch.get("logprobs")
        tl = lp.get("token_logprobs") if isinstance(lp, dict) else None
        if not isinstance(tl, list):
            raise _refuse(url, f"prompt {p} has no list of prompt log-probabilities (logprobs.token_logprobs)")
        n = len(ids)
        if len(tl) - n not in allowed:
            want = " or ".join(str(n + a) for a in allowed)
            raise _refuse(url, f"prompt {p} has {len(tl)} log-probabilities for {n} tokens sent (expected {want})")
        for key in ("tokens", "top_logprobs"):
            other = lp.get(key)
            if other is not None and (not isinstance(other, list) or len(other) != len(tl)):
                raise _refuse(url, f"prompt {p}'s logprobs.{key} is not a list as long as its token_logprobs")
        for j, v in enumerate(tl):
            if v is None and (j == 0 or j >= n):
                continue          # the first token has no context; generated tokens are not used
            if v is None:
                raise _refuse(url, f"prompt {p}, token {j} of {n} has no log-probability (null)")
            logprob(v, url, f"the log-probability of prompt {p}, token {j}")
        tops = lp.get("top_logprobs")
        if tops is not None:
            for j, t in enumerate(tops[:n]):
                if t is None:
                    continue
                if not isinstance(t, dict):
                    raise _refuse(url, f"prompt {p}, token {j}'s top_logprobs is not an object")
                for v in t.values():
                    logprob(v, url, f"a top log-probability of prompt {p}, token {j}")
        result.append(lp)
    return result


def check_completion_response(out: Any, n: int, url: str, chat: bool = False) -> list[dict]:
    """The choices of a completion (or chat) answer, in prompt order: one per prompt, with text."""
    if not isinstance(out, dict) or not isinstance(out.get("choices"), list):
        raise _refuse(url, "the answer has no list of choices")
    choices = out["choices"]
    if len(choices) != n or not all(isinstance(c, dict) for c in choices):
        raise _refuse(url, f"{len(choices)} choices for {n} prompts")
    ordered = sorted(choices, key=lambda c: c.get("index", 0) if isinstance(c.get("index", 0), int) else 0)
    for i, ch in enumerate(ordered):
        text = (ch.get("message") or {}).get("content") if chat and isinstance(ch.get("message"), dict) else \
            (None if chat else ch.get("text"))
        if text is not None and not isinstance(text, str):
            raise _refuse(url, f"choice {i}'s text is {_show(text)}, not a string")
    usage = out.get("usage")
    if usage is not None and not isinstance(usage, dict):
        raise _refuse(url, "its usage is not an object")
    return ordered
