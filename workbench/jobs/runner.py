"""Run a RunSpec: the one function behind the UI's jobs, the CLI verbs and the Python API.

    spec = build_spec("eval", templates=[t], data=ds, eval={"limit": 200})
    out = execute(spec, session)           # RunOutcome(result=EvalResult, run_id="2026...")

Every door builds its spec with `workbench.core.spec.build_spec` and hands it here (the UI through
`workbench.jobs.service`, which also owns the model), so a result cannot depend on the door.
Training runs on its own model copy and run folder (`workbench.jobs.training`): `execute` runs it in
the calling thread (CLI, Python), the server's training lane (service.start_training) in a background
thread; both from `train_plan`, which turns a train spec into the plan.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from workbench.core import spec as spec_builder
from workbench.core.spec import RunSpec
from workbench.errors import ConfigError
from workbench.storage.data_load import load_data_ref, load_dataset

Progress = Callable[..., None]


def build_spec(kind: str, *, templates: Sequence, data, **kwargs) -> RunSpec:
    """`core.spec.build_spec` (the one spec builder; see its arguments), with `data` also given as
    a name or path (`bbc`, `bigbench:TASK`, a CSV, ...), loaded here: core reads no files. The
    Python API's `workbench.build_spec` is this."""
    import os

    if isinstance(data, (str, os.PathLike)):
        data = load_dataset(str(data))
    return spec_builder.build_spec(kind, templates=templates, data=data, **kwargs)


@dataclass
class RunOutcome:
    result: Any                 # EvalResult | ComparisonResult | bundle Path
    run_id: str | None          # registry id (None when not recorded)


def execute(spec: RunSpec, session, *, dataset=None, progress: Progress | None = None,
            cancel: Callable[[], bool] | None = None, record: bool = True,
            on_run: Callable[[str], None] | None = None) -> RunOutcome:
    """Run an eval, compare, export or search spec on `session` (the spec's model, adapter applied).
    A model comparison (several models) opens and holds each model in turn itself, so its
    `session` may be None. `dataset`: the already loaded data (checked against the spec's
    fingerprint). `on_run(run_id)`: called once a long job is in the run registry, before it ends
    (a search: the UI shows its live leaderboard, and resumes it by that id after a cancel)."""
    kind = KIND_REGISTRY.get(spec.kind)
    if kind is None:
        raise ConfigError(f"A {spec.kind} spec is not run by execute().",
                          hint=f"Build it with build_spec; the kinds are {', '.join(KIND_REGISTRY)}.")
    call = Call(progress, cancel, record, on_run)
    if kind.task is not None and spec.options.task:
        # an lm-eval task (or group) by name: the task loads its own rows (jobs/task_eval.py, task_compare.py)
        return kind.task(spec, session, call)
    ds = dataset if dataset is not None else load_data_ref(spec.data)
    if spec.data.fingerprint and ds.fingerprint() != spec.data.fingerprint:
        raise ConfigError("The loaded data is not the data this job was defined on.",
                          hint="Load the dataset again and restart the job.")
    return kind.run(spec, session, ds, call)


@dataclass
class Call:
    """How a job is run, whatever its kind: progress(done, total, message), the cancel flag, whether it is
    recorded in the run registry, and on_run(id) once it has a registry id (or a run folder)."""
    progress: Progress | None = None
    cancel: Callable[[], bool] | None = None
    record: bool = True
    on_run: Callable[[str], None] | None = None


@dataclass
class Kind:
    """A registered job kind: its typed options (core/options.py) and the function that runs it on loaded
    data; `task` runs its lm-eval-task form, which loads its own rows (None: the kind has none)."""
    options: type
    run: Callable[..., RunOutcome]
    task: Callable[..., RunOutcome] | None = None


def _task_compare(spec, session, call: Call) -> RunOutcome:
    from workbench.jobs.task_compare import run_task_compare

    holder = describe(spec)
    res = run_task_compare(spec, progress=call.progress, cancel=call.cancel, record=call.record,
                           opener=lambda m: held_session(m, holder))
    return RunOutcome(res, res.run_id)


def _task_eval(spec, session, call: Call) -> RunOutcome:
    """A TaskRun: per-task results, one registry record per task. No session given: the model loads on first use."""
    from workbench.jobs.task_eval import run_task_eval

    opened = session if session is not None else (lambda: open_session(spec.model))
    return RunOutcome(run_task_eval(spec, opened, progress=call.progress, cancel=call.cancel, record=call.record), None)


def _eval(spec, session, ds, call: Call) -> RunOutcome:
    progress, cancel, record = call.progress, call.cancel, call.record
    from workbench.jobs.inference import evaluate

    result = evaluate(spec.template.load(), ds, session, spec.eval, progress=progress, cancel=cancel)
    run_id = None
    if record:
        import sqlite3

        from workbench.storage.runs import record_eval

        try:
            run_id = record_eval(result)
        except (sqlite3.OperationalError, OSError) as e:
            # a full disk (or a broken registry) must not cost the finished run: keep the result,
            # say that it was not recorded (provenance warnings reach the CLI and the Run tab)
            result.provenance.setdefault("warnings", []).append(
                f"the run was not recorded in the run registry ({type(e).__name__}: {str(e)[:120]}); "
                "its results are complete")
    if spec.judge is not None:
        # after recording: the stored eval stays judge-free; judge scores are stored (and reused) apart
        from workbench.jobs.judge import judge_result

        with judge_session(spec, session)() as js:
            judge_result(result, spec.judge.load(), js, dataset=ds, template=spec.template.load(),
                         labels=spec.judge.labels, store=record, cancel=cancel, progress=progress)
        if run_id is not None:
            # the stored eval now carries the judge's scores and prompts (the Run tab and the results
            # matrix open it by id); a comparison reusing it strips them (jobs/compare.py)
            from workbench.storage.runs import RunRegistry

            RunRegistry().update(run_id, payload=result.to_dict())
    return RunOutcome(result, run_id)


def _search(spec, session, ds, call: Call) -> RunOutcome:
    """A prompt search from the spec's template (jobs/search.py); `resume` continues a stopped one, whose
    stored settings then hold except the budgets; `out` also writes the report as JSON."""
    import dataclasses

    from workbench.jobs.search import search

    o = spec.options
    res = search(spec.template.load(), ds, session, dataclasses.replace(spec.search) if spec.search else None, spec.eval,
                 store=call.record, resume=o.resume, name=o.name, progress=call.progress, cancel=call.cancel,
                 on_start=call.on_run)
    if o.out:
        res.save(o.out)
    return RunOutcome(res, res.run_id)


def _study(spec, session, ds, call: Call) -> RunOutcome:
    """A sensitivity study of the spec's template (jobs/sensitivity.py): one eval per demo seed, or the
    template and its format variants (seeded by the demo seed), on the same rows."""
    from workbench.jobs import sensitivity

    common = {"store": call.record, "progress": call.progress, "cancel": call.cancel}
    if spec.kind == "seed_variance":
        res = sensitivity.seed_variance(spec.template.load(), ds, session, spec.eval, seeds=spec.options.seed_list,
                                        **common)
    else:
        res = sensitivity.format_spread(spec.template.load(), ds, session, spec.eval,
                                        n_variants=spec.options.variants, seed=spec.eval.seed, **common)
    return RunOutcome(res, res.run_id)


def judge_session(spec: RunSpec, session):
    """A context-manager factory giving the judge model's session: the job's own session when
    the judge model is the evaluated one, else the judge's ModelRef held for the job."""
    ref = spec.judge.model if spec.judge is not None else None
    if ref is None or (ref.model == spec.model.model and ref.adapter == spec.model.adapter):
        return lambda: contextlib.nullcontext(session)
    return lambda: held_session(ref, describe(spec) + " (judge)")


def apply_adapter(session, adapter: str | None) -> None:
    """Give `session` exactly this adapter (None: none); attach_adapter checks the base model."""
    if adapter and session.adapter != adapter:
        session.attach_adapter(adapter)
    elif not adapter and session.adapter:
        session.detach_adapter()


def describe(spec: RunSpec) -> str:
    """What a job on `spec` is, as ModelBusy names it: "the compare of A vs B on bbc"."""
    if spec.kind in ("seed_variance", "format_spread"):
        return f"the {spec.kind.replace('_', ' ')} of {spec.template.name} on {spec.data.name}"
    if spec.kind == "search":
        return f"the search from {spec.template.name} on {spec.data.name}"
    names = " vs ".join(t.name for t in spec.templates)
    models = f" with {' and '.join(m.model for m in spec.models)}" if len(spec.models) > 1 else ""
    return f"the {spec.kind} of {names} on {spec.data.name}{models}"


@contextlib.contextmanager
def held_session(ref, holder: str, *, keep_others: bool | None = None):
    """The session of a ModelRef, held for a job (engine.session.hold_session: loading another
    model or changing the adapter from another thread raises ModelBusy naming `holder`), its
    adapter applied. A remote model holds no weights here, so holding it keeps the local one;
    `keep_others=True` keeps the other loaded models too (a sequential grid whose models fit)."""
    from workbench.engine.session import hold_session

    keep = ref.remote if keep_others is None else keep_others
    with hold_session(ref.model, holder, keep_others=keep, **ref.session_kwargs()) as s:
        apply_adapter(s, ref.adapter)
        yield s


def open_session(ref, *, keep_others: bool = False):
    """The session of a ModelRef, its adapter applied."""
    from workbench.engine.session import get_session

    s = get_session(ref.model, keep_others=keep_others, **ref.session_kwargs())
    apply_adapter(s, ref.adapter)
    return s


def _compare(spec, session, ds, call: Call) -> RunOutcome:
    progress, cancel, record = call.progress, call.cancel, call.record
    from workbench.jobs.compare import compare_templates

    o = spec.options
    if o.sequential and spec.judge is not None:
        raise ConfigError("A sequential comparison stops on accuracy; it does not run a judge yet.",
                          hint="Drop --sequential to judge every row, or drop --judge to stop early.")
    if o.sequential:
        # stop when settled: rows in a seeded random order, growing batches, anytime-valid verdict
        from workbench.core.sequential import SequentialOptions
        from workbench.jobs.sequential import compare_sequential

        if len(spec.models) > 1:
            # the models x templates grid, columns dropped once settled worse (jobs/sequential_grid.py);
            # the models stay loaded together when they fit, else one is loaded at a time
            from workbench.jobs.sequential_grid import compare_grid_sequential, plan_holding

            labels = grid_labels(spec)
            holding = plan_holding(spec.models)
            res = compare_grid_sequential(grid_openers(spec.models, labels, describe(spec), holding[0]),
                                          [t.load() for t in spec.templates], ds, spec.eval,
                                          SequentialOptions.from_options(o), holding=holding,
                                          baseline=o.baseline, name=o.name, progress=progress,
                                          cancel=cancel, store=record)
            return RunOutcome(res, res.run_id)
        res = compare_sequential([t.load() for t in spec.templates], ds, session, spec.eval,
                                 SequentialOptions.from_options(o), baseline=o.baseline, name=o.name,
                                 progress=progress, cancel=cancel, store=record)
        return RunOutcome(res, res.run_id)
    if len(spec.models) > 1 and spec.judge is not None:
        raise ConfigError("A judge runs on template comparisons of one model.",
                          hint="Compare the models without --judge, or compare templates on one model with it.")
    if len(spec.models) > 1:
        # models x templates: each model held in turn while its columns are scored (the single-owner
        # rule: nothing unloads it from under the job; remote ones hold no weights, so they stay
        # open next to a local one); `session`, if given, is not used
        from workbench.jobs.compare_models import compare_grid

        labels = grid_labels(spec)
        holder = describe(spec)
        opener = {lab: (lambda m=m: held_session(m, holder)) for lab, m in zip(labels, spec.models)}
        res = compare_grid(opener, [t.load() for t in spec.templates], ds, spec.eval, baseline=o.baseline,
                           name=o.name, n_boot=o.boot, alpha=o.level,
                           progress=progress, cancel=cancel, store=record)
        return RunOutcome(res, res.run_id)
    res = compare_templates([t.load() for t in spec.templates], ds, session, spec.eval,
                            baseline=o.baseline, name=o.name, n_boot=o.boot,
                            alpha=o.level, progress=progress, cancel=cancel,
                            store=record, judge=spec.judge.load() if spec.judge else None,
                            judge_session=judge_session(spec, session) if spec.judge else None,
                            judge_labels=spec.judge.labels if spec.judge else None)
    return RunOutcome(res, res.run_id)


def grid_openers(refs, labels: Sequence[str], holder: str, mode: str) -> dict[str, Callable]:
    """label -> a zero-argument callable giving the model's hold (runner.held_session). Resident: only
    the first local model frees what else is loaded; the others keep it (keep_others), so all stay in."""
    out, first_local = {}, True
    for lab, ref in zip(labels, refs):
        keep = ref.remote or (mode == "resident" and not first_local)
        first_local = first_local and ref.remote
        out[lab] = (lambda r=ref, k=keep: held_session(r, holder, keep_others=k))
    return out


def grid_labels(spec: RunSpec) -> list[str]:
    """The grid's model labels (column names TEMPLATE @ LABEL): short names, numbered if two clash."""
    from workbench.jobs.compare_models import model_label

    labels = [model_label(m.model) for m in spec.models]
    if len(set(labels)) != len(labels):
        labels = [f"{lab} [{i + 1}]" for i, lab in enumerate(labels)]
    return labels


def export_config(spec: RunSpec):
    """The bundle options of an export spec (out = the bundle folder; default under exports/)."""
    from workbench.jobs.export import ExportConfig

    o = spec.options
    out = Path(o.out) if o.out else None
    return ExportConfig(name=out.name if out else spec.template.name, out_dir=str(out.parent) if out else None,
                        merge=o.merge, overwrite=o.overwrite, include_data=not o.no_data, zip=o.zip)


def _export(spec, session, ds, call: Call) -> RunOutcome:
    progress = call.progress
    from workbench.jobs.export import export_bundle, export_train_run

    ex = export_config(spec)
    o = spec.options
    if o.train_run:
        path = export_train_run(o.train_run, ds, session=session, model=spec.model.model,
                                export=ex, progress=progress, force=o.force)
    else:
        path = export_bundle(spec.template.load(), ds, session=session, config=spec.eval,
                             adapter=spec.model.adapter, export=ex, progress=progress)
    return RunOutcome(path, None)


def train_plan(spec: RunSpec, *, dataset=None, registry: bool = True):
    """The training lane's plan for a train spec (validates data, lengths and modules now)."""
    from workbench.jobs.training import prepare

    if spec.kind != "train" or spec.train is None:
        raise ConfigError(f"Not a train spec (kind {spec.kind}).")
    ds = dataset if dataset is not None else load_data_ref(spec.data)
    return prepare(spec.model, spec.template.load(), ds, spec.train, spec.options.out, registry=registry)


def _train(spec: RunSpec, session, ds, call: Call) -> RunOutcome:
    """A LoRA run in this thread (the UI's lane runs the same plan in a background thread, TrainJob); its
    own copy of the model, so `session` is not used. `on_run(run folder)` once the folder is claimed."""
    from workbench.jobs.training import run_training

    plan = train_plan(spec, dataset=ds, registry=call.record)
    if call.on_run is not None:
        call.on_run(str(plan.run_dir))
    res = run_training(plan, progress=call.progress, cancel=call.cancel)
    return RunOutcome(res, res.registry_id)


# Every job kind `execute` runs: its typed options and its function. A kind added to core/spec.KINDS
# is registered here (tests/test_spec.py checks that the two lists agree).
KIND_REGISTRY: dict[str, Kind] = {}


def _register() -> None:
    from workbench.core import options as o

    KIND_REGISTRY.update({
        "eval": Kind(o.EvalOptions, _eval, task=_task_eval),
        "compare": Kind(o.CompareOptions, _compare, task=_task_compare),
        "train": Kind(o.TrainOptions, _train),
        "export": Kind(o.ExportOptions, _export),
        "search": Kind(o.SearchOptions, _search),
        "seed_variance": Kind(o.StudyOptions, _study),
        "format_spread": Kind(o.StudyOptions, _study),
    })


_register()
