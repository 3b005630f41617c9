"""One verdict, one method: the words, the interval and the p of every verdict agree, and every
change is worded by its sign. Includes the two reported cases: the Runs verdict "no detectable
difference ... -23.3 pts, 95% CI [-43.3, -3.3], p=0.065" (a bootstrap interval beside an exact p)
and the Search report's "dev-to-test drop of the winner -10.0 pts" for a 10-point gain."""

import itertools

import pytest
from scipy.stats import beta

from workbench.core import stats
from workbench.jobs.compare import compare_results
from workbench.jobs.search import dev_to_test_text, format_search


def _result(name, correct):
    recs = [{"index": i, "gold": "x", "pred": "x" if ok else "y", "correct": ok, "scores": {}}
            for i, ok in enumerate(correct)]
    return (name, {"task": "classification", "metrics": {}, "records": recs,
                   "provenance": {"template": {"name": name, "hash": name, "yaml": f"name: {name}\ninput: x\n"}}})


def _pair(both, only_a, only_b, neither):
    a = [True] * both + [True] * only_a + [False] * only_b + [False] * neither
    b = [True] * both + [False] * only_a + [True] * only_b + [False] * neither
    return a, b


def test_exact_interval_by_hand():
    # b = 9 only A right, c = 2 only B right, n = 30: theta = c/(b+c) has the Clopper-Pearson
    # interval [Beta(.025; 2, 10), Beta(.975; 3, 9)], and the difference is 11/30 * (2 theta - 1).
    lo, hi = stats.mcnemar_interval(9, 2, 30)
    t_lo, t_hi = beta.ppf(0.025, 2, 10), beta.ppf(0.975, 3, 9)
    assert (lo, hi) == pytest.approx((11 / 30 * (2 * t_lo - 1), 11 / 30 * (2 * t_hi - 1)))
    assert lo < -7 / 30 < hi < 0.02
    assert stats.mcnemar_interval(0, 0, 10) == (0.0, 0.0)
    assert stats.mcnemar_interval(0, 5, 10)[1] == pytest.approx(0.5)   # all 5 discordant for B


def test_interval_excludes_zero_exactly_when_mcnemar_is_significant():
    for b, c in itertools.product(range(0, 25), range(0, 25)):
        n = b + c + 7
        lo, hi = stats.mcnemar_interval(b, c, n, 0.95)
        assert (lo > 0 or hi < 0) == (stats.mcnemar_exact(b, c) < 0.05), (b, c)


def test_the_runs_case_no_longer_contradicts_itself():
    """The reported case: n=30, -23.3 pts, p=0.065. The words say no detectable difference, so the
    interval must hold 0 (the bootstrap one, [-43.3, -3.3], did not)."""
    a, b = _pair(10, 9, 2, 9)
    res = compare_results([_result("A", a), _result("B", b)], baseline="A", n_boot=500)
    (v,) = res.verdicts
    assert v["p_mcnemar"] == pytest.approx(0.0654, abs=1e-4) and not v["significant"]
    assert v["delta_acc"] == pytest.approx(-7 / 30)
    lo, hi = v["delta_acc_ci"]
    assert lo < 0 < hi
    assert v["text"].startswith("no detectable difference between A and B at n=30 (B − A: -23.3 pts, 95% CI [")
    assert f"{hi * 100:+.1f}]" in v["text"] and "p=0.065" in v["text"]
    assert v["delta_acc_ci_bootstrap"][1] < 0      # kept for reference, not in the sentence


def test_holm_adjusted_verdicts_and_intervals_agree():
    """With three templates the p is Holm-adjusted; the interval is adjusted by the same factor, so
    "significant" and "interval excludes 0" still go together."""
    ref = [True] * 60 + [False] * 40
    cols = [("R", ref)]
    for name, b, c in (("B", 8, 1), ("C", 9, 2), ("D", 10, 0)):   # raw p .039, .065, .002
        cols.append((name, [not x if i < b or 60 <= i < 60 + c else x for i, x in enumerate(ref)]))
    res = compare_results([_result(n, c) for n, c in cols], baseline="R", n_boot=200)
    assert res.settings["holm"]
    for v in res.verdicts:
        lo, hi = v["delta_acc_ci"]
        assert (lo > 0 or hi < 0) == v["significant"], v
        assert (v["p_holm"] < 0.05) == v["significant"]
        assert "Holm-adjusted" in v["text"]
    # B: raw p 0.039 < 0.05, but Holm's 0.078 decides, and B's interval holds 0 with it
    by = {v["b"]: v for v in res.verdicts}
    assert by["B"]["p_mcnemar"] < 0.05 and not by["B"]["significant"] and by["D"]["significant"]
    assert stats.mcnemar_interval(8, 1, 100)[1] < 0 < by["B"]["delta_acc_ci"][1]


def test_significant_verdict_names_the_winner_with_a_positive_lead():
    a, b = _pair(18, 22, 2, 8)
    (v,) = compare_results([_result("A", a), _result("B", b)], n_boot=200).verdicts
    assert v["significant"] and v["text"].startswith("A beats B by 40.0 pts accuracy (95% CI [+")
    lo, hi = v["delta_acc_ci"]
    assert hi < 0 and f"[{-hi * 100:+.1f}, {-lo * 100:+.1f}]" in v["text"]


def test_search_gain_is_not_called_a_drop():
    """The reported case: the winner went from 60% on dev to 70% on test."""
    t = {"n": 50, "start_accuracy": 0.5, "winner_accuracy": 0.7, "winner_dev_accuracy": 0.6,
         "dev_to_test_drop": 0.6 - 0.7, "test_uses": 1, "verdict": {"text": "v", "significant": False}}
    text = dev_to_test_text(t)
    assert text == "the winner gained 10.0 pts from dev to test (60.0% → 70.0%)"
    assert "drop" not in text and "-10" not in text
    loss = dev_to_test_text({**t, "winner_accuracy": 0.5})
    assert loss.startswith("the winner lost 10.0 pts")
    payload = {"status": "done", "start": {"name": "s", "dev_accuracy": 0.5, "yaml": "", "key": "k", "config": {}}, "winner": {"name": "w"},
               "candidates": {}, "test": t}
    report = format_search(payload)
    assert "gained 10.0 pts" in report and "drop of" not in report


def test_ui_search_report_uses_the_same_words():
    from workbench.app.tab_search import summary_markdown

    t = {"n": 50, "start_accuracy": 0.5, "winner_accuracy": 0.7, "winner_dev_accuracy": 0.6,
         "dev_to_test_drop": -0.1, "test_uses": 1, "verdict": {"text": "v", "significant": False}}
    md = summary_markdown({"status": "done", "start": {"name": "s", "dev_accuracy": 0.5},
                           "winner": {"name": "w", "dev_accuracy": 0.6}, "candidates": {}, "test": t}, "r1")
    assert "gained 10.0 pts from dev to test" in md and "drop of" not in md
