"""`workbench eval --task` equals `lm_eval --tasks` on the same local rows (issue #18).

hellaswag needs task code (`process_docs: !function utils.process_docs`). Three runs on
tests/data/lmeval_hellaswag (5 validation rows, 4 train rows), no hub:
  * zero-shot:                workbench eval --task hellaswag --trust-task-code --data DIR
  * 2 shots, lm-eval's default sampler (random, seed 1234):   ... --num-fewshot 2
  * 2 shots, first_n: a task of our own under --include-path that includes the installed
    hellaswag.yaml (a `..` include that stays inside the lm-eval tasks folder) and reads the
    same rows through dataset_kwargs.data_files, i.e. the task's own data without --data.
lm_eval runs the same three tasks from one --include_path folder. Contexts, predictions
and log-likelihoods (1e-4) must agree."""
from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.core.lmeval_yaml import installed_tasks_dir

DATA = Path(__file__).parent / "data" / "lmeval_hellaswag"
LIB = installed_tasks_dir()


def _task_dir(tmp_path: Path) -> Path:
    d = tmp_path / "tasks"
    d.mkdir()
    rel = os.path.relpath(LIB / "hellaswag" / "hellaswag.yaml", d)
    files = (f"dataset_path: json\ndataset_name: null\ndataset_kwargs:\n  data_files:\n"
             f"    validation: {DATA / 'validation.jsonl'}\n    train: {DATA / 'train.jsonl'}\n")
    (d / "hellaswag_local.yaml").write_text(f"include: {rel}\ntask: hellaswag_local\n{files}")
    (d / "hellaswag_local2.yaml").write_text(f"include: {rel}\ntask: hellaswag_local2\nnum_fewshot: 2\n{files}")
    (d / "hellaswag_first_n.yaml").write_text(f"include: {rel}\ntask: hellaswag_first_n\nnum_fewshot: 2\n"
                                              f"fewshot_config:\n  sampler: first_n\n{files}")
    return d


def _lm_eval(task_dir: Path, out: Path, model_path: str) -> dict:
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1")
    exe = Path(sys.executable).parent / "lm_eval"
    proc = subprocess.run([str(exe), "--model", "hf", "--model_args", f"pretrained={model_path},dtype=float32",
                           "--tasks", "hellaswag_local,hellaswag_local2,hellaswag_first_n", "--include_path", str(task_dir),
                           "--batch_size", "4", "--device", "cpu", "--log_samples", "--output_path", str(out)],
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = {}
    for task in ("hellaswag_local", "hellaswag_local2", "hellaswag_first_n"):
        f = sorted(glob.glob(str(out / "**" / f"samples_{task}_*.jsonl"), recursive=True))[-1]
        samples = sorted((json.loads(x) for x in open(f)), key=lambda s: s["doc_id"])
        res[task] = samples
    return res


def _ours(args: list[str], out: Path) -> dict:
    from workbench.cli import main

    assert main(["eval", "--trust-task-code", "--no-registry", "--out", str(out), *args]) == 0
    return json.loads(out.read_text())


@pytest.mark.slow
@pytest.mark.model
def test_hellaswag_with_task_code_equals_lm_eval(tmp_path, monkeypatch):
    pytest.importorskip("lm_eval")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    from workbench.engine.models import resolve_model

    task_dir = _task_dir(tmp_path)
    theirs = _lm_eval(task_dir, tmp_path / "lm", resolve_model("default").path)
    ours = {
        "hellaswag_local": _ours(["--task", "hellaswag", "--data", str(DATA)], tmp_path / "z.json"),
        "hellaswag_local2": _ours(["--task", "hellaswag", "--data", str(DATA), "--num-fewshot", "2"], tmp_path / "d.json"),
        "hellaswag_first_n": _ours(["--task", "hellaswag_first_n", "--include-path", str(task_dir)], tmp_path / "f.json"),
    }
    for task, samples in theirs.items():
        recs = ours[task]["records"]
        assert len(recs) == len(samples) == 5, task
        for r, s in zip(recs, samples):
            ctx = s["arguments"]["gen_args_0"]["arg_0"]
            assert r["prompt"] == ctx, (task, r["prompt"], ctx)
            lls = [float(x[0]) for x in s["filtered_resps"]]
            labels = list(r["logprobs"])
            assert labels.index(r["pred"]) == max(range(len(lls)), key=lambda i: (lls[i], -i)), task
            assert [r["logprobs"][lab] for lab in labels] == pytest.approx(lls, abs=1e-4), task
        # lm-eval's own acc / acc_norm from the same rows
        m = ours[task]["metrics"]
        assert m["acc"] == pytest.approx(sum(s["acc"] for s in samples) / len(samples))
        assert m["acc_norm"] == pytest.approx(sum(s["acc_norm"] for s in samples) / len(samples))
    # the shots really differ: default (random) and first_n draw different demonstrations
    assert ours["hellaswag_local2"]["records"][0]["prompt"] != ours["hellaswag_first_n"]["records"][0]["prompt"]
    assert ours["hellaswag_first_n"]["records"][0]["prompt"].startswith("Making tea: A man boils water")


def test_task_code_refused_without_trust(tmp_path, capsys):
    from workbench.cli import main

    assert main(["eval", "--task", "hellaswag", "--data", str(DATA), "--no-registry", "--out", str(tmp_path / "x.json")]) == 1
    err = capsys.readouterr().err
    assert "!function utils.process_docs" in err and "hellaswag/hellaswag.yaml" in err and "--trust-task-code" in err
    assert "Traceback" not in err


def test_uploads_and_cli_files_outside_the_roots_never_run_code(tmp_path):
    """Trust covers only the installed library and --include-path folders: a task YAML named
    by path elsewhere is refused even with trust, and a plain template load never runs code."""
    from workbench.storage.lmeval_library import TaskLibrary
    from workbench.core.templates import load_template
    from workbench.errors import TemplateError

    marker = tmp_path / "ran"
    (tmp_path / "utils.py").write_text(f"open({str(marker)!r}, 'w').write('x')\ndef f(doc):\n    return 'q'\n")
    (tmp_path / "t.yaml").write_text("task: evil\noutput_type: multiple_choice\ndoc_to_text: !function utils.f\n"
                                     "doc_to_choice: [a, b]\ndoc_to_target: 0\n")
    with pytest.raises(TemplateError, match="outside the trusted task folders"):
        TaskLibrary(installed=False).load_file(tmp_path / "t.yaml", trust_code=True)
    with pytest.raises(TemplateError, match="!function utils.f"):
        load_template(tmp_path / "t.yaml")
    assert not marker.exists()
    # Named with --include-path, the same folder is trusted and the code runs.
    lib = TaskLibrary(include_paths=[tmp_path], installed=False)
    task = lib.load("evil", trust_code=True)
    assert marker.exists() and task.template.render_input({"x": 1}) == "q"


def test_task_data_offline_names_data_flag(tmp_path, capsys, monkeypatch):
    from workbench.cli import main

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))   # nothing cached
    assert main(["eval", "--task", "hellaswag", "--trust-task-code", "--no-registry", "--out", str(tmp_path / "x.json")]) == 1
    err = capsys.readouterr().err
    assert "Rowan/hellaswag" in err and "--data" in err and "Traceback" not in err


def test_task_rows_are_lm_evals_rows():
    """Without --split games: the eval rows are the task's validation split, in order, with
    process_docs applied; the few-shot pool is its training split."""
    from workbench.storage.lmeval_data import task_data
    from workbench.storage.lmeval_library import TaskLibrary

    task = TaskLibrary().load("hellaswag", trust_code=True)
    td = task_data(task, DATA, num_fewshot=1)
    assert (td.eval_split, td.fewshot_split) == ("validation", "train")
    assert list(td.eval.df["ind"]) == [1, 2, 3, 4, 5] and list(td.fewshot.df["ind"]) == [10, 11, 12, 13]
    row = td.eval.df.iloc[1]
    assert row["query"].startswith("Baking cookies: A woman mixes flour") and row["choices"][2] == "paints the bowl. blue with a brush."
    assert task.template.gold(row) == row["choices"][0]


def test_include_path_tasks_and_groups_by_name(tmp_path):
    """A folder named with --include-path adds its tasks and groups to the names, and its
    `..` include into the installed library is allowed (it stays inside a trusted root)."""
    from workbench.storage.lmeval_library import TaskLibrary

    d = _task_dir(tmp_path)
    (d / "_group.yaml").write_text("group: hs_group\ntask:\n  - hellaswag_local\n  - hellaswag_first_n\n"
                                   "aggregate_metric_list:\n  - metric: acc\n    weight_by_size: true\n")
    lib = TaskLibrary(include_paths=[d])
    assert lib.expand("hs_group") == ["hellaswag_local", "hellaswag_first_n"]
    task = lib.load("hellaswag_first_n", trust_code=True)
    assert (task.sampler, task.num_fewshot, task.eval_split) == ("first_n", 2, "validation")
    assert task.config["dataset_kwargs"]["data_files"]["train"].endswith("train.jsonl")


def test_mmlu_prompts_with_first_n_shots_equal_lm_eval(tmp_path):
    """Fast (no model): mmlu_anatomy's contexts with 3 first_n shots from its dev split and its
    description equal lm-eval's own fewshot_context on the same local rows."""
    pytest.importorskip("lm_eval")
    from lm_eval.api.task import ConfigurableTask

    from workbench.core.lmeval_tasks import FewshotPicker
    from workbench.storage.lmeval_data import task_data
    from workbench.storage.lmeval_library import TaskLibrary
    from workbench.jobs.inference import EvalConfig, build_prompts

    rows = lambda p, n: [{"question": f" {p} question {i}? ", "subject": "anatomy",  # noqa: E731
                          "choices": [f"{p}{i}a", f"{p}{i}b", f"{p}{i}c", f"{p}{i}d"], "answer": i % 4} for i in range(n)]
    data = tmp_path / "mmlu"
    data.mkdir()
    for split, docs in (("test", rows("t", 3)), ("dev", rows("d", 5))):
        (data / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in docs))
    lib = TaskLibrary()
    task = lib.load("mmlu_anatomy")
    td = task_data(task, data, num_fewshot=3)
    prompts = build_prompts(task.template, td.eval.df, td.fewshot.df, EvalConfig(shots=3),
                            demos_fn=FewshotPicker(task, td, 3).for_row)
    cfg, _ = lib.config("mmlu_anatomy")
    cfg = {k: v for k, v in cfg.items() if k not in ("tag",)}
    cfg.update(dataset_path="json", dataset_name=None, num_fewshot=3,
               dataset_kwargs={"data_files": {"test": str(data / "test.jsonl"), "dev": str(data / "dev.jsonl")}})
    theirs = ConfigurableTask(config=cfg)
    docs = list(theirs.test_docs())
    assert len(docs) == len(prompts) == 3
    for doc, ours in zip(docs, prompts):
        assert ours == theirs.fewshot_context(doc, 3), ours
    assert prompts[0].startswith("The following are multiple choice questions (with answers) about anatomy.\n\nd question 0?")


def _FakeSession():
    """Scores a continuation by minus its length (fast plumbing test; the real model is in
    test_hellaswag_with_task_code_equals_lm_eval)."""
    from support.fakes import FakeSession

    return FakeSession("fake", logprob_fn=lambda ctx, cont: -float(len(cont)), encode_fn=list)


def test_group_runs_every_task_and_reports_the_aggregate(tmp_path):
    from workbench.storage.lmeval_library import TaskLibrary
    from workbench.jobs.lmeval_run import run_tasks

    d = _task_dir(tmp_path)
    (d / "_group.yaml").write_text("group: hs_group\ntask:\n  - hellaswag_local\n  - hellaswag_first_n\n"
                                   "aggregate_metric_list:\n  - metric: acc\n    weight_by_size: true\n")
    lib = TaskLibrary(include_paths=[d])
    run = run_tasks(lib, "hs_group", lambda: _FakeSession(), trust_code=True, limit=3)
    assert run.order == ["hellaswag_local", "hellaswag_first_n"]
    accs = [run.results[t].metrics["acc"] for t in run.order]
    assert run.groups["hs_group"]["acc"] == pytest.approx(sum(accs) / 2) and run.groups["hs_group"]["n"] == 6
    # the shortest ending wins under the fake scorer: lm-eval's acc from our records agrees
    r = run.results["hellaswag_local"].records[0]
    assert r["pred"] == min(r["logprobs"], key=len)
    # comma-separated names, as lm_eval --tasks a,b
    run2 = run_tasks(lib, "hellaswag_local,hellaswag_first_n", lambda: _FakeSession(), trust_code=True, limit=2)
    assert run2.order == ["hellaswag_local", "hellaswag_first_n"] and not run2.groups


def test_fewshot_config_format_overrides_equal_lm_eval(tmp_path):
    """fewshot_config.doc_to_text / doc_to_target / target_delimiter / fewshot_delimiter write
    the demos differently from the eval doc (as mmlu_pro, kormedmcqa, bbh do); no model."""
    pytest.importorskip("lm_eval")
    from lm_eval.api.task import ConfigurableTask

    from workbench.core.data import Dataset
    from workbench.core.lmeval_tasks import FewshotPicker, TaskData
    from workbench.core.lmeval_tasks import frame_docs as _frame
    from workbench.storage.lmeval_library import task_from_config
    from workbench.jobs.inference import EvalConfig, build_prompts

    docs = [{"q": f"Q{i}", "choices": ["x", "y", "z"], "answer": i % 3} for i in range(6)]
    f = tmp_path / "d.jsonl"
    f.write_text("".join(json.dumps(d) + "\n" for d in docs))
    for out_type, extra in (("multiple_choice", {"doc_to_choice": "choices", "doc_to_target": "answer"}),
                            ("generate_until", {"doc_to_target": "{{ choices[answer] }}"})):
        cfg = {"task": "fs_fmt", "output_type": out_type, "dataset_path": "json",
               "dataset_kwargs": {"data_files": {"test": str(f), "train": str(f)}}, "test_split": "test",
               "fewshot_split": "train", "description": "Answer these.\n\n", "doc_to_text": "Question: {{ q }}\nAnswer:",
               "fewshot_config": {"sampler": "first_n", "doc_to_text": "{{ q }} => {{ choices[answer] }}",
                                  "doc_to_target": "", "fewshot_delimiter": "\n---\n"}, **extra}
        ours = task_from_config(cfg, None)
        ds = Dataset("x", _frame(docs), None, None, "mem")
        td = TaskData(ds, ds, "test", "train", "mem")
        prompts = build_prompts(ours.template, ds.df, ds.df, EvalConfig(shots=2), demos_fn=FewshotPicker(ours, td, 2).for_row)
        theirs = ConfigurableTask(config=dict(cfg))
        for doc, p in zip(theirs.test_docs(), prompts):
            assert p == theirs.fewshot_context(doc, 2), (out_type, p, theirs.fewshot_context(doc, 2))
        cfg["fewshot_config"] = {"sampler": "first_n", "target_delimiter": " := ", "fewshot_delimiter": "\n#\n"}
        ours = task_from_config(cfg, None)
        prompts = build_prompts(ours.template, ds.df, ds.df, EvalConfig(shots=2), demos_fn=FewshotPicker(ours, td, 2).for_row)
        theirs = ConfigurableTask(config=dict(cfg))
        for doc, p in zip(theirs.test_docs(), prompts):
            assert p == theirs.fewshot_context(doc, 2), (out_type, p, theirs.fewshot_context(doc, 2))
