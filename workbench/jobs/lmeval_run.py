"""Run lm-eval tasks by name: one task, or a group's tasks plus lm-eval's aggregate.

    lib = TaskLibrary(include_paths=[...])
    out = run_tasks(lib, "hellaswag", session, trust_code=True, data="hs_local/", limit=20)
    out.results["hellaswag"].metrics["acc"], out.groups

Each task is scored through `workbench.jobs.inference.evaluate` (the same scoring as every
other door), on the task's own rows (lm-eval's eval split, process_docs applied) with the
task's few-shot draw (`FewshotPicker`: num_fewshot, fewshot_split, sampler first_n/default,
description), so predictions equal `lm_eval --tasks NAME` on the same data and model.
Multiple-choice tasks report lm-eval's `acc` and `acc_norm` next to the workbench metrics;
a trusted `process_results` adds the task's own metrics (mean over rows).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from workbench.core.config import EvalConfig
from workbench.core.lmeval_tasks import FewshotPicker, LmEvalTask, to_doc
from workbench.core.options import FEWSHOT_SEED  # lm-eval's default few-shot seed (the 4th value of `lm_eval --seed`)
from workbench.storage.lmeval_data import task_data
from workbench.storage.lmeval_library import TaskLibrary
from workbench.errors import ConfigError


@dataclass
class TaskRun:
    results: dict = field(default_factory=dict)     # task name -> EvalResult
    groups: dict = field(default_factory=dict)      # group name -> {metric: value, "n": rows}
    order: list = field(default_factory=list)


def lm_eval_metrics(task: LmEvalTask, result, rows) -> dict:
    """lm-eval's per-task numbers from our records: acc / acc_norm (multiple choice) and the
    means of a trusted process_results."""
    out: dict[str, Any] = {}
    recs = result.records
    if result.task == "classification" and recs:
        acc = acc_norm = 0
        for r in recs:
            labels = list(r["logprobs"])
            lls = [r["logprobs"][lab] for lab in labels]
            gold = labels.index(r["gold"]) if r["gold"] in labels else -1
            best = max(range(len(lls)), key=lambda i: (lls[i], -i))
            best_n = max(range(len(lls)), key=lambda i: (lls[i] / max(1, len(labels[i])), -i))
            acc += best == gold
            acc_norm += best_n == gold
        out["acc"], out["acc_norm"] = acc / len(recs), acc_norm / len(recs)
    if task.process_results is not None and recs:
        sums: dict[str, float] = {}
        for (_, row), r in zip(rows.iterrows(), recs):
            if result.task == "classification":
                res = [(r["logprobs"][lab], False) for lab in r["logprobs"]]
            else:
                res = [r.get("output", r["pred"])]
            try:
                vals = task.process_results(to_doc(row), res) or {}
            except (Exception, SystemExit) as e:  # noqa: BLE001 - the task's own code
                out["process_results_error"] = f"{type(e).__name__}: {e}"
                break
            for k, v in vals.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) or isinstance(v, bool):
                    sums[k] = sums.get(k, 0.0) + float(v)
        else:
            out.update({k: v / len(recs) for k, v in sums.items()})
    return out


def run_task(task: LmEvalTask, session, *, data=None, num_fewshot: int | None = None, limit: int | None = None,
             method: str = "acc", fewshot_seed: int = FEWSHOT_SEED, progress: Callable | None = None,
             cancel: Callable | None = None, template=None, max_length: int | None = None):
    """One task on its own rows; `session` is a ModelSession or a function returning one.
    `template`: score a user's template on the task's rows instead of the task's own prompt
    (the task's output type, filters and metrics stay)."""
    from workbench.jobs.inference import evaluate

    if task.task_class is not None:     # a Python class task: its own requests and metrics
        from workbench.jobs.lmeval_class import run_class_task

        return run_class_task(task, session, data=data, num_fewshot=num_fewshot, limit=limit, fewshot_seed=fewshot_seed,
                              progress=progress, cancel=cancel, max_length=max_length, template=template)
    k = task.num_fewshot if num_fewshot is None else int(num_fewshot)
    if k < 0:
        raise ConfigError(f"num_fewshot must be >= 0, got {k}")
    overrides = [key for key in ("fewshot_indices", "process_docs") if task.fewshot_config.get(key) is not None]
    if k > 0 and overrides:
        raise ConfigError(f"task {task.name!r} formats its few-shot examples differently (fewshot_config: "
                          f"{', '.join(overrides)}), which the workbench does not reproduce yet",
                          "run it zero-shot (--num-fewshot 0), or with lm_eval itself")
    td = task_data(task, data, num_fewshot=k, limit=limit)
    tpl = template if template is not None else task.template
    rows = td.eval.df
    multi = template is None and hasattr(tpl, "is_multiple_input") and tpl.is_multiple_input(rows.iloc[0])
    outputs = multi or task.output_type != "multiple_choice" or bool(task.config.get("filter_list")) \
        or not set(task.metric_names()) <= {"acc", "acc_norm"}
    if outputs and method != "acc":
        raise ConfigError(f"--method {method} applies to multiple-choice tasks scored by acc / acc_norm, "
                          f"not to task {task.name!r} ({task.output_type})", "leave --method out")
    if callable(session) and not hasattr(session, "loglikelihood"):
        session = session()  # a factory: the model loads only once the rows are there
    picker = FewshotPicker(task, td, k, seed=fewshot_seed) if k > 0 else None
    cfg = EvalConfig(shots=k, split="all", method=method, seed=fewshot_seed)
    pool = td.fewshot.df if td.fewshot is not None else rows
    demos_fn = picker.for_row if picker else (lambda i, r: [])
    if outputs:
        from workbench.jobs.inference import build_prompts
        from workbench.jobs.lmeval_outputs import run_outputs

        if multi:
            contexts = [tpl.multi_contexts(row, demos_fn(i, row)) for i, row in rows.iterrows()]
        elif task.output_type == "loglikelihood_rolling":
            contexts = [""] * len(rows)      # the whole text is scored; there is no prompt
        else:
            contexts = build_prompts(tpl, rows, pool, cfg, session, demos_fn=demos_fn)
        result = run_outputs(task, tpl, rows, contexts, session, max_length=max_length, seed=fewshot_seed,
                             progress=progress, cancel=cancel, source=td.source)
        result.provenance["data"]["split"] = td.eval_split
    else:
        result = evaluate(tpl, td.eval, session, cfg, rows=rows, pool=pool, demos_fn=demos_fn,
                          progress=progress, cancel=cancel)
        result.metrics.update(lm_eval_metrics(task, result, rows))
    result.provenance["data"]["split"] = td.eval_split
    result.provenance["lm_eval"] = {"task": task.name, "path": str(task.path) if task.path else None,
                                    "eval_split": td.eval_split, "fewshot_split": td.fewshot_split,
                                    "num_fewshot": k, "sampler": task.sampler if k else None,
                                    "fewshot_seed": fewshot_seed if k and task.sampler == "default" else None,
                                    "data": td.source, "functions": getattr(task.template, "function_names", {})}
    return result


def group_aggregate(entry, results: dict) -> dict:
    """lm-eval's group numbers: for each aggregate_metric_list entry, the mean of the tasks'
    metric, weighted by their row counts when weight_by_size (lm-eval's default: true)."""
    out: dict[str, Any] = {}
    for a in entry.aggregate:
        m = str(a.get("metric"))
        if a.get("aggregation", "mean") != "mean":
            continue
        pairs = [(r.metrics[m], r.metrics.get("n", len(r.records))) for r in results.values() if m in r.metrics]
        if not pairs:
            continue
        if a.get("weight_by_size", True):
            tot = sum(n for _, n in pairs)
            out[m] = sum(v * n for v, n in pairs) / tot if tot else math.nan
        else:
            out[m] = sum(v for v, _ in pairs) / len(pairs)
    out["n"] = sum(r.metrics.get("n", len(r.records)) for r in results.values())
    out["tasks"] = len(results)
    return out


def run_tasks(lib: TaskLibrary, name: str, session, *, trust_code: bool = False, on_task: Callable | None = None,
              **kw) -> TaskRun:
    """Every task `name` expands to (one task, a group or a tag; comma-separated names as
    `lm_eval --tasks a,b`), then the groups' aggregates."""
    run = TaskRun()
    names = [n.strip() for n in name.split(",") if n.strip()]
    members = [m for n in names for m in lib.expand(n)]
    if callable(session) and not hasattr(session, "loglikelihood"):
        factory, cache = session, []

        def session():  # noqa: F811 - load once, on first use
            if not cache:
                cache.append(factory())
            return cache[0]
    for m in members:
        task = lib.load(m, trust_code=trust_code)
        if task.name in run.results:
            continue
        run.results[task.name] = run_task(task, session, **kw)
        run.order.append(task.name)
        if on_task:
            on_task(task.name, run.results[task.name])
    for n in names:
        for g in lib.groups_of(n):
            if g.aggregate:
                mine = [t if isinstance(t, str) else t.get("task") for t in lib.expand(n)]
                run.groups[g.name] = group_aggregate(g, {t: run.results[t] for t in mine if t in run.results})
    return run
