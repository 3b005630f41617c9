"""Budgeted racing (successive halving) over candidates, with a pluggable scorer.

    plan = rung_sizes(n_rows=222, first=16, eta=2)        # [16, 32, 64, 128, 222]
    out = race(["a", "b", "c", "d"], score, plan, keep=0.5, out_of_budget=lambda: False)
    out.winner, out.rungs[-1]                              # best at the largest slice reached

Successive halving (Jamieson & Talwalkar 2016; the racing idea of Maron & Moore 1994): score
every candidate on a small slice of the dev rows, keep the best `keep` fraction, grow the slice
by `eta`, repeat until one slice covers all rows or a few candidates remain. Slices are
*prefixes* of one fixed row order, so a candidate that survives a rung only needs its new rows
scored (the caller's scorer caches per row). Pure: the scorer does the work.

`score(candidate, n)` returns the candidate's accuracy on the first n rows. `out_of_budget()` is
asked before every call; when it says yes, the race stops and reports what it has.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

from workbench.errors import ConfigError


def rung_sizes(n_rows: int, first: int = 16, eta: float = 2.0) -> list[int]:
    """Slice sizes first, first*eta, ... capped by and ending at n_rows."""
    if n_rows < 1:
        raise ConfigError("racing needs at least one dev row", "use a larger dev split")
    if eta <= 1:
        raise ConfigError(f"eta must be > 1, got {eta}", "e.g. 2 (halve the field, double the slice)")
    sizes, n = [], max(1, min(first, n_rows))
    while n < n_rows:
        sizes.append(n)
        n = int(math.ceil(n * eta))
    sizes.append(n_rows)
    return sizes


@dataclass
class RaceResult:
    winner: Hashable | None                       # best at the largest slice reached (None: nothing scored)
    winner_score: float | None
    winner_n: int                                 # rows behind winner_score
    rungs: list[dict] = field(default_factory=list)   # per rung: n, scores {cand: score}, kept [cand]
    complete: bool = True                         # False when the budget stopped the race


def race(candidates: Sequence[Hashable], score: Callable[[Hashable, int], float], sizes: Sequence[int], *,
         keep: float = 0.5, min_keep: int = 1, out_of_budget: Callable[[], bool] = lambda: False,
         prefer: Hashable | None = None) -> RaceResult:
    """Successive halving of `candidates` over slice `sizes` (see the module docstring).

    Ties are broken in favour of `prefer` (the incumbent: no change without evidence), then by
    the order given. The race ends early when one candidate is left."""
    if not 0 < keep < 1:
        raise ConfigError(f"keep must be between 0 and 1, got {keep}", "e.g. 0.5")

    def halve(ranked, scores, n, last, full):
        n_keep = len(ranked) if last else max(min_keep, int(math.ceil(len(ranked) * keep)))
        return ranked[:n_keep], {}

    return run_rungs(candidates, lambda c, n: float(score(c, n)), float, sizes, halve,
                     out_of_budget=out_of_budget, prefer=prefer)


# decide(ranked, values, n, last, full) -> (kept candidates, extra fields for the rung's record).
# `values` maps each candidate scored at this rung to what `evaluate` gave; `full` says that every
# candidate still in was scored (the budget did not cut the rung short).
Decide = Callable[[list, dict, int, bool, bool], tuple[list, dict]]


def run_rungs(candidates: Sequence[Hashable], evaluate: Callable[[Hashable, int], object],
              mean: Callable[[object], float], sizes: Sequence[int], decide: Decide, *,
              out_of_budget: Callable[[], bool] = lambda: False, prefer: Hashable | None = None) -> RaceResult:
    """The rung loop every racing rule shares: at each slice size, evaluate the candidates still
    in (asking `out_of_budget` before each), rank them by `mean` of what they gave, record the rung,
    and keep whom `decide` keeps. Only the drop rule differs between rules (halving here, the
    sequential rule in core/racing_seq.py), so the budget, tie-breaking and winner rules live once."""
    alive = list(dict.fromkeys(candidates))
    res = RaceResult(winner=None, winner_score=None, winner_n=0)
    order = {c: i for i, c in enumerate(alive)}
    ri = 0
    while ri < len(sizes):
        # A lone survivor skips the middle rungs: only its score on all rows still matters.
        if len(alive) == 1:
            ri = len(sizes) - 1
        n, last = sizes[ri], ri == len(sizes) - 1
        values: dict = {}
        for c in alive:
            if out_of_budget():
                res.complete = False
                break
            values[c] = evaluate(c, n)
        if not values:
            break
        scores = {c: mean(v) for c, v in values.items()}
        ranked = sorted(scores, key=lambda c: (-scores[c], c != prefer, order[c]))
        full = len(values) == len(alive)
        if full:
            # Only a fully scored rung names a winner: a half-scored one compares unequal fields.
            res.winner, res.winner_score, res.winner_n = ranked[0], scores[ranked[0]], n
        kept, extra = decide(ranked, values, n, last, full)
        res.rungs.append({"n": n, "scores": scores, "kept": kept, **extra})
        if not res.complete or last:
            break
        alive = kept
        ri += 1
    return res
