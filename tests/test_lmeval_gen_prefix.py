"""lm-eval's `gen_prefix` (the start of the model's answer) equals lm-eval's own requests
(issue #25). No model: a recording fake session takes the requests the workbench sends for a
task run (`run_task`, the path `workbench eval --task` uses) and they are compared, request by
request, with lm-eval's `ConfigurableTask.build_all_requests` on the same made-up docs:
generation contexts, and (context, continuation) pairs for multiple choice and a
multiple-input task, at 0 and 2 shots, with the prefix as text, as a column name and as Jinja,
overridden in fewshot_config, and with whitespace on either side of the joins."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("lm_eval")

from workbench.core.lmeval_prefix import maybe_delimit, qa_turn  # noqa: E402


def test_qa_turn_rules_by_hand():
    assert qa_turn("Q?", "4", "Answer:", " ", "\n\n") == "Q? Answer: 4\n\n"
    assert qa_turn("Q?\n", "4", "Answer:", " ", "\n\n") == "Q?\nAnswer: 4\n\n"     # whitespace: no delimiter
    assert qa_turn("Q?", "4", "Answer: ", " ", "\n") == "Q? Answer: 4\n"           # prefix ends in a space
    assert qa_turn("Q?", None, "Answer:", " ", "") == "Q? Answer:"                 # the eval doc ends with it
    assert qa_turn("Q?", None, None, " ", "") == "Q?"
    assert qa_turn("Q?", "4", None, " ", "\n\n") == "Q? 4\n\n"
    assert qa_turn("Q?", "", "A:", " ", "\n\n") == "Q? A:"                         # no answer: no delimiter after
    assert maybe_delimit("", "x") == "x" and maybe_delimit("p", "") == "p" and maybe_delimit("p", " x") == "p x"


def _recorder():
    from support.fakes import FakeSession

    seen: dict[str, list] = {"ll": [], "gen": []}

    def lp(ctx, cont):
        seen["ll"].append((ctx, cont))
        return -float(len(cont))

    def gen(prompt):
        seen["gen"].append(prompt)
        return " A"

    return FakeSession("fake", logprob_fn=lp, generate_fn=gen, encode_fn=list), seen


def _theirs(cfg: dict, k: int) -> list:
    from lm_eval.api.task import ConfigurableTask

    task = ConfigurableTask(config={**cfg, "num_fewshot": k})
    task.set_fewshot_seed(1234)     # what lm-eval's evaluator does (its default fewshot seed)
    task.build_all_requests(rank=0, world_size=1)
    return [i.arguments for i in sorted(task.instances, key=lambda i: (i.doc_id, i.idx))]


def _ours(cfg: dict, k: int, path: Path | None = None, *, trust: bool = False) -> tuple[list, object]:
    from workbench.core.lmeval_yaml import installed_tasks_dir
    from workbench.storage.lmeval_library import task_from_config
    from workbench.jobs.lmeval_run import run_task

    task = task_from_config(cfg, path, trust_code=trust, code_roots=[installed_tasks_dir()])
    session, seen = _recorder()
    run_task(task, session, num_fewshot=k)
    if task.output_type == "generate_until":
        return [(p,) for p in seen["gen"]], task
    return list(seen["ll"]), task


def _write(tmp_path: Path, docs: list[dict]) -> dict:
    f = tmp_path / "docs.jsonl"
    f.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return {"dataset_path": "json", "dataset_name": None,
            "dataset_kwargs": {"data_files": {"test": str(f), "train": str(f)}},
            "test_split": "test", "fewshot_split": "train"}


DOCS = [{"q": f"What is {i} + {i}?", "choices": [str(2 * i), str(2 * i + 1), "none"], "answer": i % 3,
         "pre": "Answer:" if i % 2 else "So the answer is ", "nl": "\n" if i % 2 else ""} for i in range(5)]


def _compare(cfg: dict, k: int, **kw):
    theirs = _theirs(cfg, k)
    ours, task = _ours(cfg, k, **kw)
    theirs_flat = [(a[0],) if task.output_type == "generate_until" else (a[0], a[1]) for a in theirs]
    assert len(ours) == len(theirs_flat) > 0
    for o, t in zip(ours, theirs_flat):
        assert o == t, (k, o, t)
    return ours


@pytest.mark.parametrize("k", [0, 2])
@pytest.mark.parametrize("prefix", ["Answer:", "Answer: ", "pre", "{{ pre }}", "{{ nl }}Final answer"])
def test_generate_until_gen_prefix_equals_lm_eval(tmp_path, k, prefix):
    cfg = {"task": "gp_gen", "output_type": "generate_until", **_write(tmp_path, DOCS),
           "doc_to_text": "Question: {{ q }}{{ nl }}", "doc_to_target": "{{ choices[answer] }}", "gen_prefix": prefix,
           "fewshot_config": {"sampler": "first_n"}, "generation_kwargs": {"until": ["\n"], "max_gen_toks": 4},
           "metric_list": [{"metric": "exact_match"}]}
    ours = _compare(cfg, k)
    if prefix == "Answer:":
        assert ours[0][0].endswith("What is 0 + 0? Answer:")


@pytest.mark.parametrize("k", [0, 2])
def test_multiple_choice_gen_prefix_and_fewshot_override_equal_lm_eval(tmp_path, k):
    base = {"task": "gp_mc", "output_type": "multiple_choice", **_write(tmp_path, DOCS),
            "doc_to_text": "{{ q }}{{ nl }}", "doc_to_choice": "choices", "doc_to_target": "answer",
            "description": "Arithmetic.\n\n", "fewshot_config": {"sampler": "default"}}
    _compare({**base, "gen_prefix": "The answer is"}, k)
    _compare({**base, "gen_prefix": "pre"}, k)
    # demonstrations with their own prefix (lm-eval's FewshotConfig.gen_prefix), the eval doc with the task's
    _compare({**base, "gen_prefix": "A:", "fewshot_config": {"sampler": "first_n", "gen_prefix": "Answer:"}}, k)
    # a prefix on the demonstrations only
    _compare({**base, "fewshot_config": {"sampler": "first_n", "gen_prefix": "{{ pre }}"}}, k)


@pytest.mark.parametrize("k", [0, 2])
def test_multiple_input_gen_prefix_equals_lm_eval(tmp_path, k):
    """winogrande (its own task code: doc_to_text gives a choice index) with a gen_prefix:
    every option is its own context, each ending with the prefix, all scoring one
    continuation."""
    from workbench.storage.lmeval_library import TaskLibrary

    docs = [{"sentence": f"Tom gave _ the book {i}.", "option1": "Ann", "option2": "Bob", "answer": str(1 + i % 2)}
            for i in range(4)]
    cfg, path = TaskLibrary().config("winogrande")
    cfg = {**cfg, **_write(tmp_path, docs), "gen_prefix": "Completion:", "fewshot_config": {"sampler": "first_n"},
           "task": "gp_wino"}
    theirs = _theirs(_with_functions(cfg), k)
    ours, _ = _ours(cfg, k, path, trust=True)
    assert [(a[0], a[1]) for a in theirs] == ours
    assert ours[0] == (ours[0][0], " the book 0.") and ours[0][0].endswith("Tom gave AnnCompletion:")


def _with_functions(cfg: dict) -> dict:
    """Our config, with lm-eval's own callables where it names task code."""
    from workbench.core.lmeval_yaml import installed_tasks_dir
    from workbench.storage.lmeval_code import resolve_function
    from workbench.core.lmeval_yaml import FunctionRef

    return {k: (resolve_function(v, [installed_tasks_dir()]) if isinstance(v, FunctionRef) else v) for k, v in cfg.items()}


@pytest.mark.parametrize("k", [0, 2])
def test_installed_llama_mmlu_task_with_gen_prefix_equals_lm_eval(tmp_path, k):
    """An installed gen_prefix task (llama3 instruct MMLU: 'The best answer is'), opened by
    name, on made-up docs in MMLU's field shape."""
    from workbench.storage.lmeval_library import TaskLibrary

    docs = [{"question": f" Which bone is number {i}? ", "subject": "anatomy",
             "choices": [f"bone {i}a", f"bone {i}b", f"bone {i}c", f"bone {i}d"], "answer": i % 4} for i in range(4)]
    cfg, path = TaskLibrary().config("mmlu_llama_anatomy")
    cfg = {k2: v for k2, v in cfg.items() if k2 != "tag"}
    w = _write(tmp_path, docs)
    w["dataset_kwargs"]["data_files"]["dev"] = w["dataset_kwargs"]["data_files"].pop("train")
    cfg.update({k2: v for k2, v in w.items() if k2 != "fewshot_split"})
    ours = _compare(cfg, k)
    assert ours[-1][0].endswith("one of A, B, C or D. The best answer is")
