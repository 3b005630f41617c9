"""ModelSession on the real default model: each scoring optimisation returns the same numbers
as the plain path (full logits, one request at a time, full prompts without a prefix cache)."""
from __future__ import annotations

import pytest
import torch

from workbench.errors import ModelError

pytestmark = pytest.mark.model

CONTEXTS = [
    "Headline: Oil prices rise sharply as supply tightens\nTopic:",
    "Headline: United win the cup final\nTopic:",
    "Question: Is the sky blue?\nAnswer: ",      # trailing space moves to the continuation
]
CHOICES = [" business", " sport", " politics", " entertainment news"]   # the last is multi-token


def _naive(session, ctx: str, cont: str) -> tuple[float, bool]:
    """One full forward pass, full-vocabulary logits at every position: the reference."""
    c, x = session.encode_pair(ctx, cont)
    ids = torch.tensor([c + x])
    with torch.no_grad():
        logp = session.model(ids).logits.float().log_softmax(-1)[0]   # [L, V]
    rows = logp[len(c) - 1: len(c) - 1 + len(x)]                       # [len(x), V]
    lp = float(sum(rows[j, t] for j, t in enumerate(x)))
    greedy = all(int(rows[j].argmax()) == t for j, t in enumerate(x))
    return lp, greedy


def test_encode_pair_follows_lm_eval(session):
    ctx, cont = session.encode_pair("Answer: ", "yes")
    # trailing whitespace moved to the continuation, context tokens are the context's own
    assert ctx == session.encode("Answer:")
    assert session.tokenizer.decode(cont) == " yes"
    ctx, cont = session.encode_pair("", " hello")
    assert len(ctx) == 1 and ctx[0] in (session.tokenizer.bos_token_id, session.tokenizer.eos_token_id)


def test_fast_scoring_equals_plain_forward(session):
    reqs = [(c, x) for c in CONTEXTS for x in CHOICES]
    fast = session.loglikelihood(reqs)
    full_logits = session.loglikelihood_tokens([session.encode_pair(c, x) for c, x in reqs],
                                               head_positions_only=False)
    one_by_one = [session.loglikelihood([r])[0] for r in reqs]
    for r, a, b, c in zip(reqs, fast, full_logits, one_by_one):
        ref, greedy = _naive(session, *r)
        assert a.logprob == pytest.approx(ref, abs=1e-4), r
        assert b.logprob == pytest.approx(ref, abs=1e-4), r
        assert c.logprob == pytest.approx(ref, abs=1e-4), r
        assert a.greedy == greedy
    assert [f.n_tokens for f in fast][:4] == [1, 1, 1, 3] or fast[3].n_tokens > 1


def test_prefix_cache_equals_full_prompts(session):
    demos = ("Headline: Shares slide in Tokyo\nTopic: business\n\n"
             "Headline: Oscar nominations announced\nTopic: entertainment\n\n"
             "Headline: Prime minister calls election\nTopic: politics\n\n")
    reqs = [(demos + c, x) for c in CONTEXTS[:2] for x in CHOICES]
    before = session._prefix_cache_hits
    cached = session.loglikelihood(reqs, prefix_cache=True)
    assert session._prefix_cache_hits == before + 1      # the shared prefix really was cached
    plain = session.loglikelihood(reqs, prefix_cache=False)
    for a, b in zip(cached, plain):
        assert a.logprob == pytest.approx(b.logprob, abs=1e-4)
        assert a.greedy == b.greedy


def test_batching_is_order_independent(session):
    reqs = [(c, x) for c in CONTEXTS for x in CHOICES]
    fwd = session.loglikelihood(reqs)
    rev = session.loglikelihood(reqs[::-1])[::-1]
    for a, b in zip(fwd, rev):
        assert a.logprob == pytest.approx(b.logprob, abs=1e-4)


def test_generate_stops_on_stop_string(session):
    out = session.generate(["The capital of France is", "Count: one, two,"], max_new_tokens=24, stop=["\n", "."])
    assert len(out) == 2
    assert "Paris" in out[0].text
    for g in out:
        assert "\n" not in g.text and "." not in g.text
    assert out[0].stop_reason == "stop"          # "... Paris." ends at the stop string


def test_generate_reports_length_and_stop(session):
    """Each stop reason where it is the only possible one."""
    short = session.generate(["Count: one, two, three, four,"], max_new_tokens=2)[0]
    assert short.stop_reason == "length" and short.n_tokens == 2
    stop = session.generate(["Count: one, two, three, four,"], max_new_tokens=16, stop=[","])[0]
    assert stop.stop_reason == "stop" and "," not in stop.text


def test_generate_is_seeded_and_temperature_samples(session):
    """Same seed, same text; and temperature really samples: other seeds give other texts,
    and not the greedy one each time (a product that ignored temperature would decode
    greedily, and every seed would give the greedy text)."""
    prompt = ["Once upon a time"]
    a = session.generate(prompt, max_new_tokens=12, temperature=0.9, seed=3)
    b = session.generate(prompt, max_new_tokens=12, temperature=0.9, seed=3)
    assert a[0].text == b[0].text
    greedy = session.generate(prompt, max_new_tokens=12)[0].text
    assert session.generate(prompt, max_new_tokens=12)[0].text == greedy
    sampled = {session.generate(prompt, max_new_tokens=12, temperature=0.9, seed=s)[0].text for s in (3, 4, 5)}
    assert len(sampled) > 1 and sampled != {greedy}, (sampled, greedy)


def test_chat_template_wraps_user_turn(session):
    text = session.apply_chat("Classify: hello")
    assert "Classify: hello" in text and text.index("Classify") > 0
    assert text.rstrip().endswith("assistant")


def test_missing_adapter_is_a_clear_error(session, tmp_path):
    with pytest.raises(ModelError, match="adapter_config.json is missing"):
        session.attach_adapter(str(tmp_path))


def test_batched_pair_encoding_equals_one_by_one(session):
    reqs = [(c, x) for c in CONTEXTS for x in CHOICES]
    reqs += [("", " hello"), ("<|im_start|>user\nhi<|im_end|>", " there"), ("Answer:  ", "no")]
    assert session.encode_pairs(reqs) == [session.encode_pair(c, x) for c, x in reqs]
