"""Scoring rules against values worked out by hand: contextual calibration (per choice set),
PMI, `choice_aggregate: mean`, acc_norm and acc_bytes.

A fake session returns chosen log-probabilities, so each expected score below is arithmetic on
those numbers (the real-model tests in test_inference.py check the same code on SmolLM2)."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from workbench.core.config import EvalConfig
from workbench.core.templates import load_template
from support.fakes import FakeSession
from workbench.jobs.inference import classify


def _template(extra: str = "") -> object:
    return load_template("name: t\ninput: 'Text: {{ text }}\n\n  Label:'\nanswer_choices:\n"
                         "  pos: [good]\n  neg: [bad]\n" + extra)


ROWS = pd.DataFrame({"text": ["x1"], "label": ["pos"]})
CTX = "Text: x1\nLabel:"
CF = "Text: N/A\nLabel:"


def test_contextual_calibration_by_hand():
    s = FakeSession(table={(CTX, " good"): 0.2, (CTX, " bad"): 0.6, (CF, " good"): 0.1, (CF, " bad"): 0.5})
    cfg = EvalConfig(calibration="contextual", content_free=["N/A"])
    rec = classify(_template(), ROWS, [CTX], s, cfg, pool=ROWS)[0]
    # p(x) = softmax(log .2, log .6) = (.25, .75); p_cf = (1/6, 5/6)
    # scores = log(.25 / (1/6)) = log 1.5, log(.75 / (5/6)) = log 0.9 -> pos wins (uncalibrated: neg)
    assert rec["scores"]["pos"] == pytest.approx(math.log(1.5), abs=1e-6)
    assert rec["scores"]["neg"] == pytest.approx(math.log(0.9), abs=1e-6)
    assert rec["pred"] == "pos"
    assert rec["logprobs"]["neg"] == pytest.approx(math.log(0.6), abs=1e-6)   # raw scores stay raw


def test_contextual_calibration_per_choice_set():
    """Rows with other choices (choices_expr) are calibrated with their own content-free scores,
    not left uncalibrated or calibrated with row 0's choices."""
    t = load_template("name: t\ninput: 'Q: {{ q }}\n\n  A:'\nchoices_expr: \"{{ opts.split('|') }}\"\n"
                      "target: '{{ gold }}'\n")
    rows = pd.DataFrame({"q": ["a", "b"], "opts": ["yes|no", "red|green|blue"], "gold": ["yes", "blue"]})
    ca, cb, cf = "Q: a\nA:", "Q: b\nA:", "Q: N/A\nA:"
    probs = {(ca, " yes"): 0.3, (ca, " no"): 0.3,
             (cb, " red"): 0.2, (cb, " green"): 0.2, (cb, " blue"): 0.2,
             (cf, " yes"): 0.6, (cf, " no"): 0.2,
             (cf, " red"): 0.5, (cf, " green"): 0.3, (cf, " blue"): 0.2}
    s = FakeSession(table=probs)
    recs = classify(t, rows, [ca, cb], s, EvalConfig(calibration="contextual", content_free=["N/A"]), pool=rows)
    # row a: p = (.5, .5), p_cf = (.75, .25) -> log(2/3), log 2 -> "no"
    assert recs[0]["scores"]["yes"] == pytest.approx(math.log(0.5 / 0.75), abs=1e-6)
    assert recs[0]["scores"]["no"] == pytest.approx(math.log(0.5 / 0.25), abs=1e-6)
    assert recs[0]["pred"] == "no"
    # row b (three choices): p = (1/3, 1/3, 1/3), p_cf = (.5, .3, .2) -> blue
    assert recs[1]["scores"]["blue"] == pytest.approx(math.log((1 / 3) / 0.2), abs=1e-6)
    assert recs[1]["scores"]["red"] == pytest.approx(math.log((1 / 3) / 0.5), abs=1e-6)
    assert recs[1]["pred"] == "blue"
    # every content-free request was for a real choice set: none with row 0's words on row b's set
    assert {(c, w) for c, w in s.requests if c == cf} == {k for k in probs if k[0] == cf}


def test_pmi_by_hand():
    s = FakeSession(table={(CTX, " good"): 0.2, (CTX, " bad"): 0.3, ("", " good"): 0.1, ("", " bad"): 0.5})
    rec = classify(_template(), ROWS, [CTX], s, EvalConfig(calibration="pmi"), pool=ROWS)[0]
    # log p(y|x) - log p(y): log(.2/.1) = log 2 and log(.3/.5) = log .6 -> pos
    assert rec["scores"]["pos"] == pytest.approx(math.log(2.0), abs=1e-6)
    assert rec["scores"]["neg"] == pytest.approx(math.log(0.6), abs=1e-6)
    assert rec["pred"] == "pos"


def test_choice_aggregate_mean_and_max_by_hand():
    extra_words = "  pos: [good, great]\n  neg: [bad]\n"
    base = "name: t\ninput: 'Text: {{ text }}\n\n  Label:'\nanswer_choices:\n" + extra_words
    probs = {(CTX, " good"): 0.5, (CTX, " great"): 0.02, (CTX, " bad"): 0.2}
    t_max = load_template(base)
    t_mean = load_template(base + "choice_aggregate: mean\n")
    r_max = classify(t_max, ROWS, [CTX], FakeSession(table=probs), EvalConfig(), pool=ROWS)[0]
    r_mean = classify(t_mean, ROWS, [CTX], FakeSession(table=probs), EvalConfig(), pool=ROWS)[0]
    assert r_max["scores"]["pos"] == pytest.approx(math.log(0.5), abs=1e-6)
    # mean of log-probs: (log .5 + log .02) / 2 = log(sqrt(.01)) = log .1 < log .2 -> neg
    assert r_mean["scores"]["pos"] == pytest.approx(math.log(0.1), abs=1e-6)
    assert (r_max["pred"], r_mean["pred"]) == ("pos", "neg")


def test_acc_norm_and_acc_bytes_by_hand():
    t = load_template("name: t\ninput: 'Text: {{ text }}\n\n  Label:'\nanswer_choices:\n"
                      "  pos: [café]\n  neg: [no]\n")
    probs = {(CTX, " café"): 0.01, (CTX, " no"): 0.02}
    s = FakeSession(table=probs)
    norm = classify(t, ROWS, [CTX], s, EvalConfig(method="acc_norm"), pool=ROWS)[0]
    byt = classify(t, ROWS, [CTX], s, EvalConfig(method="acc_bytes"), pool=ROWS)[0]
    # lm-eval divides by the choice's own length, without the target delimiter
    # ("café": 4 characters, 5 UTF-8 bytes; "no": 2 and 2)
    assert norm["scores"]["pos"] == pytest.approx(math.log(0.01) / 4, abs=1e-6)
    assert norm["scores"]["neg"] == pytest.approx(math.log(0.02) / 2, abs=1e-6)
    assert byt["scores"]["pos"] == pytest.approx(math.log(0.01) / 5, abs=1e-6)
    assert norm["pred"] == "pos" and byt["pred"] == "pos"
