"""Prefix-tree scoring (prefix_scoring.py) equals plain scoring: one full forward pass per
request over `context + continuation`, full-vocabulary log-softmax, no cache, no batching.
Both runners (built-in decoder, transformers), on a tiny random Llama (fast, GQA, random token
trees) and on the real default model (with a LoRA adapter, with calibration)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from workbench.engine import prefix_scoring
from workbench.engine.session import _split_decoder_head
from workbench.jobs.inference import EvalConfig, evaluate
from workbench.core.templates import load_template


CONTEXTS = [
    "Headline: Oil prices rise sharply as supply tightens\nTopic:",
    "Headline: Cup final\nTopic:",                          # shorter: right padding in the batch
    "Question: Is the sky blue?\nAnswer: ",                  # trailing space moves to the continuation
]
SINGLE = [" business", " sport"]
MULTI = [" business and finance", " arts and entertainment", " sport"]      # 3, 3 and 1 tokens
DEMOS = ("Headline: Shares slide in Tokyo\nTopic: business\n\n"
         "Headline: Oscar nominations announced\nTopic: entertainment\n\n")

PHRASES = Path(__file__).resolve().parent.parent / "templates_library" / "bbc_headline_phrase_topic.yaml"


def test_random_trees_on_a_tiny_llama_equal_plain_forwards():
    """Random requests with shared prefixes, repeated contexts, 1-4 token continuations, and
    contexts of many lengths (padding everywhere), on a GQA Llama; tiny budgets cut batches."""
    import random

    import transformers

    from workbench.engine.llama_native import NativeLlama

    cfg = transformers.LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                   vocab_size=96, intermediate_size=96, max_position_embeddings=256)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(cfg).eval()
    rng = random.Random(1)
    demos = [rng.randrange(96) for _ in range(12)]
    pairs = []
    for k in range(7):
        ctx = (demos if k < 5 else demos[:3]) + [rng.randrange(96) for _ in range(rng.randint(1, 9))]
        for _ in range(rng.randint(1, 4)):
            pairs.append((ctx, [rng.randrange(96) for _ in range(rng.randint(1, 4))]))
    pairs.append(([7], [8, 9]))
    with torch.inference_mode():
        ref = []
        for c, x in pairs:
            logp = model(torch.tensor([c + x])).logits.float().log_softmax(-1)[0]
            ref.append(sum(float(logp[len(c) - 1 + j, t]) for j, t in enumerate(x)))
        runners = [prefix_scoring.NativeRunner(NativeLlama.from_hf(model)),
                   prefix_scoring.HFRunner(model, model.get_decoder(), model.get_output_embeddings()),
                   prefix_scoring.HFRunner(model)]                    # full logits
        for runner in runners:
            for budget in (2048, 12):
                out, info = prefix_scoring.score(pairs, runner, max_len=256, token_budget=budget, max_batch=64, pad_id=0)
                assert max(abs(o[0] - r) for o, r in zip(out, ref)) < 1e-4, (type(runner).__name__, budget)
                assert [o[2] for o in out] == [len(x) for _, x in pairs]
        assert info["prefix_runs"] >= 1 and info["tokens_minimal"] <= info["tokens_forwarded"]


def _plain(model, session, reqs) -> list[float]:
    """The reference: one uncached forward per request, the continuation's log-probs summed."""
    out = []
    for ctx, cont in reqs:
        c, x = session.encode_pair(ctx, cont)
        with torch.inference_mode():
            logp = model(torch.tensor([c + x])).logits.float().log_softmax(-1)[0]      # [L, V]
        out.append(float(sum(logp[len(c) - 1 + j, t] for j, t in enumerate(x))))
    return out


def _hf_runner(session):
    lm = session.model
    lm = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
    return prefix_scoring.HFRunner(lm, *_split_decoder_head(lm))


def _score(session, runner, reqs, **kw):
    kw = {"max_len": session.max_length, "token_budget": 2048, "max_batch": 64,
          "pad_id": session.scoring_tokenizer().pad_token_id, **kw}
    with torch.inference_mode():
        out, info = prefix_scoring.score(session.encode_pairs(reqs), runner, **kw)
    return [o[0] for o in out], info


@pytest.mark.model
@pytest.mark.parametrize("case", ["single", "multi", "few_shot"])
def test_tree_scoring_equals_plain_on_both_paths(session, case):
    choices = SINGLE if case == "single" else MULTI
    prefix = DEMOS if case == "few_shot" else ""
    reqs = [(prefix + c, x) for c in CONTEXTS for x in choices]
    ref = _plain(session.model, session, reqs)
    assert session.backend == "native"
    stats = {}
    native, info = _score(session, prefix_scoring.NativeRunner(session._native), reqs, stats=stats)
    hf, _ = _score(session, _hf_runner(session), reqs)
    assert max(abs(a - b) for a, b in zip(native, ref)) < 1e-4
    assert max(abs(a - b) for a, b in zip(hf, ref)) < 1e-4
    assert max(abs(a - b) for a, b in zip(native, hf)) < 1e-4
    assert stats["padded"] > stats["tokens"]                  # rows of different lengths were padded
    # Work: the demos run once (a prefix), each context once, each multi-token choice only its own
    # tokens. Without demos the contexts share only "Headline:" (3 tokens, twice): too little
    # for a group of its own, so they are pooled into one batch (prefix_tree._pool_small_groups).
    assert info["prefix_runs"] == (1 if case == "few_shot" else 0)
    assert info["tokens_minimal"] <= info["tokens_forwarded"] <= info["tokens_minimal"] + 2 * len(CONTEXTS)
    if case == "few_shot":
        one_by_one = [session.loglikelihood([r])[0].logprob for r in reqs]   # a single request: no tree to share
        assert max(abs(a - b) for a, b in zip(native, one_by_one)) < 1e-4


@pytest.mark.model
def test_one_row_batches_and_the_session_entry_point(session):
    """Batches cut to a single row (tiny token budget) change nothing; the session's counters
    gain tokens_forwarded and tokens_minimal."""
    reqs = [(DEMOS + c, x) for c in CONTEXTS for x in MULTI]
    ref, _ = _score(session, prefix_scoring.NativeRunner(session._native), reqs)
    tiny, _ = _score(session, prefix_scoring.NativeRunner(session._native), reqs, token_budget=1)
    assert max(abs(a - b) for a, b in zip(ref, tiny)) < 1e-4
    before = dict(session.stats)
    lls = session.loglikelihood(reqs)
    assert max(abs(a.logprob - b) for a, b in zip(lls, ref)) < 1e-5
    assert [ll.n_tokens for ll in lls[:3]] == [3, 3, 1]
    assert session.stats["tokens_minimal"] > before["tokens_minimal"]
    assert session.stats["tokens_forwarded"] - before["tokens_forwarded"] == session.stats["tokens"] - before["tokens"]


@pytest.fixture()
def lora_dir(tmp_path, session):
    """A LoRA adapter whose B matrices are random (peft starts them at zero: the identity)."""
    from adapters import write_random_lora

    return write_random_lora(session.resolved.path, tmp_path / "adapter", scale=0.05)


@pytest.mark.model
def test_tree_scoring_with_an_adapter_equals_plain(session, lora_dir):
    reqs = [(DEMOS + c, x) for c in CONTEXTS[:2] for x in MULTI]
    base = [ll.logprob for ll in session.loglikelihood(reqs)]
    session.attach_adapter(str(lora_dir))
    try:
        assert session.backend == "transformers"
        tree = [ll.logprob for ll in session.loglikelihood(reqs)]
        ref = _plain(session.model, session, reqs)          # the peft model, adapter active
    finally:
        session.detach_adapter()
    assert max(abs(a - b) for a, b in zip(tree, ref)) < 1e-4
    assert max(abs(a - b) for a, b in zip(tree, base)) > 1e-2      # the adapter really took part


@pytest.mark.model
@pytest.mark.parametrize("calibration", ["contextual", "pmi"])
def test_calibration_requests_score_like_plain(session, bbc, calibration, monkeypatch):
    """Calibration only adds requests (content-free prompts, empty contexts); they go through
    the same tree and must equal plain scoring too."""
    seen = []
    real = session.loglikelihood

    def spy(reqs, **kw):
        out = real(reqs, **kw)
        seen.append((list(reqs), out))
        return out

    monkeypatch.setattr(session, "loglikelihood", spy)
    res = evaluate(load_template(PHRASES), bbc, session, EvalConfig(limit=2, shots=1, seed=3, calibration=calibration))
    assert res.metrics["n"] == 2
    (reqs, lls), = seen
    assert len(reqs) > 2 * 5                                 # the calibration requests came along
    ref = _plain(session.model, session, reqs)
    assert max(abs(a.logprob - b) for a, b in zip(lls, ref)) < 1e-4
