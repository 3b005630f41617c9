"""lm-evaluation-harness's tasks in the workbench: what a task is once resolved (LmEvalTask),
its rows (TaskData) and its few-shot draw (FewshotPicker). Pure: no file, hub or task-code
access here. Resolving a task by name, importing its code and loading its data are
storage's (#23: core does no I/O):

    from workbench.storage.lmeval_library import TaskLibrary     # names, groups, task code
    from workbench.storage.lmeval_data import task_data          # its rows
    lib = TaskLibrary(include_paths=["~/my_tasks"])              # + the installed lm_eval/tasks
    lib.expand("mmlu")                                           # group/tag -> leaf task names
    task = lib.load("hellaswag", trust_code=True)                # LmEvalTask: .template, .config
    data = task_data(task, data=None)                            # eval split + few-shot pool
    demos = FewshotPicker(task, data).for_row                    # lm-eval's sampler (first_n / default)

Trust. `!function module.name` in a task YAML names Python code in the task's folder. It runs
only when the user asked (`--trust-task-code`, the app's checkbox for server folders) *and*
the YAML and the module both lie under the installed lm-eval tasks folder or a folder the
user named with `--include-path` (storage/lmeval_code.py). A task defined by a Python class
(`class: !function task.Name`, lm-eval's ConfigurableTask subclass) keeps that class in
`task_class`; jobs/lmeval_class.py runs it through the class's own requests and metrics.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.core.lmeval_template import LmEvalTemplate, to_doc
from workbench.core.templates import PromptTemplate
from workbench.errors import DataError, TemplateError

__all__ = ["SUPPORTED_OUTPUT_TYPES", "TRUST_HINT", "LmEvalTemplate", "LmEvalTask", "Entry", "TaskData",
           "FewshotPicker", "frame_docs", "to_doc"]

SUPPORTED_OUTPUT_TYPES = ("multiple_choice", "loglikelihood", "loglikelihood_rolling", "generate_until")
TRUST_HINT = ("pass --trust-task-code (CLI) or tick “Trust task code” (app, server folders only); code runs only "
              "from the installed lm-eval tasks folder or a folder named with --include-path")


@dataclass
class LmEvalTask:
    name: str
    path: Path | None
    config: dict                      # includes merged; FunctionRefs resolved when trusted
    template: PromptTemplate
    process_docs: Callable | None = None
    process_results: Callable | None = None
    code: dict = field(default_factory=dict, repr=False)   # config with trusted !functions as callables
    # A Python class task (`class: !function module.Name`): lm-eval's ConfigurableTask subclass,
    # imported under trust. Its own code builds the requests and scores them (jobs/lmeval_class.py).
    task_class: Any = field(default=None, repr=False)

    @property
    def output_type(self) -> str:
        return str(self.config.get("output_type", "generate_until"))

    @property
    def repeats(self) -> int:
        return int(self.config.get("repeats") or 1)

    @property
    def target_delimiter(self) -> str:
        v = self.config.get("target_delimiter", " ")
        return " " if v is None else str(v)

    @property
    def generation_kwargs(self) -> dict:
        """lm-eval's defaults: until the fewshot delimiter, greedy."""
        gk = self.config.get("generation_kwargs")
        if gk is None:
            fd = self.config.get("fewshot_delimiter", "\n\n")
            return {"until": None if fd is None else [fd], "do_sample": False, "temperature": 0}
        return dict(gk)

    def doc_target(self, row: Mapping) -> Any:
        """lm-eval's doc_to_target value (an int, a list for multiple targets, else text)."""
        spec = self.config.get("doc_to_target")
        doc = to_doc(row)
        if "doc_to_target" in getattr(self.template, "functions", {}):
            return self.template._call("doc_to_target", row)
        if isinstance(spec, (int, list)) and not isinstance(spec, bool):
            return spec
        if isinstance(spec, str) and spec in doc:
            return doc[spec]
        if spec is None:
            return ""
        from workbench.core.templates import lm_field_to_jinja

        # the task's own doc_to_target, not the template's (which maps indices to choice texts)
        text = self.template._render("target", lm_field_to_jinja(spec), row)
        if text.isdigit() and self.config.get("doc_to_choice") is not None:
            return int(text)
        if len(text) >= 2 and text[0] == "[" and text[-1] == "]":
            import ast
            try:
                return ast.literal_eval(text)
            except (SyntaxError, ValueError):
                return text
        return text

    def doc_choices(self, row: Mapping) -> list[str]:
        return self.template._row_choices(row) if self.config.get("doc_to_choice") is not None else []

    @property
    def num_fewshot(self) -> int:
        return int(self.config.get("num_fewshot") or 0)

    @property
    def fewshot_config(self) -> dict:
        fc = self.config.get("fewshot_config") or {}
        return dict(fc) if isinstance(fc, Mapping) else {}

    @property
    def sampler(self) -> str:
        return str(self.fewshot_config.get("sampler") or "default")

    @property
    def eval_split(self) -> str | None:
        return self.config.get("test_split") or self.config.get("validation_split")

    @property
    def fewshot_split(self) -> str | None:
        """lm-eval's fewshot_docs: fewshot_split, else training, else validation, else test."""
        c = self.config
        return (self.fewshot_config.get("split") or c.get("fewshot_split") or c.get("training_split")
                or c.get("validation_split") or c.get("test_split"))

    def metric_names(self) -> list[str]:
        ml = self.config.get("metric_list")
        if not ml:
            return ["acc", "acc_norm"] if self.template.task == "classification" else ["exact_match"]
        return [str(m.get("metric")) for m in ml if isinstance(m, Mapping) and isinstance(m.get("metric"), str)]


@dataclass
class Entry:
    name: str
    kind: str                          # "task" | "group" | "tag" | "python"
    path: Path | None
    members: list = field(default_factory=list)    # group: names or inline dicts; tag: task names
    aggregate: list = field(default_factory=list)  # group: aggregate_metric_list


@dataclass
class TaskData:
    eval: Any            # workbench.core.data.Dataset: the rows lm-eval scores, in its order
    fewshot: Any | None  # the few-shot pool (None when num_fewshot is 0 and nothing else needs it)
    eval_split: str
    fewshot_split: str | None
    source: str


def frame_docs(docs: list[dict]):
    """Docs as a DataFrame of object columns: every cell keeps the exact Python value
    (ints stay ints, lists stay lists), so functions and Jinja see lm-eval's docs."""
    import pandas as pd

    cols: list[str] = []
    for d in docs:
        for k in d:
            if k not in cols:
                cols.append(k)
    return pd.DataFrame({c: pd.Series([d.get(c) for d in docs], dtype=object) for c in cols})


class FewshotPicker:
    """lm-eval's few-shot draw for each eval doc, in doc order.

    first_n: the pool's first n docs (minus the eval doc itself when the pool is the eval
    split). default: random.Random(seed).sample(pool, n) per doc, one generator for the
    whole run (lm-eval seeds it with 1234), n+1 drawn and the eval doc removed when the pool
    is the eval split."""

    def __init__(self, task: LmEvalTask, data: TaskData, n: int, seed: int = 1234):
        self.n = n
        self.sampler = task.sampler
        if self.sampler not in ("default", "first_n"):
            raise TemplateError(f"task {task.name!r}: few-shot sampler {self.sampler!r} is not supported",
                                "lm-eval's samplers here: first_n, default")
        self.pool_df = data.fewshot.df if data.fewshot is not None else None
        self.pool = [r for _, r in self.pool_df.iterrows()] if self.pool_df is not None else []
        self.pool_docs = [to_doc(r) for r in self.pool]
        # lm-eval removes the eval doc from its draw when fewshot_config.split == test_split
        self.same_split = (task.fewshot_config.get("split") or task.config.get("fewshot_split")) == task.config.get("test_split")
        self.rnd = random.Random(seed)
        self._cache: dict[Any, list] = {}

    def for_row(self, idx, row) -> list:
        if self.n <= 0:
            return []
        if idx in self._cache:
            return self._cache[idx]
        doc = to_doc(row)
        ex = doc if self.same_split else None
        if self.sampler == "first_n":
            items = [(r, d) for r, d in zip(self.pool, self.pool_docs) if ex is None or d != ex]
            if self.n > len(items):
                raise DataError(f"{self.n} few-shot examples requested, the pool has {len(items)}", "lower --num-fewshot")
            out = [r for r, _ in items[: self.n]]
        else:
            idxs = list(range(len(self.pool)))
            if ex is None:
                pick = self.rnd.sample(idxs, self.n)
            else:
                pick = [i for i in self.rnd.sample(idxs, self.n + 1) if self.pool_docs[i] != ex][: self.n]
                if len(pick) < self.n:
                    pick = self.rnd.sample([i for i in idxs if self.pool_docs[i] != ex], self.n)
            out = [self.pool[i] for i in pick]
        self._cache[idx] = out
        return out


_frame = frame_docs   # the old private name, for callers on other branches (#23: one stop)
