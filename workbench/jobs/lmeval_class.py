"""lm-eval tasks defined by a Python class (`class: !function task.Name`), run as lm-eval runs
them, with the workbench engine as the model.

    result = run_class_task(task, session, data="swde_local/", limit=20)    # EvalResult

The task's own class (lm-eval's ConfigurableTask subclass, imported under --trust-task-code by
storage/lmeval_code.py) is instantiated on the rows of --data: a subclass whose only change is
`download`, which sets `self.dataset` to those rows instead of fetching the dataset (without
--data the class's own download runs). Then everything is the class's code, in lm-eval's
evaluator order (lm_eval/evaluator.py `evaluate`):
  1. build_all_requests: its fewshot_context (doc_to_text, description, few-shot sampler with
     lm-eval's seed 1234) and construct_requests (Instances of any request type);
  2. the engine serves the requests: loglikelihood (context, continuation) -> (log-prob,
     greedy) through the prefix tree; loglikelihood_rolling over lm-eval's token windows;
     generate_until with each request's own until / max_gen_toks / do_sample (repeats: K
     generations per request, as lm-eval clones requests);
  3. apply_filters (the class's filter pipelines), then per filter and doc its process_results,
     then its aggregation() over the docs (lm-eval's `mean` for a metric it does not name) and
     higher_is_better().
Metrics are reported as "metric,filter" (lm-eval's keys) and under the bare name for the
"none" filter; per-doc items are kept in the records for paired verdicts.
"""
from __future__ import annotations

import inspect
import math
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from workbench.core.lmeval_tasks import LmEvalTask
from workbench.core.options import FEWSHOT_SEED
from workbench.errors import ConfigError, DataError, TemplateError
from workbench.jobs.lmeval_outputs import jsonable, generate_texts, rolling_logliks

REQUEST_TYPES = ("loglikelihood", "loglikelihood_rolling", "generate_until")


def _instantiate(task: LmEvalTask, dataset):
    """The task's class, built as lm-eval's TaskFactory builds it, with its data download
    replaced by `dataset` (a datasets.DatasetDict) when one is given."""
    cls = task.task_class
    if dataset is not None:
        def download(self, *args, **kwargs):  # noqa: ARG001 - the class's own signature varies
            self.dataset = dataset
        cls = type(cls.__name__, (cls,), {"download": download, "__module__": cls.__module__,
                                          "__doc__": cls.__doc__})
    cfg = {k: v for k, v in (task.code or task.config).items() if k not in ("tag", "group", "task_list")}
    init = getattr(cls, "__init__", None)
    try:
        takes_config = bool(init and "config" in inspect.signature(init).parameters)
        obj = cls(config=cfg) if takes_config else cls()
    except (Exception, SystemExit) as e:  # noqa: BLE001 - the task's own code on these rows
        raise DataError(f"task {task.name!r}: its class {task.task_class.__name__} failed to start on the data: "
                        f"{type(e).__name__}: {str(e)[:300]}",
                        "check that --data has the task's splits (e.g. validation.jsonl) and columns") from e
    if hasattr(obj, "config") and hasattr(obj.config, "task"):
        obj.config.task = task.name
    return obj


def _serve(instances, session, *, max_length, seed, progress, cancel) -> None:
    """Fill each Instance's `resps` (a list of `repeats` responses), as lm-eval's LM would."""
    by_type: dict[str, list] = defaultdict(list)
    for inst in instances:
        if inst.request_type not in REQUEST_TYPES:
            raise TemplateError(f"request type {inst.request_type!r} is not one the workbench serves",
                                f"the workbench serves {', '.join(REQUEST_TYPES)}")
        by_type[inst.request_type].append(inst)
    lls = by_type.get("loglikelihood", [])
    if lls:
        out = session.loglikelihood([(str(i.args[0]), str(i.args[1])) for i in lls], progress=progress, cancel=cancel)
        for inst, r in zip(lls, out):
            inst.resps = [(float(r.logprob), bool(getattr(r, "greedy", False)))] * max(1, inst.repeats)
    rolls = by_type.get("loglikelihood_rolling", [])
    if rolls:
        sums = rolling_logliks([str(i.args[0]) for i in rolls], session, max_length, progress, cancel)
        for inst, v in zip(rolls, sums):
            inst.resps = [v] * max(1, inst.repeats)
    gens = by_type.get("generate_until", [])
    # Requests may carry different generation settings: each group of equal settings is one batch.
    groups: dict[str, list] = defaultdict(list)
    for inst in gens:
        groups[repr(sorted((inst.args[1] or {}).items(), key=lambda kv: kv[0]))].append(inst)
    for members in groups.values():
        gk = dict(members[0].args[1] or {})
        texts = generate_texts(gk, max(1, members[0].repeats), [str(i.args[0]) for i in members], session,
                               progress=progress, cancel=cancel, seed=seed, where="the class task")
        for inst, t in zip(members, texts):
            inst.resps = list(t)


def _aggregate(obj, raw: dict[tuple[str, str], list]) -> dict[str, Any]:
    from lm_eval.api.metrics import mean

    aggs = obj.aggregation() or {}
    out: dict[str, Any] = {}
    for (metric, filt), items in raw.items():
        fn = aggs.get(metric, mean)      # lm-eval's fallback for a metric without an aggregation
        try:
            v = fn(items)
        except (Exception, SystemExit) as e:  # noqa: BLE001 - the task's own aggregation
            raise TemplateError(f"the task's aggregation of {metric!r} failed: {type(e).__name__}: {str(e)[:300]}",
                                "check the data against the task") from e
        v = v.item() if hasattr(v, "item") else v
        out[f"{metric},{filt}"] = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
        if filt == "none":
            out[metric] = out[f"{metric},{filt}"]
    return out


def _row_value(item: Any) -> float:
    if isinstance(item, (bool, int, float)):
        return float(item)
    if hasattr(item, "item"):
        try:
            return float(item.item())
        except (TypeError, ValueError):
            return math.nan
    return math.nan


def run_class_task(task: LmEvalTask, session, *, data=None, num_fewshot: int | None = None, limit: int | None = None,
                   fewshot_seed: int = FEWSHOT_SEED, progress: Callable | None = None, cancel: Callable | None = None,
                   max_length: int | None = None, template=None):
    """Score a Python class task on `session` (a ModelSession, or a function returning one);
    an EvalResult with lm-eval's metrics, per-doc records and provenance."""
    from workbench.engine.versions import package_versions
    from workbench.jobs.inference import EvalResult
    from workbench.storage.lmeval_data import local_splits

    if task.task_class is None:
        raise ConfigError(f"task {task.name!r} is not a Python class task")
    if template is not None:
        raise ConfigError(f"task {task.name!r} is a Python class ({task.task_class.__name__}): its prompt is its "
                          "class's code, so a template cannot stand in for it",
                          "compare models on it (--model A --model B), or leave the template out")
    if num_fewshot is not None and int(num_fewshot) < 0:
        raise ConfigError(f"num_fewshot must be >= 0, got {num_fewshot}")
    t0 = time.perf_counter()
    dataset, source = local_splits(data) if data is not None else (None, "the class's own download")
    obj = _instantiate(task, dataset)
    if num_fewshot is not None:
        obj.set_config(key="num_fewshot", value=int(num_fewshot))
    obj.set_fewshot_seed(seed=fewshot_seed)
    try:
        obj.build_all_requests(limit=int(limit) if limit else None, rank=0, world_size=1)
    except (Exception, SystemExit) as e:  # noqa: BLE001 - the class's own prompt code on these docs
        raise DataError(f"task {task.name!r}: building its requests failed: {type(e).__name__}: {str(e)[:300]}",
                        "check that --data has the columns of the task's dataset") from e
    if callable(session) and not hasattr(session, "loglikelihood"):
        session = session()      # the model loads only once the requests are built
    session.load()
    t_load = time.perf_counter()
    instances = obj.instances
    _serve(instances, session, max_length=max_length, seed=fewshot_seed, progress=progress, cancel=cancel)
    obj.apply_filters()
    by_doc: dict[int, list] = defaultdict(list)
    for inst in instances:
        by_doc[inst.doc_id].append(inst)
    for reqs in by_doc.values():
        reqs.sort(key=lambda x: x.idx)
    filters = list(instances[0].filtered_resps)
    docs = list(obj.doc_iterator(rank=0, limit=int(limit) if limit else None, world_size=1))
    raw: dict[tuple[str, str], list] = defaultdict(list)
    records = []
    for doc_id, doc in docs:
        reqs = by_doc[doc_id]
        ctxs = [r.args[0] for r in reqs]
        rec: dict[str, Any] = {"index": doc_id, "prompt": ctxs[0] if len(set(ctxs)) == 1 else ctxs,
                               "arguments": jsonable([list(r.args) for r in reqs]),
                               "resps": jsonable([r.resps for r in reqs]), "filtered": {}, "items": {}, "scores": {}}
        try:
            rec["gold"] = jsonable(obj.doc_to_target(doc))
        except (Exception, SystemExit):  # noqa: BLE001 - a target is for the record only
            rec["gold"] = None
        for f in filters:
            filtered = [r.filtered_resps[f] for r in reqs]
            try:
                items = obj.process_results(doc, filtered) or {}
            except (Exception, SystemExit) as e:  # noqa: BLE001 - the task's own code
                raise TemplateError(f"task {task.name!r}: process_results failed on doc {doc_id}: "
                                    f"{type(e).__name__}: {str(e)[:300]}", "check that the data has the task's columns") from e
            rec["filtered"][f] = jsonable(filtered if len(filtered) > 1 else filtered[0])
            for m, v in items.items():
                raw[(m, f)].append(v)
                rec["items"][f"{m},{f}"] = jsonable(v)
                rec["scores"][f"{m},{f}"] = _row_value(v)
        first = rec["filtered"].get(filters[0]) if filters else None
        rec["pred"] = first if isinstance(first, str) else str(first)
        records.append(rec)
    metrics: dict[str, Any] = {"n": len(records), **_aggregate(obj, raw)}
    hib = obj.higher_is_better() or {}
    t_end = time.perf_counter()
    types = sorted({i.request_type for i in instances})
    provenance = {
        "template": {"name": task.name, "hash": task.template.content_hash(), "yaml": task.template.to_yaml()},
        "model": {"name": session.config.model, "identity": session.identity, "adapter": session.adapter,
                  "device": session.device, "dtype": str(session.dtype).replace("torch.", ""),
                  "backend": session.backend, "model_identity": session.model_identity()},
        "data": {"name": task.name, "source": source, "n_examples": len(records)},
        "warnings": [],
        "lm_eval_output": {"output_type": "python class", "request_types": types, "filters": filters,
                           "class": f"{task.task_class.__module__}.{task.task_class.__name__}",
                           "metrics": {m: {"higher_is_better": bool(hib.get(m, True))} for m, _ in raw},
                           "num_fewshot": obj.config.num_fewshot or 0},
        "versions": package_versions(),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    timings = {"total_s": round(t_end - t0, 3), "load_s": round(t_load - t0, 3), "model_s": round(t_end - t_load, 3),
               "examples_per_s": round(len(records) / max(1e-9, t_end - t_load), 2)}
    # "generation": records hold lm-eval's responses and items, not one log-prob per label
    return EvalResult(task="generation", metrics=metrics, records=records, provenance=provenance, timings=timings)
