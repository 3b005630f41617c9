"""The two engines on this machine's weights: transformers (with peft) and the built-in decoder.

    TransformersEngine(weights)                         # transformers scores and generates
    NativeEngine(weights, generator=lambda: TransformersEngine(...))   # built-in decoder scores

Both score over the requests' prefix tree (prefix_tree.py plans it, prefix_scoring.py runs it):
  * a prefix shared by many contexts (few-shot demonstrations, an instruction) runs once and
    its key/value cache is reused; each distinct context runs once for all of its choices, and
    multi-token choices run only their own tokens on top of the context's cache;
  * the LM head runs only at the positions whose log-probabilities are needed
    (hidden [N, H] @ W^T [H, V] instead of [B, L, H] @ W^T);
  * sequences are sorted longest-first and batched under a token budget, so padding is small
    and an out-of-memory error shows up in the first batch.
The built-in decoder only scores (fastpath.py verifies it against transformers per model);
generation always runs transformers' `generate`, so NativeEngine hands it to a TransformersEngine
that the session builds on first need.

`LocalWeights` is what the session hands an engine: the loaded objects and the limits, read at
the moment of the call (the adapter, the token budget from free memory, the counters).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from workbench.engine.protocol import (CancelFn, GenOptions, Generation, LogLik, ProgressFn, TokenPair, cut_at_stop,
                                       model_identity)
from workbench.errors import Cancelled


@dataclass
class LocalWeights:
    """The session's loaded objects and limits for one engine (built per call: cheap)."""

    model: Any                  # the transformers model (a PeftModel when an adapter is attached), or None
    native: Any                 # NativeLlama or None
    tokenizer: Any              # the scoring tokenizer (raw on the fast path, else transformers')
    hf_tokenizer: Callable[[], Any]   # transformers' tokenizer (generation), loaded on first need
    name: str                   # the resolved model identity
    device: str
    dtype_name: str
    adapter_sha256: str | None
    max_length: int
    token_budget: int
    max_batch: int
    lock: Any = field(default_factory=threading.RLock)
    stats: dict = field(default_factory=dict)
    gen_prefix: Any = None      # prefix_generate.PrefixCache, kept across calls


def split_decoder_head(lm):
    """(decoder, lm_head) so the head can run only at needed positions; (None, None) if the
    architecture hides them (we then fall back to full logits)."""
    try:
        decoder = lm.get_decoder()
        head = lm.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return None, None
    if decoder is None or head is None or decoder is lm:
        return None, None
    return decoder, head


class _Local:
    kind = "local"

    def __init__(self, w: LocalWeights):
        self.w = w

    @property
    def tokenizer(self):
        return self.w.tokenizer

    def identity(self) -> dict:
        return model_identity(self.kind, self.w.name, dtype=self.w.dtype_name, device=self.w.device,
                              adapter_sha256=self.w.adapter_sha256)

    def _runner(self):
        raise NotImplementedError

    def score(self, requests: Sequence[TokenPair], *, progress: ProgressFn | None = None,
              cancel: CancelFn | None = None, prefix_cache: bool = True) -> list[LogLik]:
        import torch

        from workbench.engine import prefix_scoring

        w = self.w
        runner = self._runner()
        with w.lock, torch.inference_mode():
            out, info = prefix_scoring.score(
                requests, runner, max_len=w.max_length, token_budget=w.token_budget, max_batch=w.max_batch,
                pad_id=w.tokenizer.pad_token_id, share_prefixes=prefix_cache, stats=w.stats, progress=progress,
                cancel=cancel)
        w.stats["prefix_runs"] = w.stats.get("prefix_runs", 0) + info["prefix_runs"]
        return [LogLik(*r) for r in out]


class TransformersEngine(_Local):
    """transformers' model (with its peft adapter, if attached): scoring and generation.
    `full_logits=True` runs the whole model and its head at every position (a reference for tests)."""

    kind = "transformers"

    def __init__(self, w: LocalWeights, *, full_logits: bool = False):
        super().__init__(w)
        self.full_logits = full_logits

    def _runner(self):
        from workbench.engine import prefix_scoring

        model = self.w.model
        lm = model.get_base_model() if hasattr(model, "get_base_model") else model
        decoder, head = (None, None) if self.full_logits else split_decoder_head(lm)
        return prefix_scoring.HFRunner(lm, decoder, head, device=self.w.device)

    def generate(self, prompts: Sequence[str], options: GenOptions, *, progress: ProgressFn | None = None,
                 cancel: CancelFn | None = None) -> list[Generation]:
        import torch

        from workbench.engine import prefix_generate as pg
        from workbench.engine.encoding import encode

        w, o = self.w, options
        model, tok = w.model, w.hf_tokenizer()
        stop = [s for s in o.stop if s]
        outs: list[Generation | None] = [None] * len(prompts)
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        enc_all = [encode(w.tokenizer, p) for p in prompts]
        # The token prefix every prompt shares (instruction, demonstrations) runs once and is
        # kept across batches and calls (Self-Ask rounds); see prefix_generate.py.
        P = pg.common_prefix_len(enc_all) if o.prefix_reuse else 0
        P = P if P >= pg.MIN_PREFIX else 0
        done = 0
        with w.lock, torch.inference_mode():
            layers = None
            if P:
                layers = pg.prefix_layers(model, enc_all[0][:P], w.gen_prefix, (id(model), w.adapter_sha256),
                                          w.device, w.stats)
            old_side = tok.padding_side
            tok.padding_side = "left"   # decoder-only generation needs the prompt flush right
            try:
                for s in range(0, len(order), o.batch_size):
                    if cancel and cancel():
                        raise Cancelled()
                    idx = order[s:s + o.batch_size]
                    enc_ids = [enc_all[i] for i in idx]
                    extra = {}
                    if P:
                        ids, mask = pg.batch_inputs(enc_ids, P, tok.pad_token_id)
                        extra[pg.cache_kwarg(model)] = pg.expanded_cache(layers, len(idx))
                        w.stats["gen_prefix_saved"] = w.stats.get("gen_prefix_saved", 0) + P * len(idx)
                    else:
                        L = max(len(e) for e in enc_ids)
                        ids = torch.full((len(idx), L), tok.pad_token_id, dtype=torch.long)   # [B, L]
                        mask = torch.zeros((len(idx), L), dtype=torch.long)
                        for b, e in enumerate(enc_ids):
                            ids[b, L - len(e):] = torch.tensor(e)
                            mask[b, L - len(e):] = 1
                    L = ids.shape[1]
                    torch.manual_seed(o.seed)
                    gen_kwargs = dict(max_new_tokens=o.max_new_tokens, pad_token_id=tok.pad_token_id,
                                      do_sample=o.temperature > 0)
                    if o.temperature > 0:
                        gen_kwargs.update(temperature=o.temperature, top_p=o.top_p)
                    else:
                        gen_kwargs.update(temperature=None, top_p=None, top_k=None)
                    if stop:
                        # stop_strings handles a stop string split across token boundaries.
                        gen_kwargs.update(stop_strings=list(stop), tokenizer=tok)
                    seqs = model.generate(input_ids=ids.to(w.device), attention_mask=mask.to(w.device),
                                          **gen_kwargs, **extra)
                    new = seqs[:, L:]
                    for b, i in enumerate(idx):
                        outs[i] = _decode(tok, new[b].tolist(), stop, o.max_new_tokens)
                    done += len(idx)
                    if progress:
                        progress(done, len(prompts))
            finally:
                tok.padding_side = old_side
        return outs  # type: ignore[return-value]


def _decode(tok, toks: list[int], stop: list[str], max_new_tokens: int) -> Generation:
    eos_hit = False
    if tok.eos_token_id is not None and tok.eos_token_id in toks:
        toks = toks[:toks.index(tok.eos_token_id)]
        eos_hit = True
    # strip trailing pads (left-padded batch: finished rows are padded on the right)
    while toks and toks[-1] == tok.pad_token_id and tok.pad_token_id != tok.eos_token_id:
        toks.pop()
    text = tok.decode(toks, skip_special_tokens=True)
    text, reason = cut_at_stop(text, stop)
    if reason != "stop":
        reason = "eos" if eos_hit else ("length" if len(toks) >= max_new_tokens else "eos")
    return Generation(text=text, n_tokens=len(toks), stop_reason=reason)


class NativeEngine(_Local):
    """The built-in Llama decoder (llama_native.py) scores; `generator()` gives the transformers
    engine that generates (loading transformers' weights on first need, sharing the tensors)."""

    kind = "native"

    def __init__(self, w: LocalWeights, generator: Callable[[], TransformersEngine]):
        super().__init__(w)
        self._generator = generator

    def _runner(self):
        from workbench.engine import prefix_scoring

        return prefix_scoring.NativeRunner(self.w.native)

    def generate(self, prompts: Sequence[str], options: GenOptions, *, progress: ProgressFn | None = None,
                 cancel: CancelFn | None = None) -> list[Generation]:
        return self._generator().generate(prompts, options, progress=progress, cancel=cancel)
