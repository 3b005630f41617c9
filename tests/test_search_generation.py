"""Prompt search on generation templates (issue 26) and racing by the sequential rule (issue 27):
the objective (a template's reference metric per dev row), the sequential race on synthetic
scores, a whole search with a fake engine whose outputs depend on the instruction, the CLI's and
the UI's doors onto the same SearchConfig, and a small real-model generation search."""
from __future__ import annotations

import re

import numpy as np
import pytest

ONLY = "Write only the answer, with no explanation."


# ---------------------------------------------------------------------------- objective
def _gen(metrics=("exact_match",), **kw):
    from workbench.core.templates import PromptTemplate

    return PromptTemplate(name="sum", task="generation", input="Question: {{ q }}\nAnswer:", target="{{ a }}",
                          label_column="a", metrics=list(metrics), **kw)


def test_objective_per_task_and_metric():
    from workbench.core.search_objective import objective_for
    from workbench.errors import ConfigError

    o = objective_for(_gen(["chrf", "rougeL"]))
    assert (o.metric, o.label, o.binary, o.axes) == ("chrf", "chrF", False, ("format", "instruction", "demos"))
    o = objective_for(_gen(["chrf"]), "exact_match")          # the user's choice wins
    assert (o.metric, o.binary) == ("exact_match", True)
    with pytest.raises(ConfigError, match="no reference metric"):
        objective_for(_gen([]))
    with pytest.raises(ConfigError, match="unknown metric"):
        objective_for(_gen(["chrf"]), "chrff")
    from workbench.core.templates import PromptTemplate

    cls = PromptTemplate(name="c", input="{{ t }}", answer_choices={"a": ["x"], "b": ["y"]})
    assert objective_for(cls).is_accuracy
    with pytest.raises(ConfigError, match="maximises accuracy"):
        objective_for(cls, "chrf")


def test_objective_utilities_are_in_unit_range_and_oriented():
    from workbench.core.search_objective import objective_for

    chrf = objective_for(_gen(["chrf"]))
    assert chrf.utility([50.0, 100.0, 0.0]).tolist() == [0.5, 1.0, 0.0]
    ter = objective_for(_gen(["ter"]))
    assert ter.utility([30.0, 0.0, 250.0]).tolist() == pytest.approx([0.7, 1.0, 0.0])   # lower TER is better
    em = objective_for(_gen(["exact_match"]))
    assert em.utilities(["Paris", "paris"], ["Paris", "Paris"]).tolist() == [1.0, 0.0]
    # the words agree with the sign: a gain is "gained", never a negative drop
    assert "gained 10.0 pts of chrF" in chrf.change_text(0.40, 0.50)
    assert "lost 10.0 pts" in chrf.change_text(0.50, 0.40)
    assert "gained 10.0 pts" in objective_for(_gen(["chrf"]), None).change_text(0.4, 0.5)


# ---------------------------------------------------------------------------- sequential race
def _rows_fn(p: dict, n_rows: int, seed: int = 0):
    """Candidate -> fixed 0/1 rows drawn with success rate p[c] (a prefix per look)."""
    rng = np.random.default_rng(seed)
    table = {c: (rng.random(n_rows) < pc).astype(float) for c, pc in p.items()}
    asked = []

    def rows(c, n):
        asked.append((c, n))
        return table[c][:n]
    return rows, asked


def test_sequential_race_drops_clear_losers_early_and_keeps_close_ones():
    from workbench.core.racing import rung_sizes
    from workbench.core.racing_seq import race_sequential

    sizes = rung_sizes(400, 25, 2)                        # [25, 50, 100, 200, 400]
    rows, asked = _rows_fn({"good": 0.9, "close": 0.88, "bad": 0.1, "worse": 0.05}, 400)
    res = race_sequential(["close", "good", "bad", "worse"], rows, sizes, alpha=0.05, prefer="close")
    dropped = {c: r["n"] for r in res.rungs for c in r["dropped"]}
    assert set(dropped) == {"bad", "worse"} and max(dropped.values()) <= 100     # settled long before the end
    assert res.winner in ("good", "close") and res.winner_n == 400 and res.complete
    # a dropped candidate is never scored again
    assert max(n for c, n in asked if c == "bad") == dropped["bad"]
    # halving on the same field would have scored fewer rows but may lose the best: not this rule's trade


def test_sequential_race_rarely_drops_anyone_under_the_null():
    """Four equal candidates, 200 races with a look after each rung: the chance of ever dropping
    one (every drop is an error here) stays under alpha."""
    from workbench.core.racing import rung_sizes
    from workbench.core.racing_seq import race_sequential

    sizes = rung_sizes(200, 16, 2)
    errors = 0
    for s in range(200):
        rows, _ = _rows_fn({c: 0.6 for c in "abcd"}, 200, seed=s)
        res = race_sequential(list("abcd"), rows, sizes, alpha=0.05)
        errors += any(r["dropped"] for r in res.rungs)
    assert errors / 200 <= 0.05


def test_sequential_race_on_a_finite_population_is_valid_and_settles_the_last_rows():
    """population=N (what the search uses: the winner on all dev rows): four candidates with
    exactly equal accuracy on the same 100 rows, replayed in 200 random orders, are never split
    more often than alpha; a one-row difference is settled only by looking at (nearly) all rows."""
    from workbench.core.racing import rung_sizes
    from workbench.core.racing_seq import race_sequential

    rng = np.random.default_rng(3)
    table = {c: rng.permutation(np.r_[np.ones(60), np.zeros(40)]) for c in "abcd"}
    sizes = rung_sizes(100, 16, 2)
    errors = 0
    for _ in range(200):
        order = rng.permutation(100)
        res = race_sequential(list("abcd"), lambda c, n: table[c][order[:n]], sizes, alpha=0.05, population=100)
        errors += any(r["dropped"] for r in res.rungs)
    assert errors / 200 <= 0.05
    # b is right on exactly one more row than a: with every row seen the difference is known exactly
    a = np.r_[np.ones(50), np.zeros(50)]
    b = a.copy()
    b[50] = 1
    res = race_sequential(["a", "b"], lambda c, n: {"a": a, "b": b}[c][:n], [16, 32, 64, 100], population=100)
    assert res.winner == "b" and res.rungs[-1]["dropped"] == {"a": "b"}
    assert all(not r["dropped"] for r in res.rungs[:-1])


def test_sequential_race_budget_stops_and_reports_incomplete():
    from workbench.core.racing_seq import race_sequential

    calls = {"n": 0}

    def out():
        calls["n"] += 1
        return calls["n"] > 3

    rows, _ = _rows_fn({"a": 0.5, "b": 0.5}, 64)
    res = race_sequential(["a", "b"], rows, [16, 32, 64], out_of_budget=out)
    assert not res.complete and res.winner_n == 16


# ---------------------------------------------------------------------------- a whole search (fake engine)
def _qa_dataset(tmp_path, n=60):
    """Arithmetic questions with one-word answers, as a CSV dataset."""
    import pandas as pd

    from workbench.storage.data_load import load_dataset

    rng = np.random.default_rng(0)
    a, b = rng.integers(1, 9, n), rng.integers(1, 9, n)
    df = pd.DataFrame({"q": [f"What is {x} plus {y}?" for x, y in zip(a, b)], "a": [str(x + y) for x, y in zip(a, b)]})
    path = tmp_path / "qa.csv"
    df.to_csv(path, index=False)
    return load_dataset(str(path), text_column="q", label_column="a")


def _fake_session():
    """Answers the last question of the prompt: bare when the prompt asks for only the answer,
    else wrapped in words (exact match 0, chrF partial)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from support.fakes import FakeSession

    def gen(prompt):
        x, y = re.findall(r"What is (\d+) plus (\d+)\?", prompt)[-1]
        ans = str(int(x) + int(y))
        return f" {ans}" if ONLY in prompt else f" I think the answer is {ans}"

    s = FakeSession(generate_fn=gen)
    s.stats = {"tokens": 0}
    return s


@pytest.mark.parametrize("racing", ["halving", "sequential"])
def test_generation_search_finds_the_instruction_and_names_the_metric(tmp_path, racing):
    from workbench.jobs.inference import EvalConfig
    from workbench.jobs.search import SearchConfig, search

    ds = _qa_dataset(tmp_path, n=400)                      # 40 dev rows: enough for the rule to settle
    start = _gen(["exact_match", "chrf"])
    cfg = SearchConfig(axes=["instruction", "demos", "verbalizer", "calibration"], budget_tokens=None,
                       budget_seconds=None, first_rows=4, shots=[0], racing=racing, test_limit=None, n_boot=200,
                       save_winner=False)
    res = search(start, ds, _fake_session(), cfg, EvalConfig(max_new_tokens=8), store=False)
    p = res.payload
    assert res.status == "done" and p["objective"]["metric"] == "exact_match"
    assert [s["stage"] for s in p["stages"]] == ["instruction", "demos"]   # verbalizer/calibration do not apply
    assert ONLY in res.winner_template().instruction
    assert p["start"]["dev_accuracy"] == 0.0 and res.winner["dev_accuracy"] == 1.0
    t = res.test
    assert t["verdict"]["method"] == "McNemar exact" and t["verdict"]["significant"]
    assert t["start_accuracy"] == 0.0 and t["winner_accuracy"] == 1.0
    text = res.summary()
    assert "objective: exact match" in text and "dev exact match" in text and "accuracy" not in text
    assert "kept its score from dev to test" in text           # 100% on dev and on test: no "drop"
    if racing == "sequential":
        rungs = p["stages"][0]["rungs"]
        assert "sequential" in text and any(r.get("dropped") for r in rungs)


def test_generation_search_on_a_continuous_metric_uses_the_bootstrap(tmp_path):
    from workbench.jobs.inference import EvalConfig
    from workbench.jobs.search import SearchConfig, search

    ds = _qa_dataset(tmp_path)
    cfg = SearchConfig(axes=["instruction"], budget_tokens=None, budget_seconds=None, first_rows=4, metric="chrf",
                       n_boot=200, save_winner=False)
    res = search(_gen(["exact_match"]), ds, _fake_session(), cfg, EvalConfig(max_new_tokens=8), store=False)
    assert res.payload["objective"]["label"] == "chrF"
    v = res.test["verdict"]
    assert v["method"] == "paired bootstrap of the corpus score" and v["delta"] > 0 and v["significant"]
    assert "beats" in v["text"] and "chrF" in v["text"]
    assert res.test["winner_accuracy"] > res.test["start_accuracy"]
    assert "dev chrF" in res.summary()


def test_generation_search_refuses_axes_that_do_not_apply(tmp_path):
    from workbench.errors import ConfigError
    from workbench.jobs.search import SearchConfig, search

    with pytest.raises(ConfigError, match="none of the axes"):
        search(_gen(), _qa_dataset(tmp_path), _fake_session(), SearchConfig(axes=["verbalizer"]), store=False)
    with pytest.raises(ConfigError, match="racing"):
        SearchConfig(racing="fast").validate()


# ---------------------------------------------------------------------------- doors
def test_cli_and_ui_build_the_same_config():
    """`workbench search --metric --racing --alpha` and the Search tab's form give the same SearchConfig
    (the spec each builds: tests/test_spec_search.py)."""
    import argparse

    from workbench.app.tab_search import _config
    from workbench.commands import search as cmd

    p = argparse.ArgumentParser()
    cmd.register(p.add_subparsers())
    args = p.parse_args(["search", "--data", "bbc", "--template", "templates_library/support_reply_plain.yaml",
                         "--axes", "instruction,demos", "--metric", "rougeL", "--racing", "sequential",
                         "--alpha", "0.1", "--max-new-tokens", "8"])
    spec = cmd.spec_from_args(args)
    ui = _config(["instruction", "demos"], 300_000, 600, 0, 0, "0,2,4", ["random", "similar"],
                 ["none", "contextual", "pmi"], 0, True, "", False, "rougeL", "sequential", 0.1)
    assert spec.search == ui and spec.eval.max_new_tokens == 8


# ---------------------------------------------------------------------------- real model
@pytest.mark.model
@pytest.mark.slow
def test_real_model_generation_search(session, tmp_path):
    """SmolLM2 on the support questions: an instruction race on 3 dev rows, chrF per row, the
    test check with a paired bootstrap; short generations keep it small on a CPU."""
    from workbench.storage.data_load import load_dataset
    from workbench.core.templates import load_template
    from workbench.jobs.inference import EvalConfig
    from workbench.jobs.search import SearchConfig, search

    ds = load_dataset("tests/data/support_questions.jsonl")
    start = load_template("templates_library/support_reply_plain.yaml")
    cfg = SearchConfig(axes=["instruction"], instructions=["Reply politely in one sentence.", "Apologise first."],
                       budget_tokens=None, budget_seconds=300, first_rows=2, max_dev_rows=3, test_limit=3,
                       racing="sequential", n_boot=200, save_winner=False)
    res = search(start, ds, session, cfg, EvalConfig(max_new_tokens=6, dev_fraction=0.25, test_fraction=0.25),
                 store=False)
    p = res.payload
    assert res.status == "done" and p["objective"]["metric"] == "chrf"
    cands = [c for c in p["candidates"].values() if c["n"]]
    assert len(cands) == 3 and all(0 <= c["accuracy"] <= 1 for c in cands)
    assert any(c["accuracy"] > 0 for c in cands)                  # SmolLM2's replies share characters with the references
    assert res.test["n"] == 3 and "paired bootstrap" in res.test["verdict"]["method"]
    assert "chrF" in res.summary() and p["tokens"] > 0


def test_report_signs_a_dev_to_test_gain_as_a_gain():
    """Issue 27's quoted case: the winner went from 60% on dev to 70% on test. The report says it
    gained 10 points; it never says "drop of -10"."""
    from workbench.jobs.search_report import format_search

    yaml = "name: s\ninput: '{{ t }}'\nanswer_choices:\n  a: [x]\n  b: [y]\n"
    payload = {"status": "done", "start": {"name": "s", "yaml": yaml, "key": "k0", "config": {}, "dev_accuracy": 0.5},
               "winner": {"key": "k0", "name": "w", "dev_accuracy": 0.6, "describe": "x"},
               "candidates": {"k0": {"n": 10, "accuracy": 0.6, "stage": "start", "change": "start", "config": {},
                                     "yaml": yaml}},
               "test": {"n": 10, "start_accuracy": 0.5, "winner_accuracy": 0.7, "winner_dev_accuracy": 0.6,
                        "dev_to_test_drop": -0.1, "test_uses": 1, "verdict": {"text": "v"}}}
    text = format_search(payload)
    assert "the winner gained 10.0 pts from dev to test (60.0% → 70.0%)" in text
    assert "-10" not in text and "−10" not in text and "drop" not in text
    assert "objective: accuracy" in text and "racing: successive halving" in text


def test_search_tab_views_name_the_metric(tmp_path):
    """The Search tab's summary, leaderboard and plot of a generation search say chrF, not accuracy."""
    from workbench.app.tab_search import _views
    from workbench.jobs.inference import EvalConfig
    from workbench.jobs.search import SearchConfig, search

    cfg = SearchConfig(axes=["instruction"], budget_tokens=None, budget_seconds=None, first_rows=4, metric="chrf",
                       n_boot=200, save_winner=False, racing="sequential")
    res = search(_gen(["chrf"]), _qa_dataset(tmp_path), _fake_session(), cfg, EvalConfig(max_new_tokens=8), store=False)
    md, fig, board, _diff, _yaml = _views(res.payload, None)
    assert "objective: **chrF**" in md and "racing: sequential" in md and "kept its score" in md
    assert "accuracy" not in md and "Never reached" not in md
    assert "dev chrF" in board.columns and "dev acc" not in board.columns
    assert "chrF" in fig.layout.yaxis.title.text
