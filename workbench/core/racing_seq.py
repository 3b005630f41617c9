"""Racing by the sequential rule: a candidate leaves the race once an anytime-valid confidence
sequence settles it worse than another candidate on the paired dev rows (issue 27).

    sizes = rung_sizes(222, first=16, eta=2)          # the looks: [16, 32, 64, 128, 222]
    out = race_sequential(["a", "b", "c"], rows, sizes, alpha=0.05)
    out.winner, out.rungs[-1]["dropped"]              # best on the largest slice; who left, when

`rows(candidate, n)` returns the candidate's per-row scores in [0, 1] on the first n dev rows
(correctness for classification, a metric's utility for generation); the caller caches rows,
so a candidate only scores its new rows at each look.

Successive halving (core/racing.py) drops a fixed share of the field at every rung whatever the
evidence: on a close field it can drop the best candidate after 16 rows, and on a clear one it
keeps losers longer than needed. Here every pair of candidates has a betting confidence
sequence for its mean paired difference (core/sequential.py, Waudby-Smith & Ramdas 2024) at
alpha / (number of pairs) (Bonferroni: valid whichever candidate leads at any look), fed the
rows of each look; a candidate is dropped once some other candidate is settled better than it.
So the chance that the race ever drops a candidate that is in truth at least as good as the one
that beat it is at most alpha. The price: candidates that are close stay in the race to the
last rung. Pure: numpy; the scorer does the work.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable, Sequence

import numpy as np

from workbench.core.racing import RaceResult, run_rungs
from workbench.core.sequential import PairedCS
from workbench.errors import ConfigError, DataError


def race_sequential(candidates: Sequence[Hashable], rows: Callable[[Hashable, int], Sequence[float]],
                    sizes: Sequence[int], *, alpha: float = 0.05, out_of_budget: Callable[[], bool] = lambda: False,
                    prefer: Hashable | None = None, population: int | None = None) -> RaceResult:
    """Race `candidates` over the growing prefixes `sizes` (see the module docstring). Ties are
    broken in favour of `prefer` (the incumbent), then by the order given. Each rung records
    n, scores (mean per candidate), kept and dropped ({candidate: the one settled better}).

    `population=N`: the rows are a uniformly random order of exactly N rows and the question is
    who is better on those N rows (a search keeps the best on all dev rows), so the sequences
    are the without-replacement ones (core/sequential.py), which tighten as the unseen rows run
    out. None: the rows are i.i.d. draws from the task (the difference on the task is the target)."""
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be between 0 and 1, got {alpha}", "e.g. 0.05")
    alive = list(dict.fromkeys(candidates))
    pairs = list(itertools.combinations(alive, 2))
    level = alpha / max(1, len(pairs))
    css = {p: PairedCS(alpha=level, population=population) for p in pairs}

    def evaluate(c, n):
        v = np.asarray(rows(c, n), dtype=float)
        if v.shape != (n,):
            raise DataError(f"candidate {c!r} gave {v.shape} row scores for {n} rows", "this is a bug: please report it")
        return v

    def settle(ranked, vals, n, last, full):
        dropped: dict = {}
        if full:
            # every pair of candidates still in has seen the same rows so far: feed it the new ones
            for (a, b), cs in css.items():
                if a in vals and b in vals and n > cs.n:
                    cs.update(vals[b][cs.n:n] - vals[a][cs.n:n])
            for (a, b), cs in css.items():
                if a in vals and b in vals:
                    dec = cs.decision()
                    if dec == "A":
                        dropped.setdefault(b, a)
                    elif dec == "B":
                        dropped.setdefault(a, b)
        kept = [c for c in ranked if c not in dropped]
        return kept, {"dropped": {str(k): str(v) for k, v in dropped.items()}}

    return run_rungs(alive, evaluate, lambda v: float(v.mean()), sizes, settle,
                     out_of_budget=out_of_budget, prefer=prefer)


def pair_interval(a_rows: Sequence[float], b_rows: Sequence[float], alpha: float) -> tuple[float, float]:
    """The confidence sequence of mean(b - a) after the given paired rows (for reports and tests)."""
    cs = PairedCS(alpha=alpha).update(np.asarray(b_rows, float) - np.asarray(a_rows, float))
    return cs.interval()
