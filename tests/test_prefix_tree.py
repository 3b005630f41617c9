"""The prefix tree of scoring requests (workbench/engine/prefix_tree.py), on token sequences
worked out by hand. No model."""
from __future__ import annotations

import itertools
import random

import pytest

from workbench.engine.prefix_tree import build_tree, lcp, trie_size
from workbench.errors import ModelError


def test_lcp_and_trie_size_by_hand():
    assert lcp((1, 2, 3), (1, 2, 4)) == 2
    assert lcp((1, 2), (1, 2, 3)) == 2
    assert lcp((), (1,)) == 0 and lcp((5,), (6,)) == 0
    # {1,2,3}, {1,2,4}, {1,5}: prefixes 1 | 1,2 | 1,2,3 | 1,2,4 | 1,5  -> 5 nodes
    assert trie_size([(1, 2, 3), (1, 2, 4), (1, 5)]) == 5
    assert trie_size([(1, 2, 3), (1, 2, 3)]) == 3            # duplicates count once
    assert trie_size([(1, 2), (1, 2, 3)]) == 3               # a sequence inside another adds nothing
    assert trie_size([(7,), (8, 9)]) == 3


def test_trie_size_equals_a_brute_force_count():
    rng = random.Random(0)
    for _ in range(50):
        seqs = [tuple(rng.randint(0, 2) for _ in range(rng.randint(1, 6))) for _ in range(rng.randint(1, 8))]
        brute = {s[:k] for s in seqs for k in range(1, len(s) + 1)}
        assert trie_size(seqs) == len(brute)


def test_one_context_with_single_and_multi_token_choices():
    ctx = [10, 11, 12]
    pairs = [(ctx, [1]), (ctx, [2]), (ctx, [3, 4, 5]), (ctx, [3, 4, 6]), (ctx, [7, 8])]
    t = build_tree(pairs, max_len=100, min_group_saving=0)
    assert len(t.contexts) == 1 and t.contexts[0].tokens == (10, 11, 12)
    assert len(t.groups) == 1 and t.groups[0].prefix == ()           # one context: nothing to share
    # feeds x[:-1]: none for single tokens; (3, 4) once for both 3-token choices; (7,)
    assert [f.tokens for f in t.feeds] == [(3, 4), (7,)]
    assert [r.feed for r in t.requests] == [None, None, 0, 0, 1]
    assert [r.targets for r in t.requests][2] == (3, 4, 5)
    # positions: 10 | 10,11 | 10,11,12 | +3 | +3,4 | +7  -> 6, and the plan reads exactly those
    assert t.tokens_minimal == 6 and t.tokens_planned == 6


def test_few_shot_prefix_is_shared_and_stops_before_the_last_context_token():
    demos = [1, 2, 3, 4]
    pairs = [(demos + [20, 21], [5]), (demos + [20, 21], [6, 7]),
             (demos + [30], [5]), (demos + [30], [6, 7]),
             (demos + [40, 41, 42], [5])]
    t = build_tree(pairs, max_len=100, min_group_saving=0)
    assert len(t.groups) == 1 and t.groups[0].prefix == (1, 2, 3, 4)
    assert [c.tokens for c in t.contexts] == [(20, 21), (30,), (40, 41, 42)]
    assert [f.tokens for f in t.feeds] == [(6,), (6,)]              # one per context
    # trie: 1,2,3,4 (4) + 20,21 (+2) + 6 (+1) + 30 (+1) + 6 (+1) + 40,41,42 (+3) = 12
    assert t.tokens_minimal == 12 == t.tokens_planned
    # a context that is all prefix keeps its last token out of the group prefix
    t = build_tree([([1, 2, 3], [9]), ([1, 2, 3, 4], [9])], max_len=100, min_group_saving=0)
    assert t.groups[0].prefix == (1, 2) and [c.tokens for c in t.contexts] == [(3,), (3, 4)]
    assert (t.tokens_minimal, t.tokens_planned) == (4, 5)           # token 3 is read twice


def test_groups_split_where_that_reads_fewer_tokens():
    a, b = list(range(100, 120)), list(range(200, 220))           # two demo blocks, 20 tokens each
    pairs = [([1] + a + [k], [9]) for k in range(3)] + [([1] + b + [k], [9]) for k in range(3)]
    pairs += [([50, 51], [9])]                                    # an unrelated context (PMI-like)
    t = build_tree(pairs, max_len=100, min_group_saving=0)
    prefixes = sorted(g.prefix for g in t.groups)
    assert prefixes == [(), tuple([1] + a), tuple([1] + b)]
    # one group with prefix (1,) would read 1 + 6 * 21 + 2 = 129 tokens; two groups read 21*2 + 6 + 2;
    # the minimum reads the leading 1 only once
    assert (t.tokens_planned, t.tokens_minimal) == (50, 49)
    flat = build_tree(pairs, max_len=100, share_prefixes=False)
    assert all(g.prefix == () for g in flat.groups) and flat.tokens_planned == 6 * 22 + 2
    assert flat.tokens_minimal == t.tokens_minimal


def test_what_the_plan_does_not_share_is_visible_in_the_ratio():
    ctx = [1, 2]
    # "New York City" / "New Jersey Turnpike": feeds (New, York) and (New, Jersey) share "New"
    t = build_tree([(ctx, [5, 6, 7]), (ctx, [5, 8, 9])], max_len=100, min_group_saving=0)
    assert t.tokens_planned == 2 + 2 + 2 and t.tokens_minimal == 2 + 1 + 2


def test_left_truncation_follows_lm_eval():
    # window 4: (ctx + cont)[-5:] is fed minus its last token
    t = build_tree([([1, 2, 3, 4, 5, 6], [7, 8])], max_len=4)
    assert t.contexts[0].tokens == (4, 5, 6) and t.feeds[0].tokens == (7,)
    assert t.tokens_minimal == 4 == t.tokens_planned
    # choices of different lengths truncate the shared context differently: two contexts
    t = build_tree([([1, 2, 3, 4, 5, 6], [7]), ([1, 2, 3, 4, 5, 6], [7, 8])], max_len=4)
    assert sorted(c.tokens for c in t.contexts) == [(3, 4, 5, 6), (4, 5, 6)]


def test_bad_requests_are_clear_errors():
    with pytest.raises(ModelError, match="empty continuation"):
        build_tree([([1], [])], max_len=10)
    with pytest.raises(ModelError, match="longer than the model's window"):
        build_tree([([1], list(range(11)))], max_len=10)


def test_every_request_maps_back_to_its_own_tokens():
    rng = random.Random(3)
    demos = [rng.randint(0, 50) for _ in range(8)]
    pairs = []
    for _, n in itertools.product(range(6), range(3)):
        ctx = demos + [rng.randint(0, 5) for _ in range(rng.randint(1, 4))]
        pairs.append((ctx, [rng.randint(0, 5) for _ in range(rng.randint(1, 3))]))
    t = build_tree(pairs, max_len=100, min_group_saving=0)
    for (ctx, cont), r in zip(pairs, t.requests):
        c = t.contexts[r.context]
        assert t.groups[c.group].prefix + c.tokens == tuple(ctx)
        assert r.targets == tuple(cont)
        assert (t.feeds[r.feed].tokens if r.feed is not None else ()) == tuple(cont[:-1])
    assert t.tokens_minimal <= t.tokens_planned
    assert t.tokens_minimal == trie_size(tuple(c) + tuple(x[:-1]) for c, x in pairs)


def test_groups_that_save_little_are_pooled_into_one_batchable_group():
    """Contexts with different first tokens (headlines) used to be one group each, so each ran
    as a batch of one; they now share one group without a prefix. A prefix that saves enough
    (40 demo tokens x 2 more contexts) keeps its own group."""
    demos = list(range(100, 140))
    pairs = [([k, 1, 2, 3], [9, 10]) for k in range(20)]                 # 20 distinct first tokens
    pairs += [([7, 7, 1], [9]), ([7, 7, 2], [9])]                        # share 2 tokens: saving 2
    pairs += [(demos + [k], [9]) for k in range(3)]                      # share 40: saving 80
    t = build_tree(pairs, max_len=200)
    assert sorted(len(g.prefix) for g in t.groups) == [0, 40]
    pool = next(g for g in t.groups if not g.prefix)
    assert len(pool.contexts) == 22
    for (ctx, cont), r in zip(pairs, t.requests):
        c = t.contexts[r.context]
        assert t.groups[c.group].prefix + c.tokens == tuple(ctx)
    # one token more read for the pooled pair than with its own 2-token group
    assert t.tokens_planned - build_tree(pairs, max_len=200, min_group_saving=0).tokens_planned == 2
