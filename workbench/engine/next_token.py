"""Next-token log-probabilities over the whole vocabulary, for label-word search.

    logp = next_token_logprobs(session, ["Headline: Arsenal win\nTopic:", ...])   # [N, V] float32
    words = whole_word_tokens(session, delimiter=" ")                              # {id: "football", ...}

Scoring (ModelSession.loglikelihood) returns the log-probability of given continuations; the
label-word search needs the model's distribution over *every* next token after φ(x): one
forward pass per row, the LM head at the last position only. It runs through the same decoder
scoring uses (the verified built-in one when it applies, else transformers), under the
session's lock, and counts its tokens in `session.stats["tokens"]` so search budgets see it.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from workbench.errors import Cancelled

_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*[A-Za-z]$")


def next_token_logprobs(session, contexts: Sequence[str], *, cancel: Callable[[], bool] | None = None,
                        progress: Callable[[int, int], None] | None = None):
    """[N, V] numpy float32: log p(next token | context) for each context (lm-eval tokenization:
    trailing whitespace of a context is dropped, as it would move into the continuation)."""
    import numpy as np
    import torch

    session.load()
    max_len = session.max_length
    ids = [session.encode(c.rstrip() if c.strip() else c)[-max_len:] for c in contexts]
    pad = session.scoring_tokenizer().pad_token_id or 0
    engine = session.engine
    native = engine.w.native if engine.kind == "native" else None   # the verified built-in decoder
    out = None
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    done = 0
    with session.lock, torch.inference_mode():
        i = 0
        while i < len(order):
            if cancel and cancel():
                raise Cancelled()
            L = len(ids[order[i]])
            bsz = max(1, min(getattr(session, "max_batch", None) or session.config.max_batch or 64, session.token_budget // max(1, L)))
            batch = order[i:i + bsz]
            i += len(batch)
            t = torch.full((len(batch), L), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), L), dtype=torch.long)
            for b, j in enumerate(batch):
                t[b, :len(ids[j])] = torch.tensor(ids[j])
                mask[b, :len(ids[j])] = 1
            r = torch.arange(len(batch))
            c = torch.tensor([len(ids[j]) - 1 for j in batch])
            t = t.to(session.device)
            if native is not None:
                logits = native.head(native.hidden(t)[r, c])                        # [B, V]
            else:
                model = session.model
                lm = model.get_base_model() if hasattr(model, "get_base_model") else model
                logits = lm(input_ids=t, attention_mask=mask.to(session.device)).logits[r, c]   # [B, V]
            logp = torch.log_softmax(logits.float(), dim=-1).cpu().numpy()
            if out is None:
                out = np.zeros((len(ids), logp.shape[1]), dtype=np.float32)
            out[batch] = logp
            session.stats["tokens"] += sum(len(ids[j]) for j in batch)
            done += len(batch)
            if progress:
                progress(done, len(ids))
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def whole_word_tokens(session, delimiter: str = " ", min_chars: int = 3) -> dict[int, str]:
    """{token id: word} for tokens that spell one whole word after the target delimiter.

    With the usual delimiter " ", a token qualifies when it decodes to " " + a word of letters
    (inner ' and - allowed, at least `min_chars` long) and " " + word encodes back to exactly
    that one token, so the word is scored by the very token it was chosen for."""
    key = (session.identity, delimiter, min_chars)
    if key in _WORDS:
        return dict(_WORDS[key])
    tok = session.scoring_tokenizer()
    V = len(tok) if hasattr(tok, "__len__") else None
    if V is None:
        V = tok._tok.get_vocab_size(with_added_tokens=True)
    lead = " " if delimiter == " " else ""
    out: dict[int, str] = {}
    specials = {x for x in (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) if x is not None}
    for i in range(V):
        if i in specials:
            continue
        s = tok.decode([i])
        if lead and not s.startswith(lead):
            continue
        w = s[len(lead):]
        if len(w) < min_chars or not _WORD.match(w) or not w.isascii():
            continue
        if tok.encode(lead + w, add_special_tokens=False) != [i]:
            continue
        out[i] = w
    _WORDS[key] = out
    return dict(out)


_WORDS: dict[tuple, dict[int, str]] = {}   # per (model identity, delimiter, min_chars): a vocabulary scan takes seconds
