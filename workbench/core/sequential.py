"""Anytime-valid paired A/B test: a betting confidence sequence for the mean paired difference.

    cs = PairedCS(alpha=0.05)                          # rows in a random order (i.i.d. from the task)
    cs.update(correct_b.astype(float) - correct_a)     # per-row differences in [-1, 1], any batch size
    cs.interval()          # (lo, hi): holds for the true difference at every look at once
    cs.e_value, cs.p_value # evidence against "no difference"; p is always-valid
    cs.decision(margin=0.01)  # "B" | "A" | "equivalent" | "not yet"

Method: a betting confidence sequence (Waudby-Smith & Ramdas, "Estimating means of bounded random
variables by betting", JRSSB 86(1), 2024) with their aGRAPA bets, on y = (d + 1) / 2 in [0, 1], where
d is B's per-row score minus A's (correctness: -1, 0 or +1; a continuous metric: anything in
[-1, 1]). For each candidate mean m the capital

    K_t(m) = prod_{i<=t} (1 + lam_i(m) (y_i - mu_i(m))),   lam_i(m) = gap / (var + gap^2), gap = mean - mu_i(m)

(mean and var: the running estimates from rows before i, so the bet is predictable; lam capped at
3/4 of what one row could lose) is a nonnegative martingale when m is the truth, so by Ville's
inequality P(ever K_t(m) >= 1/alpha) <= alpha: the set of m never rejected is a (1 - alpha)
confidence *sequence*, valid at every row count at once. Looking after every batch and stopping
when it is settled therefore keeps the error rate, which fixed-n tests (McNemar) do not. In the
i.i.d. case rows where A and B agree give y = m = 1/2 and leave K_t(1/2) unchanged: only the
discordant rows move the test of "no difference", as in McNemar's test.

With `population=N`, rows are taken as drawn *without replacement* from N rows and the target is
the difference on exactly those N rows: mu_i(m) is then the mean of the rows not yet seen,
(N m - S_{i-1}) / (N - i + 1) (Waudby-Smith & Ramdas, "Confidence sequences for sampling without
replacement", NeurIPS 2020), which keeps K a martingale and closes the sequence on that value as
the rows run out. `population=None` (what comparisons use) is the i.i.d. case mu_i = m: the
target is the difference on the task the rows are sampled from, McNemar's target.

The interval is computed on a grid of 2001 differences (step 0.001) and reported widened by one
step. Decisions: "B" when the whole interval is above 0, "A" when below, "equivalent" when it lies
inside (-margin, +margin), else "not yet". Pure numpy; the simulation test (tests/test_sequential.py)
checks the error rate under the null with 10,000 sequences per setting.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from workbench.core.options import ALPHA
from workbench.errors import ConfigError, DataError

GRID = 2001                     # candidate differences -1, -0.999, ..., +1
STEP = 2.0 / (GRID - 1)
TRUNC = 0.75                    # bets at most 3/4 of the capital's room (WSR's c = 3/4)
DECISIONS = ("B", "A", "equivalent", "not yet")
# the RunSpec options that are the stopping rule (SequentialOptions' fields)
SEQUENTIAL_KEYS = ("alpha", "margin", "first_batch", "growth", "order_seed", "price_per_mtok")


def _check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be between 0 and 1, got {alpha}", "use e.g. 0.05")
    return alpha


@dataclass
class BetState:
    """What the capital process carries from one batch to the next, for S sequences at once."""
    t: int                       # rows seen
    sum_y: np.ndarray            # (S,) sum of y
    sum_sq: np.ndarray           # (S,) sum of (y_i - mu_hat_i)^2, the plug-in variance's numerator
    log_k: np.ndarray            # (S, G) log capital of the bets against each candidate mean m

    @classmethod
    def start(cls, s: int, g: int) -> "BetState":
        return cls(0, np.zeros(s), np.zeros(s), np.zeros((s, g)))


def advance(state: BetState, y: np.ndarray, m: np.ndarray, alpha: float, population: int | None = None,
            ) -> tuple[BetState, np.ndarray, np.ndarray]:
    """Feed rows y (S, T) in [0, 1] to S capital processes at candidate means m (G,).

    Returns the new state, `hit` (S, G): whether K_t(m) >= 1/alpha at some row of this batch, or m
    became impossible (without replacement: the unseen rows could not bring the mean to m), and
    `peak` (S, G): the batch's largest log capital (inf where impossible).
    The bets of row i use only rows before i (predictable), which is what makes K a martingale.
    """
    y = np.asarray(y, dtype=float)
    if y.ndim == 1:
        y = y[None, :]
    s, n = y.shape
    i = state.t + np.arange(1, n + 1, dtype=float)                      # (T,) 1-based row numbers
    s_incl = state.sum_y[:, None] + np.cumsum(y, axis=1)                # (S, T) sum through row i
    mu_hat = (0.5 + s_incl) / (i + 1)
    sq_incl = state.sum_sq[:, None] + np.cumsum((y - mu_hat) ** 2, axis=1)
    var_incl = (0.25 + sq_incl) / (i + 1)
    var_prev = np.concatenate([((0.25 + state.sum_sq) / (state.t + 1))[:, None], var_incl[:, :-1]], axis=1)
    # PrPl-EB bet size (WSR eq. 26): large while the observed variance is small
    mean_prev = np.concatenate([((0.5 + state.sum_y) / (state.t + 1))[:, None], mu_hat[:, :-1]], axis=1)
    s_prev = s_incl - y
    if population is None:
        mu = np.broadcast_to(m[None, None, :], (s, n, len(m)))          # (S, T, G)
        possible = np.ones((s, n, len(m)), dtype=bool)
    else:
        left = population - i + 1                                       # rows not yet seen before row i
        if np.any(left < 1):
            raise DataError(f"more rows ({state.t + n}) than the population of {population}",
                            "the population is the number of rows the comparison may score")
        mu = (population * m[None, None, :] - s_prev[:, :, None]) / left[None, :, None]
        after = (population * m[None, None, :] - s_incl[:, :, None])     # sum the unseen rows must make
        tol = population * STEP / 2 + 1e-9    # one grid step: the grid point nearest the truth stays in
        possible = (after >= -tol) & (after <= (left - 1)[None, :, None] + tol)
    mu_c = np.clip(mu, 1e-12, 1 - 1e-12)
    # aGRAPA bet (WSR 2024, Sec. 5): the Kelly-like fraction gap / (variance + gap^2) from the rows
    # before i, capped so that one row can never take more than TRUNC of the capital
    gap = mean_prev[:, :, None] - mu_c
    lam = np.clip(gap / (var_prev[:, :, None] + gap ** 2), -TRUNC / (1 - mu_c), TRUNC / mu_c)
    log_k = state.log_k[:, None, :] + np.cumsum(np.log1p(lam * (y[:, :, None] - mu_c)), axis=1)
    # the largest capital of the batch (an impossible m counts as infinite evidence against it)
    peak = np.where(possible, log_k, np.inf).max(axis=1)                # (S, G)
    hit = peak >= math.log(1 / alpha)
    new = BetState(state.t + n, s_incl[:, -1], sq_incl[:, -1], log_k[:, -1, :])
    return new, hit, peak


@dataclass
class PairedCS:
    """A running anytime-valid comparison of B against A on paired rows (see the module doc)."""
    alpha: float = 0.05
    population: int | None = None
    history: list = field(default_factory=list)   # [{"n", "lo", "hi", "estimate", "e_value"}] per look

    def __post_init__(self):
        self.alpha = _check_alpha(self.alpha)
        if self.population is not None and int(self.population) < 1:
            raise ConfigError(f"population must be >= 1 row, got {self.population}")
        self.grid = np.linspace(-1.0, 1.0, GRID)           # candidate differences
        self._m = (self.grid + 1) / 2                       # the same on the y scale
        self._zero = GRID // 2
        self._state = BetState.start(1, GRID)
        self._rejected = np.zeros(GRID, dtype=bool)
        self._sum_d = 0.0
        self._max_log_e = 0.0

    # ---------------------------------------------------------------- feeding
    def update(self, d) -> "PairedCS":
        """Add per-row differences d = score_B - score_A in [-1, 1] (in the order they were drawn)."""
        d = np.asarray(d, dtype=float).ravel()
        if d.size == 0:
            return self
        if np.any(~np.isfinite(d)) or np.any(np.abs(d) > 1 + 1e-12):
            raise DataError("paired differences must lie in [-1, 1]",
                            "use per-row scores in [0, 1] for both sides (correctness 0/1, or a metric in [0, 1])")
        self._state, hit, peak = advance(self._state, (np.clip(d, -1, 1)[None, :] + 1) / 2, self._m, self.alpha,
                                   self.population)
        self._rejected |= hit[0]
        self._sum_d += float(d.sum())
        self._max_log_e = max(self._max_log_e, float(peak[0, self._zero]))   # every row is a look
        self.history.append({"n": self.n, "lo": self.interval()[0], "hi": self.interval()[1],
                             "estimate": self.estimate, "e_value": self.e_value})
        return self

    # ---------------------------------------------------------------- reading
    @property
    def n(self) -> int:
        return self._state.t

    @property
    def estimate(self) -> float:
        """The mean difference of the rows seen so far (B - A)."""
        return self._sum_d / self.n if self.n else 0.0

    def _log_e(self) -> float:
        return float(self._state.log_k[0, self._zero])

    @property
    def e_value(self) -> float:
        """The capital now against "no difference" (an e-value: its mean under the null is <= 1)."""
        return float(math.exp(min(700.0, self._log_e())))

    @property
    def p_value(self) -> float:
        """Always-valid p-value: 1 / the largest capital so far (P(ever <= alpha) <= alpha under the null)."""
        return float(min(1.0, math.exp(-min(self._max_log_e, 700.0))))

    def interval(self) -> tuple[float, float]:
        """The confidence sequence now: the hull of the differences not yet rejected, widened one grid step."""
        ok = np.flatnonzero(~self._rejected)
        if ok.size == 0:   # every candidate rejected: happens only with probability <= alpha
            e = self.estimate
            return (e, e)
        return (max(-1.0, float(self.grid[ok[0]] - STEP)), min(1.0, float(self.grid[ok[-1]] + STEP)))

    @property
    def zero_rejected(self) -> bool:
        return bool(self._rejected[self._zero])

    def decision(self, margin: float = 0.0) -> str:
        """'B' (B better), 'A' (A better), 'equivalent' (the interval inside (-margin, +margin);
        only with margin > 0) or 'not yet'."""
        lo, hi = self.interval()
        if self.zero_rejected and lo > 0:
            return "B"
        if self.zero_rejected and hi < 0:
            return "A"
        if margin > 0 and -margin < lo and hi < margin:
            return "equivalent"
        return "not yet"


def first_rejection(d: np.ndarray, alpha: float = 0.05, population: int | None = None,
                    looks: np.ndarray | None = None, chunk: int = 2000) -> np.ndarray:
    """For S simulated sequences d (S, T) of paired differences: the row count of the first look at
    which "no difference" is rejected (0 = never). `looks` are the row counts at which one looks
    (default: every row). Vectorised over sequences; used by the validity simulation."""
    d = np.asarray(d, dtype=float)
    s, n = d.shape
    looks = np.arange(1, n + 1) if looks is None else np.asarray(looks)
    out = np.zeros(s, dtype=int)
    for a in range(0, s, chunk):
        y = (d[a:a + chunk] + 1) / 2
        st = BetState.start(len(y), 1)
        prev = 0
        first = np.zeros(len(y), dtype=int)
        for look in looks:
            st, hit, _ = advance(st, y[:, prev:look], np.array([0.5]), alpha, population)
            prev = look
            first[(first == 0) & hit[:, 0]] = look
        out[a:a + chunk] = first
    return out


def batch_sizes(total: int, first: int = 32, growth: float = 1.5) -> list[int]:
    """Growing batches that add up to `total`: first, first*growth, ... (the last one cut).
    Small first batches let a clear winner stop early; growing ones keep the looks (and the model's
    per-batch overhead) few on close calls."""
    if total < 1:
        raise ConfigError(f"a sequential comparison needs at least one row, got {total}")
    if first < 1 or growth < 1:
        raise ConfigError(f"batches need first >= 1 and growth >= 1, got {first} and {growth}",
                          "e.g. --first-batch 32 (growth 1.5)")
    out, size = [], float(first)
    while sum(out) < total:
        out.append(min(int(round(size)), total - sum(out)))
        size *= growth
    return out


@dataclass
class SequentialOptions:
    """The stopping rule of a sequential comparison (RunSpec options; `workbench compare --sequential`)."""
    alpha: float = field(default=ALPHA, metadata={"help": "error rate of the verdict, whenever it stops"})
    margin: float = field(default=0.0, metadata={
        "help": "stop as 'equivalent' when the difference is settled inside +-margin (0.01 = 1 point); 0 = never"})
    first_batch: int = field(default=32, metadata={"help": "rows in the first batch; each next one is growth times larger"})
    growth: float = field(default=1.5, metadata={"help": "batch growth factor"})
    order_seed: int = field(default=0, metadata={"help": "seed of the random row order"})
    price_per_mtok: float | None = field(default=None, metadata={
        "help": "price per million tokens (forwarded + generated) of the model, to report a cost"})

    def validate(self) -> None:
        if not 0 < self.alpha < 1:
            raise ConfigError(f"alpha must be between 0 and 1, got {self.alpha}", "use e.g. --alpha 0.05")
        if not 0 <= self.margin < 1:
            raise ConfigError(f"margin must be in [0, 1) as a fraction, got {self.margin}",
                              "e.g. --margin 0.01 for one accuracy point")
        if self.first_batch < 1 or self.growth < 1:
            raise ConfigError("first_batch must be >= 1 and growth >= 1", "e.g. --first-batch 32")
        if self.price_per_mtok is not None and self.price_per_mtok < 0:
            raise ConfigError(f"price_per_mtok must be >= 0, got {self.price_per_mtok}")

    # the stopping rule of a compare spec's options (core/options.CompareOptions: None = this class's
    # default; 0 or "" too for the fields a form sends that way)
    @classmethod
    def from_options(cls, o) -> "SequentialOptions":
        given = {}
        for k in SEQUENTIAL_KEYS:
            v = getattr(o, k)
            if v is None or (not v and k in ("margin", "first_batch", "growth", "order_seed")):
                continue
            given[k] = v
        try:
            opts = cls(**{k: int(v) if k in ("first_batch", "order_seed") else float(v) for k, v in given.items()})
        except (TypeError, ValueError) as e:
            raise ConfigError(f"a sequential comparison's options must be numbers: {e}",
                              "e.g. --alpha 0.05 --margin 0.01 --first-batch 32") from None
        opts.validate()
        return opts
