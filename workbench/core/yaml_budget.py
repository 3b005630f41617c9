"""How big a YAML document is once its aliases are expanded, measured without building it.

    nodes, chars = expanded(node, max_nodes=200_000, max_chars=4_000_000)

An alias (`*a`) is a reference: a file of 86 KB can stand for 190 MB of text once loaded
(19,000 aliases of one 10 KB string), and a "billion laughs" file for 10**9 values. Both the
template loader and the lm-eval task loader measure the composed node graph here (memoized per
node, so it takes microseconds) and refuse a document past either limit before constructing it
(issue 29, items 6 and 8). Pure: no I/O.
"""
from __future__ import annotations

import yaml


def expanded(root, max_nodes: int, max_chars: int) -> tuple[int, int]:
    """(nodes, characters of scalar values) of the document under `root` with every alias
    expanded, each capped just past its limit; a recursive alias counts as too big."""
    memo: dict[int, tuple[int, int]] = {}
    cap = (max_nodes + 1, max_chars + 1)

    def count(n) -> tuple[int, int]:
        k = id(n)
        if k in memo:
            return memo[k]
        memo[k] = cap
        if isinstance(n, yaml.SequenceNode):
            parts = [count(c) for c in n.value]
        elif isinstance(n, yaml.MappingNode):
            parts = [count(x) for a, b in n.value for x in (a, b)]
        else:
            parts = [(0, len(str(n.value)))]
        memo[k] = (min(1 + sum(p[0] for p in parts), cap[0]), min(sum(p[1] for p in parts), cap[1]))
        return memo[k]

    return count(root)
