"""The judge on the real default model (SmolLM2-135M-Instruct) and through the remote engine.

* the pointwise yes/no helpfulness judge on the 64 hand-rated support replies of
  tests/data/support_replies.jsonl correlates with the ratings: the lower bound of the 95%
  bootstrap interval of Spearman's rho (resampling whole questions) is above 0;
* the same rows through the protocol reference server (tests/reference_server.py) give the same
  scores;
* pairwise judging in both orders on the real model: the preference is exactly antisymmetric and
  the model's position bias is measured;
* `eval --judge` through the RunSpec: judged records, the rubric prompt kept, and the judge's
  scores read back from the registry the second time.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.core import judge_checks
from workbench.core.judge import load_judge

ROOT = Path(__file__).resolve().parents[1]
LABELLED = ROOT / "tests" / "data" / "support_replies.jsonl"
QUESTIONS = ROOT / "tests" / "data" / "support_questions.jsonl"
HELPFUL = ROOT / "templates_library" / "judges" / "helpfulness_yesno.yaml"
PAIRWISE = ROOT / "templates_library" / "judges" / "helpfulness_pairwise.yaml"
PLAIN = ROOT / "templates_library" / "support_reply_plain.yaml"


@pytest.fixture(scope="module")
def session():
    from workbench.engine.session import get_session

    return get_session("default").load()


@pytest.fixture(scope="module")
def labelled():
    return [json.loads(line) for line in LABELLED.read_text().splitlines()]


@pytest.fixture(scope="module")
def local_scores(session, labelled):
    from workbench.jobs.judge import score_items

    return score_items(load_judge(HELPFUL), session, [{"input": r["question"], "output": r["reply"]} for r in labelled])


def test_pointwise_judge_agrees_with_people_above_chance(local_scores, labelled):
    scores = [s["score"] for s in local_scores]
    human = [r["rating"] for r in labelled]
    ag = judge_checks.agreement(scores, human, judge_verdicts=[s["verdict"] for s in local_scores],
                                groups=[r["id"][:3] for r in labelled])
    rho, pacc = ag["spearman"], ag["pairwise_accuracy"]
    print(f"\nSmolLM2-135M helpfulness_yesno on {len(scores)} rated replies: Spearman {rho['value']:.3f} "
          f"[{rho['ci_low']:.3f}, {rho['ci_high']:.3f}], pairwise accuracy within a question {pacc['value']:.3f} "
          f"[{pacc['ci_low']:.3f}, {pacc['ci_high']:.3f}], kappa {ag['kappa']['value']:.3f}; length bias "
          f"{judge_checks.length_bias(scores, [r['reply'] for r in labelled])['value']:+.3f}")
    assert rho["ci_low"] > 0
    assert pacc["ci_low"] > 0.5
    assert judge_checks.flat_judge(scores, (0, 1)) is None


def test_remote_engine_gives_the_same_scores(local_scores, labelled, session, ref, tmp_path, monkeypatch):
    """Four questions' four rated replies (ratings 5 to 1, 16 rows) through the reference server (echo
    log-probs over HTTP) score like the local judge; then an eval on the local model judged by the server
    (--judge-model openai:URL) scores like the local judge. 16 rows prove the same request path as the whole
    set of 64 (every row is one independent request) at a quarter of the server's time."""
    from workbench.storage.data_load import load_dataset
    from workbench.core.spec import ModelRef, build_spec
    from workbench.core.templates import load_template
    from workbench.engine.session import ModelSession
    from workbench.jobs.runner import execute
    from workbench.jobs.judge import score_items

    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    n = 16
    srv = ref      # the run's shared reference server (support/fixtures.py)
    remote = ModelSession(srv.url, tokenizer="default", response_cache=False).load()
    got = score_items(load_judge(HELPFUL), remote, [{"input": r["question"], "output": r["reply"]}
                                                    for r in labelled[:n]])
    t = load_template(PLAIN.read_text().replace("max_new_tokens: 48", "max_new_tokens: 8"))
    ds = load_dataset(str(QUESTIONS))
    spec = build_spec("eval", templates=[t], data=ds, eval={"split": "all", "limit": 2}, judge=str(HELPFUL),
                      judge_model=ModelRef(model=srv.url, tokenizer="default"))
    assert spec.judge.model.model == srv.url
    res = execute(spec, session, dataset=ds, record=False).result
    assert res.provenance["judge"]["model"]["engine"] != session.model_identity()["engine"]
    here = score_items(load_judge(HELPFUL), session, [{"input": t.render_input(ds.df.loc[r["index"]]),
                                                       "output": r["output"]} for r in res.records])
    assert [r["judge"]["score"] for r in res.records] == pytest.approx([h["score"] for h in here], abs=2e-3)
    assert len(got) == n and [g["prompt"] for g in got] == [s["prompt"] for s in local_scores[:n]]
    diffs = [abs(g["score"] - s["score"]) for g, s in zip(got, local_scores)]
    assert max(diffs) < 2e-3, max(diffs)
    assert [g["verdict"] for g in got] == [s["verdict"] for s in local_scores[:n]]


def test_pairwise_both_orders_on_the_real_model(session, labelled):
    from workbench.jobs.judge import compare_items

    judge = load_judge(PAIRWISE)
    by_q = {}
    for r in labelled:
        by_q.setdefault(r["question"], []).append(r)
    qs = list(by_q)[:4]
    items = [{"input": q, "x": by_q[q][0]["reply"], "y": by_q[q][-1]["reply"]} for q in qs]   # rated 5 vs 1
    fwd = compare_items(judge, session, items)
    back = compare_items(judge, session, [{**it, "x": it["y"], "y": it["x"]} for it in items])
    for f, b in zip(fwd, back):
        assert f["pref_x"] == pytest.approx(1 - b["pref_x"], abs=1e-9)   # order of asking cancels exactly
        assert f["first_pull"] == pytest.approx(b["first_pull"], abs=1e-9)
    pb = judge_checks.position_bias([r["first_pull"] for r in fwd], n_boot=200)
    print(f"\nSmolLM2 pairwise: P(5-rated reply better) {[round(r['pref_x'], 3) for r in fwd]}, "
          f"position pull {pb['value']:+.3f} [{pb['ci_low']:+.3f}, {pb['ci_high']:+.3f}]")
    assert -0.5 <= pb["value"] <= 0.5


def test_eval_with_judge_through_the_spec(session, tmp_path, monkeypatch):
    from workbench.storage.data_load import load_dataset
    from workbench.core.spec import build_spec
    from workbench.core.templates import load_template
    from workbench.jobs.runner import execute

    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    t = load_template(PLAIN.read_text().replace("max_new_tokens: 48", "max_new_tokens: 8"))
    ds = load_dataset(str(QUESTIONS))
    spec = build_spec("eval", templates=[t], data=ds, eval={"split": "all", "limit": 2}, judge=str(HELPFUL))
    res = execute(spec, session, dataset=ds).result
    assert set(res.metrics["reference_metrics"]) == {"chrf", "rougeL", "bleu", "token_f1"}
    for r in res.records:
        assert set(r["metrics"]) == {"chrf", "rougeL", "bleu", "token_f1"}
        assert 0 <= r["judge"]["score"] <= 1 and r["judge_prompt"].endswith("Helpful:")
        assert r["output"].strip() in r["judge_prompt"]
    assert res.provenance["judge"]["hash"] == load_judge(HELPFUL).content_hash()
    assert res.provenance["judge"]["reused"] is False
    again = execute(spec, session, dataset=ds).result
    assert again.provenance["judge"]["reused"] is True
    assert [r["judge"] for r in again.records] == [r["judge"] for r in res.records]
