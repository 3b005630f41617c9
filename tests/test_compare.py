"""Template comparison: identical inputs, registry reuse, verdicts, Holm, winners, seed
variance, format spread, the CLI, and one real comparison on the default model.

Fast tests drive `compare_templates` with a fake session whose log-likelihoods are a hash of
(context, continuation): deterministic, and it counts its calls. The statistics inside are
those of `workbench.core.stats`, checked by hand in test_stats.py; here the numbers are checked
against hand-worked discordant tables.
"""
from __future__ import annotations

import json
import statistics

import pytest

from workbench.core import stats
from workbench.jobs.compare import (
    ComparisonResult,
    compare_results,
    compare_templates,
    get_winner,
    get_winner_info,
    list_comparisons,
    mark_winner,
    open_comparison,
    open_run,
)
from workbench.jobs.sensitivity import seed_variance
from workbench.errors import ConfigError, DataError
from workbench.jobs.inference import EvalConfig, eval_rows
from workbench.storage.runs import RunRegistry
from workbench.core.templates import load_template

from support.fakes import FakeSession  # noqa: E402 - the shared fake (tests/support/fakes.py)

LIB = "templates_library"


@pytest.fixture(scope="module")
def topic():
    return load_template(f"{LIB}/bbc_headline_topic.yaml")


@pytest.fixture(scope="module")
def question():
    return load_template(f"{LIB}/bbc_headline_question.yaml")


def _records(gold, pred, start=0):
    return [{"index": start + i, "gold": g, "pred": p, "correct": g == p, "scores": {p: 0.0}}
            for i, (g, p) in enumerate(zip(gold, pred))]


def _result(name, gold, pred):
    return (name, {"task": "classification", "metrics": {}, "records": _records(gold, pred),
                   "provenance": {"template": {"name": name, "hash": name, "yaml": f"name: {name}\ninput: x\n"}}})


# ------------------------------------------------------------------------------ identical inputs
def test_all_templates_see_identical_rows_and_demos(bbc, topic, question):
    from workbench.core.data import sample_demos

    s = FakeSession()
    cfg = EvalConfig(shots=2, seed=3, limit=12)
    res = compare_templates([topic, question], bbc, s, cfg, registry=None, store=False, n_boot=200)
    rows, pool = eval_rows(bbc, cfg)
    want_demos = sample_demos(pool, 2, label_column="label", seed=3).index.tolist()
    assert res.inputs["identical"] is True
    assert res.inputs["demo_indices"] == want_demos
    assert res.inputs["demo_indices_per_template"] == {topic.name: want_demos, question.name: want_demos}
    assert len(set(res.inputs["row_indices_hash_per_template"].values())) == 1
    assert [ex["index"] for ex in res.examples] == rows.index.tolist()
    # The model really got the same demos and rows, in the same order, for both templates.
    ctx_topic = [c for c, x in s.requests if x == " business" and c.endswith("Topic:")]
    ctx_question = [c for c, x in s.requests if x == " business" and c.endswith("Section:")]
    assert len(ctx_topic) == len(ctx_question) == 12
    for (_, row), a, b in zip(rows.iterrows(), ctx_topic, ctx_question):
        assert a.endswith(topic.render_input(row)) and b.endswith(question.render_input(row))
        for d in want_demos:
            assert topic.render_demo(pool.loc[d]) in a and question.render_demo(pool.loc[d]) in b
    # Disagreements carry the text the templates read (the headline) and per-template scores.
    ex = res.examples[0]
    assert ex["text"] == rows.iloc[0]["title"]
    assert set(ex["scores"][question.name]) == set(question.answer_choices)


def test_paired_results_on_other_rows_or_golds_are_refused():
    a = _result("A", ["x", "y"], ["x", "x"])
    b = ("B", {**a[1], "records": _records(["x", "y"], ["x", "y"], start=5)})
    with pytest.raises(DataError, match="other examples"):
        compare_results([a, b], n_boot=50)
    c = _result("C", ["x", "x"], ["x", "y"])
    with pytest.raises(DataError, match="gold"):
        compare_results([a, c], n_boot=50)
    with pytest.raises(ConfigError, match="2 to 8"):
        compare_results([a], n_boot=50)


# ------------------------------------------------------------------------------ verdicts
def test_clear_win_verdict_with_hand_checked_mcnemar():
    # 50 examples: both right 18, only A right 22, only B right 2, both wrong 8.
    gold = ["pos"] * 50
    a = ["pos"] * 40 + ["neg"] * 10
    b = ["pos"] * 18 + ["neg"] * 22 + ["pos"] * 2 + ["neg"] * 8
    res = compare_results([_result("A", gold, a), _result("B", gold, b)], n_boot=500)
    (v,) = res.verdicts
    assert res.reference == "A" and res.reference_mode == "best"
    assert (v["both_right"], v["only_a"], v["only_b"], v["both_wrong"]) == (18, 22, 2, 8)
    # Exact two-sided binomial: 2 * P(X <= 2), X ~ Bin(24, 1/2) = 2 * (1 + 24 + 276) / 2**24.
    assert v["p_mcnemar"] == pytest.approx(2 * 301 / 2**24)
    assert v["p_holm"] is None and not res.settings["holm"]
    assert v["delta_acc"] == pytest.approx(-0.4)
    assert v["delta_acc_ci"][1] < 0
    assert v["text"].startswith("A beats B by 40.0 pts accuracy (95% CI [+")
    assert "macro-F1 A − B: +" in v["text"]
    assert "p<0.001" in v["text"]
    lb = {r["name"]: r for r in res.leaderboard}
    assert [r["name"] for r in res.leaderboard] == ["A", "B"]
    assert (lb["A"]["ci_low"], lb["A"]["ci_high"]) == pytest.approx(stats.wilson_interval(40, 50))
    assert lb["B"]["accuracy"] == pytest.approx(20 / 50)
    assert lb["A"]["f1_ci_low"] <= lb["A"]["macro_f1"] <= lb["A"]["f1_ci_high"]


def test_no_difference_verdict_says_how_many_examples_would_be_needed():
    gold = ["pos"] * 40
    a = ["pos"] * 30 + ["neg"] * 10
    b = ["pos"] * 27 + ["neg"] * 3 + ["pos"] * 4 + ["neg"] * 6   # only A 3, only B 4
    res = compare_results([_result("A", gold, a), _result("B", gold, b)], n_boot=300)
    (v,) = res.verdicts
    assert res.reference == "B"   # 31/40 beats 30/40
    assert v["p_mcnemar"] == pytest.approx(1.0)
    assert v["text"].startswith("no detectable difference between B and A at n=40")
    assert "you would need about n=" in v["text"] and not v["significant"]


def test_holm_is_applied_with_three_templates_and_a_chosen_baseline():
    gold = ["pos"] * 60
    base = ["pos"] * 30 + ["neg"] * 30
    strong = ["pos"] * 50 + ["neg"] * 10        # only-B 20, only-A 0
    weak = ["pos"] * 24 + ["neg"] * 6 + ["pos"] * 12 + ["neg"] * 18   # only-A 6, only-B 12
    res = compare_results([_result("base", gold, base), _result("strong", gold, strong), _result("weak", gold, weak)],
                          baseline="base", n_boot=300)
    assert res.reference == "base" and res.reference_mode == "baseline" and res.settings["holm"]
    v = {x["b"]: x for x in res.verdicts}
    raw = [v["strong"]["p_mcnemar"], v["weak"]["p_mcnemar"]]
    assert raw == pytest.approx([stats.mcnemar_exact(0, 20), stats.mcnemar_exact(6, 12)])
    # Holm over m=2: the smaller p doubles, the larger stays (it is already above).
    assert v["strong"]["p_holm"] == pytest.approx(min(1, 2 * raw[0]))
    assert v["weak"]["p_holm"] == pytest.approx(max(raw[1], 2 * raw[0]))
    assert v["weak"]["p_holm"] == pytest.approx(stats.holm(raw)[1])
    assert v["strong"]["text"].startswith("strong beats base by ")
    assert "Holm-adjusted over 2 comparisons" in v["strong"]["text"]
    assert v["weak"]["text"].startswith("no detectable difference between base and weak")
    with pytest.raises(ConfigError, match="baseline 'nope'"):
        compare_results([_result("a", gold, base), _result("b", gold, weak)], baseline="nope")


def test_disagreements_filter_by_class():
    gold = ["a", "b", "c", "a"]
    res = compare_results([_result("X", gold, ["a", "b", "a", "a"]), _result("Y", gold, ["a", "c", "c", "b"])],
                          n_boot=50)
    assert [e["index"] for e in res.disagreements()] == [1, 2, 3]
    assert [e["index"] for e in res.disagreements(label="c")] == [1, 2]
    assert [e["index"] for e in res.disagreements(label="b")] == [1, 3]
    assert res.disagreements(label="zzz") == []


# ------------------------------------------------------------------------------ registry
def test_second_comparison_reuses_registry_runs_and_does_no_model_calls(bbc, topic, question):
    reg = RunRegistry()
    s = FakeSession()
    cfg = EvalConfig(shots=1, seed=0, limit=15)
    first = compare_templates([topic, question], bbc, s, cfg, registry=reg, n_boot=200)
    assert s.calls == 2 and not any(t["reused"] for t in first.templates)
    calls = s.calls
    again = compare_templates([question, topic], bbc, s, cfg, registry=reg, n_boot=200)
    assert s.calls == calls, "the second comparison called the model"
    assert all(t["reused"] for t in again.templates)
    assert {t["eval_run_id"] for t in again.templates} == {t["eval_run_id"] for t in first.templates}
    assert again.leaderboard[0]["accuracy"] == first.leaderboard[0]["accuracy"]
    # Another demo seed changes the prompts: no reuse.
    compare_templates([topic, question], bbc, s, EvalConfig(shots=1, seed=1, limit=15), registry=reg, n_boot=200)
    assert s.calls == calls + 2
    # So does another model.
    other = FakeSession("other-model@1")
    compare_templates([topic, question], bbc, other, cfg, registry=reg, n_boot=200)
    assert other.calls == 2


def test_comparison_is_stored_reopened_and_winner_marked(bbc, topic, question):
    reg = RunRegistry()
    s = FakeSession()
    res = compare_templates([topic, question], bbc, s, EvalConfig(limit=10), registry=reg, n_boot=100)
    rec = reg.get(res.run_id)
    assert rec.kind == "compare" and rec.metrics["templates"] == [topic.name, question.name]
    back = open_comparison(res.run_id, reg)
    assert isinstance(back, ComparisonResult)
    assert json.dumps(back.to_dict(), sort_keys=True, default=str) == json.dumps(res.to_dict(), sort_keys=True,
                                                                                 default=str)
    assert get_winner(registry=reg) is None
    yaml_text = mark_winner(res.run_id, question.name, reg)
    assert load_template(yaml_text).content_hash() == question.content_hash()
    assert get_winner(registry=reg) == yaml_text
    assert open_comparison(res.run_id, reg).winner == question.name
    # A later mark on another comparison becomes "the" winner; the first keeps its own.
    res2 = compare_templates([topic, question], bbc, s, EvalConfig(limit=10), registry=reg, n_boot=100)
    mark_winner(res2.run_id, topic.name, reg)
    assert get_winner_info(registry=reg)["run_id"] == res2.run_id
    assert load_template(get_winner(registry=reg)).content_hash() == topic.content_hash()
    assert load_template(get_winner(res.run_id, reg)).content_hash() == question.content_hash()
    assert {c["id"] for c in list_comparisons(reg)} == {res.run_id, res2.run_id}
    with pytest.raises(ConfigError, match="no template named"):
        mark_winner(res.run_id, "nope", reg)


# ------------------------------------------------------------------------------ robustness
def test_seed_variance_over_demo_seeds(bbc, topic):
    s = FakeSession()
    reg = RunRegistry()
    sv = seed_variance(topic, bbc, s, EvalConfig(shots=2, limit=10), seeds=[0, 1, 2], registry=reg)
    accs = [p["accuracy"] for p in sv.per_seed]
    assert sv.seeds == [0, 1, 2] and s.calls == 3
    assert sv.accuracy["mean"] == pytest.approx(statistics.mean(accs))
    assert sv.accuracy["std"] == pytest.approx(statistics.stdev(accs))
    assert (sv.accuracy["min"], sv.accuracy["max"]) == (min(accs), max(accs))
    assert len({tuple(p["demo_indices"]) for p in sv.per_seed}) == 3   # different demos per seed
    assert open_run(sv.run_id, reg).accuracy == sv.accuracy
    with pytest.raises(ConfigError, match="shots"):
        seed_variance(topic, bbc, s, EvalConfig(shots=0, limit=10), seeds=[0, 1], store=False)


def test_format_variants_are_valid_distinct_and_seeded(bbc, topic, question):
    from workbench.core.formats import format_variants

    row = bbc.df.iloc[0].to_dict()
    cols = list(bbc.df.columns)
    for t in (topic, question):
        vs = format_variants(t, 8, seed=0, columns=cols, labels=bbc.labels, sample_row=row)
        assert len(vs) == 8
        assert [v.input for v in vs] == [v.input for v in format_variants(t, 8, seed=0, columns=cols,
                                                                          labels=bbc.labels, sample_row=row)]
        sigs = {(v.input, json.dumps(v.answer_choices)) for v in vs}
        assert len(sigs) == 8 and (t.input, json.dumps(t.answer_choices)) not in sigs
        for v in vs:
            assert not [p for p in v.validate(columns=cols, labels=bbc.labels, sample_row=row) if p.severity == "error"]
            assert "{{ title }}" in v.input          # Jinja untouched: same column read
            assert v.metadata["format_variant"] != "original"
    # Verbalizer synonyms only where a label has several words.
    assert any(v.answer_choices != question.answer_choices for v in format_variants(question, 8, seed=0))
    assert all(v.answer_choices == topic.answer_choices for v in format_variants(topic, 8, seed=0))


def test_format_spread_reports_spread_over_identical_rows(bbc, topic):
    from workbench.jobs.sensitivity import format_spread

    s = FakeSession()
    reg = RunRegistry()
    res = format_spread(topic, bbc, s, EvalConfig(limit=12), n_variants=4, seed=1, registry=reg)
    accs = [v["accuracy"] for v in res.variants]
    assert len(res.variants) == 5 and res.variants[0]["change"] == "original"
    assert res.accuracy["spread"] == pytest.approx(max(accs) - min(accs))
    assert res.accuracy["std"] == pytest.approx(statistics.stdev(accs))
    assert "accuracy spread" in res.summary()
    assert open_run(res.run_id, reg).variants == res.variants
    # A variant can be the winner, and the Export step gets its YAML.
    name = res.variants[2]["name"]
    assert load_template(mark_winner(res.run_id, name, reg)).name == name


# ------------------------------------------------------------------------------ real model
@pytest.mark.model
def test_real_comparison_of_two_library_templates(bbc, session, topic, question, tmp_path, capsys):
    from workbench.cli import main

    reg = RunRegistry()
    cfg = EvalConfig(limit=30, seed=1)
    real_ll = session.loglikelihood
    calls = []

    def counting(*a, **kw):
        calls.append(1)
        return real_ll(*a, **kw)

    session.loglikelihood = counting
    try:
        res = compare_templates([topic, question], bbc, session, cfg, registry=reg, n_boot=500)
        assert len(calls) == 2
        assert res.n == 30 and res.inputs["identical"]
        assert 0.2 < res.leaderboard[0]["accuracy"] <= 1.0   # 5 classes: chance is 0.2
        (v,) = res.verdicts
        assert v["only_a"] + v["only_b"] + v["both_right"] + v["both_wrong"] == 30
        assert v["text"].startswith(("no detectable difference", f"{res.reference} beats", f"{v['b']} beats"))
        again = compare_templates([topic, question], bbc, session, cfg, registry=reg, n_boot=500)
        assert len(calls) == 2 and all(t["reused"] for t in again.templates)
    finally:
        del session.loglikelihood

    # The CLI on the same rows reuses the evals from the (per-test) default registry.
    out = tmp_path / "cmp.json"
    rc = main(["compare", "--data", "bbc", "--template", f"{LIB}/bbc_headline_topic.yaml",
               "--template", f"{LIB}/bbc_headline_question.yaml", "--limit", "30", "--seed", "1",
               "--n-boot", "500", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "bbc_headline_topic" in printed and "Verdicts" in printed
    saved = json.loads(out.read_text())
    assert all(t["reused"] for t in saved["templates"])
    assert saved["leaderboard"] == res.leaderboard and len(saved["examples"]) == 30
