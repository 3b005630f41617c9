"""Score (context, continuation) token pairs over their prefix tree: each distinct prefix once.

    out, info = score(pairs, NativeRunner(native), max_len=2048, token_budget=2048, max_batch=64)
    out[i] == (logprob, greedy, n_tokens)          # lm-eval's loglikelihood for pair i

`prefix_tree.build_tree` plans the work (see there): group prefixes, contexts, continuation
feeds. This module runs the plan, level by level:

  1. each group prefix (few-shot demonstrations, a shared instruction) once, keeping its
     key/value cache [1, nkv, P, d];
  2. the group's contexts in length-sorted, right-padded batches under the token budget, on top
     of the prefix cache. The LM head runs only at each context's last position, which predicts
     every continuation's first token (all single-token choices are scored here). When some
     continuation has more tokens, the batch's own key/value cache is kept: [Bc, nkv, C, d];
  3. right away, the continuation feeds `x[:-1]` of those contexts, packed by length under the
     token budget, each row on top of the group prefix and *its own* context's cache rows
     (right-padded, masked past each context's length; positions continue from the context's
     end). The head runs only at the feed's positions. Then the context cache is dropped, so
     memory holds one batch of contexts at a time.

Both runners compute the same numbers as a plain forward pass over `context + continuation`:
`NativeRunner` (the verified built-in decoder, llama_native.py) and `HFRunner` (transformers,
with a peft adapter if one is attached; caches passed as `DynamicCache`, padding as a 2-D
attention mask, positions as `position_ids`). tests/test_prefix_scoring.py checks both against
full-prompt scoring, and `tokens_minimal` / `tokens_forwarded` is reported per call.
"""
from __future__ import annotations

import inspect
import logging
import time
import traceback
from typing import Callable, Sequence

from workbench.engine.prefix_tree import build_tree
from workbench.errors import Cancelled

log = logging.getLogger(__name__)
Result = tuple[float, bool, int]     # (sum of log p, every token greedy, continuation length)


# ---------------------------------------------------------------------------- runners
class NativeRunner:
    """Level forwards on the built-in Llama decoder (llama_native.NativeLlama)."""

    def __init__(self, native):
        self.native = native
        self.device = native.device

    def prefix(self, ids: Sequence[int]):
        return self.native.prefix(ids)                                      # [(k, v)] [1, nkv, P, d]

    def contexts(self, ids, lens, prefix_kv, rows, cols, want_kv: bool):
        out = self.native.hidden(ids, prefix_kv=prefix_kv, return_kv=want_kv)
        hidden, kv = out if want_kv else (out, None)
        return self.native.head(hidden[rows, cols]), kv                    # [N, V]

    def continuations(self, ids, lens, prefix_kv, row_kv, row_index, row_lens, rows, cols):
        hidden = self.native.hidden(ids, prefix_kv=prefix_kv, row_kv=row_kv, row_index=row_index, row_lens=row_lens)
        return self.native.head(hidden[rows, cols])


class HFRunner:
    """Level forwards through transformers (and peft, when the model carries an adapter).
    `decoder`/`head`: the model body and LM head, so the head runs only where needed; when the
    architecture hides them (None), the full model runs and its logits are indexed instead."""

    def __init__(self, lm, decoder=None, head=None, device: str = "cpu"):
        self.module = decoder if decoder is not None else lm
        self.head = head if decoder is not None else None
        self.device = device
        self.softcap = getattr(lm.config, "final_logit_softcapping", None)
        params = inspect.signature(self.module.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"

    def _logits(self, out, rows, cols):
        if self.head is not None:
            logits = self.head(out.last_hidden_state[rows, cols])
        else:
            logits = out.logits[rows, cols]
        if self.softcap:
            import torch
            logits = torch.tanh(logits.float() / self.softcap) * self.softcap
        return logits

    def prefix(self, ids: Sequence[int]):
        import torch

        out = self.module(input_ids=torch.tensor([list(ids)], device=self.device), use_cache=True)
        return layers_of(out)                                              # [(k, v)] [1, nkv, P, d]

    def contexts(self, ids, lens, prefix_kv, rows, cols, want_kv: bool):
        import torch

        B, T = ids.shape
        P = prefix_kv[0][0].shape[2] if prefix_kv else 0
        new = (torch.arange(T, device=self.device)[None, :] < lens[:, None]).long()       # [B, T]
        kwargs = {"input_ids": ids, "use_cache": want_kv or bool(P)}
        if P:
            kwargs["attention_mask"] = torch.cat((torch.ones(B, P, dtype=torch.long, device=self.device), new), 1)
            kwargs["position_ids"] = (torch.arange(T, device=self.device) + P).unsqueeze(0).expand(B, -1)
            kwargs[self._cache_arg] = make_cache([(k.expand(B, -1, -1, -1), v.expand(B, -1, -1, -1))
                                                   for k, v in prefix_kv])
        else:
            kwargs["attention_mask"] = new
        out = self.module(**kwargs)
        kv = [(k[:, :, P:], v[:, :, P:]) for k, v in layers_of(out)] if want_kv else None
        return self._logits(out, rows, cols), kv

    def continuations(self, ids, lens, prefix_kv, row_kv, row_index, row_lens, rows, cols):
        import torch

        B, T = ids.shape
        P = prefix_kv[0][0].shape[2] if prefix_kv else 0
        C = row_kv[0][0].shape[2]
        clen = row_lens[row_index]                                                          # [B]
        data = []
        for i, (rk, rv) in enumerate(row_kv):
            ks, vs = [rk.index_select(0, row_index)], [rv.index_select(0, row_index)]
            if P:
                pk, pv = prefix_kv[i]
                ks.insert(0, pk.expand(B, -1, -1, -1))
                vs.insert(0, pv.expand(B, -1, -1, -1))
            data.append((torch.cat(ks, 2) if P else ks[0], torch.cat(vs, 2) if P else vs[0]))   # [B, nkv, P+C, d]
        ar_c = torch.arange(C, device=self.device)[None, :]
        mask = torch.cat((torch.ones(B, P, dtype=torch.long, device=self.device), (ar_c < clen[:, None]).long(),
                          (torch.arange(T, device=self.device)[None, :] < lens[:, None]).long()), 1)   # [B, P+C+T]
        pos = P + clen[:, None] + torch.arange(T, device=self.device)[None, :]                     # [B, T]
        out = self.module(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True,
                          **{self._cache_arg: make_cache(data)})
        return self._logits(out, rows, cols)


def layers_of(out) -> list:
    """Per-layer (keys, values) of a model output's cache, each [B, nkv, L, d]."""
    cache = getattr(out, "cache", None)
    if cache is None:
        cache = getattr(out, "past_key_values", None)
    return [(layer[0], layer[1]) for layer in cache]


def make_cache(data):
    """A transformers DynamicCache holding `data` (per layer (k, v), [B, nkv, L, d]).

    The layers hold the tensors as given, expanded views included: the forward pass
    concatenates each layer's cache with the batch's new keys/values anyway, so that
    concatenation is the only copy (building the cache the ordinary way would copy once more)."""
    from transformers import DynamicCache

    try:
        cache = DynamicCache()
        if getattr(cache, "layers", None) is None or not hasattr(cache, "layer_class_to_replicate"):
            raise TypeError("no per-layer cache objects in this transformers version")
        from transformers.cache_utils import DynamicLayer

        cache.layers = []
        for k, v in data:
            layer = DynamicLayer()
            layer.device, layer.keys, layer.values, layer.is_initialized = k.device, k, v, True
            cache.layers.append(layer)
        return cache
    except (TypeError, ImportError, AttributeError):
        try:
            return DynamicCache(ddp_cache_data=data)
        except TypeError:   # older transformers
            return DynamicCache.from_legacy_cache(tuple(data))


# ---------------------------------------------------------------------------- the algorithm
BATCH_OVERHEAD_TOKENS = 64   # what one more batch costs, in padded-token equivalents


def pack(lengths: Sequence[int], cap: Callable[[int], int]) -> list[tuple[int, int]]:
    """Split rows sorted by length (longest first) into batches [start, end), each right-padded
    to its first row's length and at most `cap(that length)` rows (the token budget).

    Padding is computed like real tokens, so it is pure waste; but small batches run the matrix
    products below the machine's rate (on the 2-core box a [M, 576] x [576, 1536] product runs
    at ~60% of its best rate at M = 64 and ~85% at M = 256, bench/bench_scoring.py's machine).
    Both fit one cost: a batch costs its padded tokens plus BATCH_OVERHEAD_TOKENS. The split
    with the least total cost is found exactly by dynamic programming over the sorted rows
    (O(rows x cap))."""
    n = len(lengths)
    if n == 0:
        return []
    INF = float("inf")
    best = [0.0] + [INF] * n            # best[j]: least cost of rows [0, j)
    start = [0] * (n + 1)
    for i in range(n):                  # a batch starting at row i (its longest)
        if best[i] == INF:
            continue
        L, base = lengths[i], best[i] + BATCH_OVERHEAD_TOKENS
        for j in range(i + 1, min(n, i + max(1, cap(L))) + 1):
            c = base + (j - i) * L
            if c < best[j]:
                best[j], start[j] = c, i
    out, j = [], n
    while j > 0:
        out.append((start[j], j))
        j = start[j]
    return out[::-1]


def score(pairs: Sequence[tuple[Sequence[int], Sequence[int]]], runner, *, max_len: int, token_budget: int,
          max_batch: int, pad_id: int, share_prefixes: bool = True, stats: dict | None = None,
          progress: Callable[[int, int], None] | None = None,
          cancel: Callable[[], bool] | None = None) -> tuple[list[Result], dict]:
    """lm-eval's loglikelihood of every (context ids, continuation ids) pair, each distinct
    prefix computed once. Returns (results, info); info has tokens_minimal, tokens_forwarded,
    prefix_runs (group prefixes cached) and oom_halvings. `stats` (the session's counters) is
    updated in place. Call under torch.inference_mode().

    On an accelerator the loop never waits for the device: the picked log-probs stay on the
    device until the end (one copy back for the whole call), and each batch's index tensors
    travel in one pinned, non-blocking copy. A batch that runs out of device memory is retried
    with half the token budget (for it and every later batch), and `oom_halvings` says so."""
    import torch

    from workbench.engine.device_memory import is_oom, release

    tree = build_tree(pairs, max_len, share_prefixes=share_prefixes)
    st = {"tokens": 0, "padded": 0, "head_positions": 0, "forward_s": 0.0, "oom_halvings": 0}
    n_req = len(tree.requests)
    feed_reqs: list[list[int]] = [[] for _ in tree.feeds]
    for ri, r in enumerate(tree.requests):
        if r.feed is not None:
            feed_reqs[r.feed].append(ri)
    dev = runner.device
    on_gpu = str(dev).startswith("cuda")
    prefix_runs, done = 0, 0
    budget = [token_budget]          # halved on each out-of-memory
    found: list[tuple[list, object, object]] = []   # (picks, log p [N] on device, argmax [N] on device)

    def to_dev(*ts):
        """Host tensors -> device; on CUDA one pinned non-blocking copy (a pageable copy would
        wait for every queued kernel, a host sync per batch)."""
        if not on_gpu:
            return [t.to(dev) for t in ts]
        flat = torch.cat([t.reshape(-1) for t in ts]).pin_memory().to(dev, non_blocking=True)
        out, o = [], 0
        for t in ts:
            out.append(flat[o:o + t.numel()].view(t.shape))
            o += t.numel()
        return out

    def collect(logits, picks, r_idx, t_idx, sink):
        """Log p(target) and the argmax at each pick (head row, request, token); kept on the device."""
        if not picks:
            return
        logp = torch.log_softmax(logits.float(), dim=-1)                     # [N, V]
        sink.append((picks, logp[r_idx, t_idx], logp.argmax(-1)[r_idx]))

    def index_tensors(picks):
        return (torch.tensor([p[0] for p in picks], dtype=torch.long),
                torch.tensor([p[2] for p in picks], dtype=torch.long))

    def count(t0, real, padded, heads):
        st["forward_s"] += time.perf_counter() - t0
        st["tokens"] += real
        st["padded"] += padded
        st["head_positions"] += heads

    def halve(exc, what: str):
        """Out of memory: release the cache, halve the budget for everything after (says so)."""
        budget[0] = max(1, budget[0] // 2)
        st["oom_halvings"] += 1
        release(dev)
        log.warning("out of device memory on a %s batch: token budget halved to %d and the batch retried (%s)",
                    what, budget[0], str(exc).splitlines()[0][:200])

    def packed(lens, cap, what: str, step) -> None:
        """Run `step(i0, i1)` over the batches `pack` cuts from `lens` (longest first), in order.
        A batch that runs out of device memory halves the budget and is cut again from where it
        started; one row that does not fit raises. The failed step's frames are cleared first, so
        its tensors are free before the cache is released."""
        plan, k, pos = pack(lens, cap), 0, 0
        while pos < len(lens):
            if cancel and cancel():
                raise Cancelled()
            i0, i1 = plan[k]
            try:
                step(i0, i1)
            except Exception as exc:  # noqa: BLE001 - only out-of-memory is handled
                if not is_oom(exc) or i1 - i0 == 1:
                    raise
                traceback.clear_frames(exc.__traceback__)
                halve(exc, what)
                plan, k = [(pos + a, pos + b) for a, b in pack(lens[pos:], cap)], 0
                continue
            pos, k = i1, k + 1

    def run_feeds(ctx_batch, kv, ctx_lens, prefix_kv, P, sink):
        """Level 3: the continuation feeds of one batch of contexts, on top of their caches."""
        C = kv[0][0].shape[2]
        items = [(f, b) for b, ci in enumerate(ctx_batch) for f in tree.contexts[ci].feeds]
        items.sort(key=lambda fb: -len(tree.feeds[fb[0]].tokens))
        f_lens = [len(tree.feeds[f].tokens) for f, _ in items]

        def cap(T):
            return max(1, min(4 * max_batch, budget[0] // max(1, T + (P + C) // 4)))

        def step(j0, j1):
            Tmax = f_lens[j0]
            part = items[j0:j1]
            ids = torch.full((len(part), Tmax), pad_id, dtype=torch.long)
            rows, cols, picks = [], [], []
            for b, (f, _) in enumerate(part):
                toks = tree.feeds[f].tokens
                ids[b, :len(toks)] = torch.tensor(toks)
                for t in range(len(toks)):
                    for ri in feed_reqs[f]:
                        picks.append((len(rows), ri, tree.requests[ri].targets[t + 1]))
                    rows.append(b)
                    cols.append(t)
            real = sum(f_lens[j0:j1])
            lens_h = torch.tensor(f_lens[j0:j1], dtype=torch.long)
            r_h, t_h = index_tensors(picks)
            t0 = time.perf_counter()
            ids_d, lens, row_index, rows_d, cols_d, r_idx, t_idx = to_dev(
                ids, lens_h, torch.tensor([b for _, b in part], dtype=torch.long),
                torch.tensor(rows, dtype=torch.long), torch.tensor(cols, dtype=torch.long), r_h, t_h)
            logits = runner.continuations(ids_d, lens, prefix_kv, kv, row_index, ctx_lens, rows_d, cols_d)
            collect(logits, picks, r_idx, t_idx, sink)
            del logits
            count(t0, real, len(part) * Tmax, len(rows))

        packed(f_lens, cap, "continuation", step)

    for g in tree.groups:
        P = len(g.prefix)
        prefix_kv = None
        if P:
            t0 = time.perf_counter()
            prefix_kv = runner.prefix(g.prefix)
            count(t0, P, P, 0)
            prefix_runs += 1
        order = sorted(g.contexts, key=lambda c: -tree.contexts[c].length)
        c_lens = [tree.contexts[c].length for c in order]

        def cap(L, P=P):
            return max(1, min(max_batch, budget[0] // max(1, L + P // 4)))

        def step(i0, i1):
            nonlocal done
            Lmax = c_lens[i0]
            batch = order[i0:i1]
            ids = torch.full((len(batch), Lmax), pad_id, dtype=torch.long)
            picks = []
            for b, ci in enumerate(batch):
                c = tree.contexts[ci]
                ids[b, :c.length] = torch.tensor(c.tokens)
                picks += [(b, ri, tree.requests[ri].targets[0]) for ri in c.requests]
            lens_h = torch.tensor(c_lens[i0:i1], dtype=torch.long)
            want_kv = any(tree.contexts[ci].feeds for ci in batch)
            r_h, t_h = index_tensors(picks)
            sink: list = []           # this batch's picks; kept only once all of it ran
            t0 = time.perf_counter()
            ids_d, lens, r_idx, t_idx = to_dev(ids, lens_h, r_h, t_h)
            logits, kv = runner.contexts(ids_d, lens, prefix_kv, torch.arange(len(batch), device=dev),
                                         lens - 1, want_kv)
            collect(logits, picks, r_idx, t_idx, sink)
            del logits
            count(t0, sum(c_lens[i0:i1]), len(batch) * Lmax, len(batch))
            if want_kv:
                run_feeds(batch, kv, lens, prefix_kv, P, sink)
            del kv
            found.extend(sink)
            done += sum(len(tree.contexts[ci].requests) for ci in batch)
            if progress:
                progress(min(done, n_req), n_req)

        packed(c_lens, cap, "context", step)

    # one copy back for the whole call
    lp = [0.0] * n_req
    greedy = [True] * n_req
    if found:
        vals = torch.cat([v for _, v, _ in found]).tolist()
        best = torch.cat([b for _, _, b in found]).tolist()
        i = 0
        for picks, _, _ in found:
            for _, ri, tok in picks:
                lp[ri] += vals[i]
                greedy[ri] = greedy[ri] and best[i] == tok
                i += 1
    if on_gpu:
        torch.cuda.synchronize(dev)
    info = {"tokens_minimal": tree.tokens_minimal, "tokens_forwarded": st["tokens"], "prefix_runs": prefix_runs,
            "oom_halvings": st["oom_halvings"]}
    if stats is not None:
        for k, v in st.items():
            stats[k] = stats.get(k, 0) + v
        stats["tokens_forwarded"] = stats.get("tokens_forwarded", 0) + st["tokens"]
        stats["tokens_minimal"] = stats.get("tokens_minimal", 0) + tree.tokens_minimal
    results = [(lp[i], greedy[i], len(r.targets)) for i, r in enumerate(tree.requests)]
    return results, info
