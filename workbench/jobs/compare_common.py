"""The run plumbing every comparison job shares: one paired draw of rows and demos, reuse of
identical stored evals, stage progress, provenance and storing the result.

Used by the fixed-n grid (`jobs/compare_models.py`, of which `compare.compare_templates` is the
one-model case), the sequential comparisons (`jobs/sequential.py`, `jobs/sequential_grid.py`) and
the sensitivity studies (seed variance, format spread).

No double work: an eval already in the run registry with the same template hash, model, adapter,
data fingerprint and prediction settings (which include the row-indices hash) is reused instead
of rescored; fresh evals are recorded there for the next time.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict

from workbench.errors import ConfigError
from workbench.jobs.compare_result import MAX_TEMPLATES, MIN_TEMPLATES, unique_names

# progress(done, total, message): `done`/`total` count work units across all columns
# (core.progress.Nested: UNITS_PER_JOB per scored column); the message has each stage's real counts.
Progress = Callable[..., None]


def find_reuse(template, dataset, session, config, *, rows, registry=None):
    """(EvalResult, eval run id) of an identical finished eval of `template` on exactly `rows`,
    or None. A stored eval whose record indices differ from `rows` is not trusted."""
    from workbench.jobs.inference import EvalResult, jsonable

    if registry is None:
        return None
    from workbench.core.records import hash_indices
    from workbench.core.spec import eval_key

    indices = [jsonable(i) for i in rows.index]
    key = eval_key(template.content_hash(), dataset.fingerprint(), config, hash_indices(indices),
                   session.model_identity())
    rec = registry.find_by_key(key)
    payload = registry.payload(rec.id) if rec is not None else None
    if payload is not None:
        res = EvalResult.from_dict(payload)
        if [r["index"] for r in res.records] == indices:
            return res, rec.id
    return None


def evaluate_or_reuse(template, dataset, session, config, *, rows, pool, registry=None,
                      progress=None, cancel=None, reuse=True):
    """(EvalResult, eval run id or None, reused?) for one template on exactly `rows`.

    With a registry, an identical finished eval is loaded instead of rescored (`reuse=False`:
    the caller looked already), and a fresh one is recorded."""
    from workbench.jobs.inference import evaluate

    found = find_reuse(template, dataset, session, config, rows=rows, registry=registry) if reuse else None
    if found is not None:
        return found[0], found[1], True
    res = evaluate(template, dataset, session, config, rows=rows, pool=pool, progress=progress, cancel=cancel)
    run_id = None
    if registry is not None:
        from workbench.storage.runs import record_eval

        run_id = record_eval(res, registry)
    return res, run_id, False


def demo_indices(template, rows, pool, config) -> list:
    """The pool rows used as demonstrations: one list for fixed sampling, one per row for
    per-example sampling (the same draw `inference.build_prompts` makes)."""
    from workbench.jobs.inference import jsonable, demos_for

    if config.shots <= 0:
        return []
    label_col = template.label_column if template.label_column in rows.columns else None
    if config.sampling == "fixed":
        return [jsonable(d.name) for d in demos_for(template, pool, config, None, label_col)]
    return [[jsonable(d.name) for d in demos_for(template, pool, config, idx, label_col, row=row)]
            for idx, row in rows.iterrows()]


def row_texts(dataset, rows, templates=(), limit: int = 400) -> list[str] | None:
    """What a person needs to judge a disagreement: the columns the templates read (e.g. the
    headline), else the dataset's text column; each cut to `limit` characters."""
    used = set().union(*[t.variables() for t in templates]) if templates else set()
    label = getattr(dataset, "label_column", None)
    cols = [c for c in rows.columns if c in used and c != label]
    if not cols:
        col = getattr(dataset, "text_column", None)
        cols = [col] if col and col in rows.columns else []
    if not cols:
        return None
    if len(cols) == 1:
        return [str(x)[:limit] for x in rows[cols[0]].tolist()]
    return [" | ".join(f"{c}: {str(r[c])[:limit]}" for c in cols) for _, r in rows.iterrows()]


def resolve_registry(registry, store: bool):
    if registry is not None or not store:
        return registry
    from workbench.storage.runs import RunRegistry

    return RunRegistry()


def stage_progress(progress: Progress | None, i: int, k: int, name: str):
    """One template's stages (real counts) as part of the whole comparison (core.progress.Nested)."""
    from workbench.core.progress import Nested

    return None if progress is None else Nested(progress, i, k, f"{name} ({i + 1}/{k})")


def run_provenance(dataset, session, config, *, models: dict | None = None) -> dict:
    """What a comparison ran on: the model, the data and split, the eval config, the time. A grid
    passes `models` (label -> {name, identity, adapter, backend}): all of them, the first as `model`."""
    out: dict = {"models": models} if models else {}
    out["model"] = (next(iter(models.values())) if models else
                    {"name": session.config.model, "identity": session.identity, "adapter": session.adapter})
    out.update(data={"name": dataset.name, "source": getattr(dataset, "source", None),
                     "fingerprint": dataset.fingerprint(), "split": config.split, "split_seed": config.split_seed},
               config=asdict(config), created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    return out


def paired_setup(templates, dataset, config, baseline, registry, store, *, min_templates: int = MIN_TEMPLATES):
    """What every template comparison (fixed-n here, sequential in jobs/sequential.py, the models x
    templates grids in jobs/compare_models.py) checks and draws before scoring: the config, unique
    column names, a known baseline, the registry, and one draw of rows, demo pool and demos for
    everyone, which is what makes the comparison paired. A grid passes min_templates=1 (its columns
    are models x templates) and checks its baseline against its own column names.
    Returns (config, names, registry, rows, pool, demos by name)."""
    from workbench.jobs.inference import EvalConfig, eval_rows

    config = config or EvalConfig()
    config.validate()
    if not min_templates <= len(templates) <= MAX_TEMPLATES:
        raise ConfigError(f"a comparison needs {min_templates} to {MAX_TEMPLATES} templates, got {len(templates)}",
                          "add or remove templates")
    names = unique_names([t.name for t in templates])
    if baseline is not None and baseline not in names:
        raise ConfigError(f"baseline {baseline!r} is not one of the compared templates",
                          f"choose one of: {', '.join(names)}")
    reg = resolve_registry(registry, store)
    rows, pool = eval_rows(dataset, config)
    demos = {nm: demo_indices(t, rows, pool, config) for nm, t in zip(names, templates)}
    for nm in names[1:]:
        if demos[nm] != demos[names[0]]:
            raise ConfigError(f"template {nm!r} would get other few-shot demos than {names[0]!r}",
                              "give every template the same label_column, so demos are drawn alike")
    return config, names, reg, rows, pool, demos



def store_comparison(reg, payload: dict, name: str, dataset, session, config, metrics: dict) -> str:
    """Record a comparison's payload as a 'compare' run (`session`: anything with identity and adapter)."""
    settings = {"type": payload.get("type"), "eval": asdict(config), **payload.get("settings", {})}
    return reg.add("compare", name=name, model=session.identity, adapter=session.adapter,
                   data_fingerprint=dataset.fingerprint(), data_name=dataset.name, seed=config.seed,
                   settings=settings, metrics={"type": payload.get("type"), **metrics}, payload=payload)
