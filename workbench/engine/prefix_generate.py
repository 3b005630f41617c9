"""Generation on top of a shared prompt prefix: the instruction and demonstrations run once.

Self-Ask and chain-of-thought prompts are long shared text (instruction + k worked examples,
hundreds of tokens) followed by a short question and the chain so far. Self-Ask calls generate
once per round, for every open chain; without this module each call re-reads the whole shared
part for every row. Here the longest token prefix common to the prompts is run once, its
key/value cache is kept (one entry per model + adapter), and every batch generates on top of it:

    rows      [ prefix (P) | pads | suffix_b ]     attention mask 0 on the pads
    positions   0 .. P-1           P .. P+len(suffix_b)-1   (transformers derives them from the
                                                             mask: cumsum - 1)

So each row computes exactly what a left-padded full prompt computes, up to float rounding in a
different summation order; tests/test_prefix_generate.py checks greedy outputs are the same
text on the real model. The padding sits between prefix and suffix instead of before the prompt,
which is why the positions still come out right.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

MIN_PREFIX = 16      # shorter shared parts are not worth a separate forward pass


@dataclass
class PrefixCache:
    """The last shared prefix's per-layer (keys, values), [1, nkv, P, d] each, and its owner.
    One entry: Self-Ask rounds and batches of one job share one prefix; a new job replaces it."""

    key: tuple = ()
    ids: tuple[int, ...] = ()
    layers: list = field(default_factory=list)

    def clear(self) -> None:
        self.key, self.ids, self.layers = (), (), []


def common_prefix_len(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the longest token prefix shared by every sequence, leaving each at least one
    token of its own (generation needs a last prompt token to run on)."""
    if not seqs:
        return 0
    first, n = seqs[0], min(len(s) for s in seqs) - 1
    for s in seqs[1:]:
        i = 0
        while i < n and s[i] == first[i]:
            i += 1
        n = i
    return max(0, n)


def prefix_layers(model, ids: Sequence[int], cache: PrefixCache, owner: tuple, device,
                  stats: dict | None = None) -> list:
    """The key/value cache of `ids` under `model`, from `cache` when the same owner (model,
    adapter) computed it last; else computed now (one forward pass) and kept, and counted in
    `stats["gen_prefix_tokens"]`."""
    import torch

    from workbench.engine.prefix_scoring import layers_of

    ids = tuple(ids)
    if cache.key == owner and cache.ids == ids and cache.layers:
        return cache.layers
    out = model(input_ids=torch.tensor([list(ids)], device=device), use_cache=True)
    cache.key, cache.ids, cache.layers = owner, ids, layers_of(out)
    if stats is not None:
        stats["gen_prefix_tokens"] = stats.get("gen_prefix_tokens", 0) + len(ids)
    return cache.layers


def batch_inputs(enc: Sequence[Sequence[int]], P: int, pad_id: int):
    """input_ids and attention_mask [B, P + S] for rows that share their first P tokens:
    the prefix, then right-aligned suffixes with pads in between (masked)."""
    import torch

    S = max(len(e) - P for e in enc)
    ids = torch.full((len(enc), P + S), pad_id, dtype=torch.long)
    mask = torch.zeros((len(enc), P + S), dtype=torch.long)
    for b, e in enumerate(enc):
        ids[b, :P] = torch.tensor(list(e[:P]))
        mask[b, :P] = 1
        ids[b, P + S - (len(e) - P):] = torch.tensor(list(e[P:]))
        mask[b, P + S - (len(e) - P):] = 1
    return ids, mask


def cache_kwarg(model) -> str:
    """The name `generate` takes a ready cache under: `cache` in transformers 5 (where
    `past_key_values` is deprecated), `past_key_values` before."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def expanded_cache(layers: list, batch: int):
    """A fresh transformers cache holding the prefix for `batch` rows. The tensors are expanded
    views, not copies: generation appends by concatenation, which leaves them untouched, so the
    kept prefix serves the next batch too."""
    from workbench.engine.prefix_scoring import make_cache

    return make_cache([(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)) for k, v in layers])
