"""Generation on top of a shared prompt prefix (engine/prefix_generate.py) gives the same text
as generating from each full, left-padded prompt: plain, across calls (Self-Ask rounds), with
an adapter attached; and the prefix really is read once."""
from __future__ import annotations

import pytest
from support import require_data

from workbench.engine import prefix_generate as pg
from workbench.jobs.selfask import SelfAskConfig, run_selfask_records
from workbench.core.templates import load_template
from workbench.paths import library_dir

DEMO = ("Answer each question with a short fact.\n\nQuestion: What is the capital of France?\nAnswer: Paris\n\n"
        "Question: Who wrote Hamlet?\nAnswer: William Shakespeare\n\n")
QUESTIONS = ["What is the capital of Italy?", "Who painted the Mona Lisa?", "What is 2+2?",
             "Which planet is the largest?"]
# Four prompts in batches of two: still two batches per call (the prefix kept across batches and
# calls is what is checked), with about half the generated tokens of six prompts in batches of four.
PROMPTS = [DEMO + f"Question: {q}\nAnswer:" for q in QUESTIONS]
BATCH = 2


def test_common_prefix_leaves_every_row_a_token():
    assert pg.common_prefix_len([[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 9]]) == 2
    assert pg.common_prefix_len([[1, 2, 3], [1, 2, 3]]) == 2       # identical: the last token stays
    assert pg.common_prefix_len([[1, 2], [3]]) == 0
    assert pg.common_prefix_len([[5, 6, 7]]) == 2
    assert pg.common_prefix_len([]) == 0


def test_batch_inputs_put_pads_between_prefix_and_suffix():
    ids, mask = pg.batch_inputs([[1, 2, 3, 4, 5], [1, 2, 3, 9]], 3, pad_id=0)
    assert ids.tolist() == [[1, 2, 3, 4, 5], [1, 2, 3, 0, 9]]
    assert mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 1]]


@pytest.mark.model
def test_prefix_generation_equals_full_prompts(session):
    plain = session.generate(PROMPTS, max_new_tokens=8, stop=["\n"], batch_size=BATCH, prefix_reuse=False)
    session._gen_prefix.clear()
    before = dict(session.stats)
    first = session.generate(PROMPTS, max_new_tokens=8, stop=["\n"], batch_size=BATCH)
    again = session.generate(PROMPTS[:3], max_new_tokens=8, stop=["\n"], batch_size=BATCH)
    assert [g.text for g in first] == [g.text for g in plain]
    assert [g.text for g in again] == [g.text for g in plain[:3]]
    assert [g.stop_reason for g in first] == [g.stop_reason for g in plain]
    P = pg.common_prefix_len([session.encode(p) for p in PROMPTS])
    assert P >= pg.MIN_PREFIX
    # the prefix ran once for both calls (two batches, then one more from the kept cache)
    assert session.stats.get("gen_prefix_tokens", 0) - before.get("gen_prefix_tokens", 0) == P
    assert session.stats["gen_prefix_saved"] - before.get("gen_prefix_saved", 0) == P * (len(PROMPTS) + 3)
    assert any(g.text.strip() for g in first)


@pytest.mark.model
def test_prefix_generation_with_an_adapter(session, tmp_path):
    from adapters import write_random_lora

    write_random_lora(session.resolved.path, tmp_path / "adapter", scale=0.2)
    without = session.generate(PROMPTS, max_new_tokens=6, stop=["\n"], batch_size=BATCH)   # fills the cache, base weights
    session.attach_adapter(str(tmp_path / "adapter"))
    try:
        assert not session._gen_prefix.layers                            # attaching dropped it
        plain = session.generate(PROMPTS, max_new_tokens=6, stop=["\n"], batch_size=BATCH, prefix_reuse=False)
        cached = session.generate(PROMPTS, max_new_tokens=6, stop=["\n"], batch_size=BATCH)
    finally:
        session.detach_adapter()
    assert [x.text for x in cached] == [x.text for x in plain]
    assert [x.text for x in plain] != [x.text for x in without]             # the adapter took part


@pytest.mark.model
def test_selfask_rounds_reuse_the_demonstrations(session):

    rows = require_data("strategyqa").df.iloc[:2].reset_index(drop=True)
    t = load_template(str(library_dir() / "strategyqa_selfask.yaml"))
    prompts = [t.build_context(r) for _, r in rows.iterrows()]
    session._gen_prefix.clear()
    before = dict(session.stats)
    recs = run_selfask_records(t, rows, prompts, session, None, None, selfask=SelfAskConfig(token_budget=32, max_hops=2, step_tokens=8))
    assert len(recs) == 2
    computed = session.stats.get("gen_prefix_tokens", 0) - before.get("gen_prefix_tokens", 0)
    saved = session.stats.get("gen_prefix_saved", 0) - before.get("gen_prefix_saved", 0)
    # the demonstrations ran once, and every later row and round read them from the cache
    assert computed > 100 and saved >= 3 * computed
