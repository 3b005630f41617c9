"""Paired statistics against values worked out by hand or with scipy."""

import numpy as np
import pytest
from scipy.stats import binom
from sklearn.metrics import f1_score

from workbench.core import stats
from workbench.errors import ConfigError
from workbench.core.metrics import classification_metrics


def test_mcnemar_exact_small_tables():
    assert stats.mcnemar_exact(1, 5) == pytest.approx(2 * binom.cdf(1, 6, 0.5))
    assert stats.mcnemar_exact(1, 5) == pytest.approx(0.21875)  # 2 * 7/64
    assert stats.mcnemar_exact(5, 1) == stats.mcnemar_exact(1, 5)
    assert stats.mcnemar_exact(0, 0) == 1.0
    assert stats.mcnemar_exact(3, 3) == 1.0  # capped
    assert stats.mcnemar_exact(0, 10) == pytest.approx(2 / 1024)


def test_mcnemar_midp():
    # 2*P(X<=1) - P(X=1) for Bin(6, 1/2): 14/64 - 6/64 = 8/64
    assert stats.mcnemar_midp(1, 5) == pytest.approx(0.125)
    assert stats.mcnemar_midp(0, 10) == pytest.approx(1 / 1024)  # 2/1024 - 1/1024
    assert stats.mcnemar_midp(4, 4) == pytest.approx(1.0)
    assert stats.mcnemar_midp(0, 0) == 1.0
    assert stats.mcnemar_midp(2, 9) < stats.mcnemar_exact(2, 9)


def test_wilson_interval_formula():
    lo, hi = stats.wilson_interval(8, 10)
    # by hand: z=1.959964, center=(0.8+z^2/20)/(1+z^2/10), half=z/(1+z^2/10)*sqrt(.016+z^2/400)
    z = 1.959963984540054
    d = 1 + z * z / 10
    c = (0.8 + z * z / 20) / d
    h = z / d * np.sqrt(0.8 * 0.2 / 10 + z * z / 400)
    assert (lo, hi) == pytest.approx((c - h, c + h))
    assert (lo, hi) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert stats.wilson_interval(0, 0) == (0.0, 1.0)
    lo0, hi0 = stats.wilson_interval(0, 20)
    assert lo0 == 0.0 and 0 < hi0 < 0.2
    assert stats.wilson_interval(8, 10, 0.99)[0] < lo


def test_holm_known_set():
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert stats.holm([]) == []


def _toy(n=300, seed=1):
    rng = np.random.default_rng(seed)
    labels = ["a", "b", "c"]
    gold = rng.choice(labels, n)
    a = np.where(rng.random(n) < 0.5, gold, rng.choice(labels, n))
    b = np.where(rng.random(n) < 0.9, gold, rng.choice(labels, n))
    return labels, list(gold), list(a), list(b)


def test_vectorized_macro_f1_matches_sklearn_per_replicate():
    labels, gold, a, _ = _toy(60)
    a[0] = "unknown-label"  # predictions outside the label set count as wrong
    g, (p,), k = stats._encode(gold, [a], labels)
    idx = np.random.default_rng(3).integers(0, len(g), size=(5, len(g)))
    got = stats._macro_f1_reps(g, p, idx, k)
    for row, val in zip(idx, got):
        want = f1_score([gold[i] for i in row], [a[i] for i in row], labels=labels,
                        average="macro", zero_division=0)
        assert val == pytest.approx(want)


def test_paired_bootstrap_point_estimate_and_ci():
    labels, gold, a, b = _toy()
    for metric in ("accuracy", "macro_f1"):
        r = stats.paired_bootstrap(gold, a, b, labels, metric=metric, n_boot=500, seed=0)
        ma = classification_metrics(gold, a, labels)[metric]
        mb = classification_metrics(gold, b, labels)[metric]
        assert r["delta"] == pytest.approx(mb - ma)
        assert r["ci_low"] <= r["delta"] <= r["ci_high"]
        assert r["ci_low"] > 0  # B is much better here (90% vs 50% kept gold)
        assert r["p"] < 0.01


def test_paired_bootstrap_reproducible_and_seed_sensitive():
    labels, gold, a, b = _toy()
    r1 = stats.paired_bootstrap(gold, a, b, labels, n_boot=300, seed=7)
    r2 = stats.paired_bootstrap(gold, a, b, labels, n_boot=300, seed=7)
    r3 = stats.paired_bootstrap(gold, a, b, labels, n_boot=300, seed=8)
    assert r1 == r2
    assert (r1["ci_low"], r1["ci_high"]) != (r3["ci_low"], r3["ci_high"])


def test_identical_predictions_give_zero_delta_and_p_one():
    labels, gold, a, _ = _toy()
    for metric in ("accuracy", "macro_f1"):
        r = stats.paired_bootstrap(gold, a, list(a), labels, metric=metric, n_boot=200)
        assert r["delta"] == 0.0 and r["ci_low"] == 0.0 and r["ci_high"] == 0.0
        assert r["p"] == 1.0


def test_bootstrap_ci_of_mean_and_f1_ci():
    vals = [1.0] * 70 + [0.0] * 30
    lo, hi = stats.bootstrap_ci(vals, n_boot=1000, seed=0)
    assert lo < 0.7 < hi
    assert (lo, hi) == stats.bootstrap_ci(vals, n_boot=1000, seed=0)
    # roughly the Wilson interval for 70/100
    wlo, whi = stats.wilson_interval(70, 100)
    assert abs(lo - wlo) < 0.03 and abs(hi - whi) < 0.03
    labels, gold, a, _ = _toy()
    f1 = classification_metrics(gold, a, labels)["macro_f1"]
    flo, fhi = stats.f1_bootstrap_ci(gold, a, labels, n_boot=500)
    assert flo < f1 < fhi


def test_discordant_counts():
    gold = ["a", "a", "b", "b", "c"]
    pa = ["a", "a", "a", "b", "a"]
    pb = ["a", "b", "b", "a", "a"]
    # both right: 0; A only: 1,3; B only: 2; both wrong: 4
    assert stats.discordant_counts(gold, pa, pb) == (1, 2, 1, 1)


def test_required_n_connor():
    # psi=0.2, delta=0.03: ((1.95996*sqrt(.2) + 0.84162*sqrt(.2-.0009))^2)/.0009 = 1741.6
    za, zb = 1.959963984540054, 0.8416212335729143
    want = (za * 0.2 ** 0.5 + zb * (0.2 - 0.0009) ** 0.5) ** 2 / 0.0009
    assert stats.required_n(0.2, 0.03) == int(np.ceil(want)) == 1742
    assert stats.required_n(0.2, 0.06) < stats.required_n(0.2, 0.03)
    assert stats.required_n(0.2, 0.03, power=0.9) > 1742
    with pytest.raises(ConfigError):
        stats.required_n(0.02, 0.03)  # a 3-point gap needs at least 3% discordant examples
    with pytest.raises(ConfigError):
        stats.required_n(0.2, 0.0)


def test_verdict_wording():
    s = stats.verdict("A", "B", 500, 0.06, (0.021, 0.098), 0.003)
    assert s == "B beats A by 6.0 pts accuracy (95% CI [+2.1, +9.8], p=0.003)"
    # B minus A is negative: A wins, and its lead reads as a positive number with a positive CI
    # (issue 16: "A is better than B (Δacc −17.0 pts …)" put "better" next to a minus sign).
    s = stats.verdict("A", "B", 500, -0.06, (-0.098, -0.021), 0.0001)
    assert s == "A beats B by 6.0 pts accuracy (95% CI [+2.1, +9.8], p<0.001)"
    assert "-" not in s.split("(")[1]
    s = stats.verdict("A", "B", 200, 0.01, (-0.03, 0.05), 0.5, p_disagree=0.2)
    assert s.startswith("no detectable difference between A and B at n=200 (B − A: +1.0 pts")
    assert s.endswith("you would need about n=1800 to detect 3 points")  # 1742 rounded up
