"""Prefix-tree scoring (prefix_scoring.py) on the real default model equals plain scoring: one
full forward pass per request over `context + continuation`, full-vocabulary log-softmax, no
cache, no batching. Both runners (built-in decoder, transformers) and with a LoRA adapter."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from workbench.engine import prefix_scoring
from workbench.engine.session import _split_decoder_head
from workbench.jobs.inference import EvalConfig, evaluate
from workbench.core.templates import load_template

pytestmark = pytest.mark.model

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
    # Work: the demos run once (a prefix), each context once, each multi-token choice only its own tokens.
    assert info["prefix_runs"] == 1
    assert info["tokens_minimal"] <= info["tokens_forwarded"] <= info["tokens_minimal"] + 2 * len(CONTEXTS)
    if case == "few_shot":
        one_by_one = [session.loglikelihood([r])[0].logprob for r in reqs]   # a single request: no tree to share
        assert max(abs(a - b) for a, b in zip(native, one_by_one)) < 1e-4


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
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(session.resolved.path, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    model.save_pretrained(str(tmp_path / "adapter"))
    return tmp_path / "adapter"


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
