"""Reuse of stored predictions is never stale: a retrained adapter in the same folder, another
dtype or another scoring-code version is scored anew; identical work is still reused."""
from __future__ import annotations

from pathlib import Path

import pytest

from workbench.core.config import EvalConfig
from workbench.core.templates import load_template

ROOT = Path(__file__).resolve().parents[1]
TOPIC = ROOT / "templates_library" / "bbc_headline_topic.yaml"
QUESTION = ROOT / "templates_library" / "bbc_headline_question.yaml"


def _compare(session, bbc, registry):
    from workbench.jobs.compare import compare_templates

    return compare_templates([load_template(TOPIC), load_template(QUESTION)], bbc, session,
                             EvalConfig(limit=6), registry=registry, n_boot=200)


def test_reuse_key_follows_the_model_identity(bbc):
    """Fast: the fake session of test_compare with a changing identity."""
    from support.fakes import FakeSession

    from workbench.storage.runs import RunRegistry

    reg = RunRegistry(Path(__import__("os").environ["WORKBENCH_HOME"]) / "r.sqlite")
    s = FakeSession()
    first = _compare(s, bbc, reg)
    assert [t["reused"] for t in first.templates] == [False, False]
    again = _compare(s, bbc, reg)
    assert [t["reused"] for t in again.templates] == [True, True]          # identical work is reused
    calls = s.calls

    ident = s.model_identity()
    for change in ({"adapter_sha256": "retrained"}, {"dtype": "bfloat16"}, {"scoring_version": 999},
                   {"device_kind": "cuda"}):
        s.model_identity = lambda change=change: {**ident, **change}
        res = _compare(s, bbc, reg)
        assert [t["reused"] for t in res.templates] == [False, False], change
    assert s.calls == calls + 4 * 2


@pytest.mark.model
def test_retrained_adapter_in_the_same_folder_is_scored_anew(tmp_path, session, bbc):
    """Write an adapter, compare, write *different* weights into the same folder (as a retrain
    with --out on the same folder does), compare again: the new adapter's scores are computed."""
    from adapters import write_random_lora
    from workbench.storage.runs import RunRegistry

    folder = tmp_path / "adapter"

    def write_adapter(seed: int) -> None:
        write_random_lora(session.resolved.path, folder, scale=0.2, seed=seed)

    reg = RunRegistry(tmp_path / "runs.sqlite")
    try:
        write_adapter(1)
        session.attach_adapter(str(folder))
        first = _compare(session, bbc, reg)
        assert _compare(session, bbc, reg).templates[0]["reused"]         # same adapter: reused
        session.detach_adapter()
        write_adapter(2)                                                  # "retrain" into the same folder
        session.attach_adapter(str(folder))
        second = _compare(session, bbc, reg)
        assert [t["reused"] for t in second.templates] == [False, False]
        scores = lambda c: [ex["scores"] for ex in c.examples]           # noqa: E731
        assert scores(first) != scores(second)
    finally:
        session.detach_adapter()


@pytest.mark.model
def test_adapter_of_another_base_model_is_refused(tmp_path, session):
    import json
    import shutil

    from workbench.errors import ModelError

    src = tmp_path / "a"
    src.mkdir()
    (src / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    (src / "train_config.json").write_text(json.dumps({"base_model": "someone/other-model@main"}))
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(1)}, str(src / "adapter_model.safetensors"))   # only safetensors adapters load
    with pytest.raises(ModelError, match="trained on someone/other-model@main"):
        session.attach_adapter(str(src))
    assert session.adapter is None
    shutil.rmtree(src)
