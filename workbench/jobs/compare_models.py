"""Models side by side: the models × templates grid on identical rows, with paired verdicts.

    res = compare_grid({"local": get_session("default"),
                        "vllm-70b": lambda: get_session("openai:http://gpu:8000/v1", keep_others=True)},
                       [t_a, t_b], dataset, EvalConfig(limit=300))
    res.names          # ["A @ local", "B @ local", "A @ vllm-70b", "B @ vllm-70b"]
    res.verdicts       # each column vs the reference (best, or --baseline), Holm-adjusted
    res.pairs          # (in res.settings["pairs"]) every two columns: McNemar + paired bootstrap

Every column is one (model, template) eval on the same rows and demonstrations (one
`eval_rows` draw), so the statistics are those of `compare.compare_results`, unchanged: a
column is just an eval result. Models are opened one after the other (a value may be a
zero-argument callable that returns the session), so two local models need not be in memory
at once; a callable may also return a context manager, entered while that model's columns
are scored (the model service holds each model in turn this way). Evals already in the registry
for a model are reused, as in `compare_templates`.
"""
from __future__ import annotations

import contextlib
import itertools
import time
from dataclasses import asdict
from typing import Callable, Mapping, Sequence

from workbench.errors import ConfigError, DataError
from workbench.jobs.compare import (MAX_TEMPLATES, ComparisonResult, _row_texts, _stage_progress, _store,
                                    _unique_names, compare_results, evaluate_or_reuse)


def column_name(template_name: str, model_label: str, n_models: int, n_templates: int) -> str:
    if n_models == 1:
        return template_name
    if n_templates == 1:
        return model_label
    return f"{template_name} @ {model_label}"


def model_label(model: str) -> str:
    """A short column label: the served name of a remote model, else what the user typed."""
    if model.startswith("openai:"):
        _, _, served = model.partition("#")
        return served or model.split("//", 1)[-1].split("/", 1)[0]
    return model.rstrip("/").split("/")[-1] or model


def compare_grid(
    models: Mapping[str, object],
    templates: Sequence,
    dataset,
    config=None,
    *,
    baseline: str | None = None,
    registry=None,
    store: bool = True,
    name: str | None = None,
    n_boot: int = 2000,
    boot_seed: int = 0,
    alpha: float = 0.05,
    progress: Callable[..., None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> ComparisonResult:
    """Score every (model, template) on identical rows, then compare the columns (see module doc)."""
    from workbench.jobs.inference import jsonable

    config, labels, tnames, cols, reg, rows, pool, demos = grid_setup(models, templates, dataset, config, baseline,
                                                                       registry, store)
    names = [c[0] for c in cols]
    k = len(cols)
    indices = [jsonable(i) for i in rows.index]
    results, infos, model_info = [], [], {}
    sessions = dict(zip(labels, models.values()))
    i = 0
    for ml in labels:
        with contextlib.ExitStack() as stack:
            session = open_model(sessions[ml], stack)
            session.load()
            model_info[ml] = {"name": session.config.model, "identity": session.identity, "adapter": session.adapter,
                              "backend": session.backend}
            last_session = session
            for cname, cml, t in cols:
                if cml != ml:
                    continue
                if cancel is not None and cancel():
                    from workbench.errors import Cancelled
                    raise Cancelled()
                if progress is not None:
                    progress(i * 1000, k * 1000, f"{cname} ({i + 1}/{k})")
                res, run_id, reused = evaluate_or_reuse(t, dataset, session, config, rows=rows, pool=pool,
                                                        registry=reg, cancel=cancel,
                                                        progress=_stage_progress(progress, i, k, cname))
                if [r["index"] for r in res.records] != indices:
                    raise DataError(f"column {cname!r} was scored on other rows than planned",
                                    "this is a bug: please report it with the comparison settings")
                results.append((cname, res))
                infos.append({"eval_run_id": run_id, "reused": reused, "model": ml,
                              "model_identity": session.identity})
                i += 1
    if progress is not None:
        progress(k * 1000, k * 1000, "statistics")

    cmp = compare_results(results, baseline=baseline, n_boot=n_boot, boot_seed=boot_seed, alpha=alpha,
                          texts=_row_texts(dataset, rows, templates))
    for info, t_info, (_, _, t) in zip(infos, cmp.templates, cols):
        t_info.update(info, hash=t.content_hash(), yaml=t.to_yaml())
    cmp.settings["pairs"] = pairwise_verdicts(results, n_boot=n_boot, boot_seed=boot_seed, alpha=alpha)
    cmp.settings["grid"] = {"models": labels, "templates": tnames}
    cmp.inputs = {"identical": True, "n": len(indices), "demo_indices": demos[tnames[0]], "shots": config.shots,
                  "sampling": config.sampling, "seed": config.seed,
                  "row_indices_hash": results[0][1].provenance["data"]["row_indices_hash"],
                  "row_indices_hash_per_template": {nm: r.provenance["data"]["row_indices_hash"] for nm, r in results}}
    cmp.provenance = {"models": model_info,
                      "model": model_info[labels[0]],
                      "data": {"name": dataset.name, "source": getattr(dataset, "source", None),
                               "fingerprint": dataset.fingerprint(), "split": config.split,
                               "split_seed": config.split_seed},
                      "config": asdict(config), "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if reg is not None:
        cmp.run_id = _store(reg, cmp.to_dict(), name or "compare: " + " vs ".join(names), dataset, last_session,
                            config, metrics={"n": cmp.n, "reference": cmp.reference, "best": cmp.leaderboard[0]["name"],
                                             "best_accuracy": cmp.leaderboard[0]["accuracy"], "templates": names,
                                             "models": [m["identity"] for m in model_info.values()]})
    return cmp


def grid_setup(models: Mapping[str, object], templates: Sequence, dataset, config, baseline, registry, store):
    """What both grids (this one and the sequential one, jobs/sequential_grid.py) check and draw before
    scoring: 2-8 columns, their names (template @ model), a baseline among them, and the paired setup
    of the templates (compare.paired_setup: one draw of rows and demos, the same-demos check).
    Returns (config, model labels, template names, [(column name, model label, template)], registry,
    rows, pool, demos by template name)."""
    from workbench.jobs.compare import paired_setup

    labels = _unique_names(list(models))
    k = len(labels) * len(templates)
    if not 2 <= k <= MAX_TEMPLATES:
        raise ConfigError(f"a comparison needs 2 to {MAX_TEMPLATES} columns (models × templates), got {k}",
                          "use fewer models or templates")
    config, tnames, reg, rows, pool, demos = paired_setup(templates, dataset, config, None, registry, store,
                                                          min_templates=1)
    cols = [(column_name(tn, ml, len(labels), len(templates)), ml, t) for ml in labels for tn, t in zip(tnames, templates)]
    names = [c[0] for c in cols]
    if baseline is not None and baseline not in names:
        raise ConfigError(f"baseline {baseline!r} is not one of the columns", f"choose one of: {', '.join(names)}")
    return config, labels, tnames, cols, reg, rows, pool, demos


def open_model(model, stack: contextlib.ExitStack):
    """A grid entry's session: the session itself, or what a zero-argument callable returns; a
    context manager (the model service's hold on the model) is entered on `stack`, so the model
    is held while its columns are scored and released before the next model is opened."""
    obj = model() if callable(model) else model
    if isinstance(obj, contextlib.AbstractContextManager):
        return stack.enter_context(obj)
    return obj


def pairwise_verdicts(results: Sequence[tuple[str, object]], *, n_boot: int = 2000, boot_seed: int = 0,
                      alpha: float = 0.05) -> list[dict]:
    """Paired tests between every two columns (McNemar Holm-adjusted over all pairs, paired
    bootstrap CIs), reusing compare_results on each pair."""
    out = []
    for (na, ra), (nb, rb) in itertools.combinations(results, 2):
        v = compare_results([(na, ra), (nb, rb)], baseline=na, n_boot=n_boot, boot_seed=boot_seed,
                            alpha=alpha).verdicts[0]
        v["a"], v["b"] = na, nb
        out.append(v)
    if len(out) > 1:
        from workbench.jobs.compare import finish_verdicts

        finish_verdicts(out, alpha, holm=True, what="pairs")
    return out


def format_pairs(pairs: Sequence[dict]) -> str:
    lines = ["", "Every pair of columns:"]
    for v in pairs:
        lines.append(f"  {v['a']} vs {v['b']}: Δacc {v['delta_acc'] * 100:+.1f} pts, p={v['p_used']:.3g}"
                     f"{' (significant)' if v['significant'] else ''}")
    return "\n".join(lines)
