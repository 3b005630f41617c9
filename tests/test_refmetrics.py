"""core/refmetrics.py against the libraries lm-eval uses (sacrebleu, rouge-score, lm-eval's
own exact_match) on a small corpus, and the paired bootstrap against sacrebleu's own paired
test and against cases worked out by hand."""
from __future__ import annotations

import numpy as np
import pytest
import sacrebleu
from rouge_score import rouge_scorer

from workbench.core import refmetrics
from workbench.errors import ConfigError, DataError

PREDS = ["The cat sat on the mat.", "a quick brown fox jumps", "Hello, World!",
         "it is raining in Paris today", "", "The answer is 42."]
REFS = ["The cat is on the mat.", "The quick brown fox jumped over the dog",
        "hello world", "It rains in Paris today.", "nothing", "The answer is 42."]
# Two references for the rows that have them; None-padded by the metric itself.
MULTI = [["The cat is on the mat.", "A cat sat on a mat."], REFS[1], [REFS[2]],
         ["It rains in Paris today.", "Today it is raining in Paris."], REFS[4], REFS[5]]


def test_corpus_metrics_equal_sacrebleu():
    assert refmetrics.corpus_score("bleu", PREDS, REFS) == pytest.approx(
        sacrebleu.corpus_bleu(PREDS, [REFS]).score, abs=1e-9)
    assert refmetrics.corpus_score("chrf", PREDS, REFS) == pytest.approx(
        sacrebleu.corpus_chrf(PREDS, [REFS]).score, abs=1e-9)
    assert refmetrics.corpus_score("ter", PREDS, REFS) == pytest.approx(
        sacrebleu.corpus_ter(PREDS, [REFS]).score, abs=1e-9)
    # kwargs reach sacrebleu (chrF++ is word_order=2, as lm-eval's chrfpp)
    assert refmetrics.corpus_score("chrf", PREDS, REFS, word_order=2) == pytest.approx(
        sacrebleu.corpus_chrf(PREDS, [REFS], word_order=2).score, abs=1e-9)


def test_multi_reference_corpus_equals_sacrebleu_streams():
    streams = [[r[0] if isinstance(r, list) else r for r in MULTI],
               [r[1] if isinstance(r, list) and len(r) > 1 else None for r in MULTI]]
    assert refmetrics.corpus_score("bleu", PREDS, MULTI) == pytest.approx(
        sacrebleu.corpus_bleu(PREDS, streams).score, abs=1e-9)


def test_row_metrics_equal_sentence_scores():
    bleu = sacrebleu.metrics.BLEU(effective_order=True)
    want = [bleu.sentence_score(p, [r]).score for p, r in zip(PREDS, REFS)]
    np.testing.assert_allclose(refmetrics.row_scores("bleu", PREDS, REFS), want, atol=1e-9)
    chrf = sacrebleu.metrics.CHRF()
    want = [chrf.sentence_score(p, [r]).score for p, r in zip(PREDS, REFS)]
    np.testing.assert_allclose(refmetrics.row_scores("chrf", PREDS, REFS), want, atol=1e-9)
    ter = sacrebleu.metrics.TER()
    want = [ter.sentence_score(p, [r]).score for p, r in zip(PREDS, REFS)]
    np.testing.assert_allclose(refmetrics.row_scores("ter", PREDS, REFS), want, atol=1e-9)


@pytest.mark.parametrize("kind", ["rouge1", "rouge2", "rougeL"])
@pytest.mark.parametrize("stem", [False, True])
def test_rouge_equals_rouge_score(kind, stem):
    sc = rouge_scorer.RougeScorer([kind], use_stemmer=stem)
    want = [sc.score(r, p)[kind].fmeasure for p, r in zip(PREDS, REFS)]
    got = refmetrics.row_scores(kind, PREDS, REFS, use_stemmer=stem)
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert refmetrics.corpus_score(kind, PREDS, REFS, use_stemmer=stem) == pytest.approx(np.mean(want))
    # multiple references: rouge-score's score_multi (the best alternative)
    multi = [sc.score_multi(r if isinstance(r, list) else [r], p)[kind].fmeasure
             for p, r in zip(PREDS, MULTI)]
    np.testing.assert_allclose(refmetrics.row_scores(kind, PREDS, MULTI, use_stemmer=stem),
                               multi, atol=1e-12)


@pytest.mark.parametrize("kw", [{}, {"ignore_case": True}, {"ignore_punctuation": True},
                                {"ignore_case": True, "ignore_punctuation": True,
                                 "regexes_to_ignore": [",", "\\$", "(?s).*#### ", "\\.$"]},
                                {"ignore_numbers": True}])
def test_exact_match_equals_lm_eval(kw):
    from lm_eval.api.metrics import exact_match_hf_evaluate
    preds = PREDS + ["#### 1,234", "HELLO world", "$5.", "answer 7"]
    refs = REFS + ["1234", "hello World", "5", "answer 9"]
    want = [exact_match_hf_evaluate([p], [r], **kw)["exact_match"] for p, r in zip(preds, refs)]
    got = refmetrics.row_scores("exact_match", preds, refs, **kw)
    np.testing.assert_array_equal(got, want)
    assert refmetrics.is_binary("exact_match") and not refmetrics.is_binary("chrf")


def test_token_f1_and_regex():
    got = refmetrics.row_scores("token_f1", ["the cat sat", "x"], ["cat sat down", ["y", "x"]])
    # "cat sat" vs "cat sat down": P = 1, R = 2/3 -> F1 = 0.8 ; alias "x" matches
    np.testing.assert_allclose(got, [0.8, 1.0])
    got = refmetrics.row_scores("regex", ["Answer: 42", "none"], ["", ""], pattern=r"\d+")
    np.testing.assert_array_equal(got, [1.0, 0.0])
    got = refmetrics.row_scores("regex", ["Answer: B", "Answer: c"], [r"\bB\b", r"\bC\b"],
                                ignore_case=True)
    np.testing.assert_array_equal(got, [1.0, 1.0])
    assert refmetrics.is_binary("regex")


def test_bad_input_is_named():
    with pytest.raises(ConfigError, match="unknown reference metric"):
        refmetrics.row_scores("meteor", ["a"], ["a"])
    with pytest.raises(DataError, match="2 predictions but 1 references"):
        refmetrics.row_scores("chrf", ["a", "b"], ["a"])
    with pytest.raises(ConfigError, match="exact_match got unknown options"):
        refmetrics.row_scores("exact_match", ["a"], ["a"], ignorecase=True)


def test_paired_bootstrap_equals_sacrebleu_paired_test(monkeypatch):
    """BLEU and chrF: same score, same p-value as sacrebleu's own paired bootstrap."""
    from sacrebleu.metrics import BLEU, CHRF
    from sacrebleu.significance import PairedTest
    monkeypatch.setenv("SACREBLEU_SEED", "12345")
    sys_a = ["The cat sat on a mat.", "a brown fox jumps", "Hello World", "rain in Paris",
             "something", "The answer is 41.", "good morning", "see you later"]
    sys_b = ["The cat sat on the mat.", "a quick brown fox jumps", "Hello, World!",
             "it is raining in Paris today", "", "The answer is 42.", "good morning all",
             "see you"]
    refs = REFS + ["good morning everyone", "see you later"]
    test = PairedTest([("baseline", sys_a), ("b", sys_b)],
                      {"BLEU": BLEU(references=[refs]), "chrF": CHRF(references=[refs])},
                      references=None, test_type="bs", n_samples=300)
    _, res = test()
    for name, metric in (("BLEU", "bleu"), ("chrF2", "chrf")):
        ours = refmetrics.paired_bootstrap(metric, sys_a, sys_b, refs, n_boot=300, seed=12345)
        assert ours["b"] == pytest.approx(res[name][1].score, abs=1e-9)
        assert ours["a"] == pytest.approx(res[name][0].score, abs=1e-9)
        assert ours["p_value"] == pytest.approx(res[name][1].p_value, abs=1e-12)
        assert ours["ci_low"] <= ours["delta"] <= ours["ci_high"]


def test_paired_bootstrap_hand_computed():
    # B beats A by exactly 0.5 ROUGE-1 on every row (1.0 vs 0.5): every resample's delta is
    # 0.5, so the CI is [0.5, 0.5]; the centred |deltas| are all 0, none exceeds 0.5, so
    # p = (0 + 1) / (n_boot + 1).
    refs = ["a b", "c d", "e f", "g h"]
    a = ["a x", "c y", "e z", "g w"]           # unigram P = R = 1/2 -> F = 0.5
    b = refs
    r = refmetrics.paired_bootstrap("rouge1", a, b, refs, n_boot=99, seed=3)
    assert (r["a"], r["b"], r["delta"]) == (0.5, 1.0, 0.5)
    assert (r["ci_low"], r["ci_high"]) == (0.5, 0.5)
    assert r["p_value"] == pytest.approx(1 / 100)
    # Identical systems: no difference at all, p = 1 (not "significant").
    same = refmetrics.paired_bootstrap("exact_match", a, a, refs, n_boot=50)
    assert same["delta"] == 0 and same["p_value"] == 1.0
    # Two rows, A right on row 0 only, B right on row 1 only (exact match). Resampling two
    # rows gives deltas -1 (both row 0), 0 (one of each) or +1 (both row 1); the observed
    # delta is 0, so |deltas| centred on their mean m: values -m (for 0) and 1-m. The share
    # above 0 is the share of +-1 replicates whenever m < 1, computed from the same draw:
    refs2, a2, b2 = ["p", "q"], ["p", "x"], ["x", "q"]
    r2 = refmetrics.paired_bootstrap("exact_match", a2, b2, refs2, n_boot=40, seed=7)
    idx = np.random.default_rng(7).choice(2, size=(40, 2), replace=True)
    d = np.where(idx == 1, 1.0, -1.0).mean(axis=1)        # B - A per replicate
    s = np.abs(d)
    want = (np.sum(s - s.mean() > 0) + 1) / 41
    assert r2["delta"] == 0 and r2["p_value"] == pytest.approx(want)
    assert r2["ci_low"] == pytest.approx(np.quantile(d, 0.025))
