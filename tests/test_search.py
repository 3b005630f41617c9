"""Prompt search: label-word ranking by hand, racing on a synthetic scorer, the test split
never touched during search, cancel/resume without rescoring, and a real-model search."""
from __future__ import annotations

import inspect
import random

import numpy as np
import pytest

LABELS = ["business", "entertainment", "politics", "sports", "tech"]


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def tiny_session():
    """A 2-layer random Llama with the default model's tokenizer, as an in-memory session."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from workbench.engine.models import resolve_model
    from workbench.engine.session import ModelSession

    tok = AutoTokenizer.from_pretrained(resolve_model("default").path)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    model = LlamaForCausalLM(cfg).eval()
    return ModelSession.from_model(model, tok, name="tiny-llama", identity="tiny-llama-test-0")


@pytest.fixture(scope="module")
def small_bbc(tmp_path_factory):
    """150 bbc headlines (30 per class) as a CSV dataset."""
    from workbench.storage.data_load import load_dataset

    full = load_dataset("bbc").df
    df = full.groupby("label", group_keys=False).head(30)[["title", "label"]]
    path = tmp_path_factory.mktemp("data") / "bbc_small.csv"
    df.to_csv(path, index=False)
    return load_dataset(str(path), text_column="title", label_column="label")


def _weak_start():
    from workbench.core.templates import PromptTemplate

    return PromptTemplate(name="weak", input="Text: {{ title }}\nLabel:",
                          answer_choices={lab: [ch] for lab, ch in zip(LABELS, "ABCDE")})


# ---------------------------------------------------------------------------- label words
def test_likelihood_ratio_by_hand():
    from workbench.core.label_words import class_means, likelihood_ratios, rank_label_words

    # 4 rows, 3 classes (a, a, b, c), vocabulary of 5 tokens; log-probs chosen by hand.
    logp = np.array([[-1.0, -2.0, -3.0, -4.0, -20.0],
                     [-3.0, -2.0, -3.0, -4.0, -20.0],
                     [-5.0, -1.0, -2.0, -4.0, -20.0],
                     [-5.0, -4.0, -1.0, -0.5, -9.0]])
    labels = ["a", "a", "b", "c"]
    means = class_means(logp, labels, ["a", "b", "c"])
    assert means[0].tolist() == [-2.0, -2.0, -3.0, -4.0, -20.0]          # mean of rows 0, 1
    ratios = likelihood_ratios(means)
    # ratio(a, tok0) = -2 - mean(-5, -5) = 3 ; ratio(b, tok1) = -1 - mean(-2, -4) = 2
    assert ratios[0, 0] == pytest.approx(3.0)
    assert ratios[1, 1] == pytest.approx(2.0)
    # ratio(c, tok3) = -0.5 - mean(-4, -4) = 3.5 ; ratio(c, tok2) = -1 - mean(-3, -2) = 1.5
    assert ratios[2, 3] == pytest.approx(3.5)
    allowed = {0: "alpha", 1: "beta", 2: "gamma", 3: "delta", 4: "junk"}
    ranked = rank_label_words(logp, labels, ["a", "b", "c"], allowed, words_per_class=1, prefilter=4)
    assert [ranked[c][0].word for c in "abc"] == ["alpha", "beta", "delta"]
    assert ranked["c"][0].ratio == pytest.approx(3.5)
    assert ranked["c"][0].in_class == pytest.approx(-0.5)
    # "junk" has the largest ratio for c (-9 - (-20) = 11) but the lowest in-class likelihood:
    # outside the prefilter (the 4 most likely tokens per class) it is never picked; with a
    # prefilter of the whole vocabulary it would win.
    assert likelihood_ratios(means)[2, 4] == pytest.approx(11.0)
    wide = rank_label_words(logp, labels, ["a", "b", "c"], allowed, words_per_class=1, prefilter=5)
    assert wide["c"][0].word == "junk"


def test_next_token_logprobs_match_a_plain_forward_pass(tiny_session):
    """The full-vocabulary log-probs the ranking reads equal log_softmax of the model's logits
    at the last context position, computed by hand here."""
    import torch

    from workbench.engine.next_token import next_token_logprobs, whole_word_tokens

    ctxs = ["Text: Oil prices rise\nLabel:", "Text: Arsenal beat Chelsea in the cup final\nLabel:", "Hi"]
    got = next_token_logprobs(tiny_session, ctxs)
    tok, model = tiny_session.tokenizer, tiny_session.model
    for i, c in enumerate(ctxs):
        ids = torch.tensor([tiny_session.encode(c)])
        with torch.no_grad():
            want = torch.log_softmax(model(input_ids=ids).logits[0, -1].float(), -1).numpy()
        assert got.shape[1] == want.shape[0]
        np.testing.assert_allclose(got[i], want, atol=1e-4)
    words = whole_word_tokens(tiny_session)
    assert len(words) > 1000
    some = list(words.items())[:50]
    for tid, w in some:
        assert tok.encode(" " + w, add_special_tokens=False) == [tid]
    # Ranking on these log-probs = ranking on hand-computed means of the same numbers.
    from workbench.core.label_words import rank_label_words

    ranked = rank_label_words(got[:2], ["x", "y"], ["x", "y"], words, words_per_class=2, prefilter=50)
    for c, row in (("x", 0), ("y", 1)):
        other = 1 - row
        for w in ranked[c]:
            assert w.ratio == pytest.approx(float(got[row, w.token_id] - got[other, w.token_id]), abs=1e-5)


def test_verbalizer_combinations_are_distinct_and_cover_classes():
    from workbench.core.label_words import LabelWord, verbalizer_combinations

    ranked = {c: [LabelWord(i, f"{c}{r}", 1.0, -1.0) for i, r in enumerate(range(3))] for c in "abc"}
    combos = verbalizer_combinations(ranked, 6)
    assert combos[0] == {"a": ["a0"], "b": ["b0"], "c": ["c0"]}
    assert combos[1] == {"a": ["a1"], "b": ["b1"], "c": ["c1"]}
    assert len(combos) == 6 and all(set(v) == {"a", "b", "c"} for v in combos)
    assert len({str(v) for v in combos}) == 6


# ---------------------------------------------------------------------------- racing
def test_racing_keeps_the_best_on_a_synthetic_scorer():
    """32 candidates with true accuracies; observed accuracy on n rows is binomial noise around
    it (rows are fixed per candidate so growing a slice extends the same draws). The race must
    end with the truly best candidate, scoring far fewer rows than scoring everyone on all."""
    from workbench.core.racing import race, rung_sizes

    rng = random.Random(0)
    true = {f"c{i}": 0.3 + 0.01 * i for i in range(31)}
    true["best"] = 0.85
    outcomes = {c: [rng.random() < p for _ in range(512)] for c, p in true.items()}
    calls = []

    def score(c, n):
        calls.append((c, n))
        return sum(outcomes[c][:n]) / n

    sizes = rung_sizes(512, first=16, eta=2)
    assert sizes == [16, 32, 64, 128, 256, 512]
    res = race(list(true), score, sizes, keep=0.5)
    assert res.winner == "best" and res.complete and res.winner_n == 512
    rows_scored = sum(n for _, n in calls)
    assert rows_scored < 0.25 * 512 * len(true)
    kept = [len(r["kept"]) for r in res.rungs]
    assert kept[:4] == [16, 8, 4, 2]


def test_racing_budget_and_incumbent_ties():
    from workbench.core.racing import race

    # All equal: the incumbent wins the tie.
    res = race(["a", "b", "inc"], lambda c, n: 0.5, [4, 8], keep=0.5, prefer="inc")
    assert res.winner == "inc"
    # Budget runs out in the middle of the second rung: no winner from a half-scored rung.
    left = iter([False, False, False, False, True])
    res = race(["a", "b", "c"], lambda c, n: {"a": 0.1, "b": 0.9, "c": 0.5}[c], [4, 8, 16], keep=0.5,
               out_of_budget=lambda: next(left, True))
    assert not res.complete
    assert res.winner == "b" and res.winner_n == 4


# ---------------------------------------------------------------------------- honesty + resume
class _Recorder:
    """Wraps a session; records every context the model is asked to score or read: through the
    session's own loglikelihood, and through its engine (a search scores through the engine layer's
    cache, engine/caching.CachedSession, which encodes and then calls `session.engine.score`)."""

    def __init__(self, inner):
        self._inner = inner
        self.contexts: list[str] = []

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def loglikelihood(self, requests, **kw):
        out = self._inner.loglikelihood(requests, **kw)
        self.contexts.extend(c for c, _ in requests)     # only calls that finished (not cancelled)
        return out

    @property
    def engine(self):
        return _RecordingEngine(self._inner.engine, self)

    def encode(self, text):
        return self._inner.encode(text)


class _RecordingEngine:
    def __init__(self, inner, rec: _Recorder):
        self._inner, self._rec = inner, rec

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def score(self, requests, **kw):
        out = self._inner.score(requests, **kw)
        tok = self._inner.tokenizer
        self._rec.contexts.extend(tok.decode(list(c)) for c, _ in requests)   # only calls that finished
        return out


def test_search_never_reads_the_test_split(tiny_session, small_bbc, monkeypatch):
    from workbench.core.data import split_dataset
    from workbench.engine import next_token
    from workbench.jobs.search import SearchConfig, search

    rec = _Recorder(tiny_session)
    seen_next: list[str] = []
    real = next_token.next_token_logprobs

    def spy(session, ctxs, **kw):
        seen_next.extend(ctxs)
        return real(tiny_session, ctxs, **kw)

    monkeypatch.setattr(next_token, "next_token_logprobs", spy)
    cfg = SearchConfig(axes=["verbalizer", "format", "instruction", "demos", "calibration"], budget_tokens=None,
                       budget_seconds=None, first_rows=4, max_dev_rows=8, label_rows_per_class=3, n_verbalizers=2,
                       n_formats=2, instructions=["Pick one: {choices}."], shots=[0, 1], demo_seeds=[0],
                       selections=["random"], calibrations=["none", "pmi"], evaluate_test=False, save_winner=False)
    res = search(_weak_start(), small_bbc, rec, cfg)
    sp = split_dataset(small_bbc, seed=0, dev=0.1, test=0.2)
    test_titles = set(sp.test["title"])
    assert rec.contexts and seen_next
    read = rec.contexts + seen_next
    leaked = [t for t in test_titles if any(t in c for c in read)]
    assert leaked == [], f"test rows reached the model during search: {leaked[:3]}"
    dev_titles = set(sp.dev["title"])
    assert any(t in c for t in dev_titles for c in rec.contexts)      # the search did score dev rows
    assert res.test is None
    assert res.status == "done" and len(res.payload["stages"]) == 5
    # The winner is at least as good on dev as the start (the incumbent is in every race), and
    # every change of incumbent was a strict improvement on all dev rows.
    assert res.winner["dev_accuracy"] >= res.payload["start"]["dev_accuracy"]
    cands = res.payload["candidates"]
    inc = res.payload["start"]["key"]
    for st in res.payload["stages"]:
        if st["changed"]:
            assert cands[st["winner"]]["scores"]["8"] > cands[inc]["scores"]["8"]
            inc = st["winner"]
    assert inc == res.winner["key"]


def test_cancel_then_resume_scores_nothing_twice(tiny_session, small_bbc):
    from workbench.errors import Cancelled
    from workbench.jobs.search import SearchConfig, open_search, search
    from workbench.storage.runs import RunRegistry

    reg = RunRegistry()
    cfg = SearchConfig(axes=["format", "instruction"], budget_tokens=None, budget_seconds=None, first_rows=4,
                       max_dev_rows=8, n_formats=3, instructions=["Pick one: {choices}."], evaluate_test=True,
                       test_limit=10, save_winner=True, n_boot=200)
    rec = _Recorder(tiny_session)
    calls = {"n": 0}

    def cancel():
        calls["n"] += 1
        return calls["n"] > 3

    with pytest.raises(Cancelled):
        search(_weak_start(), small_bbc, rec, cfg, registry=reg, cancel=cancel)
    runs = reg.list(kind="search")
    assert len(runs) == 1 and runs[0].status == "cancelled"
    run_id = runs[0].id
    before = open_search(run_id, reg).payload
    scored_before = {k: set(v) for k, v in before["cache"].items()}
    assert scored_before
    n_ctx = len(rec.contexts)

    rec2 = _Recorder(tiny_session)
    res = search(_weak_start(), small_bbc, rec2, cfg, registry=reg, resume=run_id)
    assert res.run_id == run_id and res.status == "done"
    # Rows scored before the cancel were not sent to the model again.
    again = [c for c in rec2.contexts if c in set(rec.contexts[:n_ctx])]
    assert again == []
    # Test: scored once, a paired verdict, the drop and the use count.
    t = res.test
    assert t["n"] == 10 and "verdict" in t and t["test_uses"] == 1
    assert t["dev_to_test_drop"] == pytest.approx(res.winner["dev_accuracy"] - t["winner_accuracy"])
    # The winner is a normal template in the user's folder, with metadata.search.
    from workbench.core.templates import load_template

    saved = load_template(res.saved_path)
    assert saved.metadata["search"]["run_id"] == run_id
    assert saved.metadata["search"]["settings"]["axes"] == ["format", "instruction"]
    # A second search on the same split says the test split has now been used twice.
    res2 = search(_weak_start(), small_bbc, tiny_session, SearchConfig(
        axes=["calibration"], budget_tokens=None, budget_seconds=None, first_rows=4, max_dev_rows=8,
        evaluate_test=True, test_limit=10, save_winner=False, n_boot=200), registry=reg)
    assert res2.test["test_uses"] == 2
    assert "used by 2 search(es)" in res2.summary()
    lb = res.leaderboard()
    assert lb[0]["n"] == 8 and any(r["is_start"] for r in lb) and all("diff" in r for r in lb)


def test_config_validation():
    from workbench.errors import ConfigError
    from workbench.jobs.search import SearchConfig

    with pytest.raises(ConfigError, match="axes"):
        SearchConfig(axes=["colour"]).validate()
    with pytest.raises(ConfigError, match="calibration"):
        SearchConfig(calibrations=["magic"]).validate()


# ---------------------------------------------------------------------------- real model
@pytest.mark.model
@pytest.mark.slow
def test_real_model_search_end_to_end(session, bbc):
    """SmolLM2 on bbc from opaque verbalizers: the label-word stage alone must find words the
    model can use (dev accuracy well above the start's), on a small budget."""
    from workbench.jobs.search import SearchConfig, search

    cfg = SearchConfig(axes=["verbalizer", "calibration"], budget_tokens=60_000, budget_seconds=240, first_rows=8,
                       max_dev_rows=32, label_rows_per_class=6, n_verbalizers=3, calibrations=["none", "pmi"],
                       evaluate_test=True, test_limit=40, n_boot=300)
    res = search(_weak_start(), bbc, session, cfg)
    assert res.status == "done"
    words = res.payload["label_words"]
    assert set(words) == set(LABELS) and all(words[c] for c in LABELS)
    start, win = res.payload["start"]["dev_accuracy"], res.winner["dev_accuracy"]
    assert win is not None and win > start + 0.15, (start, win, words)
    assert res.test["n"] == 40 and res.test["test_uses"] == 1
    assert res.payload["tokens"] <= 60_000 + 20_000   # the budget is checked between scoring calls


def test_the_search_cache_sends_each_request_once():
    """A search scores through the engine layer's one cache (engine/caching.CachedSession):
    candidates that differ only in calibration ask the same requests, and each goes to the
    engine once; the budget reads the real session's counters."""
    import workbench.jobs.search as search_mod
    from tests.support.fakes import FakeSession
    from workbench.engine.caching import CachedSession

    assert "CachedSession(session)" in inspect.getsource(search_mod._Search.__init__)
    s = FakeSession()
    s.stats = {"tokens": 0}
    sent = []
    score = s.engine.score
    s.engine.score = lambda reqs, **kw: (sent.extend(reqs), score(reqs, **kw))[1]
    m = CachedSession(s)
    a = m.loglikelihood([("ctx", " a"), ("ctx", " b")])
    b = m.loglikelihood([("ctx", " b"), ("ctx2", " a"), ("ctx", " a")])
    direct = s.loglikelihood([("ctx", " a"), ("ctx", " b"), ("ctx2", " a")])
    assert [r.logprob for r in a] == [direct[0].logprob, direct[1].logprob]
    assert [r.logprob for r in b] == [direct[1].logprob, direct[2].logprob, direct[0].logprob]
    assert sent[:3] == [(["ctx"], [" a"]), (["ctx"], [" b"]), (["ctx2"], [" a"])] and len(sent) == 3 + 3
    assert m.stats is s.stats          # budgets read the real session's counters


def test_similar_demos_are_the_nearest_rows_nearest_last(small_bbc):
    """sampling='similar' (the search's demonstration axis, usable everywhere): the k pool rows
    with the highest cosine similarity of their rendered input to the row's, nearest last, never
    the row itself; build_prompts uses them."""
    from workbench.core.data import split_dataset
    from workbench.core.templates import PromptTemplate
    from workbench.engine.embeddings import embed, similar_demos
    from workbench.jobs.inference import EvalConfig, build_prompts

    t = PromptTemplate(name="h", input="Headline: {{ title }}\nTopic:", answer_choices={lab: [lab] for lab in LABELS})
    sp = split_dataset(small_bbc, seed=0, dev=0.1, test=0.2)
    pool, rows = sp.train, sp.dev.iloc[:3]
    vp = embed([t.render_input(r) for _, r in pool.iterrows()])
    for _, row in rows.iterrows():
        sims = vp @ embed([t.render_input(row)])[0]
        want = [pool.index[i] for i in np.argsort(-sims)[:2]][::-1]
        got = [d.name for d in similar_demos(t, pool, row, 2)]
        assert got == want
    # The row itself is never its own demonstration.
    first = pool.iloc[0]
    assert first.name not in [d.name for d in similar_demos(t, pool, first, 3, exclude=first.name)]
    cfg = EvalConfig(shots=2, sampling="similar", split="dev")
    cfg.validate()
    prompts = build_prompts(t, rows, pool, cfg)
    for p, (_, row) in zip(prompts, rows.iterrows()):
        nearest = similar_demos(t, pool, row, 2)[-1]
        assert p.endswith(t.render_input(row))
        assert t.render_input(nearest) in p.split("\n\n")[-2]       # the nearest demo sits right before the input


def test_cli_search_needs_a_start_or_a_run_to_resume(capsys):
    from workbench.cli import main

    assert main(["search", "--data", "bbc"]) == 1
    err = capsys.readouterr().err
    assert "--template" in err and "--resume" in err
    assert main(["search", "--data", "bbc", "--template", "x.yaml", "--axes", "colour"]) == 1
    assert "axes" in capsys.readouterr().err
