"""Group scoring requests by their shared token prefixes (pure: no torch, no model).

    tree = build_tree([(ctx_ids, cont_ids), ...], max_len=2048)
    tree.groups      # prefixes shared by several contexts (few-shot demos, an instruction): run once
    tree.contexts    # each distinct context, minus its group's prefix: run once, for all its choices
    tree.feeds       # each distinct continuation feed (cont[:-1]) on top of its context's cache
    tree.requests    # per request: which context, which feed, which tokens to score
    tree.tokens_minimal, tree.tokens_planned

A request (context tokens c, continuation tokens x) asks for log p(x_j | c, x_<j) for every j.
The model must read `c + x[:-1]` (the *feed*): the last context position predicts x_0 and each
fed continuation token predicts the next one. lm-eval left-truncates `c + x` to the model's
window plus one token first; so do we, before anything else, so that every position sees
exactly the tokens lm-eval gives it.

Every position of a feed is a (prefix, token) pair: the token and everything before it. Two
requests that share a prefix need that position only once. `tokens_minimal` counts the distinct
positions over all requests (the nodes of the token trie of the feeds); a scorer that reads
`tokens_planned` tokens does `tokens_minimal / tokens_planned` of the least work possible.

The plan has three levels, which covers what scoring requests share in practice:
  1. group prefix: the longest prefix common to a group of contexts (demonstrations, the
     instruction). Contexts are grouped so that the total tokens read is smallest (see
     `_best_groups`); a group prefix never includes a context's last token, whose hidden state
     the LM head needs. Groups whose prefix saves little are pooled into one group without a
     prefix, so that their contexts share batches (`_pool_small_groups`).
  2. context: the rest of each distinct context, read once for all of its continuations.
  3. continuation feed: `x[:-1]` of each distinct (context, x[:-1]); single-token continuations
     need none (their log-prob is read at the context's last position).
What this plan does not share: continuation feeds of one context that share a first part but
differ later ("New York City" / "New Jersey" read "New" twice), and contexts that share more
with some members of their group than the group prefix. `tokens_minimal` still counts those as
shared, so the reported ratio shows that work honestly.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from workbench.errors import ModelError

Tokens = tuple[int, ...]


@dataclass
class Group:
    prefix: Tokens                      # run once; its key/value cache is shared by the contexts
    contexts: list[int] = field(default_factory=list)


@dataclass
class Context:
    group: int
    tokens: Tokens                      # the context after its group prefix (never empty)
    feeds: list[int] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)

    @property
    def length(self) -> int:
        return len(self.tokens)


@dataclass
class Feed:
    context: int
    tokens: Tokens                      # x[:-1], read after the whole context


@dataclass
class Request:
    context: int
    feed: int | None                    # None for a single-token continuation
    targets: Tokens                     # x: the tokens whose log-probs are summed


@dataclass
class ScoringTree:
    groups: list[Group]
    contexts: list[Context]
    feeds: list[Feed]
    requests: list[Request]
    tokens_minimal: int

    @property
    def tokens_planned(self) -> int:
        """Tokens this plan feeds through the decoder (padding not counted)."""
        return (sum(len(g.prefix) for g in self.groups) + sum(c.length for c in self.contexts)
                + sum(len(f.tokens) for f in self.feeds))


def build_tree(pairs: Sequence[tuple[Sequence[int], Sequence[int]]], max_len: int, *,
               share_prefixes: bool = True, min_group_saving: int | None = None) -> ScoringTree:
    """The plan for scoring `pairs` (context ids, continuation ids) with a `max_len` window.
    `share_prefixes=False` reads every context whole (no prefix cache). A group prefix must save
    `min_group_saving` tokens (default MIN_GROUP_SAVING), else its contexts are pooled."""
    ctx_index: dict[Tokens, int] = {}
    ctx_tokens: list[Tokens] = []
    feed_index: dict[tuple[int, Tokens], int] = {}
    feeds: list[Feed] = []
    requests: list[Request] = []
    all_feeds: set[Tokens] = set()
    for i, (ctx, cont) in enumerate(pairs):
        m = len(cont)
        if m == 0:
            raise ModelError(f"Request {i} has an empty continuation after tokenization.",
                             hint="Every answer choice must contain some text.")
        if m > max_len:
            raise ModelError(f"Request {i} has a continuation of {m} tokens, longer than the model's "
                             f"window of {max_len}.", hint="Use shorter answer choices or a model with a longer context.")
        full = (tuple(ctx) + tuple(cont))[-(max_len + 1):]      # lm-eval's left truncation
        c = full[: len(full) - m]
        if not c:
            raise ModelError(f"Request {i} has an empty context.", hint="Encode pairs with encode_pair().")
        ci = ctx_index.get(c)
        if ci is None:
            ci = ctx_index[c] = len(ctx_tokens)
            ctx_tokens.append(c)
        fi = None
        if m > 1:
            key = (ci, tuple(cont[:-1]))
            fi = feed_index.get(key)
            if fi is None:
                fi = feed_index[key] = len(feeds)
                feeds.append(Feed(ci, key[1]))
        requests.append(Request(ci, fi, tuple(cont)))
        all_feeds.add(full[:-1])

    groups: list[Group] = []
    contexts: list[Context] = [None] * len(ctx_tokens)   # type: ignore[list-item]
    runs = _best_groups(ctx_tokens) if share_prefixes else [([i], 0) for i in range(len(ctx_tokens))]
    runs = _pool_small_groups(runs, MIN_GROUP_SAVING if min_group_saving is None else min_group_saving)
    for members, P in runs:
        g = Group(ctx_tokens[members[0]][:P])
        for ci in members:
            g.contexts.append(ci)
            contexts[ci] = Context(len(groups), ctx_tokens[ci][P:])
        groups.append(g)
    for fi, f in enumerate(feeds):
        contexts[f.context].feeds.append(fi)
    for ri, r in enumerate(requests):
        contexts[r.context].requests.append(ri)
    return ScoringTree(groups, contexts, feeds, requests, trie_size(all_feeds))


MIN_GROUP_SAVING = 32   # tokens a group prefix must save to be run on its own


def _pool_small_groups(runs: list[tuple[list[int], int]], min_saving: int) -> list[tuple[list[int], int]]:
    """Put every group whose shared prefix saves fewer than MIN_GROUP_SAVING tokens into one
    group without a prefix. Contexts are batched within a group, so a thousand one-context
    groups (contexts with different first tokens: headlines, questions) would run a thousand
    batches of one row; pooled, they fill batches. Reading a short prefix a few times more costs
    far less than that, and tokens_minimal / tokens_forwarded reports it. (Without prefix
    sharing every run has P = 0, so all contexts form one pool.)"""
    def worth(m, P):
        return P > 0 and P * (len(m) - 1) >= min_saving

    keep = [(m, P) for m, P in runs if worth(m, P)]
    pool = [i for m, P in runs if not worth(m, P) for i in m]
    return keep + ([(pool, 0)] if pool else [])


def lcp(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n          # a[:lo] == b[:lo] and a[:hi] != b[:hi]; slices compare in C
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def trie_size(seqs) -> int:
    """Distinct non-empty prefixes of the sequences: the node count of their trie. In sorted
    order each sequence adds exactly the prefixes it does not share with the one before it."""
    total, prev = 0, ()
    for s in sorted(set(seqs)):
        total += len(s) - lcp(s, prev)
        prev = s
    return total


def _best_groups(ctxs: Sequence[Tokens]) -> list[tuple[list[int], int]]:
    """Partition distinct contexts into groups with a shared prefix, as (members, prefix length),
    so that the tokens read (each group prefix once + each context's rest) is smallest.

    In sorted order, the contexts that share a prefix of length >= k form contiguous runs, and
    a run's common prefix is the minimum of its adjacent LCPs. A run either stays one group
    with that prefix or splits where the adjacent LCP equals the minimum; each part is solved
    the same way. The prefix stops one token before the run's shortest context."""
    order = sorted(range(len(ctxs)), key=lambda i: ctxs[i])
    adj = [lcp(ctxs[order[j - 1]], ctxs[order[j]]) for j in range(1, len(order))]   # adj[j-1]: j-1 vs j

    def solve(lo: int, hi: int, depth: int = 0) -> tuple[int, list[tuple[list[int], int]]]:
        members = order[lo:hi]
        if hi - lo == 1:
            return len(ctxs[members[0]]), [(members, 0)]
        inner = adj[lo:hi - 1]
        m = min(inner)
        P = min(m, min(len(ctxs[i]) for i in members) - 1)
        cost = P + sum(len(ctxs[i]) - P for i in members)
        best = [(members, P)]
        if m > 0 and depth < 100:   # sub-runs share longer prefixes; see if giving each its own prefix reads less
            split_cost, split = 0, []
            start = lo
            for j in range(lo + 1, hi):
                if adj[j - 1] == m:
                    c, g = solve(start, j, depth + 1)
                    split_cost, start = split_cost + c, j
                    split += g
            c, g = solve(start, hi, depth + 1)
            split_cost += c
            split += g
            if split_cost < cost:
                return split_cost, split
        return cost, best

    out: list[tuple[list[int], int]] = []
    start = 0
    for j in range(1, len(order) + 1):      # contexts with no common first token never share
        if j == len(order) or adj[j - 1] == 0:
            if start < j:
                out += solve(start, j)[1]
            start = j
    return out
