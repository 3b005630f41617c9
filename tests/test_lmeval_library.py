"""Every installed lm-eval task YAML, loaded through the workbench (issues #18, #25).

With --trust-task-code at least 99% of the task files load (tasks become templates, Python
class tasks resolve to their class, groups expand); what is left is refused for reasons the
workbench cannot remove here (task code that fetches Hugging Face `evaluate` metrics or models
from the hub, needs packages that are not on PyPI or that conflict with others, multimodal
input; docs/TEMPLATES.md counts them). The rate is measured two ways: over the task files
(the YAML files lm-eval's own TaskManager indexes) and over every YAML file, counting the 8
include-only fragments, which are not tasks, as refused. Without trust every file loads or is
refused with a message that names the reason; nothing raises anything but a WorkbenchError.
The counts are written to artifacts/lmeval_library.json."""
from __future__ import annotations

import collections
import json
import os
import re
import time
from pathlib import Path

# Task code that loads a Hugging Face `evaluate` metric at import asks the hub (and retries)
# unless evaluate is told it is offline; the suite is offline anyway (conftest: HF_HUB_OFFLINE).
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")

import pytest

from workbench.storage.lmeval_library import TaskLibrary, task_from_config
from workbench.core.lmeval_yaml import installed_tasks_dir, read_task_yaml
from workbench.errors import WorkbenchError

LIB = installed_tasks_dir()
ART = Path(__file__).resolve().parent.parent / "artifacts"
pytestmark = pytest.mark.skipif(LIB is None, reason="lm-eval is not installed")


def _reason(msg: str) -> str:
    m = re.search(r"lm-eval task '[^']*': (multimodal input|promptsource prompt|few-shot sampler|"
                  r"filter pipeline|hub metric|metric)", msg)
    if m:
        # a metric lm-eval would fetch from the hub (evaluate.load) is a hub metric too
        return "hub metric" if m.group(1) == "metric" and "Hugging Face evaluate" in msg else m.group(1)
    for pat, why in ((r"runs Python code", "needs --trust-task-code"), (r"output_type", "output_type not supported"),
                     (r"Python Task class", "Python Task class"), (r"could not be imported|importing the task code",
                                                                      "task code import failed"),
                     (r"include fragment", "include fragment (no task)"), (r"not one task|group", "group"), (r"no doc_to", "incomplete config")):
        if re.search(pat, msg):
            return why
    return "other: " + msg.splitlines()[0][:80]


def _load_all(trust: bool) -> dict:
    lib = TaskLibrary()
    counts: collections.Counter = collections.Counter()
    reasons: collections.Counter = collections.Counter()
    crashes = []
    files = sorted(p for p in LIB.rglob("*.yaml") if "__pycache__" not in p.parts)
    t0 = time.perf_counter()
    for p in files:
        try:
            cfg = read_task_yaml(p, lib.include_roots(p))
            if "group" in cfg and isinstance(cfg.get("group"), str) and "class" not in cfg:
                assert lib.expand(cfg["group"]), p      # a group loads when its tasks resolve
                counts["group"] += 1
            elif not isinstance(cfg.get("task"), str):
                raise WorkbenchError(f"{p}: not a task: an include fragment without `task`")
            else:
                task_from_config(cfg, p, trust_code=trust, code_roots=lib.code_roots)
                counts["task"] += 1
        except WorkbenchError as e:
            assert e.message.strip(), p
            counts["refused"] += 1
            reasons[_reason(e.message)] += 1
        except (Exception, SystemExit) as e:  # noqa: BLE001 - this is what the test counts
            crashes.append(f"{p}: {type(e).__name__}: {e}")
    n, loaded = len(files), counts["task"] + counts["group"]
    fragments = reasons.get("include fragment (no task)", 0)
    return {"files": n, "loaded": loaded, **counts, "task_files": n - fragments,
            "rate_all_files": round(loaded / n, 5), "rate_task_files": round(loaded / (n - fragments), 5),
            "refused_by_reason": dict(reasons.most_common()),
            "crashes": crashes[:20], "n_crashes": len(crashes), "seconds": round(time.perf_counter() - t0, 1)}


@pytest.mark.slow
def test_every_installed_lm_eval_task_yaml_loads_or_is_refused_clearly():
    ART.mkdir(exist_ok=True)
    report = {"trusted": _load_all(True), "untrusted": _load_all(False)}
    (ART / "lmeval_library.json").write_text(json.dumps(report, indent=1))
    tr, un = report["trusted"], report["untrusted"]
    assert tr["n_crashes"] == 0 and un["n_crashes"] == 0, (tr["crashes"], un["crashes"])
    # 99% of the task files (lm-eval's own count of tasks); every YAML file, fragments included: 98.96%
    assert tr["loaded"] / tr["task_files"] >= 0.99, tr
    assert tr["loaded"] / tr["files"] >= 0.9895, tr
    assert un["loaded"] + un["refused"] == un["files"], un


@pytest.mark.slow
def test_include_fragments_are_not_lm_eval_tasks():
    """The YAML files the workbench calls include fragments are exactly those lm-eval's own
    TaskManager does not index (no `task`, no `group`): not tasks, so the task-file rate leaves them out."""
    from lm_eval.tasks import TaskManager

    lib = TaskLibrary()
    indexed = {str(getattr(e, "yaml_path", "")) for e in TaskManager().task_index.values()}
    files = [p for p in LIB.rglob("*.yaml") if "__pycache__" not in p.parts]
    unindexed = sorted(p for p in files if str(p) not in indexed)
    fragments = sorted(p for p in files if not isinstance(read_task_yaml(p, lib.include_roots(p)).get("task"), str)
                       and not isinstance(read_task_yaml(p, lib.include_roots(p)).get("group"), str))
    assert unindexed == fragments and len(fragments) == 8, (unindexed, fragments)


def test_squad_metrics_stand_in_by_hand():
    """transformers 5 has no squad_metrics; the stand-in lm-eval's xquad/coqa/record code
    imports gives the SQuAD 2.0 numbers, worked out by hand."""
    from workbench.core import lmeval_compat as C

    assert C.normalize_answer("The  Cat, sat!") == "cat sat"
    assert C.compute_exact("The cat", "cat.") == 1 and C.compute_exact("cat", "dog") == 0
    # pred 'a cat sat down' -> [cat, sat, down]; gold 'the cat sat' -> [cat, sat]: P 2/3, R 1
    assert C.compute_f1("the cat sat", "a cat sat down") == pytest.approx(2 * (2 / 3) / (2 / 3 + 1))
    assert C.compute_f1("", "") == 1 and C.compute_f1("x", "") == 0 and C.compute_f1("x", "y") == 0
    if LIB is not None:
        task = TaskLibrary().load("xquad_en", trust_code=True)     # its utils import squad_metrics
        out = task.process_results({"answers": {"text": ["the cat sat"]}}, ["a cat sat down"])
        assert out == {"f1": pytest.approx(0.8), "exact_match": 0}


@pytest.mark.skipif(LIB is None, reason="lm-eval is not installed")
def test_task_code_refusals_say_what_is_missing():
    """A task whose code fetches a Hugging Face `evaluate` metric at import, or calls the
    removed datasets.load_metric, is refused with that reason (not 'pip install datasets')."""
    lib = TaskLibrary()
    with pytest.raises(WorkbenchError) as e:
        lib.load("humaneval", trust_code=True)
    assert "`evaluate` metric 'code_eval'" in e.value.hint
    with pytest.raises(WorkbenchError) as e:
        lib.load("bec2016eu", trust_code=True)
    assert "datasets.load_metric" in e.value.hint


# ---- names, groups, samplers (fast) -----------------------------------------------------------
@pytest.fixture(scope="module")
def lib():
    return TaskLibrary()


def test_tasks_groups_and_tags_by_name(lib):
    assert lib.entry("hellaswag").kind == "task"
    subjects = lib.expand("mmlu")
    assert len(subjects) == 57 and "mmlu_abstract_algebra" in subjects
    assert lib.entry("mmlu").aggregate[0]["metric"] == "acc"
    assert "hellaswag" in lib.expand("multiple_choice")          # a tag
    assert lib.search("hellas")[0] == "hellaswag"
    with pytest.raises(WorkbenchError, match="did you mean") as e:
        lib.entry("helaswag")
    assert "hellaswag" in str(e.value)


def test_group_aggregate_weights_by_size():
    from types import SimpleNamespace

    from workbench.core.lmeval_tasks import Entry
    from workbench.jobs.lmeval_run import group_aggregate

    res = {"a": SimpleNamespace(metrics={"acc": 1.0, "n": 1}, records=[0]),
           "b": SimpleNamespace(metrics={"acc": 0.0, "n": 3}, records=[0, 0, 0])}
    g = group_aggregate(Entry("g", "group", None, [], [{"metric": "acc", "weight_by_size": True}]), res)
    assert g["acc"] == pytest.approx(0.25) and g["n"] == 4
    g = group_aggregate(Entry("g", "group", None, [], [{"metric": "acc", "weight_by_size": False}]), res)
    assert g["acc"] == pytest.approx(0.5)


@pytest.mark.parametrize("sampler", ["default", "first_n"])
@pytest.mark.parametrize("same_split", [False, True])
def test_fewshot_picker_equals_lm_eval_samplers(sampler, same_split):
    """Our draw, doc by doc, equals lm-eval's ContextSampler / FirstNSampler with seed 1234."""
    from lm_eval.api.samplers import get_sampler

    from workbench.core.lmeval_tasks import FewshotPicker, LmEvalTask, TaskData
    from workbench.core.lmeval_tasks import frame_docs as _frame
    from workbench.core.data import Dataset

    pool = [{"q": f"p{i}", "a": i % 3, "l": [i, i + 1]} for i in range(9)]
    evals = pool[2:6] if same_split else [{"q": f"e{i}", "a": 0, "l": [i]} for i in range(4)]
    cfg = {"task": "t", "test_split": "test", "fewshot_split": "test" if same_split else "train",
           "fewshot_config": {"sampler": sampler}}
    task = LmEvalTask("t", None, cfg, template=None)  # the picker needs only the config
    ds = lambda docs: Dataset("x", _frame(docs), None, None, "mem")  # noqa: E731
    picker = FewshotPicker(task, TaskData(ds(evals), ds(pool), "test", cfg["fewshot_split"], "mem"), 3, seed=1234)
    theirs = get_sampler(sampler)(list(pool), rnd=None).set_rnd(1234)
    for i, (_, row) in enumerate(ds(evals).df.iterrows()):
        ours = [r.to_dict() for r in picker.for_row(i, row)]
        want = theirs.sample(n=3, eval_doc=evals[i] if same_split else None)
        assert ours == list(want), (i, ours, want)


def test_app_task_picker_searches_and_respects_trust():
    gr = pytest.importorskip("gradio")
    from workbench.app import lmeval_picker as picker
    from workbench.app.tab_templates import load_lmeval_task

    assert picker.search_tasks("hellas")["choices"][0] == "hellaswag"
    with pytest.raises(gr.Error) as e:            # code is off by default
        load_lmeval_task(None, "hellaswag", False, "", True)
    assert "--trust-task-code" in str(e.value) or "Trust task code" in str(e.value)
    _, text, _ = load_lmeval_task(None, "hellaswag", True, "", True)
    assert "process_docs" in text and "/lm_eval/tasks/" not in text
    _, text, _ = load_lmeval_task(None, "mmlu_anatomy", False, "", True)
    assert text.startswith("name: mmlu_anatomy")


def test_cli_lists_tasks_and_suggests_names(capsys):
    from workbench.cli import main

    assert main(["eval", "--list-tasks", "hellaswag"]) == 0
    assert "hellaswag\ttask" in capsys.readouterr().out
    assert main(["eval", "--task", "helaswag"]) == 1
    err = capsys.readouterr().err
    assert "did you mean hellaswag" in err and "--list-tasks" in err and "Traceback" not in err
