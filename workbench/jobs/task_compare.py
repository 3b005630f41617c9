"""Compare models and/or templates on an lm-eval task's rows with a paired verdict per metric.

    spec = task_compare_spec("gsm8k", models=["default", "openai:http://h/v1"], trust_code=True, data="gsm/")
    res = execute(spec, None)                # runner -> run_task_compare; res.summary()

The spec is an ordinary "compare" RunSpec (build_spec) whose options name the task; its first
template is the task's own prompt (re-resolved from the task by name when it runs, so its
task code is loaded under the same trust rules), any others are the user's templates scored
on the task's rows with the task's output type, filters and metrics. Every arm (model x
template) scores the same rows; the first arm is the baseline and every other is compared
with it on every "metric,filter" key (core/task_verdicts.py: McNemar for binary per-row
metrics, paired bootstrap of the aggregated / corpus statistic otherwise).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from workbench.core.options import ALPHA, FEWSHOT_SEED, TASK_N_BOOT


@dataclass
class TaskComparison:
    task: str
    arms: list                       # [{"name", "model", "template", "metrics"}]
    verdicts: dict                   # "armB vs armA" -> {metric key: verdict}
    settings: dict = field(default_factory=dict)
    run_id: str | None = None
    records: dict = field(default_factory=dict, repr=False)   # arm name -> records

    def summary(self) -> str:
        lines = [f"lm-eval task {self.task}: {len(self.arms)} arms on {self.settings.get('n', '?')} rows"]
        keys = sorted({k for a in self.arms for k, v in a["metrics"].items() if "," in k and isinstance(v, float)})
        width = max(len(a["name"]) for a in self.arms)
        lines.append(f"{'arm':<{width}}  " + "  ".join(f"{k:>24}" for k in keys))
        for a in self.arms:
            lines.append(f"{a['name']:<{width}}  " + "  ".join(f"{a['metrics'].get(k, float('nan')):>24.4f}" for k in keys))
        for pair, vs in self.verdicts.items():
            lines.append(f"\n{pair}:")
            for key, v in vs.items():
                lines.append(f"  {key:<28} {v['test']:<44} delta {v['delta']:+.4f} "
                             f"[{v['ci_low']:+.4f}, {v['ci_high']:+.4f}]  {v['words']}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return asdict(self)


def task_compare_spec(task: str, *, models=("default",), templates=(), trust_code: bool = False,
                      include_paths=(), data: str | None = None, num_fewshot: int | None = None,
                      limit: int | None = None, fewshot_seed: int = FEWSHOT_SEED, n_boot: int = TASK_N_BOOT, alpha: float = ALPHA,
                      name: str | None = None):
    """The RunSpec of a task comparison. Resolving the task here refuses what cannot run
    (untrusted code, unsupported features) before any data or model loads."""
    from workbench.storage.lmeval_library import TaskLibrary
    from workbench.core.spec import DataRef, build_spec

    lib = TaskLibrary(include_paths=list(include_paths))
    t = lib.load(task, trust_code=trust_code)
    opts = {"task": task, "trust_task_code": trust_code, "include_path": [str(p) for p in include_paths] or None,
            "task_data": str(data) if data else None, "num_fewshot": num_fewshot, "limit": limit,
            "fewshot_seed": fewshot_seed if fewshot_seed != FEWSHOT_SEED else None, "n_boot": n_boot, "alpha": alpha,
            "name": name}   # (build_spec leaves out the default resamples and level)
    dref = DataRef(source=str(data) if data else f"lmeval:{t.name}", name=t.name)
    return build_spec("compare", templates=[t.template, *templates], data=dref, model=list(models), options=opts)


def run_task_compare(spec, *, progress: Callable | None = None, cancel: Callable | None = None,
                     record: bool = True, opener: Callable) -> TaskComparison:
    """`opener(model_ref)`: a context manager giving that model's session, held for the job
    (the runner passes its held_session)."""
    from workbench.core.lmeval_scoring import metric_specs
    from workbench.storage.lmeval_library import TaskLibrary
    from workbench.core.task_verdicts import verdicts
    from workbench.jobs.lmeval_run import run_task

    o = spec.options
    lib = TaskLibrary(include_paths=o.include_path or [])
    task = lib.load(o.task, trust_code=o.trust_task_code)
    user = [None] + [t.load() for t in spec.templates[1:]]
    tnames = ["task prompt"] + [t.name for t in spec.templates[1:]]
    arms, results = [], {}
    multi_model = len(spec.models) > 1
    for m in spec.models:
        with opener(m) as session:
            for tpl, tname in zip(user, tnames):
                name = " · ".join(x for x in ((m.model if multi_model else ""), tname if len(user) > 1 else "") if x) or m.model
                res = run_task(task, session, data=o.task_data, num_fewshot=o.num_fewshot,
                               limit=o.limit, fewshot_seed=o.sampler_seed, template=tpl,
                               progress=progress, cancel=cancel)
                results[name] = res
                arms.append({"name": name, "model": m.model, "template": tname,
                             "metrics": {k: v for k, v in res.metrics.items() if not isinstance(v, (list, dict))}})
    base = arms[0]["name"]
    specs = metric_specs(task.code or task.config, task.output_type)
    n_boot, alpha = o.boot, o.level
    out: dict[str, Any] = {}
    for a in arms[1:]:
        ra, rb = results[base].records, results[a["name"]].records
        if "items" not in (ra[0] if ra else {}) or "items" not in (rb[0] if rb else {}):
            # a single-input multiple-choice run on the template path: acc from its records
            for res in (results[base], results[a["name"]]):
                for r in res.records:
                    r.setdefault("items", {})["acc,none"] = float(r["pred"] == r["gold"])
        keys = sorted(set(ra[0]["items"]) & set(rb[0]["items"])) if ra and rb else []
        out[f"{a['name']} vs {base}"] = verdicts(specs, ra, rb, keys, n_boot=n_boot, alpha=alpha,
                                                 name_a=base, name_b=a["name"])
    n = len(next(iter(results.values())).records) if results else 0
    res = TaskComparison(task=task.name, arms=arms, verdicts=out,
                         settings={"n": n, "baseline": base, "n_boot": n_boot, "alpha": alpha,
                                   "spec": json.loads(spec.to_json())},
                         records={k: v.records for k, v in results.items()})
    if record:
        try:
            from workbench.storage.runs import record_eval

            for r in results.values():
                record_eval(r)
        except Exception:  # noqa: BLE001 - recording is best effort; the comparison stands
            pass
    return res
