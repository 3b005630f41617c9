"""Unit tests for workbench.core.templates: rendering, sandbox, validation, hashing, YAML, interop."""
from __future__ import annotations

import json

import pytest
import yaml

from workbench.errors import TemplateError
from workbench.core.templates import (FewShotConfig, GenerationConfig, Problem, PromptTemplate,
                                 load_template, load_templates, render_string, to_lm_eval_yaml,
                                 to_promptsource_yaml)
from workbench.storage.library import list_library

ROWS = [
    {"title": "Shares rally as rates fall", "label": "business"},
    {"title": "Band tops the charts", "label": "entertainment"},
    {"title": "New phone unveiled", "label": "tech"},
]


def bbc(**kw) -> PromptTemplate:
    base = dict(name="t", input="Headline: {{ title }}\nTopic:",
                answer_choices={"business": ["business", "finance"], "entertainment": ["entertainment"], "tech": ["tech"]})
    base.update(kw)
    return PromptTemplate(**base)


# ---- rendering --------------------------------------------------------------------------------
def test_render_and_gold():
    t = bbc()
    assert t.render_input(ROWS[0]) == "Headline: Shares rally as rates fall\nTopic:"
    assert t.gold(ROWS[0]) == "business"
    assert t.choices_for(ROWS[0]) == [("business", ["business", "finance"]), ("entertainment", ["entertainment"]), ("tech", ["tech"])]
    assert t.render_demo(ROWS[0]) == "Headline: Shares rally as rates fall\nTopic: business"
    assert t.gold({"title": "x", "label": 3}) == "3"  # labels are strings everywhere


def test_build_context_zero_and_few_shot_layout():
    t = bbc(instruction="Pick the topic.")
    assert t.build_context(ROWS[2]) == "Pick the topic.\n\nHeadline: New phone unveiled\nTopic:"
    ctx = t.build_context(ROWS[2], ROWS[:2])
    assert ctx == ("Pick the topic.\n\n"
                   "Headline: Shares rally as rates fall\nTopic: business\n\n"
                   "Headline: Band tops the charts\nTopic: entertainment\n\n"
                   "Headline: New phone unveiled\nTopic:")
    t2 = bbc(instruction="Pick:", instruction_delimiter=" ", target_delimiter="\t", fewshot_delimiter="\n###\n")
    assert t2.build_context(ROWS[2], ROWS[:1]) == ("Pick: Headline: Shares rally as rates fall\nTopic:\tbusiness\n###\n"
                                                  "Headline: New phone unveiled\nTopic:")


def test_demo_format_and_instruction_is_jinja():
    t = bbc(demo_format="{{ title }} => {{ answer }}", instruction="Rows like: {{ title[:3] }}")
    assert t.build_context(ROWS[2], ROWS[:1]) == "Rows like: New\n\nShares rally as rates fall => business\n\nHeadline: New phone unveiled\nTopic:"


def test_choices_expr_per_row_and_index_gold():
    t = PromptTemplate(name="mc", input="Q: {{ q }}\nA:", choices_expr="options", target="{{ answer_idx }}")
    row = {"q": "2+2?", "options": ["3", "four", "5"], "answer_idx": 1}
    assert t.choices_for(row) == [("3", ["3"]), ("four", ["four"]), ("5", ["5"])]
    assert t.gold(row) == "four"
    assert t.render_demo(row) == "Q: 2+2?\nA: four"
    # lm-eval style: a template printing a list literal, and text golds.
    t2 = PromptTemplate(name="mc2", input="{{ q }}", choices_expr="{{ [a, b] }}", target="{{ b }}")
    assert t2.choices_for({"q": "", "a": "x", "b": "y"}) == [("x", ["x"]), ("y", ["y"])]
    assert t2.gold({"q": "", "a": "x", "b": "y"}) == "y"
    with pytest.raises(TemplateError, match="out of range"):
        t.gold({**row, "answer_idx": 7})


def test_generation_template():
    t = PromptTemplate(name="g", task="generation", input="Q: {{ q }}\nA:", target="{{ a }}",
                       generation=GenerationConfig(max_new_tokens=8, stop=["\n"]))
    assert t.gold({"q": "x", "a": "Yes. Because."}) == "Yes. Because."
    assert t.build_context({"q": "y", "a": "?"}, [{"q": "x", "a": "No."}]) == "Q: x\nA: No.\n\nQ: y\nA:"


def test_strict_undefined_names_variable_and_suggests():
    with pytest.raises(TemplateError) as e:
        bbc().render_input({"titel": "x"})
    assert "'title' is undefined" in e.value.message and "titel" in e.value.hint
    with pytest.raises(TemplateError, match="undefined"):
        render_string("{{ missing }}", {})
    assert render_string("{{ a | upper }}-{{ b | regex_replace('[0-9]', '#') }}", {"a": "x", "b": "a1b2"}) == "X-a#b#"


def test_unknown_label_in_demo_is_actionable():
    with pytest.raises(TemplateError, match="'politics' has no verbalizer"):
        bbc().render_demo({"title": "x", "label": "politics"})


@pytest.mark.parametrize("src", [
    "{{ ''.__class__.__mro__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ joiner.__init__.__globals__['os'] }}",   # lipsum, the old payload, is no longer a global (issue 29)
    "{{ row.__class__ }}",
    "{% set x = ''.__class__ %}{{ x }}",
])
def test_sandbox_blocks_escapes(src):
    with pytest.raises(TemplateError) as e:
        render_string(src, {"row": {"a": 1}})
    assert "sandbox" in e.value.message or "unsafe" in e.value.message
    t = bbc(input=src)
    with pytest.raises(TemplateError):
        t.render_input({"row": {}})


# ---- validation -------------------------------------------------------------------------------
def fake_tokenizer(text, add_special_tokens=False):
    """Splits on spaces, keeping each leading space with its word (like a BPE on common words),
    and splits words longer than 8 characters in two."""
    import re

    ids = []
    for piece in re.findall(r" ?[^ ]+", text):
        ids += [hash(piece[:4])] if len(piece.strip()) <= 8 else [hash(piece[:4]), hash(piece[4:])]
    return {"input_ids": ids}


def test_validate_reports_every_problem_at_once():
    t = PromptTemplate(
        name="bad",
        input="Headline: {{ titel }}\nBody: {{ text }} {{ title }",
        target="{{ label }",
        answer_choices={"business": ["money", "finance"], "tech": ["money"], "sports": ["sport", "sport"]},
        demo_format="{% if %}",
        instruction="{{ a b }}",
        choice_aggregate="median",
    )
    probs = t.validate(columns=["title", "text", "label"], labels=["business", "tech", "politics"])
    assert all(isinstance(p, Problem) for p in probs)
    by = {(p.field, p.severity): p for p in probs}
    assert by[("input", "error")].line == 2 and by[("input", "error")].column == 27
    assert {p.field for p in probs if "syntax" in p.message} == {"input", "target", "demo_format", "instruction"}
    assert by[("target", "error")].line == 1
    assert any(p.field == "choice_aggregate" for p in probs)
    assert any("'money' is used by both 'business' and 'tech'" in p.message and p.severity == "error" for p in probs)
    assert any("twice" in p.message and p.severity == "warning" for p in probs)


def test_validate_unknown_variable_with_suggestion_and_position():
    t = bbc(input="News\nHeadline: {{ titel }}\nTopic:")
    (p,) = t.validate(columns=["title", "text", "label"], labels=["business", "tech"])
    assert p.severity == "error" and p.field == "input"
    assert "'titel'" in p.message and "title, text, label" in p.message and "did you mean 'title'" in p.message
    assert (p.line, p.column) == (2, 14)


def test_validate_missing_labels_empty_input_and_target_column():
    t = bbc(input="   ", label_column="topic")
    probs = t.validate(columns=["title", "label"], labels=["business", "tech", "politics", "sports"])
    msgs = [str(p) for p in probs]
    assert any("input is empty" in m for m in msgs)
    assert any("without a verbalizer: politics, sports" in m for m in msgs)
    assert any("'topic' is not a column" in m and "target" in m for m in msgs)


def test_validate_no_answer_choices_and_generation_without_target():
    assert any(p.field == "answer_choices" and p.severity == "error" for p in PromptTemplate(name="x", input="{{ a }}").validate())
    assert any(p.field == "target" for p in PromptTemplate(name="x", input="{{ a }}", task="generation").validate())
    g = PromptTemplate(name="x", input="{{ a }}", task="generation", target="{{ b }}", generation=GenerationConfig(extract="(a)(b)"))
    assert [p.field for p in g.validate(columns=["a", "b"])] == ["generation.extract"]


def test_validate_tokenizer_warnings():
    t = bbc(answer_choices={"business": ["business"], "entertainment": ["entertainment"], "tech": ["busy"]})
    probs = t.validate(tokenizer=fake_tokenizer)
    multi = [p for p in probs if "tokens" in p.message and "entertainment" in p.message]
    assert multi and multi[0].severity == "warning" and "2 tokens" in multi[0].message
    same = [p for p in probs if "same token" in p.message]
    assert same and "'business'" in same[0].message and "'busy'" in same[0].message
    assert all(p.severity == "warning" for p in probs)


def test_validate_sample_row_render_error():
    t = bbc(input="{{ title | round }}")
    probs = t.validate(columns=["title", "label"], sample_row={"title": "text not a number", "label": "business"})
    assert [p.field for p in probs] == ["input"] and "sample row" in probs[0].message
    probs = bbc().validate(sample_row={"title": "x", "label": "sports"})
    assert any(p.field == "answer_choices" and "'sports' has no verbalizer" in p.message for p in probs)
    assert bbc().validate(columns=["title", "label"], labels=["business", "tech", "entertainment"], sample_row=ROWS[0]) == []


def test_unknown_filter_is_a_syntax_problem_and_variables():
    t = bbc(input="{{ title | shout }} {{ text }}", demo_format="{{ title }} {{ answer }}")
    (p,) = [p for p in t.validate(columns=["title", "text", "label"]) if p.severity == "error"]
    assert "shout" in p.message and p.field == "input"
    assert t.variables() == {"title", "text", "label"}
    assert PromptTemplate(name="x", input="{% for w in words %}{{ w }}{% endfor %}{{ range(2)|list }}",
                          choices_expr="opts", target="{{ gold }}").variables() == {"words", "opts", "gold"}


# ---- hashing and YAML -------------------------------------------------------------------------
def test_content_hash_stability():
    t = bbc()
    h = t.content_hash()
    assert len(h) == 64 and h == bbc().content_hash()
    assert bbc(name="other", description="d", metadata={"a": 1}, dataset="bbc").content_hash() == h
    assert bbc(target_delimiter="").content_hash() != h
    assert bbc(fewshot=FewShotConfig(k=2)).content_hash() != h
    assert bbc(answer_choices={"business": ["finance", "business"], "entertainment": ["entertainment"], "tech": ["tech"]}).content_hash() != h
    # Explicitly writing a default value does not change the hash.
    assert PromptTemplate.from_yaml(t.to_yaml() + "label_column: label\n").content_hash() == h


def test_yaml_round_trip_and_atomic_save(tmp_path):
    t = bbc(instruction="Go.\n", fewshot=FewShotConfig(k=3, per_class=True, sampling="per_example", seed=4),
            generation=GenerationConfig(stop=["\n", "###"]), metadata={"source": "me"}, chat=True,
            target_delimiter="", fewshot_delimiter="\n---\n", input="Line one  \n{{ title }}\n")
    text = t.to_yaml()
    assert PromptTemplate.from_yaml(text) == t
    assert PromptTemplate.from_dict(json.loads(json.dumps(t.to_dict()))) == t
    p = t.save(tmp_path / "sub" / "t.yaml")
    assert load_template(p) == t and load_template(str(p)) == t
    assert [x.name for x in tmp_path.joinpath("sub").iterdir()] == ["t.yaml"]


def test_yaml_keys_become_label_strings_and_bad_fields_are_named():
    t = PromptTemplate.from_yaml("name: x\ninput: '{{ a }}'\nanswer_choices:\n  0: [no, off]\n  1: [yes, true]\n")
    assert t.answer_choices == {"0": ["no", "off"], "1": ["yes", "true"]}
    with pytest.raises(TemplateError, match="'answer_choice'.*did you mean 'answer_choices'"):
        PromptTemplate.from_yaml("name: x\ninput: a\nanswer_choice: {}\n")
    with pytest.raises(TemplateError, match="missing required field 'input'"):
        PromptTemplate.from_yaml("name: x\n")
    with pytest.raises(TemplateError, match="line 2, column 9"):
        PromptTemplate.from_yaml("name: x\ninput: a: b\n")
    with pytest.raises(TemplateError, match="not found"):
        load_template("/nonexistent/t.yaml")


# ---- lm-eval ----------------------------------------------------------------------------------
LM_EVAL_YAML = """\
task: bbc_topic
dataset_path: json
output_type: multiple_choice
description: "Classify the news headline.\\n"
doc_to_text: "Headline: {{title}}\\nTopic:"
doc_to_choice: ["business", "entertainment", "tech"]
doc_to_target: label
target_delimiter: " "
fewshot_delimiter: "\\n\\n"
num_fewshot: 2
"""


def test_lm_eval_import_maps_fields():
    t = load_template(LM_EVAL_YAML)
    assert (t.name, t.task, t.fewshot.k, t.label_column) == ("bbc_topic", "classification", 2, "label")
    assert t.answer_choices == {"business": ["business"], "entertainment": ["entertainment"], "tech": ["tech"]}
    # lm-eval's description is glued to the first demo verbatim; we keep that exactly.
    assert (t.instruction, t.instruction_delimiter) == ("Classify the news headline.\n", "")
    # Integer and text label columns both map to the choice text (lm-eval's gold rule).
    assert t.gold({"title": "x", "label": 2}) == "tech" and t.gold({"title": "x", "label": "entertainment"}) == "entertainment"
    assert t.validate(columns=["title", "label"], labels=[0, 1, 2]) == []
    assert "without a verbalizer: 3'" in str(t.validate(columns=["title", "label"], labels=[0, 3]))
    ctx = t.build_context({"title": "C", "label": 2}, [{"title": "A", "label": 0}, {"title": "B", "label": "tech"}])
    assert ctx == "Classify the news headline.\nHeadline: A\nTopic: business\n\nHeadline: B\nTopic: tech\n\nHeadline: C\nTopic:"


def test_lm_eval_generation_and_per_row_choices_import():
    g = load_template("task: g\noutput_type: generate_until\ndoc_to_text: 'Q: {{q}}\\nA:'\ndoc_to_target: answer\n"
                      "description: \"Be brief.\\n\\n\"\ngeneration_kwargs:\n  until: [\"\\n\", Q]\n  max_gen_toks: 20\n")
    assert (g.task, g.target, g.generation.stop, g.generation.max_new_tokens) == ("generation", "{{ answer }}", ["\n", "Q"], 20)
    assert (g.instruction, g.instruction_delimiter) == ("Be brief.", None)
    m = load_template("task: m\noutput_type: multiple_choice\ndoc_to_text: q\ndoc_to_choice: '{{[a, b]}}'\ndoc_to_target: 1\n")
    assert m.input == "{{ q }}" and m.gold({"q": "", "a": "x", "b": "y"}) == "y"
    m2 = load_template("task: m\noutput_type: multiple_choice\ndoc_to_text: q\ndoc_to_choice: choices\ndoc_to_target: gold\n")
    assert m2.choices_for({"choices": ["p", "q"]}) == [("p", ["p"]), ("q", ["q"])] and m2.gold({"choices": ["p", "q"], "gold": 0}) == "p"


def test_lm_eval_function_tag_rejected():
    text = "task: x\noutput_type: multiple_choice\ndoc_to_text: !function utils.doc_to_text\ndoc_to_choice: [a]\ndoc_to_target: 0\n"
    with pytest.raises(TemplateError) as e:
        load_template(text)
    assert "!function utils.doc_to_text" in e.value.message and "line 3" in e.value.message
    # Python object tags are refused by the safe loader too.
    with pytest.raises(TemplateError):
        load_template("name: x\ninput: !!python/object/apply:os.system ['true']\n")


def test_lm_eval_include_is_resolved(tmp_path):
    (tmp_path / "_base.yaml").write_text("output_type: multiple_choice\ndoc_to_choice: ['no', 'yes']\ndoc_to_target: label\n")
    (tmp_path / "task.yaml").write_text("include: _base.yaml\ntask: inc\ndoc_to_text: '{{ s }}?'\n")
    t = load_template(tmp_path / "task.yaml")
    assert t.name == "inc" and list(t.answer_choices) == ["no", "yes"] and t.gold({"s": "", "label": 1}) == "yes"


def _lm_eval_task(config: dict, rows: list[dict], tmp_path):
    pytest.importorskip("lm_eval")
    from lm_eval.api.task import ConfigurableTask

    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    demos = tmp_path / "demos.jsonl"
    demos.write_text("".join(json.dumps(r) + "\n" for r in rows[:2]))
    cfg = dict(config)
    cfg["dataset_path"] = "json"
    cfg["dataset_kwargs"] = {"data_files": {"test": str(data), "train": str(demos)}, "cache_dir": str(tmp_path / "cache")}
    cfg["test_split"], cfg["fewshot_split"] = "test", "train"
    cfg["fewshot_config"] = {"sampler": "first_n"}
    return ConfigurableTask(config=cfg)


def _check_against_lm_eval(t: PromptTemplate, task, rows: list[dict]):
    docs = list(task.test_docs())
    for doc, row in zip(docs, rows):
        for k in (0, 2):
            ours = t.build_context(row, rows[:2] if k else ())
            theirs = task.fewshot_context(doc, k)
            assert ours == theirs, (k, ours, theirs)
        if t.task == "classification":
            conts = [t.target_delimiter + ws[0] for _, ws in t.choices_for(row)]
            reqs = task.construct_requests(doc, "CTX", metadata=("t", 0, 0))
            assert [r.arguments[1] for r in reqs] == conts
            gold = task.doc_to_target(doc)
            choices = task.doc_to_choice(doc)
            gold_i = gold if isinstance(gold, int) else choices.index(gold)
            assert [lbl for lbl, _ in t.choices_for(row)][gold_i] == t.gold(row)


def test_build_context_equals_lm_eval_for_imported_task(tmp_path):
    rows = [{"title": "A rally", "label": 0}, {"title": "A film", "label": 1}, {"title": "A phone", "label": 2}]
    t = load_template(LM_EVAL_YAML)
    config = yaml.safe_load(LM_EVAL_YAML)
    _check_against_lm_eval(t, _lm_eval_task(config, rows, tmp_path), rows)


def test_export_to_lm_eval_builds_identical_prompts(tmp_path):
    t = bbc(instruction="Topic of {{ title[:1] }}:", target_delimiter=" ", fewshot_delimiter="\n##\n", fewshot=FewShotConfig(k=2))
    out = to_lm_eval_yaml(t, dataset_path="json", data_files={"test": "x.jsonl"}, fewshot_split="train")
    assert out.startswith("# Exported") and "first verbalizer" in out
    config = yaml.safe_load(out)
    assert config["num_fewshot"] == 2 and config["doc_to_choice"] == ["business", "entertainment", "tech"]
    _check_against_lm_eval(t, _lm_eval_task(config, ROWS, tmp_path), ROWS)
    # And it reads back into an equivalent template.
    back = load_template(out)
    assert back.build_context(ROWS[2], ROWS[:2]) == t.build_context(ROWS[2], ROWS[:2])
    assert [back.gold(r) for r in ROWS] == [t.answer_choices[t.gold(r)][0] for r in ROWS]


def test_export_per_row_choices_to_lm_eval(tmp_path):
    t = PromptTemplate(name="mc", input="Q: {{ q }}\nA:", choices_expr="[a, b]", target="{{ g }}")
    rows = [{"q": "1?", "a": "one", "b": "two", "g": 0}, {"q": "2?", "a": "uno", "b": "dos", "g": 1}, {"q": "3?", "a": "x", "b": "y", "g": "y"}]
    config = yaml.safe_load(to_lm_eval_yaml(t))
    _check_against_lm_eval(t, _lm_eval_task(config, rows, tmp_path), rows)


# ---- PromptSource -----------------------------------------------------------------------------
PS_YAML = """\
dataset: ag_news
templates:
  0a1b: !Template
    answer_choices: World politics ||| Sports ||| Business ||| Science and technology
    id: 0a1b
    jinja: "What label best describes this news article?\\n{{text}} ||| {{answer_choices[label]}}"
    metadata: !TemplateMetadata
      choices_in_prompt: false
      languages: [en]
      metrics: [Accuracy]
      original_task: true
    name: classify_question_first
    reference: ''
  2c3d: !Template
    answer_choices: null
    id: 2c3d
    jinja: "Write a title for: {{text}} |||\\n{{title}}"
    metadata: !TemplateMetadata
      original_task: false
    name: write_title
    reference: 'generation'
  4e5f: !Template
    answer_choices: '{{ option1 }} ||| {{ option2 }} (alt)'
    id: 4e5f
    jinja: "{{ sentence }} ||| {{ answer_choices[answer] }}"
    metadata: !TemplateMetadata {}
    name: per_row
    reference: ''
"""


def test_promptsource_import(tmp_path):
    ts = load_templates(PS_YAML)
    assert [t.name for t in ts] == ["classify_question_first", "write_title", "per_row"]
    c, g, p = ts
    assert c.answer_choices == {"0": ["World politics"], "1": ["Sports"], "2": ["Business"], "3": ["Science and technology"]}
    assert c.label_column == "label" and c.input == "What label best describes this news article?\n{{text}}"
    assert c.gold({"text": "t", "label": 2}) == "2" and c.render_demo({"text": "t", "label": 1}).endswith("t Sports")
    assert c.metadata["hf_dataset"] == "ag_news"
    assert (g.task, g.target) == ("generation", "{{title}}")
    row = {"sentence": "s", "option1": "cat", "option2": "dog", "answer": 1}
    assert p.choices_for(row) == [("cat", ["cat"]), ("dog (alt)", ["dog (alt)"])] and p.gold(row) == "dog (alt)"
    f = tmp_path / "templates.yaml"
    f.write_text(PS_YAML)
    assert load_template(f, name="write_title") == g
    with pytest.raises(TemplateError, match="holds 3 templates"):
        load_template(f)
    with pytest.raises(TemplateError, match="available: classify_question_first"):
        load_template(f, name="nope")


def test_promptsource_export_round_trip():
    t = bbc(description="desc")
    out = to_promptsource_yaml(t, dataset="bbc")
    assert "!Template" in out and "!TemplateMetadata" in out
    back = load_template(out)
    rows = ROWS
    assert [back.render_input(r) for r in rows] == [t.render_input(r) for r in rows]
    assert [back.gold(r) for r in rows] == [t.answer_choices[t.gold(r)][0] for r in rows]
    # PromptSource-style tag parsing (a loader mapping the tags to dicts) reads it too.
    class L(yaml.SafeLoader):
        pass
    L.add_constructor("!Template", lambda l, n: l.construct_mapping(n, deep=True))
    L.add_constructor("!TemplateMetadata", lambda l, n: l.construct_mapping(n, deep=True))
    (entry,) = yaml.load(out, Loader=L)["templates"].values()
    assert entry["jinja"].split("|||")[0].strip() == t.input.strip()
    # Integer-labelled templates export the plain PromptSource gold expression.
    ps = load_templates(PS_YAML)[0]
    assert "{{ answer_choices[label] }}" in to_promptsource_yaml(ps)


# ---- library listing --------------------------------------------------------------------------
def test_list_library_user_dir_and_broken_file(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    user = tmp_path / "home" / "templates"
    user.mkdir(parents=True)
    bbc(name="mine", dataset="bbc").save(user / "mine.yaml")
    (user / "broken.yaml").write_text("name: b\ninput: [\n")
    entries = list_library()
    mine = [e for e in entries if e["name"] == "mine"]
    assert mine and mine[0]["source"] == "user" and mine[0]["dataset"] == "bbc" and mine[0]["task"] == "classification"
    broken = [e for e in entries if e["name"] == "broken"]
    assert broken and "invalid YAML" in broken[0]["error"]
    assert any(e["source"] == "library" for e in entries)
    assert [e["name"] for e in list_library(dirs=[user])] == ["broken", "mine"]
