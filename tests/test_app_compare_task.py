"""The Compare tab's lm-eval task picker, driven through gradio_client (issue #25): pick an
installed task (mmlu_anatomy, made-up rows in MMLU's field shape on the server's disk),
compare the task's own prompt with a template column on the default model, and get the
same arms, metrics and paired verdicts as the command the tab shows (`workbench compare
--task ...`, run here through the CLI)."""
from __future__ import annotations

import json
import re
import shlex

import pytest

from support import App, wait_job

pytest.importorskip("lm_eval")
pytestmark = pytest.mark.model

MINE = """name: my_mmlu
task: classification
input: "Question: {{ question }}\\nAnswer:"
choices_expr: choices
target: "{{ answer }}"
"""


def _data(tmp_path):
    rows = lambda p, n: [{"question": f"Which part of the body is number {i} ({p})?", "subject": "anatomy",  # noqa: E731
                          "choices": ["the heart", "the lung", "the femur", "the skull"], "answer": i % 4}
                         for i in range(n)]
    d = tmp_path / "mmlu"
    d.mkdir()
    for split, docs in (("test", rows("t", 6)), ("dev", rows("d", 5))):
        (d / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in docs))
    return d


def test_compare_tab_task_prompt_vs_template_equals_cli(tmp_path, capsys):
    from workbench.cli import main

    data = _data(tmp_path)
    with App() as app:
        c = app.client
        hit = c.predict("mmlu_anat", api_name="/compare_task_search")
        assert (hit.get("value") if isinstance(hit, dict) else hit) == "mmlu_anatomy"
        # task, trust, data, few-shot, limit, with columns, model, models, n columns, 8 YAMLs
        form = ("mmlu_anatomy", False, str(data), 0, 6, True, "default", "", 1, MINE, *[""] * 7)
        md = c.predict(*form, api_name="/compare_task_command")
        command = re.search(r"```bash\n(.+?)\n```", md, re.S).group(1)
        assert "--task mmlu_anatomy" in command and f"--data {data}" in command and "--template" in command
        job_id = c.predict(*form, api_name="/compare_task_start")[0]
        st = wait_job(c, "/compare_status", job_id, timeout=600)
        assert st["state"] == "done", st
        ui = c.predict(job_id, api_name="/compare_task_result")
    assert [a["name"] for a in ui["arms"]] == ["task prompt", "my_mmlu"] and ui["settings"]["n"] == 6
    # the shown command, run through the CLI, gives the same numbers
    out = tmp_path / "cli.json"
    argv = shlex.split(command)[1:] + ["--no-registry", "--out", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    cli = json.loads(out.read_text())
    assert [a["name"] for a in cli["arms"]] == [a["name"] for a in ui["arms"]]
    for a, b in zip(ui["arms"], cli["arms"]):
        assert set(a["metrics"]) == set(b["metrics"])
        for k, v in a["metrics"].items():
            assert v == pytest.approx(b["metrics"][k], abs=1e-9), (a["name"], k)
    assert set(ui["verdicts"]) == set(cli["verdicts"]) == {"my_mmlu vs task prompt"}
    for pair, vs in ui["verdicts"].items():
        assert set(vs) == set(cli["verdicts"][pair]) and vs
        for key, v in vs.items():
            w = cli["verdicts"][pair][key]
            assert (v["test"], v["words"]) == (w["test"], w["words"])
            assert v["delta"] == pytest.approx(w["delta"]) and v["p_value"] == pytest.approx(w["p_value"])


def test_task_form_refuses_clearly_before_any_job():
    gr = pytest.importorskip("gradio")
    from workbench.app.compare_task import start_task_compare

    with pytest.raises(gr.Error, match="two models or a template"):
        start_task_compare("mmlu_anatomy", False, "", None, 5, False, "default", "", 1, *[""] * 8)
    with pytest.raises(gr.Error, match="Trust task code|trust-task-code"):
        start_task_compare("hellaswag", False, "", None, 5, True, "default", "", 1, MINE, *[""] * 7)


def test_task_on_two_models_builds_the_cli_spec(tmp_path):
    """Without the columns, the task's prompt on the model bar's model and the Models box: the
    form's spec is the one `workbench compare --task T --model A --model B` builds."""
    from workbench.app.compare_task import task_command, task_spec
    from workbench.jobs.task_compare import task_compare_spec

    data = _data(tmp_path)
    form = ("mmlu_anatomy", False, str(data), None, 5, False, "default", "openai:http://127.0.0.1:9/v1", 2, *[""] * 8)
    md = task_command(*form)
    command = re.search(r"```bash\n(.+?)\n```", md, re.S).group(1)
    assert "--model default --model openai:http://127.0.0.1:9/v1" in command and "--template" not in command
    ui = task_spec(*form)
    cli = task_compare_spec("mmlu_anatomy", models=["default", "openai:http://127.0.0.1:9/v1"], data=str(data), limit=5)
    assert ui.to_json() == cli.to_json()
