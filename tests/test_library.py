"""Every template in templates_library/ loads, validates against its dataset, round-trips,
and renders on real rows when the data layer can provide them."""
from __future__ import annotations

from pathlib import Path

import pytest
from support import require_data

from workbench.paths import library_dir
from workbench.core.templates import PromptTemplate, load_templates
from workbench.storage.library import list_library

# Hard-coded so this test does not depend on the data layer being finished.
DATASETS = {
    "bbc": (["title", "text", "label"], ["business", "entertainment", "politics", "sports", "tech"]),
    "intent": (["input", "label"], ["add_to_playlist", "book_restaurant", "get_weather", "play_music",
                                    "search_screening_event", "search_creative_work", "rate_book"]),
    "strategyqa": (["input", "label", "target"], ["Yes", "No"]),
    "support": (["id", "question", "reference"], None),   # generation: tests/data/support_questions.jsonl
}
SAMPLE = {
    "bbc": {"title": "Ad sales boost Time Warner profit", "label": "business",
            "text": "Quarterly profits at US media giant TimeWarner jumped 76%. The firm said..."},
    "intent": {"input": "Utterance: Add this tune to my road trip playlist", "label": "add_to_playlist"},
    "strategyqa": {"input": "Could a llama birth twice during the War in Vietnam?", "label": "No",
                   "target": "No. The Vietnam War lasted about 20 years and a llama gestation is 11 months."},
    "support": {"id": "q00", "question": "How do I cancel my subscription?",
                "reference": "Go to Account > Subscription > Cancel plan."},
}

FILES = sorted(library_dir().glob("*.yaml"))
TEMPLATES = [(p, t) for p in FILES for t in load_templates(p)]


def test_library_is_populated():
    per_ds: dict[str, int] = {}
    for _, t in TEMPLATES:
        per_ds[t.dataset] = per_ds.get(t.dataset, 0) + 1
    assert set(per_ds) == set(DATASETS)
    assert all(n >= 3 for n in per_ds.values()), per_ds
    assert (library_dir() / "bbc_headline_topic.yaml").is_file()
    kinds = {(t.dataset, t.task) for _, t in TEMPLATES}
    assert ("strategyqa", "generation") in kinds
    assert any(t.chat for _, t in TEMPLATES if t.dataset == "bbc")


def test_names_unique_and_match_files():
    names = [t.name for _, t in TEMPLATES]
    assert len(names) == len(set(names))
    for p, t in TEMPLATES:
        assert p.stem == t.name, f"{p.name} holds template {t.name!r}"


@pytest.mark.parametrize("path,t", TEMPLATES, ids=[t.name for _, t in TEMPLATES])
def test_template_validates_renders_and_round_trips(path: Path, t: PromptTemplate):
    assert t.description and t.dataset in DATASETS
    columns, labels = DATASETS[t.dataset]
    row = SAMPLE[t.dataset]
    problems = t.validate(columns=columns, labels=labels if t.task == "classification" else None, sample_row=row)
    errors = [p for p in problems if p.severity == "error"]
    assert not errors, "\n".join(map(str, errors))
    ctx = t.build_context(row, demos=[row])
    assert t.render_input(row) in ctx and ctx.endswith(t.render_input(row))
    back = PromptTemplate.from_yaml(t.to_yaml())
    assert back == t and back.content_hash() == t.content_hash()


def test_list_library(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    listed = list_library()
    assert {e["name"] for e in listed} == {t.name for _, t in TEMPLATES}
    assert all(e["source"] == "library" and "error" not in e for e in listed)


@pytest.mark.model
def test_headline_topic_verbalizers_are_single_tokens():
    """With the default model's real tokenizer (SmolLM2, converted once per machine). It used to
    read a hard-coded /tmp folder that no setup creates, so it always skipped."""
    from transformers import AutoTokenizer

    from workbench.engine.models import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model("default").path)
    t = next(t for _, t in TEMPLATES if t.name == "bbc_headline_topic")
    assert [p for p in t.validate(tokenizer=tok) if p.field == "answer_choices"] == []
    # The multi-word intent template must draw the multi-token warning.
    t2 = next(t for _, t in TEMPLATES if t.name == "intent_user_wants")
    assert any("tokens" in p.message for p in t2.validate(tokenizer=tok))


# Library datasets that ship with the tests rather than as built-in data.
LOCAL = {"support": Path(__file__).resolve().parent / "data" / "support_questions.jsonl"}


def _real_rows(name: str):
    # Loaded for real: a missing dataset skips (fails under WORKBENCH_REQUIRE_DATA), a broken
    # loader fails the test.
    if name in LOCAL:
        from workbench.storage.data_load import load_dataset

        return load_dataset(str(LOCAL[name])).df.head(5).to_dict("records")
    return require_data(name).df.head(5).to_dict("records")


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_renders_on_real_rows(dataset):
    rows = _real_rows(dataset)
    for _, t in TEMPLATES:
        if t.dataset != dataset:
            continue
        for row in rows:
            assert t.render_input(row).strip()
            g = t.gold(row)
            if t.task == "classification":
                assert g in t.answer_choices
        assert t.build_context(rows[-1], demos=rows[:2])
