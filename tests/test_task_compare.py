"""`workbench compare --task`: the task's own prompt against a user's template on the task's
rows (and two models), a paired verdict per metric, through build_spec / RunSpec / execute."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("lm_eval")


@pytest.mark.model
def test_compare_task_prompt_with_user_template(tmp_path):
    from test_lmeval_outputs_parity import _task_dir

    from workbench.cli import main
    from workbench.core.templates import PromptTemplate

    d = _task_dir(tmp_path / "tasks")
    user = PromptTemplate(name="story", task="generation", input="Story: {{ text.split(' ')[:-1] | join(' ') }}",
                          target="{{ text.split(' ')[-1] }}")
    (tmp_path / "story.yaml").write_text(user.to_yaml())
    out = tmp_path / "cmp.json"
    assert main(["compare", "--task", "lambada_local", "--include-path", str(d), "--trust-task-code",
                 "--template", str(tmp_path / "story.yaml"), "--no-registry", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert [a["template"] for a in res["arms"]] == ["task prompt", "story"]
    v = res["verdicts"]["story vs task prompt"]
    assert v["acc,none"]["test"] == "McNemar (exact)"
    assert v["perplexity,none"]["test"].startswith("paired bootstrap")
    assert v["perplexity,none"]["a"] == pytest.approx(res["arms"][0]["metrics"]["perplexity"])
    assert v["perplexity,none"]["b"] == pytest.approx(res["arms"][1]["metrics"]["perplexity"])
    assert v["perplexity,none"]["ci_low"] <= v["perplexity,none"]["delta"] <= v["perplexity,none"]["ci_high"]
    # the user's prompt really was scored: its contexts start with "Story:"
    assert all(r["prompt"].startswith("Story: ") for r in res["records"]["story"])
    assert res["settings"]["spec"]["kind"] == "compare" and res["settings"]["spec"]["options"]["task"] == "lambada_local"


def test_compare_task_refuses_before_loading(tmp_path, capsys):
    from workbench.cli import main

    assert main(["compare", "--task", "hellaswag", "--model", "default", "--model", "x", "--no-registry"]) == 1
    err = capsys.readouterr().err
    assert "--trust-task-code" in err and "Traceback" not in err
    assert main(["compare", "--task", "hellaswag", "--trust-task-code", "--no-registry"]) == 1
    assert "two models" in capsys.readouterr().err
