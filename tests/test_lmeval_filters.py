"""core/lmeval_filters.py, lmeval_scoring.py, lmeval_refusals.py and task_verdicts.py, fast
(no model): each shipped filter against lm-eval's own filter class on the same responses,
aggregations against lm-eval's, refusals before any data loads, verdicts by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from workbench.core import lmeval_filters as F
from workbench.core import lmeval_scoring as S

lm_eval = pytest.importorskip("lm_eval")

RESPS = [[" The answer is 42.\n#### 42", "so #### -3,5 then"], ["I think (B) is right", "Answer: C"],
         ["  MiXeD case  ", "nothing here"], ["#### 7", "#### 7"], ["", "$1,000 and 12"]]
DOCS = [{"choices": ["red", "blue", "green"]}, {"choices": ["cat", "dog", "Guilty", "Guilty of Romance"]},
        {"choices": ["x", "y"]}, {"choices": ["a", "b"]}, {"choices": ["1,000", "12"]}]
CASES = [
    ("regex", {}), ("regex", {"regex_pattern": r"(-?[$0-9.,]{2,})|(-?[0-9]+)", "group_select": -1}),
    ("regex", {"regex_pattern": r"The answer is (\d+)", "fallback": "none"}),
    ("remove_whitespace", {}), ("lowercase", {}), ("uppercase", {}),
    ("map", {"mapping_dict": {"#### 7": "seven"}, "default_value": "?"}),
    ("multi_choice_regex", {"regex_pattern": r"(\([A-D]\))", "ignore_case": True, "ignore_punctuation": True}),
    ("multi_choice_regex", {"regex_pattern": r"zzz", "regexes_to_ignore": [","]}),
    ("take_first", {}), ("take_first_k", {"k": 1}), ("majority_vote", {}),
    ("format_span", {}), ("regex_pos", {}),
]


@pytest.mark.parametrize("name,kwargs", CASES)
def test_shipped_filters_equal_lm_eval(name, kwargs):
    import lm_eval.filters  # noqa: F401 - fills lm-eval's filter registry
    from lm_eval.api.registry import get_filter

    theirs = list(get_filter(name)(**kwargs).apply([list(r) for r in RESPS], DOCS))
    ours = F.SHIPPED[name](**kwargs)([list(r) for r in RESPS], DOCS)
    assert [list(x) if isinstance(x, tuple) else x for x in ours] == \
        [list(x) if isinstance(x, tuple) else x for x in theirs], name


def test_pipelines_are_named_and_default_to_take_first():
    pipes = F.build_pipelines([{"name": "strict", "filter": [{"function": "regex"}, {"function": "take_first"}]},
                               {"name": "vote", "filter": [{"function": "regex", "regex_pattern": r"(\d+)"},
                                                           {"function": "majority_vote"}, {"function": "take_first"}]}])
    assert [p.name for p in pipes] == ["strict", "vote"]
    resps = [["#### 1", "#### 2 x 2", "2"], ["no", "no", "no"]]
    assert pipes[0].apply(resps, [{}, {}]) == ["1", "[invalid]"]
    assert pipes[1].apply(resps, [{}, {}]) == ["2", "[invalid]"]
    assert [p.name for p in F.build_pipelines(None)] == ["none"]
    with pytest.raises(Exception, match="decontaminate"):
        F.build_pipelines([{"name": "d", "filter": [{"function": "decontaminate"}]}])


def test_aggregations_equal_lm_eval():
    from lm_eval.api import metrics as M

    lls = [-3.2, -0.5, -7.25, -1.0]
    assert S.aggregate(S.MetricSpec("perplexity", aggregation="perplexity"), lls) == pytest.approx(M.perplexity(lls))
    pairs = [(-10.0, 5), (-3.5, 2), (-20.25, 11)]
    assert S.aggregate(S.MetricSpec("w", aggregation="weighted_perplexity"), pairs) == pytest.approx(M.weighted_perplexity(pairs))
    assert S.aggregate(S.MetricSpec("b", aggregation="bits_per_byte"), pairs) == pytest.approx(M.bits_per_byte(pairs))
    gp = [(1, 1), (0, 1), (1, 0), (0, 0), (1, 1)]
    assert S.aggregate(S.MetricSpec("f1", aggregation="f1"), gp) == pytest.approx(M.f1_score(gp))
    gp3 = [(0, 0), (1, 2), (2, 2), (1, 1), (0, 1), (2, 0)]
    assert S.aggregate(S.MetricSpec("mcc", aggregation="matthews_corrcoef"), gp3) == pytest.approx(M.matthews_corrcoef(gp3))
    items = [("Le chat dort.", "Le chat dort."), ("Il fait beau.", "Il pleut.")]
    for agg in ("bleu", "chrf", "ter", "chrf++"):
        want = {"bleu": M.bleu, "chrf": M.chrf, "ter": M.ter, "chrf++": M.chrfpp}[agg](items)
        assert S.aggregate(S.MetricSpec(agg, aggregation=agg), items) == pytest.approx(want)
    from lm_eval.api.task import Task
    for text in (" a  b\nc ", "one", "é è"):
        assert (S.count_words(text), S.count_bytes(text)) == (Task.count_words(text), Task.count_bytes(text))


def test_refused_when_the_task_is_resolved(tmp_path, capsys):
    """Multimodal input and a Hugging Face evaluate metric are refused by name before any data
    or model loads (the data file does not even exist)."""
    from workbench.cli import main

    (tmp_path / "gp.yaml").write_text("task: gp_task\noutput_type: generate_until\ndataset_path: json\n"
                                      "dataset_kwargs:\n  data_files:\n    test: /nonexistent.jsonl\ntest_split: test\n"
                                      "doc_to_text: '{{q}}'\ndoc_to_target: '{{a}}'\ndoc_to_image: image\n")
    (tmp_path / "hf.yaml").write_text("task: hf_task\noutput_type: generate_until\ndataset_path: json\ntest_split: test\n"
                                      "doc_to_text: '{{q}}'\ndoc_to_target: '{{a}}'\nmetric_list:\n  - metric: sari\n")
    for name, what in (("gp_task", "multimodal input"), ("hf_task", "metric 'sari'")):
        rc = main(["eval", "--task", name, "--include-path", str(tmp_path), "--no-registry", "--out", str(tmp_path / "o.json")])
        err = capsys.readouterr().err
        assert rc == 1 and what in err and "Traceback" not in err and "/nonexistent" not in err, err


def test_verdicts_by_hand():
    from workbench.core.stats import mcnemar_exact
    from workbench.core.task_verdicts import metric_verdict

    acc = S.MetricSpec("acc", aggregation="mean")
    a = [1] * 8 + [0, 0]
    b = [0] * 8 + [1, 0]
    v = metric_verdict(acc, a, b, n_boot=200, seed=1)
    assert v["test"].startswith("McNemar") and v["discordant"] == [8, 1]
    assert v["p_value"] == pytest.approx(mcnemar_exact(8, 1)) == pytest.approx(2 * 10 / 512)   # 2 P(X<=1), X~Bin(9,1/2)
    assert v["delta"] == pytest.approx(-7 / 10) and "A is better than B" in v["words"]
    # perplexity: B's log-likelihoods are A's minus 1 on every row, so B's perplexity is e
    # times A's on every resample; the p-value is recomputed here from the same draw
    ppl = S.MetricSpec("perplexity", aggregation="perplexity", higher_is_better=False)
    la = [-1.0, -2.0, -3.0]
    lb = [x - 1 for x in la]
    v = metric_verdict(ppl, la, lb, n_boot=99, seed=0)
    assert v["a"] == pytest.approx(math.exp(2)) and v["b"] == pytest.approx(math.exp(3))
    assert v["test"].startswith("paired bootstrap (aggregated")
    assert v["ci_low"] > 0 and v["p_value"] > 0.05 and "no significant difference" in v["words"]
    idx = np.random.default_rng(0).choice(3, size=(99, 3), replace=True)
    d = np.array([math.exp(-np.mean([lb[i] for i in r])) - math.exp(-np.mean([la[i] for i in r])) for r in idx])
    want = (np.sum(np.abs(d) - np.abs(d).mean() > abs(v["delta"])) + 1) / 100
    assert v["p_value"] == pytest.approx(want)
