"""Saved inference-server entries (storage/engines.py): a short name for a server URL and its
settings, accepted by the model bar, Compare's model columns and the CLI's --model; stored in
the registry's SQLite file; never holding an API key; specs record the URL itself."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from support import App, load_data

from workbench.core.spec import ModelRef
from workbench.errors import ConfigError
from workbench.storage import engines
from workbench.storage.runs import RunRegistry

ROOT = Path(__file__).resolve().parents[1]
URL = "openai:http://gpu-box:8000/v1#llama-70b"


def test_save_list_resolve_delete_persist(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_API_KEY", "sk-secret-123")
    reg = RunRegistry(tmp_path / "runs.sqlite")
    engines.save_engine("vllm-70b", ModelRef(model=URL, tokenizer="meta-llama/Llama-3.1-70B-Instruct",
                                             engine={"concurrency": 32}), reg)
    again = RunRegistry(tmp_path / "runs.sqlite")                      # a new process, the same file
    [e] = engines.list_engines(again)
    assert (e["name"], e["model"], e["engine"]) == ("vllm-70b", URL, {"concurrency": 32})
    r = engines.resolve(ModelRef(model="vllm-70b", adapter="/tmp/ad"), again)
    assert (r.model, r.tokenizer, r.adapter, r.engine) == (URL, "meta-llama/Llama-3.1-70B-Instruct", "/tmp/ad",
                                                           {"concurrency": 32})
    # settings given with the name (CLI flags) win over the entry's
    r = engines.resolve(ModelRef(model="vllm-70b", tokenizer="other", engine={"concurrency": 4}), again)
    assert (r.tokenizer, r.engine) == ("other", {"concurrency": 4})
    # anything else passes through untouched
    for m in ("default", "HuggingFaceTB/SmolLM2-135M", "/models/x", "openai:http://h:1/v1", "unknown-name"):
        assert engines.resolve(ModelRef(model=m), again) == ModelRef(model=m)
    # replacing keeps one entry; the key is in no byte of the file
    engines.save_engine("vllm-70b", ModelRef(model=URL), again)
    assert len(engines.list_engines(again)) == 1
    assert b"sk-secret-123" not in (tmp_path / "runs.sqlite").read_bytes()
    assert engines.delete_engine("vllm-70b", again) and not engines.list_engines(again)
    assert not engines.delete_engine("vllm-70b", again)


@pytest.mark.parametrize("name,model,match", [
    ("a/b", URL, "cannot name"), ("default", URL, "cannot name"), ("x:y", URL, "cannot name"),
    ("ok", "HuggingFaceTB/SmolLM2-135M", "needs an inference server URL"),
])
def test_bad_entries_are_refused_with_the_fix(tmp_path, name, model, match):
    with pytest.raises(ConfigError, match=match) as ei:
        engines.save_engine(name, ModelRef(model=model), RunRegistry(tmp_path / "r.sqlite"))
    assert ei.value.hint
    with pytest.raises(ConfigError, match="Unknown engine setting"):
        engines.save_engine("ok", ModelRef(model=URL, engine={"api_key": "x"}), RunRegistry(tmp_path / "r.sqlite"))


def test_the_cli_resolves_a_saved_name(workbench_home):
    from workbench.commands.common import model_refs

    engines.save_engine("box", ModelRef(model=URL, tokenizer="tok", engine={"concurrency": 8}))
    args = argparse.Namespace(model=["default", "box"], adapter=None, tokenizer=None)
    refs = model_refs(args)
    assert [r.model for r in refs] == ["default", URL] and refs[1].tokenizer == "tok"
    assert refs[1].engine["concurrency"] == 8


@pytest.mark.model
def test_the_model_bar_saves_loads_and_compares_a_named_server(session, ref):
    """`ref` is the run's shared reference server (support/fixtures.py)."""
    app = App()
    try:
        client = app.client
        url = ref.url.removeprefix("openai:")
        listing = client.predict("ref-srv", url, "default", 4, api_name="/save_engine")
        assert "**ref-srv**" in listing and ref.url in listing and "concurrency=4" in listing
        assert "ref-srv" in client.predict(api_name="/list_engines")
        # Compare's model columns take the name; the command shows the URL itself
        load_data(client, "bbc")
        yaml = (ROOT / "templates_library" / "bbc_headline_topic.yaml").read_text()
        form = ("default", "ref-srv", 0, 0, "acc", "none", "test", 8, "", 100, 1, yaml, *[""] * 7)
        md = client.predict(*form, api_name="/compare_command")
        assert f"--model {ref.url}" in md and "ref-srv" not in md.split("```bash")[1]
        # the model bar loads it by name: a server session
        info = client.predict("ref-srv", api_name="/load_model")
        assert "serves" in info and "scoring ✓" in info, info
        listing = client.predict("ref-srv", api_name="/delete_engine")
        assert "No saved servers" in listing
    finally:
        app.close()
        from workbench.jobs import service

        service.load_model("default")
