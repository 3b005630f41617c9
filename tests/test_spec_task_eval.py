"""`workbench eval --task` as a RunSpec (issue 23): the CLI and Python build the same spec, its command
rebuilds it, and the command run as a process gives the predictions `execute` gives in-process (real model,
a local copy of hellaswag with task code, 3 rows)."""
from __future__ import annotations

import json
import shlex

import pytest

from test_lmeval_parity import _task_dir
from test_spec import _cli_spec, _run
from workbench.core.spec import RunSpec


def _py(d, **kw):
    from workbench.jobs.task_eval import task_eval_spec

    return task_eval_spec("hellaswag_local", trust_code=True, include_paths=[str(d)], limit=3, **kw)


def test_task_eval_spec_same_from_cli_and_python(tmp_path):
    d = _task_dir(tmp_path)
    cli = _cli_spec(["eval", "--task", "hellaswag_local", "--trust-task-code", "--include-path", str(d),
                     "--limit", "3", "--method", "acc_norm", "--num-fewshot", "1"])
    py = _py(d, method="acc_norm", num_fewshot=1)
    assert cli.kind == "eval" and cli.options.task == "hellaswag_local" and cli.hash() == py.hash()
    argv = cli.argv()
    assert "--template" not in argv and "--data" not in argv        # the task's own prompt and rows
    assert _cli_spec(shlex.split(cli.command())[1:]).hash() == cli.hash()
    assert RunSpec.from_json(cli.to_json()).hash() == cli.hash()


def test_task_eval_spec_refuses_before_loading(tmp_path):
    from workbench.errors import ConfigError, WorkbenchError

    d = _task_dir(tmp_path)
    with pytest.raises(WorkbenchError, match="trust-task-code"):
        _cli_spec(["eval", "--task", "hellaswag_local", "--include-path", str(d)])     # task code, not trusted
    with pytest.raises(ConfigError, match="not both"):
        _cli_spec(["eval", "--task", "hellaswag_local", "--template", "x.yaml"])


@pytest.mark.model
def test_task_eval_command_reproduces_the_job(tmp_path, session):
    from workbench.jobs.runner import execute

    d = _task_dir(tmp_path)
    spec = _py(d)
    run = execute(spec, session, record=False).result
    mine = run.results[run.order[0]]
    out = tmp_path / "r.json"
    proc = _run(spec.command() + f" --no-registry --out {shlex.quote(str(out))}", tmp_path)
    assert proc.returncode == 0, proc.stderr
    theirs = json.loads(out.read_text())
    assert [r["pred"] for r in theirs["records"]] == [r["pred"] for r in mine.records] and len(mine.records) == 3
    assert theirs["metrics"]["acc"] == mine.metrics["acc"]
