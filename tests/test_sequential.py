"""The anytime-valid paired test (core/sequential.py): hand-worked bets, decisions, and its error
rate by simulation (10,000 sequences per setting, a look after every batch)."""

import numpy as np
import pytest

from workbench.core.sequential import PairedCS, batch_sizes, first_rejection
from workbench.errors import ConfigError, DataError


def test_first_bets_by_hand():
    # Row 1: no past, mean 1/2 = m for "no difference": the bet is 0 and the capital stays 1.
    cs = PairedCS(alpha=0.05).update([1.0])
    assert cs.e_value == pytest.approx(1.0)
    # Row 2 bets from row 1 (y1 = 1): mean (0.5 + 1)/2 = 0.75, var (0.25 + 0.25^2)/2 = 0.15625,
    # gap 0.25, bet 0.25 / (0.15625 + 0.0625) = 8/7 (under the cap 0.75/0.5); y2 = 1 pays 1 + 8/7 * 0.5.
    cs.update([1.0])
    assert cs.e_value == pytest.approx(1 + 8 / 7 * 0.5)
    assert cs.p_value == pytest.approx(1 / (1 + 8 / 7 * 0.5))
    assert cs.n == 2 and cs.estimate == 1.0
    # batches do not matter: the same rows one at a time or at once give the same capital
    one = PairedCS().update([1.0, -1.0, 0.0, 1.0, 1.0])
    many = PairedCS()
    for d in [1.0, -1.0, 0.0, 1.0, 1.0]:
        many.update([d])
    assert one.e_value == pytest.approx(many.e_value) and one.interval() == many.interval()


def test_agreeing_rows_leave_the_null_capital_alone():
    cs = PairedCS().update(np.zeros(500))
    assert cs.e_value == pytest.approx(1.0) and cs.p_value == 1.0
    lo, hi = cs.interval()
    assert lo < 0 < hi and hi - lo < 0.05      # but they do narrow the interval around 0
    assert cs.decision(margin=0.05) == "equivalent"
    assert cs.decision(margin=0.0) == "not yet"


def test_clear_winner_and_its_side():
    rng = np.random.default_rng(1)
    d = np.where(rng.random(400) < 0.3, 1.0, 0.0)        # B right alone on 30% of rows, never A
    cs = PairedCS().update(d)
    assert cs.decision() == "B" and cs.interval()[0] > 0 and cs.p_value < 0.05
    assert PairedCS().update(-d).decision() == "A"
    assert cs.interval()[0] <= d.mean() <= cs.interval()[1]


def test_without_replacement_closes_on_the_full_data_value():
    d = np.array([1, 0, 0, -1, 1, 1, 0, 0, 1, 0], dtype=float)    # full-data difference 0.3
    cs = PairedCS(population=10)
    for chunk in np.split(d, [3, 6]):
        cs.update(chunk)
    lo, hi = cs.interval()
    assert lo <= 0.3 <= hi and hi - lo <= 0.0041
    with pytest.raises(DataError, match="population"):
        cs.update([0.0])


def test_bad_input_is_refused():
    with pytest.raises(DataError, match=r"\[-1, 1\]"):
        PairedCS().update([2.0])
    with pytest.raises(ConfigError, match="alpha"):
        PairedCS(alpha=1.5)
    with pytest.raises(ConfigError):
        batch_sizes(0)
    assert sum(batch_sizes(1000, 32, 1.5)) == 1000
    assert batch_sizes(100, 32, 1.5) == [32, 48, 20]


def _pairs(rng, s, t, p_b, p_a):
    """(s, t) paired differences: +1 (only B right) with p_b, -1 (only A right) with p_a."""
    u = rng.random((s, t))
    return np.where(u < p_b, 1.0, np.where(u < p_b + p_a, -1.0, 0.0))


@pytest.mark.parametrize("discordance", [0.05, 0.15, 0.3, 0.5])
def test_type_one_error_by_simulation(discordance):
    """Equal accuracy, a look after every batch: P(ever declare a winner) <= alpha."""
    rng = np.random.default_rng(int(discordance * 1000))
    t = 600
    looks = np.cumsum(batch_sizes(t, 16, 1.3))
    d = _pairs(rng, 10_000, t, discordance / 2, discordance / 2)
    rate = (first_rejection(d, 0.05, looks=looks) > 0).mean()
    # no slack: the bound itself (observed 0.02-0.04; peeking at McNemar the same way gives ~0.15)
    assert rate <= 0.05, rate


def test_type_one_error_without_replacement():
    """Finite data with exactly equal accuracy (the target a full-data run measures), rows in a
    random order, every row a look."""
    rng = np.random.default_rng(7)
    n = 400
    base = np.zeros(n)
    base[:40], base[40:80] = 1.0, -1.0                     # 20% discordant, 40 each way
    d = np.stack([rng.permutation(base) for _ in range(10_000)])
    rate = (first_rejection(d, 0.05, population=n) > 0).mean()
    assert rate <= 0.05, rate


def test_alternatives_find_the_true_winner():
    rng = np.random.default_rng(3)
    t = 800
    looks = np.cumsum(batch_sizes(t, 16, 1.3))
    d = _pairs(rng, 2000, t, 0.18, 0.06)                   # B better by 12 pts, 24% discordant
    first = first_rejection(d, 0.05, looks=looks)
    assert (first > 0).mean() > 0.95
    assert np.median(first[first > 0]) < t / 3             # a clear winner stops early
    # the side: a rejection of "no difference" here is (almost) always B's side
    cs_sides = [PairedCS().update(row).decision() for row in d[:50]]
    assert cs_sides.count("A") == 0 and cs_sides.count("B") >= 45


def test_the_simulation_catches_naive_peeking():
    """The same simulation on fixed-n McNemar, looked at after every batch, is far above alpha: the
    harness above can fail, and this is the error the sequential test removes."""
    from scipy.stats import binom

    rng = np.random.default_rng(11)
    t = 600
    looks = np.cumsum(batch_sizes(t, 16, 1.3))
    d = _pairs(rng, 10_000, t, 0.1, 0.1)
    ever = np.zeros(len(d), dtype=bool)
    for look in looks:
        b = (d[:, :look] < 0).sum(axis=1)
        c = (d[:, :look] > 0).sum(axis=1)
        p = np.minimum(1.0, 2 * binom.cdf(np.minimum(b, c), b + c, 0.5))
        ever |= (p < 0.05) & (b + c > 0)
    assert ever.mean() > 0.10
