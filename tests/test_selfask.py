"""Self-Ask: parser, state machine on scripted model outputs, retriever splicing, guards,
extraction, compositionality gap, trace rendering; then the real model (stop strings split
across tokens, a few StrategyQA questions with and without a retriever)."""
from __future__ import annotations

import json
import re
import textwrap
from types import SimpleNamespace

import pandas as pd
import pytest

from support import require_data
from support.fakes import FakeSession

from workbench.errors import ConfigError, DataError
from workbench.core.retriever import (BM25Retriever, HookRetriever, answer_from_passage, as_retriever, facts_corpus,
                                 load_retriever, read_corpus)
from workbench.jobs.selfask import (END_REASONS, SelfAskConfig, compositionality_gap, dispatch_generation,
                               extract_cot_answer, final_answer_text, parse_selfask, run_selfask_records,
                               trace_metrics, trace_to_markdown)
from workbench.core.templates import PromptTemplate, load_template
from workbench.paths import library_dir

NEEDED = "Are follow up questions needed here:"
CORPUS = [
    "The Eiffel Tower is in Paris. The Eiffel Tower was completed in 1889 for the World's Fair.",
    "The Titanic was a British ocean liner. The Titanic was launched in 1911 in Belfast.",
    "Penguins are flightless birds that live mostly in the Southern Hemisphere.",
]


# ---------------------------------------------------------------------------- fakes
def ScriptedSession(fn) -> FakeSession:
    """The shared fake (tests/support/fakes.py) with `fn(prompt)` as the whole continuation it would
    write: generate() honours stop strings and max_new_tokens like ModelSession.generate (one "token" =
    one whitespace-led word), so the runner sees stop/length/eos as it would."""
    return FakeSession(generate_fn=fn)


def continuing(script: str):
    """A fake whose continuation of (question prompt + what it wrote so far) is the rest of
    `script`; each question's prompt is everything up to and including the NEEDED marker."""
    def fn(prompt: str) -> str:
        head, _, written = prompt.rpartition(NEEDED)
        assert script.startswith(written), (written, script)
        return script[len(written):]
    return fn


def template(**gen) -> PromptTemplate:
    t = load_template(str(library_dir() / "strategyqa_selfask.yaml"))
    for k, v in gen.items():
        setattr(t.generation, k, v)
    return t


ROWS = pd.DataFrame({"input": ["Is the Eiffel Tower older than the Titanic?"], "label": ["Yes"],
                     "target": ["Yes. 1889 is before 1911."]})


def run(fn, rows=ROWS, retriever=None, **cfg):
    t = template()
    prompts = [t.build_context(r) for _, r in rows.iterrows()]
    s = ScriptedSession(fn)
    recs = run_selfask_records(t, rows, prompts, s, None, retriever, selfask=SelfAskConfig(**cfg))
    return recs, s


# ---------------------------------------------------------------------------- parser
def test_parser_reads_case_and_spacing_variants():
    text = ("Are Follow-up questions needed here? Yes.\n"
            "FOLLOW UP : Who built it?\n"
            "intermediate Answer:Gustave Eiffel's company.\n"
            "Follow-up question: When?\n"
            "Intermediate answer:\n  In 1889.\n"
            "So, the final answer is Yes.\nextra")
    segs = parse_selfask(text)
    assert [s.kind for s in segs] == ["needed", "follow_up", "intermediate", "follow_up", "intermediate", "final"]
    assert [s.text for s in segs] == ["Yes.", "Who built it?", "Gustave Eiffel's company.", "When?", "In 1889.", "Yes."]
    assert text[segs[-1].start:segs[-1].end] == "So, the final answer is Yes."
    assert final_answer_text(text) == "Yes"
    # the example's question line is a "question" segment; "follow up question:" is not
    assert [s.kind for s in parse_selfask("Question: x\nFollow up question: y")] == ["question", "follow_up"]
    # preamble and an unfinished last line
    segs = parse_selfask(" Yes.\nFollow up: When was")
    assert segs[0].kind == "preamble" and segs[-1].closed is False
    assert final_answer_text("no marker here") == ""


# ---------------------------------------------------------------------------- state machine
def test_retriever_answers_are_spliced_and_traced():
    def model(prompt):
        tail = prompt.rpartition(NEEDED)[2]
        n = tail.count("Intermediate answer:")
        if n == 0:
            return " Yes.\nFollow up: When was the Eiffel Tower completed?\nIntermediate answer: 1950.\nSo the final answer is: No."
        if n == 1:
            return "Follow up: When was the Titanic launched?\nIntermediate answer: 1700.\n"
        return "So the final answer is: Yes.\n\nQuestion: next one"

    recs, s = run(model, retriever=CORPUS)
    r = recs[0]
    assert r["output"] == (" Yes.\nFollow up: When was the Eiffel Tower completed?\n"
                           "Intermediate answer: The Eiffel Tower was completed in 1889 for the World's Fair.\n"
                           "Follow up: When was the Titanic launched?\n"
                           "Intermediate answer: The Titanic was launched in 1911 in Belfast.\n"
                           "So the final answer is: Yes.")
    # the model's own (wrong) intermediate answers never made it in: it was stopped each time
    assert "1950" not in r["output"] and "1700" not in r["output"]
    # each continuation call saw the spliced answer at the end of its prompt
    assert s.prompts[1].endswith("Intermediate answer: The Eiffel Tower was completed in 1889 for the World's Fair.\n")
    assert r["end_reason"] == "final_answer" and r["pred"] == "Yes" and r["correct"] is True
    tr = r["trace"]
    assert [st["kind"] for st in tr["steps"]] == ["needed", "hop", "hop", "final"]
    h1, h2 = tr["steps"][1], tr["steps"][2]
    assert h1["follow_up"] == "When was the Eiffel Tower completed?" and h1["source"] == "retriever"
    assert h1["passages"][0]["text"] == CORPUS[0] and h1["passages"][0]["score"] > 0
    assert h2["answer"] == "The Titanic was launched in 1911 in Belfast."
    assert tr["hops"] == 2 and tr["retrieved"] == 2 and tr["final_answer"] == "Yes." and len(tr["calls"]) == 3
    json.dumps(recs)   # results.json-ready


def test_without_retriever_the_model_writes_its_own_answers():
    script = (" Yes.\nFollow up: When was the Eiffel Tower completed?\nIntermediate answer: 1950.\n"
              "So the final answer is: No.\n\nQuestion: another")
    recs, s = run(continuing(script))
    r = recs[0]
    assert len(s.prompts) == 1                       # one call: no stop at "Intermediate answer:"
    assert r["output"] == script.split("\n\n")[0]
    assert r["end_reason"] == "final_answer" and r["pred"] == "No" and r["correct"] is False
    hop = r["trace"]["steps"][1]
    assert hop["source"] == "model" and hop["answer"] == "1950." and hop["passages"] == []


def test_repeated_follow_up_ends_in_loop():
    def model(prompt):
        return " Yes.\nFollow up: Who is X?\n" if prompt.endswith(NEEDED) else "Follow up: who is x\n"

    recs, _ = run(model, retriever=CORPUS)
    r = recs[0]
    assert r["end_reason"] == "loop" and r["pred"] == "" and r["correct"] is False
    assert r["output"].count("Follow up") == 1 and r["output"].endswith("Intermediate answer: Unknown.\n")
    assert r["trace"]["failed_at"] == "Follow up: who is x" and "repeats hop 1" in r["trace"]["detail"]


def test_hop_limit():
    def model(prompt):
        n = prompt.rpartition(NEEDED)[2].count("Intermediate answer:")
        return (" Yes.\n" if n == 0 else "") + f"Follow up: Question number {n}?\n"

    recs, s = run(model, retriever=CORPUS, max_hops=2)
    r = recs[0]
    assert r["end_reason"] == "hop_limit" and r["trace"]["retrieved"] == 2 and len(s.prompts) == 3
    assert "Question number 2" not in r["output"] and "the limit is 2" in r["trace"]["detail"]


def test_token_budget_is_exact_and_split_into_calls():
    recs, s = run(lambda p: " Yes. " + "blah " * 100, token_budget=10, step_tokens=4)
    r = recs[0]
    assert r["end_reason"] == "token_budget" and s.max_tokens == [4, 4, 2]
    assert r["trace"]["generated_tokens"] == 10 and r["trace"]["budget"] == 10


def test_length_mid_final_answer_continues_instead_of_accepting_a_cut_answer():
    script = " No.\nSo the final answer is: Yes.\n\nQuestion: next"
    recs, s = run(continuing(script), step_tokens=6)
    assert len(s.prompts) == 2 and recs[0]["end_reason"] == "final_answer" and recs[0]["pred"] == "Yes"


@pytest.mark.parametrize("script,detail", [
    (" Yes.\nFollow up: A?\nIntermediate answer: B.\n\nQuestion: next", "stop string"),
    (" Yes.\nFollow up: A?\nIntermediate answer: B.", "end of text"),
    (" Yes.\nFollow up: A?\nIntermediate answer: B.\nquestion: next", "new question"),
])
def test_no_final_answer(script, detail):
    recs, _ = run(continuing(script))
    assert recs[0]["end_reason"] == "no_final_answer" and detail in recs[0]["trace"]["detail"]
    assert recs[0]["trace"]["final_answer"] is None


def test_batches_several_questions_and_records_every_end_reason_kind():
    rows = pd.DataFrame({"input": ["q one", "q two", "q three"], "label": ["Yes", "No", "No"],
                         "target": ["Yes.", "No.", "No."]})
    scripts = {"q one": " No.\nSo the final answer is: Yes.\n", "q two": " Yes.\nFollow up: Alpha?\n",
               "q three": " No.\nSo the final answer is: Yes.\n"}

    def model(prompt):
        q = re.findall(r"Question: (q \w+)\n", prompt)[-1]
        if prompt.endswith(NEEDED):
            return scripts[q]
        return "Follow up: Alpha?\n" if q == "q two" else ""

    recs, s = run(model, rows=rows, retriever=["Alpha is beta."])
    assert [r["end_reason"] for r in recs] == ["final_answer", "loop", "final_answer"]
    assert [r["correct"] for r in recs] == [True, False, False]
    assert all(r["end_reason"] in END_REASONS for r in recs)
    m = trace_metrics(recs)
    assert m["end_reasons"]["loop"] == 1 and m["final_answer_rate"] == pytest.approx(2 / 3)


def test_trace_markdown_shows_steps_and_failure():
    def model(prompt):
        return " Yes.\nFollow up: When was the Titanic launched?\n" if prompt.endswith(NEEDED) \
            else "Follow up: When was the Titanic launched?\n"

    recs, _ = run(model, retriever=CORPUS)
    md = trace_to_markdown(recs[0]["trace"])
    assert "**Question:** Is the Eiffel Tower older than the Titanic?" in md
    assert "**Follow up 1:** When was the Titanic launched?" in md
    assert "retrieved [" in md and "(retriever): The Titanic was launched in 1911 in Belfast." in md
    assert "FAILED: loop" in md and "**Stopped here at `Follow up: When was the Titanic launched?`.**" in md


# ---------------------------------------------------------------------------- dispatch / extraction
def test_dispatch_direct_and_cot_extraction():
    rows = pd.DataFrame({"input": ["Is ice cold?"], "label": ["Yes"], "target": ["Yes."]})
    direct = load_template(str(library_dir() / "strategyqa_direct.yaml"))
    cot = load_template(str(library_dir() / "strategyqa_cot.yaml"))
    s = ScriptedSession(lambda p: " yes, it is.\nQ: more" if p.endswith("A:")
                        else " Ice is frozen water. So the answer is: Yes.\n\nQ: more")
    for t, out in ((direct, " yes, it is."), (cot, " Ice is frozen water. So the answer is: Yes.")):
        recs = dispatch_generation(t, rows, [t.build_context(r) for _, r in rows.iterrows()], s, None)
        assert recs[0]["output"] == out and recs[0]["pred"].lower() == "yes" and recs[0]["correct"]
    assert extract_cot_answer("so the answer is: No.\nthen the answer is Yes.") == "Yes"
    assert extract_cot_answer("It is blue.\nBlue.") == "Blue."


def test_compositionality_gap_and_subquestions():
    recs = [{"correct": False, "sub_correct": [True, True]}, {"correct": True, "sub_correct": [True, True]},
            {"correct": False, "sub_correct": [True, False]}, {"correct": False}]
    assert compositionality_gap(recs) == {"gap": 0.5, "n_all_sub_correct": 2, "n_final_wrong": 1,
                                          "n_with_subquestions": 3}
    assert compositionality_gap([{"correct": True}])["gap"] is None

    rows = pd.DataFrame({"input": ["Who was president when the Eiffel Tower was completed?"], "label": ["x"],
                         "target": ["Sadi Carnot"],
                         "sub_questions": [["When was the Eiffel Tower completed?", "Who was president in 1889?"]],
                         "sub_answers": ['["1889", "Sadi Carnot"]']})
    t = template()
    t.generation.extract = None
    t.target = "{{ target }}"

    def model(prompt):
        if "When was the Eiffel" in prompt.rsplit("Question:", 1)[-1]:
            return " It was 1889.\n"
        if "president in 1889" in prompt.rsplit("Question:", 1)[-1]:
            return " Sadi Carnot\n"
        return " No.\nSo the final answer is: Jules Grevy.\n"

    recs = dispatch_generation(t, rows, [t.build_context(r) for _, r in rows.iterrows()], ScriptedSession(model), None)
    assert recs[0]["sub_correct"] == [True, True] and recs[0]["pred"] == "Jules Grevy" and not recs[0]["correct"]
    assert trace_metrics(recs)["compositionality_gap"] == 1.0
    bad = rows.assign(sub_answers=["1889"])
    with pytest.raises(ConfigError, match="2 sub-questions but 1 sub-answers"):
        dispatch_generation(t, bad, ["p"], ScriptedSession(model), None)


def test_dispatch_reads_a_corpus_spec_from_the_config(tmp_path):
    """What `workbench eval --retriever PATH` will do: a spec string on the config, loaded as BM25."""
    (tmp_path / "facts.jsonl").write_text("\n".join(json.dumps({"fact": c}) for c in CORPUS), encoding="utf-8")
    config = SimpleNamespace(retriever=f"{tmp_path / 'facts.jsonl'}:fact", max_hops=1, seed=0, max_new_tokens=None)

    def model(prompt):
        tail = prompt.rpartition(NEEDED)[2]
        return " Yes.\nFollow up: When was the Titanic launched?\n" if not tail else "So the final answer is: No.\n\n"

    t = template()
    recs = dispatch_generation(t, ROWS, [t.build_context(r) for _, r in ROWS.iterrows()], ScriptedSession(model), config)
    assert "Intermediate answer: The Titanic was launched in 1911 in Belfast.\n" in recs[0]["output"]
    assert recs[0]["trace"]["retriever"].startswith("BM25Retriever(") and recs[0]["end_reason"] == "final_answer"


# ---------------------------------------------------------------------------- retriever
def test_corpus_formats(tmp_path):
    (tmp_path / "lines.txt").write_text("alpha one\n\nbeta two\n", encoding="utf-8")
    assert read_corpus(tmp_path / "lines.txt") == ["alpha one", "beta two"]   # blank line -> paragraphs
    (tmp_path / "lines2.txt").write_text("alpha one\nbeta two\n", encoding="utf-8")
    assert read_corpus(tmp_path / "lines2.txt") == ["alpha one", "beta two"]
    (tmp_path / "paras.txt").write_text("a b\nc d\n\ne f\n", encoding="utf-8")
    assert read_corpus(tmp_path / "paras.txt") == ["a b c d", "e f"]
    (tmp_path / "c.jsonl").write_text('{"body": "x y"}\n{"body": "z"}\n', encoding="utf-8")
    assert read_corpus(tmp_path / "c.jsonl", "body") == ["x y", "z"]
    (tmp_path / "c.csv").write_text("id,passage\n1,hello there\n2,general kenobi\n", encoding="utf-8")
    r = load_retriever(f"{tmp_path / 'c.csv'}:passage")
    assert [p.text for p in r.search("kenobi", 2)] == ["general kenobi"]
    with pytest.raises(DataError, match=r"c.jsonl, line 1: no field 'text'"):
        read_corpus(tmp_path / "c.jsonl")
    with pytest.raises(DataError, match="has no column 'text'"):
        read_corpus(tmp_path / "c.csv")
    with pytest.raises(DataError, match="does not exist"):
        load_retriever(str(tmp_path / "missing.txt"))


def test_bm25_ranks_and_trims_answers():
    r = BM25Retriever(CORPUS)
    hits = r.search("When was the Titanic launched?", k=3)
    assert hits[0].id == 1 and hits[0].score > 0 and all(h.score > 0 for h in hits)
    assert r.search("the of and", k=3) == []        # stopwords only: nothing to match
    assert answer_from_passage("When was the Titanic launched?", CORPUS[1]) == "The Titanic was launched in 1911 in Belfast."
    long = "word " * 100
    assert len(answer_from_passage("word", long, max_chars=50)) <= 53
    with pytest.raises(DataError, match="has a word BM25 can index"):
        BM25Retriever(["a b", "the"])
    assert facts_corpus(["Yes. Fact one. Fact two.", "no: other", ""]) == ["Fact one. Fact two.", "other"]


def test_retriever_hooks(tmp_path, monkeypatch):
    fn = as_retriever(lambda q: [f"about {q}", ("scored", 2.0), {"text": "dict", "id": "d1"}, ""])
    assert isinstance(fn, HookRetriever)
    assert [(p.text, p.score) for p in fn.search("x", 5)] == [("about x", None), ("scored", 2.0), ("dict", None)]

    class Search:
        def search(self, question, k):
            return [question.upper()] * k

    assert [p.text for p in as_retriever(Search()).search("hi", 2)] == ["HI", "HI"]
    (tmp_path / "my_hook.py").write_text(textwrap.dedent("""
        def find(question):
            return ["hooked " + question]
        def make_searcher():
            return find
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_retriever("python:my_hook:find").search("q")[0].text == "hooked q"
    assert load_retriever("python:my_hook:make_searcher").search("q")[0].text == "hooked q"
    with pytest.raises(ConfigError, match="Could not load retriever hook"):
        load_retriever("python:my_hook:nope")
    with pytest.raises(ConfigError, match="Cannot use int"):
        as_retriever(3)
    bad = as_retriever(lambda q: [3])
    with pytest.raises(ConfigError, match="returned int item"):
        bad.search("q")


# ---------------------------------------------------------------------------- real model
def _strategyqa_rows(n=3):
    # The real questions: skipped where the data is absent (failed under WORKBENCH_REQUIRE_DATA),
    # never replaced by other rows.
    return require_data("strategyqa").df.iloc[:n].reset_index(drop=True)


@pytest.mark.model
def test_real_stop_string_split_across_tokens(session):
    stop = "Intermediate answer:"
    assert len(session.tokenizer.encode("\n" + stop, add_special_tokens=False)) >= 3   # really split
    prompt = "".join(f"Follow up: {i}\nIntermediate answer: {i}\n" for i in range(1, 6)) + "Follow up: 6"
    free = session.generate([prompt], max_new_tokens=12)[0]
    assert free.text.startswith("\nIntermediate answer:")    # what the model writes unstopped
    g = session.generate([prompt], max_new_tokens=30, stop=[stop])[0]
    assert g.stop_reason == "stop" and g.text == "\n" and stop not in g.text
    assert g.n_tokens <= 6            # stopped right after the split stop string, not at the limit


@pytest.mark.model
@pytest.mark.parametrize("with_retriever", [False, True])
def test_real_selfask_runs_produce_well_formed_traces(session, with_retriever):
    rows = _strategyqa_rows(3)
    t = load_template(str(library_dir() / "strategyqa_selfask.yaml"))
    prompts = [t.build_context(r) for _, r in rows.iterrows()]
    retr = BM25Retriever(facts_corpus(rows["target"])) if with_retriever else None
    recs = run_selfask_records(t, rows, prompts, session, None, retr,
                               selfask=SelfAskConfig(token_budget=64, max_hops=3))
    assert len(recs) == 3
    for r in recs:
        tr = r["trace"]
        assert r["end_reason"] == tr["end_reason"] and tr["end_reason"] in END_REASONS
        assert 0 < tr["generated_tokens"] <= 64 and tr["calls"]
        assert r["prompt"].endswith(NEEDED) and r["gold"] in ("Yes", "No")
        assert tr["hops"] <= 3 and tr["retrieved"] <= tr["hops"]
        if tr["end_reason"] == "final_answer":
            assert tr["steps"][-1]["kind"] == "final" and tr["final_answer"]
        else:
            assert tr["final_answer"] is None and tr["detail"]
        if not with_retriever:
            assert tr["retrieved"] == 0
            assert all(st.get("source") in (None, "model") for st in tr["steps"])
        for st in tr["steps"]:
            if st.get("source") == "retriever":   # a hit's best sentence, or the no-result text
                assert st["answer"] and (st["passages"] or st["answer"] == SelfAskConfig().no_result)
        assert trace_to_markdown(tr).count("**Ended:**") == 1
        json.dumps(r)
    if with_retriever:
        # every follow-up the model finished got a retrieved answer (splices show in the output)
        assert sum(r["trace"]["retrieved"] for r in recs) == sum(r["output"].count("Intermediate answer:") for r in recs)
