"""An lm-eval task (or every task of a group or tag) evaluated by name, as a RunSpec that `execute` runs:

    spec = task_eval_spec("hellaswag", model="default", limit=100, trust_code=True)
    run = execute(spec, None).result          # TaskRun: per-task EvalResults and the groups' aggregates

The spec's template is the task's own prompt (its first member's, for a group), so the spec pins what
is scored; its data is the task's own rows (`lmeval:NAME`) unless `data` replaces them. Each task's
result is recorded in the run registry as it finishes (a full disk warns, and keeps the results).
"""
from __future__ import annotations

import sys
from collections.abc import Callable

from workbench.core.options import FEWSHOT_SEED
from workbench.errors import ConfigError


def task_eval_spec(task: str, *, model="default", trust_code: bool = False, include_paths=(), data: str | None = None,
                   num_fewshot: int | None = None, limit: int | None = None, method: str | None = None,
                   fewshot_seed: int = FEWSHOT_SEED):
    """The RunSpec of `workbench eval --task TASK ...`. Resolving every member task here refuses what cannot
    run (untrusted code, unsupported features) before any data or model loads."""
    from workbench.storage.lmeval_library import TaskLibrary
    from workbench.core.spec import DataRef, build_spec

    lib = TaskLibrary(include_paths=list(include_paths))
    members = [m for n in task.split(",") if n.strip() for m in lib.expand(n.strip())]
    if not members:
        raise ConfigError(f"No lm-eval task is named {task!r}.", hint="List them with: workbench eval --list-tasks WORD")
    loaded = [lib.load(m, trust_code=trust_code) for m in members]
    if len(members) > 1 and data:
        raise ConfigError(f"--data replaces the rows of one task, and {task!r} has {len(members)} tasks",
                          "run the tasks one by one with --data, or let each load its own dataset")
    opts = {"task": task, "trust_task_code": trust_code, "include_path": [str(p) for p in include_paths] or None,
            "num_fewshot": num_fewshot,
            "fewshot_seed": fewshot_seed if fewshot_seed != FEWSHOT_SEED else None}
    dref = DataRef(source=str(data) if data else f"lmeval:{task}", name=loaded[0].name if len(loaded) == 1 else task)
    return build_spec("eval", templates=[loaded[0].template], data=dref, model=model,
                      eval={"method": method, "limit": limit}, options=opts)


def run_task_eval(spec, session, *, progress: Callable | None = None, cancel: Callable | None = None,
                  record: bool = True):
    """Run a task eval spec. `session`: the model's session, or a zero-argument factory (loaded on first use)."""
    from workbench.storage.lmeval_library import TaskLibrary
    from workbench.jobs.lmeval_run import run_tasks

    o = spec.options
    lib = TaskLibrary(include_paths=o.include_path or [])
    data = None if spec.data.source.startswith("lmeval:") else spec.data.source

    def recorded(name, result):
        if not record:
            return
        import sqlite3

        from workbench.storage.runs import record_eval
        try:
            record_eval(result)
        except (sqlite3.OperationalError, OSError) as e:   # a full disk must not cost the finished task
            result.provenance.setdefault("warnings", []).append(
                f"{name} was not recorded in the run registry ({type(e).__name__}: {str(e)[:120]}); "
                "its results are complete")
            print(f"warning: {name} was not recorded in the run registry ({e})", file=sys.stderr)

    return run_tasks(lib, o.task, session, trust_code=o.trust_task_code, data=data,
                     num_fewshot=o.num_fewshot, limit=spec.eval.limit, method=spec.eval.method,
                     fewshot_seed=o.sampler_seed, on_task=recorded,
                     progress=progress, cancel=cancel)
