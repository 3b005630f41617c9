"""Careless and hostile inputs (issue 15, items 7-9): templates and data files that used to end
in a traceback or a silently wrong result now give a clear WorkbenchError or a warning."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from workbench.cli import main as cli_main
from workbench.storage.data_load import load_dataset
from workbench.core.templates import PromptTemplate, load_template
from workbench.errors import DataError, TemplateError

BASE = "name: t\ninput: 'Text: {{ text }}'\n"


# ---- item 7: tracebacks --------------------------------------------------------------------
def test_non_utf8_template_file_is_a_template_error(tmp_path):
    p = tmp_path / "t.yaml"
    p.write_bytes(("name: t\ninput: 'Caf\xe9 {{ text }}'\nanswer_choices: {a: [a]}\n").encode("latin-1"))
    with pytest.raises(TemplateError) as e:
        load_template(p)
    assert "UTF-8" in e.value.message and "offset" in e.value.message


@pytest.mark.parametrize("text", [
    BASE + "answer_choices: {a: [a]}\ntarget_delimiter: null\n",
    "task: x\noutput_type: multiple_choice\ndoc_to_text: text\ndoc_to_choice: [a, b]\ndoc_to_target: 0\ntarget_delimiter: null\n",
])
def test_null_target_delimiter_is_refused_naming_the_key(text):
    with pytest.raises(TemplateError, match="target_delimiter"):
        load_template(text)


def test_parquet_list_valued_labels_are_a_data_error(tmp_path):
    p = tmp_path / "d.parquet"
    pd.DataFrame({"text": ["a", "b"], "label": [["x", "y"], ["z"]]}).to_parquet(p)
    with pytest.raises(DataError, match="label"):
        load_dataset(str(p))


# ---- item 8: silent wrong results ------------------------------------------------------------
def test_text_cells_that_look_like_missing_values_stay_strings(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("text,label\nNone,a\nNA,b\nnull,a\nn/a,b\nNaN,a\nreal text,b\n")
    ds = load_dataset(str(p))
    assert list(ds.df["text"]) == ["None", "NA", "null", "n/a", "NaN", "real text"]
    t = PromptTemplate(name="t", input="{{ text }}", answer_choices={"a": ["a"], "b": ["b"]})
    assert [t.render_input(r) for _, r in ds.df.iterrows()][:4] == ["None", "NA", "null", "n/a"]


def test_empty_csv_cell_is_still_missing(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("text,score,label\nhello,,a\nworld,2,b\n")
    ds = load_dataset(str(p))
    assert pd.isna(ds.df["score"][0]) and ds.df["score"][1] == 2


@pytest.mark.parametrize("choices,key", [
    ("{a: [''], b: [no]}", "a"),
    ("{a: [yes], b: null}", "b"),
    ("{a: [yes], b: [null]}", "b"),
    ("{a: [[yes, sure]], b: [no]}", "a"),
    ("{a: [yes], b: {x: no}}", "b"),
    ("{a: '', b: [no]}", "a"),
])
def test_bad_verbalizers_are_refused_naming_the_label(choices, key):
    with pytest.raises(TemplateError) as e:
        load_template(BASE + f"answer_choices: {choices}\n")
    assert f"'{key}'" in e.value.message


def test_duplicate_yaml_keys_are_refused_naming_the_key():
    with pytest.raises(TemplateError) as e:
        load_template(BASE + "answer_choices:\n  a: [yes]\n  b: [no]\n  a: [maybe]\n")
    assert "'a'" in e.value.message and "line 6" in e.value.message
    with pytest.raises(TemplateError, match="'input'"):
        load_template(BASE + "input: again\nanswer_choices: {a: [a]}\n")


def test_yaml_merge_keys_are_not_duplicates():
    t = load_template("base: &b {name: t, input: '{{ text }}'}\n" if False else
                      "name: t\ninput: '{{ text }}'\nanswer_choices:\n  <<: {a: [x]}\n  a: [yes]\n")
    assert t.answer_choices == {"a": ["yes"]}


def test_one_class_task_warns():
    t = PromptTemplate(name="t", input="{{ text }}", answer_choices={"a": ["yes"]})
    probs = t.validate(columns=["text", "label"], labels=["a"])
    assert any(p.severity == "warning" and "one class" in p.message for p in probs)
    t2 = PromptTemplate(name="t", input="{{ text }}", answer_choices={"a": ["yes"], "b": ["no"]})
    probs = t2.validate(columns=["text", "label"], labels=["a"])
    assert any(p.severity == "warning" and "one class" in p.message for p in probs)
    assert not any("one class" in p.message for p in t2.validate(columns=["text", "label"], labels=["a", "b"]))


def test_columns_with_spaces_are_reachable_through_row():
    t = PromptTemplate(name="t", input="Title: {{ row['my title'] }}", answer_choices={"a": ["a"]})
    assert t.render_input({"my title": "Hello", "label": "a"}) == "Title: Hello"
    assert not [p for p in t.validate(columns=["my title", "label"]) if p.severity == "error"]
    # the hint offers row['...'] for names that are not identifiers
    bad = PromptTemplate(name="t", input="{{ my_title }}", answer_choices={"a": ["a"]})
    msgs = " ".join(p.message for p in bad.validate(columns=["my title", "label"]))
    assert "row['my title']" in msgs
    with pytest.raises(TemplateError) as e:
        bad.render_input(pd.Series({"my title": "Hello", "label": "a"}))
    assert "row['my title']" in e.value.hint


def test_nested_parquet_and_jsonl_cells_render_alike(tmp_path):
    rows = [{"text": "q1", "choices": ["a", "b"], "meta": {"k": [1, 2]}, "label": "a"},
            {"text": "q2", "choices": ["c", "d"], "meta": {"k": [3]}, "label": "b"}]
    pq, jl = tmp_path / "d.parquet", tmp_path / "d.jsonl"
    pd.DataFrame(rows).to_parquet(pq)
    jl.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    a, b = load_dataset(str(pq)), load_dataset(str(jl))
    assert a.fingerprint() == b.fingerprint()
    t = PromptTemplate(name="t", input="{{ text }} {{ choices }} {{ meta }} {{ choices | join('/') }}",
                       answer_choices={"a": ["a"], "b": ["b"]})
    ra = [t.render_input(r) for _, r in a.df.iterrows()]
    rb = [t.render_input(r) for _, r in b.df.iterrows()]
    assert ra == rb
    assert ra[0] == "q1 ['a', 'b'] {'k': [1, 2]} a/b"


# ---- item 9: lost work, silent truncation ----------------------------------------------------
def test_undefined_variable_hint_lists_column_names_not_values():
    t = PromptTemplate(name="t", input="{{ titel }}", answer_choices={"a": ["a"]})
    with pytest.raises(TemplateError) as e:
        t.render_input(pd.Series({"title": "SECRET VALUE", "label": "a"}))
    assert "title" in e.value.hint and "SECRET VALUE" not in e.value.hint


def test_many_classes_warn(recwarn):
    t = PromptTemplate(name="t", input="{{ text }}", answer_choices={str(i): [f"w{i}"] for i in range(10_000)})
    probs = t.validate(columns=["text", "label"])
    assert any(p.severity == "warning" and "10,000 classes" in p.message for p in probs)


@pytest.mark.parametrize("verb", ["eval", "compare", "export"])
def test_out_in_a_folder_that_cannot_exist_fails_before_any_work(tmp_path, verb, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = str(blocker / "sub" / "results.json")   # a folder inside a regular file
    lib = "templates_library/bbc_headline_topic.yaml"
    argv = {"eval": ["eval", "--data", "nosuchdata.csv", "--template", lib, "--out", out],
            "compare": ["compare", "--data", "nosuchdata.csv", "--template", lib, "--template", lib, "--out", out],
            "export": ["export", "--data", "nosuchdata.csv", "--template", lib, "--out", out]}[verb]
    rc = cli_main(argv)
    err = capsys.readouterr().err
    assert rc != 0
    assert "--out" in err and "nosuchdata" not in err   # refused before the data is even read


class _CharSession:
    """A stand-in with one token per character and a small window (count_truncated's contract)."""

    max_length = 50

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]


def test_count_truncated_counts_prompts_past_the_window():
    from workbench.jobs.inference import count_truncated, request_count

    t = PromptTemplate(name="t", input="{{ text }}", answer_choices={"a": ["yes"], "b": ["no"]})
    rows = pd.DataFrame({"text": ["short", "x" * 100, "y" * 48], "label": ["a", "b", "a"]})
    prompts = [t.build_context(r) for _, r in rows.iterrows()]
    # "y"*48 + " yes" = 52 tokens, 51 fit (the last token is only predicted): cut; "x"*100 too
    assert count_truncated(t, rows, prompts, _CharSession()) == (2, 50)
    assert request_count(t, rows) == 6


def test_metrics_markdown_shows_warnings():
    from workbench.app.common import metrics_markdown

    md = metrics_markdown({"task": "classification", "metrics": {"accuracy": 1.0, "n": 1}, "records": [],
                           "provenance": {"warnings": ["3 of 10 prompts are longer than the model's window"]}})
    assert "3 of 10 prompts" in md


@pytest.mark.model
def test_long_cell_is_counted_as_truncated_in_results(session, tmp_path, monkeypatch):
    """A cell longer than the window: the run warns and results.json records how many prompts were cut."""
    from workbench.jobs.inference import EvalConfig, EvalResult, evaluate

    monkeypatch.setattr(type(session), "max_length", property(lambda self: 64))
    df = pd.DataFrame({"text": ["good film", "word " * 200, "bad film"], "label": ["pos", "neg", "neg"]})
    p = tmp_path / "d.csv"
    df.to_csv(p, index=False)
    ds = load_dataset(str(p))
    t = PromptTemplate(name="t", input="Review: {{ text }}\nSentiment:", answer_choices={"pos": ["good"], "neg": ["bad"]})
    res = evaluate(t, ds, session, EvalConfig(split="all"))
    assert res.provenance["data"]["n_truncated"] == 1
    assert any("window of 64" in w for w in res.provenance["warnings"])
    res.save(tmp_path / "r.json")
    assert EvalResult.load(tmp_path / "r.json").provenance["data"]["n_truncated"] == 1


def test_one_class_run_says_so_in_results(tmp_path):
    """evaluate() on a one-class task: the results carry the warning (CLI prints it, the Run tab shows it)."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from support.fakes import FakeSession

    from workbench.jobs.inference import EvalConfig, evaluate

    p = tmp_path / "d.csv"
    p.write_text("text,label\nfine,a\ngood,a\nok,a\n")
    ds = load_dataset(str(p))
    t = PromptTemplate(name="t", input="{{ text }}", answer_choices={"a": ["yes"]})
    res = evaluate(t, ds, FakeSession(), EvalConfig(split="all"))
    assert res.metrics["accuracy"] == 1.0
    assert any("one class" in w for w in res.provenance["warnings"])
    assert any("gold label 'a'" in w for w in res.provenance["warnings"])


def test_data_tab_summary_offers_row_reference_for_spaced_columns(tmp_path):
    from workbench.app.tab_data import _summary

    p = tmp_path / "d.csv"
    p.write_text("my title,label\nhello,a\nworld,b\n")
    assert "`row['my title']`" in _summary(load_dataset(str(p)))


def test_many_requests_warn_before_scoring(tmp_path, caplog):
    """10,000 classes x 2 rows: the warning comes before the first request is scored."""
    import logging
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from support.fakes import FakeSession

    from workbench.jobs.inference import EvalConfig, evaluate

    class Stop(Exception):
        pass

    class Refusing(FakeSession):
        def loglikelihood(self, reqs, **kw):
            raise Stop(len(reqs))

    p = tmp_path / "d.csv"
    p.write_text("text,label\nfine,0\ngood,1\n")
    t = PromptTemplate(name="t", input="{{ text }}", answer_choices={str(i): [f"w{i}"] for i in range(10_000)})
    with caplog.at_level(logging.WARNING, logger="workbench"), pytest.raises(Stop) as e:
        evaluate(t, load_dataset(str(p)), Refusing(), EvalConfig(split="all"))
    assert e.value.args[0] == 20_000
    assert any("20,000 scoring requests" in r.getMessage() for r in caplog.records)


def test_ten_thousand_classes_give_small_metrics(tmp_path):
    """Per-class metrics and the confusion matrix cover the labels that occur, not all 10,000."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from support.fakes import FakeSession

    from workbench.jobs.inference import EvalConfig, evaluate

    p = tmp_path / "d.csv"
    p.write_text("text,label\nfine,0\ngood,1\n")
    t = PromptTemplate(name="t", input="{{ text }}", answer_choices={str(i): [f"w{i}"] for i in range(10_000)})
    res = evaluate(t, load_dataset(str(p)), FakeSession(), EvalConfig(split="all"))
    assert len(res.metrics["confusion"]["labels"]) <= 4
    assert len(json.dumps(res.to_dict())) < 2_000_000
