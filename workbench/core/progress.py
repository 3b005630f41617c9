"""Progress of long work: one convention for every door (UI jobs, CLI bars, Python callers).

    progress(done, total, stage)      # e.g. (120, 400, "scoring"): real counts of one stage

`jobs.inference.evaluate` reports its stages in order: "building prompts" (prompts built), then
"scoring" (rows scored; calibration's content-free requests are scored in the same call, where
they share prefixes with the rows, and count within it) or "generating" (rows answered). Each stage reports (0, total) when it starts and
(total, total) when it ends, so a display restarts its counts there. A two-argument callback
(`progress(done, total)`, the older convention) keeps working through `staged()`.

Work made of several evaluations (a comparison: one per template) nests them with `Nested`: one
overall count (units per evaluation, a share per stage) for the bar and the ETA, and a message
that keeps each stage's real counts ("topic (2/3) · scoring 40/100 rows").

`SteadyEta` is the ETA every door shows. It divides the work left by the rate averaged over the
whole time since the count began, not over the last tick (batches differ in length, so a
per-tick rate jumps), and counts down between ticks.
"""
from __future__ import annotations

import inspect
import time
from dataclasses import dataclass
from typing import Callable

ProgressFn = Callable[..., None]

STAGE_UNITS = {"building prompts": "", "embedding rows": "rows", "scoring": "rows", "generating": "rows",
               "judging": "rows"}   # judging: a model judge reads every output after generation (jobs/judge.py)
# Share of one evaluation's work per stage (for an overall bar): prompts are cheap next to the model.
STAGE_SHARES = {"building prompts": (0.0, 0.1), "embedding rows": (0.0, 0.1),
                "scoring": (0.1, 1.0), "generating": (0.1, 1.0)}
UNITS_PER_JOB = 1000   # overall units per nested evaluation


def staged(progress: ProgressFn | None) -> ProgressFn | None:
    """`progress` as a (done, total, stage) callback: a two-argument one gets the stage dropped."""
    if progress is None:
        return None
    try:
        params = list(inspect.signature(progress).parameters.values())
    except (TypeError, ValueError):   # a builtin or C callable: assume the modern convention
        return progress
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return progress
    if len([p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]) >= 3:
        return progress
    return lambda done, total, stage="": progress(done, total)


def stage_text(stage: str, done: int, total: int) -> str:
    """'scoring 120/400 rows'."""
    unit = STAGE_UNITS.get(stage, "")
    return f"{stage} {done:,}/{total:,} {unit}".rstrip()


def stage_fraction(stage: str, done: int, total: int) -> float:
    """How far one evaluation is, in [0, 1], from its current stage's counts."""
    lo, hi = STAGE_SHARES.get(stage, (0.0, 1.0))
    frac = done / total if total else 1.0
    return lo + (hi - lo) * min(1.0, max(0.0, frac))


def every(total: int, steps: int = 100) -> int:
    """Report every N items so that a stage sends about `steps` ticks."""
    return max(1, total // steps)


class Nested:
    """Evaluation i of k as part of one overall count (UNITS_PER_JOB each): the overall
    (done, total) move forward through every stage, and the message keeps the stage's counts."""

    def __init__(self, progress: ProgressFn | None, i: int, k: int, label: str):
        self.progress, self.i, self.k, self.label = staged(progress), i, k, label

    def __call__(self, done: int, total: int, stage: str = "") -> None:
        if self.progress is None:
            return
        frac = stage_fraction(stage, done, total)
        text = " · ".join(x for x in (self.label, stage_text(stage, done, total) if stage else "") if x)
        self.progress(self.i * UNITS_PER_JOB + int(UNITS_PER_JOB * frac), self.k * UNITS_PER_JOB, text)


@dataclass
class SteadyEta:
    """Seconds left, from ticks of one count. The rate is the work done since the count began
    divided by the time since then (one slow or fast batch moves it little); between ticks the
    estimate counts down with the clock. A new count (its total changes, or `done` goes back)
    starts afresh. Nothing is said before `min_elapsed` seconds of work: the first batch alone
    is no rate."""

    min_elapsed: float = 1.0
    _total: int | None = None
    _t0: float = 0.0
    _d0: int = 0
    _last: int = 0
    _est: float | None = None
    _t_est: float = 0.0

    def update(self, done: int, total: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if total != self._total or done < self._last:
            self._total, self._t0, self._d0, self._est = total, now, done, None
        self._last = done
        elapsed, work = now - self._t0, done - self._d0
        if work > 0 and elapsed >= self.min_elapsed and total:
            self._est, self._t_est = max(0.0, (total - done) * elapsed / work), now

    def eta(self, now: float | None = None) -> float | None:
        if self._est is None:
            return None
        now = time.monotonic() if now is None else now
        return max(0.0, self._est - (now - self._t_est))
