"""Judges and generation verdicts without a model: judge templates, the score arithmetic, the
judge checks against scipy / scikit-learn, pairwise judging on a constructed position bias,
per-metric paired verdicts, and the judge in the RunSpec from every door.
The real-model tests are in tests/test_judge_model.py."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from workbench.core import judge_checks
from workbench.core.judge import JudgeTemplate, library_judges, load_judge, pair_preference
from workbench.errors import ConfigError, TemplateError

ROOT = Path(__file__).resolve().parents[1]
LABELLED = ROOT / "tests" / "data" / "support_replies.jsonl"
HELPFUL = ROOT / "templates_library" / "judges" / "helpfulness_yesno.yaml"
PAIRWISE = ROOT / "templates_library" / "judges" / "helpfulness_pairwise.yaml"
PLAIN = ROOT / "templates_library" / "support_reply_plain.yaml"
POLITE = ROOT / "templates_library" / "support_reply_polite.yaml"


# ------------------------------------------------------------------------ judge templates
def test_library_judges_load_and_render():
    paths = library_judges()
    assert {p.stem for p in paths} >= {"helpfulness_yesno", "helpfulness_1to5", "faithfulness_yesno",
                                       "format_following_yesno", "helpfulness_pairwise"}
    for p in paths:
        j = load_judge(p)
        assert j.validate(columns=["question", "reference"]) == []
        if j.mode == "pointwise":
            text = j.render(input="Q?", output="An answer.", reference="Ref.")
            assert "An answer." in text and not text.endswith("\n")
        else:
            text = j.render(input="Q?", output_a="first one", output_b="second one")
            assert text.index("first one") < text.index("second one")
        assert load_judge(j.to_yaml()).content_hash() == j.content_hash()


def test_judge_validation_names_the_problem():
    base = {"name": "j", "rubric": "Q: {{ input }}\nA: {{ output }}\nOK?", "scores": {"yes": 1, "no": 0}}
    with pytest.raises(TemplateError, match="never shows `{{ output }}`"):
        JudgeTemplate.from_dict({**base, "rubric": "Q: {{ input }} OK?"})
    with pytest.raises(TemplateError, match="same value"):
        JudgeTemplate.from_dict({**base, "scores": {"yes": 1, "no": 1}})
    with pytest.raises(TemplateError, match="mode must be one of"):
        JudgeTemplate.from_dict({**base, "mode": "listwise"})
    with pytest.raises(TemplateError, match="unknown field"):
        JudgeTemplate.from_dict({**base, "score": {"yes": 1}})
    with pytest.raises(TemplateError, match="needs `choices`"):
        JudgeTemplate.from_dict({"name": "p", "mode": "pairwise", "rubric": "{{ output_a }} {{ output_b }}"})
    j = JudgeTemplate.from_dict(base)
    assert "neither a judge variable" in " ".join(JudgeTemplate.from_dict(
        {**base, "rubric": base["rubric"] + " {{ colour }}"}).validate(columns=["question"]))
    renamed = JudgeTemplate.from_dict({**base, "name": "other", "description": "x"})
    assert renamed.content_hash() == j.content_hash()          # name and description are not the judge
    assert JudgeTemplate.from_dict({**base, "delimiter": ""}).content_hash() != j.content_hash()


def test_pointwise_score_is_the_expected_value_over_renormalised_words():
    j = JudgeTemplate.from_dict({"name": "r", "rubric": "{{ output }}", "scores": {"1": 1, "3": 3, "5": 5}})
    lp = [math.log(0.1), math.log(0.2), math.log(0.1)]            # renormalised: 0.25, 0.5, 0.25
    s = j.pointwise_score(lp)
    assert s["score"] == pytest.approx(0.25 * 1 + 0.5 * 3 + 0.25 * 5)
    assert s["dist"] == pytest.approx({"1": 0.25, "3": 0.5, "5": 0.25}) and s["verdict"] == 3
    # two surface forms of one value add up
    j2 = JudgeTemplate.from_dict({"name": "y", "rubric": "{{ output }}",
                                  "scores": {"yes": 1, "Yes": 1, "no": 0}})
    s2 = j2.pointwise_score([math.log(0.3), math.log(0.3), math.log(0.4)])
    assert s2["score"] == pytest.approx(0.6) and s2["dist"]["1"] == pytest.approx(0.6)
    # contextual calibration: a judge that says yes to anything (content-free P(yes)=0.8) is divided out
    j3 = JudgeTemplate.from_dict({"name": "c", "rubric": "{{ output }}", "scores": {"yes": 1, "no": 0},
                                  "calibration": "contextual"})
    s3 = j3.pointwise_score([math.log(0.8), math.log(0.2)], cf_logprobs=[math.log(0.8), math.log(0.2)])
    assert s3["score"] == pytest.approx(0.5)


# ------------------------------------------------------------------------ fakes
class RuleSession:
    """A fake engine (the session's loglikelihood protocol): P(word | context) from a rule."""

    def __init__(self, rule):
        self.rule, self.calls = rule, []

    def loglikelihood(self, requests, **kw):
        from workbench.engine.session import LogLik

        self.calls.append(list(requests))
        return [LogLik(math.log(self.rule(c, w)), False, 1) for c, w in requests]

    def apply_chat(self, text):
        return text

    def model_identity(self):
        return {"engine": "fake"}


def test_pairwise_both_orders_cancel_a_known_position_bias():
    """Quality q(x) is the number in the reply; the judge prefers the better one, plus a pull of
    +1.5 logits towards whichever is shown first. Asked in one order it picks the first reply
    most of the time; in both orders the pull is measured and the preference follows quality."""
    from workbench.jobs.judge import compare_items

    bias = 1.5
    judge = load_judge(PAIRWISE)

    def rule(ctx, word):
        qa = float(ctx.split("Reply A: q=")[1].split()[0])
        qb = float(ctx.split("Reply B: q=")[1].split()[0])
        p_a = 1 / (1 + math.exp(-((qa - qb) + bias)))
        return p_a if word == " A" else 1 - p_a

    rng = np.random.default_rng(0)
    items = [{"input": "Q", "x": f"q={a:.2f} ok", "y": f"q={b:.2f} ok"}
             for a, b in rng.uniform(0, 2, size=(40, 2))]
    out = compare_items(judge, RuleSession(rule), items)
    true_x = [float(it["x"][2:6]) > float(it["y"][2:6]) for it in items]
    one_order = [r["p_x_first"] > 0.5 for r in out]                 # X shown first only
    debiased = [r["pref_x"] > 0.5 for r in out]
    assert np.mean(np.equal(one_order, true_x)) < 0.8              # the bias flips many verdicts
    assert np.mean(np.equal(debiased, true_x)) == 1.0              # both orders: all right
    pb = judge_checks.position_bias([r["first_pull"] for r in out])
    assert pb["ci_low"] > 0.1 and pb["value"] > 0.2                 # measured, with an interval above 0
    # with no bias, no pull is measured
    bias = 0.0
    pb0 = judge_checks.position_bias([r["first_pull"] for r in compare_items(judge, RuleSession(rule), items)])
    assert abs(pb0["value"]) < 1e-9
    # the combination itself, by hand: X first 0.9, Y first 0.7 -> P(X) = (0.9 + 0.3) / 2
    p = pair_preference(0.9, 0.7)
    assert p["pref_x"] == pytest.approx(0.6) and p["first_pull"] == pytest.approx(0.3) and not p["consistent"]


def test_pointwise_reads_one_context_per_row_and_calibrates():
    from workbench.jobs.judge import score_items

    judge = load_judge(HELPFUL)
    s = RuleSession(lambda c, w: 0.7 if (w == " yes") == ("refund" in c.split("Reply:")[-1]) else 0.3)
    out = score_items(judge, s, [{"input": "Late parcel", "output": "I will refund you."},
                                 {"input": "Late parcel", "output": "Wait."}])
    assert [round(o["score"], 6) for o in out] == [0.7, 0.3]
    reqs = s.calls[0]
    assert len(reqs) == 4 and len({c for c, _ in reqs}) == 2        # each rubric once, both words under it
    assert reqs[0][0] == out[0]["prompt"] and reqs[0][1] == " yes"


# ------------------------------------------------------------------------ checks vs scipy / sklearn
def test_checks_match_scipy_and_sklearn():
    from scipy.stats import spearmanr
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(1)
    h = rng.integers(1, 6, 80)
    s = h + rng.normal(0, 1.5, 80)
    assert judge_checks.spearman(s, h) == pytest.approx(spearmanr(s, h).correlation, abs=1e-12)
    v = np.clip(np.round(s), 1, 5).astype(int)
    for w in (None, "linear", "quadratic"):
        assert judge_checks.cohen_kappa(v.tolist(), h.tolist(), w) == pytest.approx(
            cohen_kappa_score(v, h, weights=w), abs=1e-12)
    # pairwise accuracy by hand: people order a<b<c; the judge gets a<b and a<c right, ties b and c
    assert judge_checks.pairwise_accuracy([0.2, 0.5, 0.5, 0.1][:3], [1, 2, 3]) == pytest.approx((1 + 0.5 + 1) / 3)
    assert judge_checks.pairwise_accuracy([0.3, 0.2, 0.1], [1, 2, 3]) == 0.0
    # groups: only pairs within a question count
    assert judge_checks.pairwise_accuracy([0.9, 0.8, 0.3, 0.2], [2, 1, 2, 1], groups=[0, 0, 1, 1]) == 1.0
    assert judge_checks.pairwise_accuracy([0.9, 0.8, 0.3, 0.2], [2, 1, 2, 1]) == pytest.approx(0.75)
    ag = judge_checks.agreement(s, h, judge_verdicts=v, n_boot=300)
    assert ag["spearman"]["ci_low"] < ag["spearman"]["value"] < ag["spearman"]["ci_high"]
    assert ag["kappa"]["kind"] == "quadratic-weighted"
    yn = judge_checks.agreement(s, h, judge_verdicts=(s > 3).astype(int), n_boot=200)
    assert yn["kappa"]["kind"].startswith("Cohen's, labels > 3")


def test_flat_judge_and_length_bias_are_flagged():
    assert "barely vary" in judge_checks.flat_judge([0.50, 0.51, 0.49, 0.5], (0, 1))
    assert judge_checks.flat_judge([0.1, 0.9, 0.4, 0.7], (0, 1)) is None
    assert "verdict 1" in judge_checks.flat_judge([0.6, 0.9, 0.7, 0.8] * 5, (0, 1), verdicts=[1] * 20)
    lb = judge_checks.length_bias([0.1, 0.2, 0.3, 0.4, 0.5], ["a", "bb", "ccc", "dddd", "eeeee"], n_boot=100)
    assert lb["value"] == pytest.approx(1.0)


def test_labelled_set_is_written_and_varied():
    rows = [json.loads(line) for line in LABELLED.read_text().splitlines()]
    assert len(rows) >= 60 and len({r["id"] for r in rows}) == len(rows)
    assert {r["rating"] for r in rows} == {1, 2, 3, 4, 5}
    assert len({r["question"] for r in rows}) >= 15


# ------------------------------------------------------------------------ generation verdicts
def test_metric_verdicts_use_mcnemar_for_binary_and_the_paired_bootstrap_otherwise():
    from workbench.core import refmetrics
    from workbench.core.gen_verdicts import metric_verdict, parse_metric
    from workbench.core.stats import mcnemar_exact

    refs = ["the cat sat on the mat", "a dog ran", "it is raining today", "we ship to canada"] * 5
    a = ["the cat sat", "a dog", "raining", "we ship"] * 5
    b = ["the cat sat on the mat", "a dog ran", "it is raining today", "we ship"] * 5
    em = metric_verdict("exact_match", "A", "B", a, b, refs, n_boot=200)
    assert em["method"] == "McNemar exact" and em["p"] == pytest.approx(mcnemar_exact(0, 15))
    assert em["text"].startswith("B beats A by 75 pts exact match")
    ch = metric_verdict("chrf", "A", "B", a, b, refs, n_boot=200)
    ref = refmetrics.paired_bootstrap("chrf", a, b, refs, n_boot=200)
    assert (ch["p"], ch["delta"], ch["ci"]) == (ref["p_value"], ref["delta"], [ref["ci_low"], ref["ci_high"]])
    assert "corpus" in ch["method"] and ch["text"].startswith("B beats A")
    ter = metric_verdict("ter", "A", "B", a, b, refs, n_boot=200)   # lower is better: B still wins
    assert ter["delta"] < 0 and ter["text"].startswith("B beats A")
    assert parse_metric("regex:^we") == ("regex", {"pattern": "^we"})
    with pytest.raises(ConfigError, match="did you mean 'rougeL'"):
        parse_metric("rougel")


def test_template_metrics_are_validated():
    from workbench.core.templates import load_template

    t = load_template(PLAIN)
    assert t.metrics == ["chrf", "rougeL", "bleu", "token_f1"]
    bad = load_template(PLAIN.read_text().replace("metrics: [chrf,", "metrics: [chrF,"))
    probs = [p for p in bad.validate(columns=["question", "reference"]) if p.severity == "error"]
    assert probs and probs[0].field == "metrics" and "did you mean 'chrf'" in probs[0].message
    # a template without metrics keeps the hash it always had
    no_metrics = load_template(PLAIN.read_text().replace("metrics: [chrf, rougeL, bleu, token_f1]\n", ""))
    assert "metrics" not in no_metrics.to_yaml() and no_metrics.content_hash() != t.content_hash()


def _gen_result(name, preds, golds, judge_scores=None, metrics=("chrf",)):
    recs = []
    for i, (p, g) in enumerate(zip(preds, golds)):
        r = {"index": i, "gold": g, "pred": p, "output": p, "correct": p == g}
        if judge_scores is not None:
            r["judge"] = {"score": judge_scores[i]}
        recs.append(r)
    yaml = f"name: {name}\ninput: x\ntask: generation\nmetrics: [{', '.join(metrics)}]\n"
    return {"task": "generation", "metrics": {}, "records": recs,
            "provenance": {"template": {"name": name, "hash": name, "yaml": yaml}, "judge": {"name": "helpful"}}}


def test_compare_results_gives_a_verdict_per_metric_and_per_judge():
    from workbench.jobs.compare import compare_results

    golds = [f"reply number {i} with details" for i in range(30)]
    a = _gen_result("A", [f"reply {i}" for i in range(30)], golds, judge_scores=[0.3] * 15 + [0.4] * 15)
    b = _gen_result("B", [f"reply number {i} with details" for i in range(30)], golds,
                    judge_scores=[0.6] * 15 + [0.7] * 15, metrics=("chrf", "exact_match"))
    c = compare_results([("A", a), ("B", b)], baseline="A", n_boot=300)
    g = c.generation
    assert g["metrics"] == ["chrf", "exact_match"]
    assert [v["metric"] for v in g["metric_verdicts"]] == ["chrf", "exact_match"]
    assert all(v["text"].startswith("B beats A") for v in g["metric_verdicts"])
    jv = g["judge_verdicts"][0]
    assert jv["delta"] == pytest.approx(0.3) and jv["text"].startswith("B beats A") and "d_z" in jv["text"]
    assert c.examples[0]["judge"] == {"A": 0.3, "B": 0.6}
    assert "Per-metric verdicts" in c.summary()
    # two rows cannot carry a bootstrap verdict, however the resamples fall
    tiny = compare_results([("A", _gen_result("A", ["x y", "y z"], ["x y z", "y z w"], [0.1, 0.2])),
                            ("B", _gen_result("B", ["x y z", "y z w"], ["x y z", "y z w"], [0.8, 0.9]))],
                           baseline="A", n_boot=200).generation
    for v in tiny["metric_verdicts"] + tiny["judge_verdicts"]:
        assert not v["significant"] and v["text"].startswith("too few rows for a verdict")


# ------------------------------------------------------------------------ the spec
def _cli_spec(argv):
    import importlib

    from workbench.cli import build_parser

    args = build_parser().parse_args(argv)
    mod = importlib.import_module(f"workbench.commands.{args.command}")
    out = mod.spec_from_args(args)
    return out[0] if isinstance(out, tuple) else out


def test_judge_spec_is_the_same_from_python_and_the_cli():
    from workbench import build_spec   # the Python door (loads data by name or path)
    from workbench.core.spec import RunSpec

    data = str(ROOT / "tests" / "data" / "support_questions.jsonl")
    py = build_spec("compare", templates=[str(PLAIN), str(POLITE)], data=data, eval={"split": "all", "limit": 4},
                    judge=str(HELPFUL), judge_model="default", judge_labels=None)
    assert py.judge is not None and py.judge.model is None        # the evaluated model judges itself
    argv = py.argv()
    assert argv[argv.index("--judge") + 1] == str(HELPFUL)
    cli = _cli_spec(argv[1:])
    assert cli.hash() == py.hash() and cli.judge == py.judge
    assert RunSpec.from_json(py.to_json()).hash() == py.hash()
    other = build_spec("eval", templates=[str(PLAIN)], data=data, judge=str(HELPFUL),
                       judge_model="openai:http://127.0.0.1:9/v1", judge_labels="rating")
    assert other.judge.model.model == "openai:http://127.0.0.1:9/v1" and other.judge.labels == "rating"
    assert _cli_spec(other.argv()[1:]).hash() == other.hash()
    plain = build_spec("eval", templates=[str(PLAIN)], data=data)
    assert "judge" not in plain.to_dict()                           # old specs keep their JSON and hash
    with pytest.raises(ConfigError, match="needs --judge"):
        _cli_spec(["eval", "--data", data, "--template", str(PLAIN), "--judge-model", "x"])


def test_pairwise_judge_in_a_comparison_cancels_position_and_words_the_verdict():
    """compare_templates' pairwise path (jobs/judge.Judged.finish) on a constructed judge: B's
    replies are longer ("q=" higher) and the judge pulls +1.5 logits to the first shown."""
    import contextlib

    from workbench.jobs.compare import compare_results
    from workbench.jobs.judge import Judged

    def rule(ctx, word):
        qa = float(ctx.split("Reply A: q=")[1].split()[0])
        qb = float(ctx.split("Reply B: q=")[1].split()[0])
        p_a = 1 / (1 + math.exp(-((qa - qb) + 1.5)))
        return p_a if word == " A" else 1 - p_a

    golds = [f"g{i}" for i in range(20)]
    a = _gen_result("A", [f"q={0.2 + i / 100:.2f} short" for i in range(20)], golds)
    b = _gen_result("B", [f"q={1.2 + i / 100:.2f} longer reply" for i in range(20)], golds)
    for d in (a, b):
        d["provenance"].pop("judge")
    cmp = compare_results([("A", a), ("B", b)], baseline="A", n_boot=300)
    session = RuleSession(rule)
    Judged(load_judge(PAIRWISE), lambda: contextlib.nullcontext(session), [("A", a), ("B", b)], None, {}, {},
           None).finish(cmp)
    v = cmp.generation["judge_verdicts"][0]
    assert v["significant"] and v["text"].startswith("B beats A")
    assert v["position_bias"]["value"] > 0.2 and "cancelled by asking in both orders" in v["text"]
    # the pull (1.5) beats the quality gap (1.0): every row's verdict flips with the order, so one
    # order alone would crown whichever template is shown first; both orders give B:
    # (sigmoid(1 + 1.5) + 1 - sigmoid(-1 + 1.5)) / 2 = 0.651
    assert v["consistent"] == 0.0
    assert v["win_rate_b"] == pytest.approx((1 / (1 + math.exp(-2.5)) + 1 - 1 / (1 + math.exp(-0.5))) / 2, abs=1e-9)
    pairs = cmp.generation["judge"]["pairs"]["A vs B"]
    assert len(pairs) == 20 and "Reply A: q=1.2" in pairs[0]["prompt_xy"] and "Reply A: q=0.2" in pairs[0]["prompt_yx"]


def test_judge_spec_is_the_same_from_the_ui_the_cli_and_python():
    """The Judge section's choice travels in the Run and Compare tabs' specs exactly as --judge."""
    from workbench.app.common import UIState
    from workbench.app.judge_panel import judge_pick, judge_use
    from workbench.app.tab_compare import compare_spec
    from workbench.app.tab_run import eval_spec
    from workbench import build_spec   # the Python door (loads data by name)

    data = str(ROOT / "tests" / "data" / "support_questions.jsonl")
    state = UIState(data_spec=data, saved_yaml=PLAIN.read_text(), template_path=str(PLAIN))
    state, status = judge_use(state, judge_pick("helpfulness_yesno"), "", "")
    assert "Judge: helpfulness_yesno" in status and state.judge_path == str(HELPFUL)
    ui, _, _ = eval_spec(state, PLAIN.read_text(), "default", None, None, "acc", "none", "all", 3)
    cli = _cli_spec(["eval", "--data", data, "--template", str(PLAIN), "--split", "all", "--limit", "3",
                     "--judge", str(HELPFUL)])
    py = build_spec("eval", templates=[str(PLAIN)], data=data, eval={"split": "all", "limit": 3}, judge=str(HELPFUL))
    assert ui.hash() == cli.hash() == py.hash() and ui.judge.hash == load_judge(HELPFUL).content_hash()
    uc, _, _ = compare_spec(state, "default", "", None, None, "acc", "none", "all", 3, "", 2000, 2,
                            PLAIN.read_text(), POLITE.read_text())
    cc = _cli_spec(["compare", "--data", data, "--template", str(PLAIN), "--template", str(POLITE), "--split", "all",
                    "--limit", "3", "--judge", str(HELPFUL)])
    assert uc.hash() == cc.hash() and uc.judge == cc.judge
    # a classification template in the editor is run without the judge (there is no output to judge)
    topic = (ROOT / "templates_library" / "bbc_headline_topic.yaml").read_text()
    assert eval_spec(UIState(data_spec="bbc", judge_yaml=state.judge_yaml), topic, "default", 0, 0, "acc", "none",
                     "test", 3)[0].judge is None
    with pytest.raises(ConfigError, match="classification template has none"):
        build_spec("eval", templates=[str(ROOT / "templates_library" / "bbc_headline_topic.yaml")], data="bbc",
                   judge=str(HELPFUL))
