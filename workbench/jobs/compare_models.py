"""Models side by side: the models × templates grid on identical rows, with paired verdicts.

    res = compare_grid({"local": get_session("default"),
                        "vllm-70b": lambda: get_session("openai:http://gpu:8000/v1", keep_others=True)},
                       [t_a, t_b], dataset, EvalConfig(limit=300))
    res.names          # ["A @ local", "B @ local", "A @ vllm-70b", "B @ vllm-70b"]
    res.verdicts       # each column vs the reference (best, or --baseline), Holm-adjusted
    res.pairs          # (in res.settings["pairs"]) every two columns: McNemar + paired bootstrap

This is the one code path of every fixed-n comparison: `compare.compare_templates` is its
one-model case (`compare_grid({label: session}, ...)`), and then the report is exactly the
templates comparison's (no `pairs`, no `grid`, the one model's provenance).

Every column is one (model, template) eval on the same rows and demonstrations (one
`eval_rows` draw, `compare_common.paired_setup`), so the statistics are those of
`compare_result.compare_results`, unchanged: a column is just an eval result. Every column's
row-indices hash is checked against the others before the verdicts are drawn. Models are opened
one after the other (a value may be a zero-argument callable that returns the session), so two
local models need not be in memory at once; a callable may also return a context manager,
entered while that model's columns are scored (the model service holds each model in turn this
way). Evals already in the registry for a model are reused, and left out of the progress count:
an instant jump over a reused column would make the rate, and so the ETA, far too optimistic.
"""
from __future__ import annotations

import contextlib
import itertools
from typing import Callable, Mapping, Sequence

from workbench.core.progress import UNITS_PER_JOB, Nested
from workbench.core.options import ALPHA, N_BOOT
from workbench.errors import ConfigError, DataError
from workbench.jobs.compare_common import (evaluate_or_reuse, find_reuse, paired_setup, row_texts, run_provenance,
                                           store_comparison)
from workbench.jobs.compare_result import (MAX_TEMPLATES, ComparisonResult, compare_results, finish_verdicts,
                                           unique_names)


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
    n_boot: int = N_BOOT,
    boot_seed: int = 0,
    alpha: float = ALPHA,
    progress: Callable[..., None] | None = None,
    cancel: Callable[[], bool] | None = None,
    judge=None,
    judge_session=None,
    judge_labels: str | None = None,
) -> ComparisonResult:
    """Score every (model, template) on identical rows, then compare the columns (see module doc).

    `judge` (a core.judge.JudgeTemplate; one model only) scores generation outputs on
    `judge_session()` (a context manager giving the judge model's session; default: the model's
    own session) once every column is scored; its verdicts join the result's `generation` part
    (jobs/judge.py). `registry` defaults to the user's run registry (reuse + storing);
    `store=False` with no registry skips both. `progress(done, total, message)` counts
    UNITS_PER_JOB per freshly scored column."""
    from workbench.jobs.inference import jsonable

    if judge is not None and len(models) > 1:
        raise ConfigError("a judge runs on template comparisons of one model",
                          "compare the models without a judge, or compare templates on one model with it")
    config, labels, tnames, cols, reg, rows, pool, demos = grid_setup(models, templates, dataset, config, baseline,
                                                                       registry, store)
    names = [c[0] for c in cols]
    indices = [jsonable(i) for i in rows.index]
    sessions = dict(zip(labels, models.values()))
    results: list = []
    infos: list[dict] = []
    model_info: dict = {}
    # Progress counts fresh columns only. A model's reused columns are known once it is opened, so
    # until then its columns count as fresh, and the total shrinks as reuse is found.
    fresh_done, fresh_total, unknown = 0, 0, len(cols)
    with contextlib.ExitStack() as held:
        for ml in labels:
            held.close()   # the previous model is released before the next is opened; the last stays
            session = open_model(sessions[ml], held)   # held for the judge and the statistics
            session.load()
            model_info[ml] = {"name": session.config.model, "identity": session.identity,
                              "adapter": session.adapter, "backend": session.backend}
            mine = [(i, c) for i, c in enumerate(cols) if c[1] == ml]
            found = {i: find_reuse(t, dataset, session, config, rows=rows, registry=reg) for i, (_, _, t) in mine}
            unknown -= len(mine)
            fresh_total += sum(f is None for f in found.values())
            for i, (cname, _, t) in mine:
                if cancel is not None and cancel():
                    from workbench.errors import Cancelled
                    raise Cancelled()
                if found[i] is not None:
                    (res, run_id), reused = found[i], True
                else:
                    stage = (Nested(progress, fresh_done, fresh_total + unknown, f"{cname} ({i + 1}/{len(cols)})")
                             if progress else None)
                    res, run_id, reused = evaluate_or_reuse(t, dataset, session, config, rows=rows, pool=pool,
                                                            registry=reg, progress=stage, cancel=cancel, reuse=False)
                    fresh_done += 1
                if [r["index"] for r in res.records] != indices:   # what the whole comparison rests on
                    raise DataError(f"column {cname!r} was scored on other rows than planned",
                                    "this is a bug: please report it with the comparison settings")
                results.append((cname, res))
                infos.append({"eval_run_id": run_id, "reused": reused, "model": ml, "model_identity": session.identity})
        if progress is not None:
            units = max(1, fresh_total) * UNITS_PER_JOB
            progress(units, units, "statistics")
        cmp = _verdicts(results, infos, cols, session, dataset, rows, templates, reg, baseline=baseline,
                        n_boot=n_boot, boot_seed=boot_seed, alpha=alpha, cancel=cancel, judge=judge,
                        judge_session=judge_session, judge_labels=judge_labels)
    grid = len(labels) > 1
    if not grid:   # the one-model case is compare_templates: its report has no model columns
        for t_info in cmp.templates:
            t_info.pop("model")
            t_info.pop("model_identity")
    hashes = {nm: r.provenance["data"]["row_indices_hash"] for nm, r in results}
    if len(set(hashes.values())) != 1:
        raise DataError("the columns' evals report different row-indices hashes",
                        "this is a bug: please report it with the comparison settings")
    cmp.inputs = {"identical": True, "n": len(indices), "row_indices_hash": hashes[names[0]],
                  "row_indices_hash_per_template": hashes, "demo_indices": demos[tnames[0]],
                  "demo_indices_per_template": demos, "shots": config.shots, "sampling": config.sampling,
                  "seed": config.seed}
    cmp.provenance = run_provenance(dataset, session, config, models=model_info if grid else None)
    metrics = {"n": cmp.n, "reference": cmp.reference, "best": cmp.leaderboard[0]["name"],
               "best_accuracy": cmp.leaderboard[0]["accuracy"], "templates": names}
    if grid:
        cmp.settings["pairs"] = pairwise_verdicts(results, n_boot=n_boot, boot_seed=boot_seed, alpha=alpha)
        cmp.settings["grid"] = {"models": labels, "templates": tnames}
        metrics["models"] = [m["identity"] for m in model_info.values()]
    if reg is not None:
        cmp.run_id = store_comparison(reg, cmp.to_dict(), name or "compare: " + " vs ".join(names), dataset,
                                      session, config, metrics=metrics)
    return cmp


def _verdicts(results, infos, cols, session, dataset, rows, templates, reg, *, baseline, n_boot, boot_seed, alpha,
              cancel, judge, judge_session, judge_labels) -> ComparisonResult:
    """The judge (if any), then compare_results on the columns, with each column's eval facts."""
    from workbench.jobs.judge import judge_results, strip_judge

    for _, res in results:
        strip_judge(res)   # a reused eval may carry an earlier judge's scores: only this job's judge counts
    judged = None
    col_templates = [t for _, _, t in cols]
    if judge is not None:
        judged = judge_results(judge, judge_session, session, results, dataset, col_templates, registry=reg,
                               labels=judge_labels, pairs_with=baseline, cancel=cancel)
        if reg is not None and judge.mode == "pointwise":
            # the stored evals carry the judge's scores and prompts, so the results matrix shows them
            for (_, res), info in zip(results, infos):
                if info.get("eval_run_id"):
                    reg.update(info["eval_run_id"], payload=res.to_dict())
    cmp = compare_results(results, baseline=baseline, n_boot=n_boot, boot_seed=boot_seed, alpha=alpha,
                          texts=row_texts(dataset, rows, templates))
    if judged is not None:
        judged.finish(cmp)
    for info, t_info, t in zip(infos, cmp.templates, col_templates):
        t_info.update(info, hash=t.content_hash(), yaml=t.to_yaml())
    return cmp


def grid_setup(models: Mapping[str, object], templates: Sequence, dataset, config, baseline, registry, store):
    """What both grids (this one and the sequential one, jobs/sequential_grid.py) check and draw before
    scoring: 2-8 columns, their names (template @ model), a baseline among them, and the paired setup
    of the templates (compare_common.paired_setup: one draw of rows and demos, the same-demos check).
    Returns (config, model labels, template names, [(column name, model label, template)], registry,
    rows, pool, demos by template name)."""
    labels = unique_names(list(models))
    if len(labels) == 1:   # templates on one model: compare_templates' own checks and words
        config, tnames, reg, rows, pool, demos = paired_setup(templates, dataset, config, baseline, registry, store)
    else:
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


def pairwise_verdicts(results: Sequence[tuple[str, object]], *, n_boot: int = N_BOOT, boot_seed: int = 0,
                      alpha: float = ALPHA) -> list[dict]:
    """Paired tests between every two columns (McNemar Holm-adjusted over all pairs, paired
    bootstrap CIs), reusing compare_results on each pair."""
    out = []
    for (na, ra), (nb, rb) in itertools.combinations(results, 2):
        v = compare_results([(na, ra), (nb, rb)], baseline=na, n_boot=n_boot, boot_seed=boot_seed,
                            alpha=alpha).verdicts[0]
        v["a"], v["b"] = na, nb
        out.append(v)
    if len(out) > 1:
        finish_verdicts(out, alpha, holm=True, what="pairs")
    return out


def format_pairs(pairs: Sequence[dict]) -> str:
    lines = ["", "Every pair of columns:"]
    for v in pairs:
        lines.append(f"  {v['a']} vs {v['b']}: Δacc {v['delta_acc'] * 100:+.1f} pts, p={v['p_used']:.3g}"
                     f"{' (significant)' if v['significant'] else ''}")
    return "\n".join(lines)
