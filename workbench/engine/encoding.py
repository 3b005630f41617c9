"""Score requests as token pairs, with lm-evaluation-harness's conventions, for every engine.

    encode(tok, "Topic:")                              # like HFLM.tok_encode
    encode_pair(tok, "Topic:", " business")            # -> (context ids, continuation ids)
    encode_pairs(tok, [(ctx, cont), ...])              # the same, each distinct context once

A pair is tokenized as a whole, the continuation is what follows the context's own tokens, and
trailing whitespace of the context moves to the continuation (docs/SCORING.md). `tok` is the
engine's scoring tokenizer (encode, batch __call__, decode, bos/eos ids).
"""
from __future__ import annotations

from typing import Sequence


def prefix_token_id(tok) -> int:
    """The token a sequence starts with when its context is empty: BOS, else EOS (as lm-eval)."""
    return tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id


def encode(tok, text: str) -> list[int]:
    """Encode like lm-evaluation-harness's HFLM.tok_encode: the tokenizer's own special-token
    default, except that a string already starting with the prefix (BOS) token gets none added."""
    kw = {}
    prefix = tok.decode([prefix_token_id(tok)])
    if prefix and text.startswith(prefix):
        kw["add_special_tokens"] = False
    return tok.encode(text, **kw)


def _move_space(context: str, continuation: str) -> tuple[str, str]:
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        return context[:-n_spaces], context[-n_spaces:] + continuation
    return context, continuation


def encode_pair(tok, context: str, continuation: str) -> tuple[list[int], list[int]]:
    if context == "":
        cont = tok.encode(continuation, add_special_tokens=False)
        pid = prefix_token_id(tok)
        return ([pid], cont) if cont[:1] != [pid] else (cont[:1], cont[1:])
    context, continuation = _move_space(context, continuation)
    whole = encode(tok, context + continuation)
    ctx = encode(tok, context)
    return ctx, whole[len(ctx):]


def encode_pairs(tok, requests: Sequence[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
    """`encode_pair` for many requests at once, with the same result: each distinct context is
    encoded once (a classification prompt has one context and several choices), and the
    whole strings go through the tokenizer's batch encoder."""
    prefix = tok.decode([prefix_token_id(tok)])
    out: list = [None] * len(requests)
    ctx_ids: dict[str, list[int]] = {}
    groups: dict[bool, list[tuple[int, str, str]]] = {True: [], False: []}   # add_special -> (i, whole, ctx)
    for i, (context, continuation) in enumerate(requests):
        if context == "":
            out[i] = encode_pair(tok, context, continuation)
            continue
        context, continuation = _move_space(context, continuation)
        if context not in ctx_ids:
            ctx_ids[context] = encode(tok, context)
        whole = context + continuation
        groups[not (prefix and whole.startswith(prefix))].append((i, whole, context))
    for add_special, items in groups.items():
        if not items:
            continue
        encoded = tok([w for _, w, _ in items], add_special_tokens=add_special)["input_ids"]
        for (i, _, context), ids in zip(items, encoded):
            ctx = ctx_ids[context]
            out[i] = (ctx, ids[len(ctx):])
    return out
