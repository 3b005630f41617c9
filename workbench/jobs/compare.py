"""Side-by-side comparison of 2-8 templates on identical examples, with a paired verdict.

    cfg = EvalConfig(shots=4, seed=1, limit=300)
    res = compare_templates([t_a, t_b, t_c], dataset, get_session("default"), cfg)
    res.leaderboard[0]            # best first: accuracy + Wilson CI, macro-F1 + bootstrap CI
    [v["text"] for v in res.verdicts]   # "B beats A by 6.0 pts accuracy (95% CI [+2.1, +9.8], p=0.003)"
    res.disagreements(label="tech")      # examples the templates disagree on, gold = or pred = tech
    mark_winner(res.run_id, "A")         # the Export step picks it up: get_winner()

How it stays honest:
- Every template is scored on the same rows, in the same order, with the same few-shot
  demonstrations (one `eval_rows` call; demos are drawn from the pool by `config.seed`). The
  result records the row-indices hash and the demo indices of every template, and a mismatch
  raises instead of producing a comparison of different things.
- Each template is compared with one reference (the best by accuracy, or a chosen baseline)
  by tests on *paired* outcomes: exact McNemar on the discordant examples, and a paired
  bootstrap (same resampled examples for both) for Δaccuracy and Δmacro-F1. With more than
  one comparison (> 2 templates) the McNemar p-values are Holm-adjusted, so "one of seven
  templates looks better" does not pass as a finding by chance.
- No double work: an eval already in the run registry with the same template hash, model,
  adapter, data fingerprint and prediction settings (which include the row-indices hash) is
  reused instead of rescored; fresh evals are recorded there for the next time.

The statistics themselves live in `workbench.core.stats` (pure and tested by hand); this module
wires them to eval results and the registry. `compare_results` is the pure part (results in,
comparison out) and `compare_templates` the part that runs the model.
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from workbench.core.progress import UNITS_PER_JOB, Nested
from workbench.errors import ConfigError, DataError

SCHEMA_VERSION = 1
MIN_TEMPLATES, MAX_TEMPLATES = 2, 8

# progress(done, total, message): `done`/`total` count work units across all templates
# (core.progress.Nested: UNITS_PER_JOB per scored template); the message has each stage's real counts.
Progress = Callable[..., None]


# ---------------------------------------------------------------------------- result
@dataclass
class ComparisonResult:
    """Everything a comparison found; `to_dict()` is what `--out cmp.json` and the registry hold."""

    names: list[str] = field(metadata={"help": "Template names, in the order given (made unique)."})
    reference: str = field(metadata={"help": "The template every other one is compared with."})
    reference_mode: str = field(metadata={"help": "'best' (highest accuracy) or 'baseline' (chosen by the user)."})
    task: str = field(metadata={"help": "classification | generation."})
    n: int = field(metadata={"help": "Examples every template was scored on."})
    labels: list[str] = field(metadata={"help": "Class order used for F1 and confusion matrices."})
    leaderboard: list[dict] = field(metadata={"help": "One row per template, best first."})
    verdicts: list[dict] = field(metadata={"help": "One row per non-reference template: paired tests vs the reference."})
    metrics: dict = field(metadata={"help": "Per template: classification_metrics (per class, confusion)."})
    examples: list[dict] = field(metadata={"help": "Per example: index, gold, text, and each template's pred, correct, scores."})
    inputs: dict = field(metadata={"help": "Evidence that inputs were identical: row-indices hash, demo indices."})
    templates: list[dict] = field(metadata={"help": "Per template: name, hash, yaml, eval run id, reused."})
    provenance: dict = field(metadata={"help": "Model, data, eval config, time."})
    settings: dict = field(default_factory=dict, metadata={"help": "n_boot, boot_seed, alpha, confidence, holm."})
    run_id: str | None = field(default=None, metadata={"help": "Registry id of this comparison, once stored."})
    winner: str | None = field(default=None, metadata={"help": "Template marked as the winner, if any."})
    generation: dict = field(default_factory=dict, metadata={
        "help": "Generation templates: paired verdicts per reference metric and per judge (core/gen_verdicts.py)."})
    type: str = field(default="comparison", metadata={"help": "Payload type tag (registry 'compare' runs hold several)."})
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ComparisonResult:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def save(self, path: str | Path) -> Path:
        return _save_json(self.to_dict(), path)

    @classmethod
    def load(cls, path: str | Path) -> ComparisonResult:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def template_yaml(self, name: str) -> str:
        for t in self.templates:
            if t["name"] == name:
                return t["yaml"]
        raise ConfigError(f"no template named {name!r} in this comparison",
                          f"templates compared: {', '.join(self.names)}")

    def disagreements(self, label: str | None = None, names: Sequence[str] | None = None) -> list[dict]:
        """Examples where the templates (all, or `names`) predict different answers.

        `label` keeps only examples whose gold or any prediction is that class, which is how
        one browses "where does the confusion about tech come from"."""
        names = list(names) if names else self.names
        out = []
        for ex in self.examples:
            preds = [ex["preds"][n] for n in names]
            if len(set(preds)) < 2:
                continue
            if label is not None and ex["gold"] != label and label not in preds:
                continue
            out.append(ex)
        return out

    def summary(self) -> str:
        return format_comparison(self)


def _save_json(d: dict, path: str | Path) -> Path:
    from workbench.core.fileutil import write_text_atomic

    return write_text_atomic(path, json.dumps(d, indent=1, ensure_ascii=False, default=str))


# ---------------------------------------------------------------------------- pure part
def _unique_names(names: Sequence[str]) -> list[str]:
    """Two columns may carry the same template name (a copy being edited); keep both apart."""
    out: list[str] = []
    for n in names:
        base, k, cand = str(n) or "template", 2, str(n) or "template"
        while cand in out:
            cand, k = f"{base} ({k})", k + 1
        out.append(cand)
    return out


def _as_result_dict(r) -> dict:
    return r.to_dict() if hasattr(r, "to_dict") else dict(r)


def compare_results(
    results: Sequence[tuple[str, Any]],
    *,
    baseline: str | None = None,
    n_boot: int = 2000,
    boot_seed: int = 0,
    alpha: float = 0.05,
    confidence: float = 0.95,
    texts: Sequence[str] | None = None,
) -> ComparisonResult:
    """The statistics of a comparison from already computed eval results (pure, no model).

    `results` is [(name, EvalResult or its dict)], all on the same examples in the same order
    (checked: the record indices and golds must agree). `baseline` names the reference; by
    default it is the best template (accuracy, then macro-F1, then first given). `texts` are
    optional per-example input texts shown with the disagreements.
    """
    from workbench.core import stats
    from workbench.core.metrics import classification_metrics

    if not MIN_TEMPLATES <= len(results) <= MAX_TEMPLATES:
        raise ConfigError(f"a comparison needs {MIN_TEMPLATES} to {MAX_TEMPLATES} templates, got {len(results)}",
                          "add or remove templates")
    names = _unique_names([n for n, _ in results])
    dicts = [_as_result_dict(r) for _, r in results]
    tasks = {d["task"] for d in dicts}
    if len(tasks) != 1:
        raise ConfigError(f"cannot compare templates of different tasks ({', '.join(sorted(tasks))})",
                          "compare classification templates with classification templates")
    task = tasks.pop()
    recs = [d["records"] for d in dicts]
    n = len(recs[0])
    if n == 0:
        raise DataError("the comparison has no examples", "evaluate at least one example")
    index0 = [r["index"] for r in recs[0]]
    gold = [str(r["gold"]) for r in recs[0]]
    for name, rs in zip(names[1:], recs[1:]):
        if [r["index"] for r in rs] != index0:
            raise DataError(f"template {name!r} was scored on other examples than {names[0]!r}",
                            "compare runs on the same data, split, limit and order")
        g = [str(r["gold"]) for r in rs]
        if g != gold:
            bad = next(i for i, (x, y) in enumerate(zip(g, gold)) if x != y)
            raise DataError(f"template {name!r} gives gold {g[bad]!r} for row {index0[bad]} where {names[0]!r} "
                            f"gives {gold[bad]!r}", "paired tests need the same gold answers: use the same "
                            "label column and `target` in every template")
    if baseline is not None and baseline not in names:
        raise ConfigError(f"baseline {baseline!r} is not one of the compared templates",
                          f"choose one of: {', '.join(names)}")

    preds = {nm: [str(r["pred"]) for r in rs] for nm, rs in zip(names, recs)}
    correct = {nm: [bool(r["correct"]) for r in rs] for nm, rs in zip(names, recs)}

    labels: list[str] = []
    if task == "classification":
        for d, rs in zip(dicts, recs):
            for lab in list(d.get("metrics", {}).get("per_class", {})) + [x for r in rs for x in (r["gold"], r["pred"])]:
                if str(lab) not in labels:
                    labels.append(str(lab))
    metrics = {}
    for nm in names:
        if task == "classification":
            metrics[nm] = classification_metrics(gold, preds[nm], labels)
        else:
            metrics[nm] = {"n": n, "accuracy": sum(correct[nm]) / n}

    # Leaderboard rows, then the reference.
    rows = []
    for i, nm in enumerate(names):
        k = sum(correct[nm])
        lo, hi = stats.wilson_interval(k, n, confidence)
        row = {"name": nm, "n": n, "correct": k, "accuracy": k / n, "ci_low": lo, "ci_high": hi,
               "macro_f1": None, "f1_ci_low": None, "f1_ci_high": None,
               "majority_baseline": metrics[nm].get("majority_baseline"), "order": i}
        if task == "classification":
            row["macro_f1"] = metrics[nm]["macro_f1"]
            row["f1_ci_low"], row["f1_ci_high"] = stats.f1_bootstrap_ci(
                gold, preds[nm], labels, n_boot=n_boot, seed=boot_seed, confidence=confidence)
        rows.append(row)
    ranked = sorted(rows, key=lambda r: (-r["accuracy"], -(r["macro_f1"] or 0.0), r["order"]))
    for rank, r in enumerate(ranked, 1):
        r["rank"] = rank
    reference = baseline or ranked[0]["name"]

    # Paired tests of each other template (B) against the reference (A).
    verdicts = []
    # Accuracy is bootstrapped on correctness, so generation (no label set) works the same way.
    ones = ["1"] * n
    as01 = lambda nm: ["1" if c else "0" for c in correct[nm]]
    for nm in names:
        if nm == reference:
            continue
        both, only_a, only_b, neither = stats.discordant_counts(ones, as01(reference), as01(nm))
        acc = stats.paired_bootstrap(ones, as01(reference), as01(nm), ["0", "1"], metric="accuracy",
                                     n_boot=n_boot, seed=boot_seed, confidence=confidence)
        v = {"a": reference, "b": nm, "n": n, "both_right": both, "only_a": only_a, "only_b": only_b,
             "both_wrong": neither, "p_disagree": (only_a + only_b) / n,
             "p_mcnemar": stats.mcnemar_exact(only_a, only_b), "p_midp": stats.mcnemar_midp(only_a, only_b),
             "delta_acc": acc["delta"], "delta_acc_ci_bootstrap": [acc["ci_low"], acc["ci_high"]],
             "p_bootstrap_acc": acc["p"], "delta_f1": None, "delta_f1_ci": None}
        if task == "classification":
            f1 = stats.paired_bootstrap(gold, preds[reference], preds[nm], labels, metric="macro_f1",
                                        n_boot=n_boot, seed=boot_seed, confidence=confidence)
            v["delta_f1"], v["delta_f1_ci"] = f1["delta"], [f1["ci_low"], f1["ci_high"]]
        verdicts.append(v)
    holm_applied = len(verdicts) > 1
    finish_verdicts(verdicts, alpha, confidence, holm=holm_applied, what="comparisons")
    by_name = {v["b"]: v for v in verdicts}
    for r in ranked:
        v = by_name.get(r["name"])
        r["is_reference"] = r["name"] == reference
        r["delta_acc"] = None if v is None else v["delta_acc"]
        r["p"] = None if v is None else v["p_used"]
        r.pop("order")

    examples = []
    for i in range(n):
        ex = {"index": index0[i], "gold": gold[i],
              "preds": {nm: preds[nm][i] for nm in names},
              "correct": {nm: correct[nm][i] for nm in names},
              "scores": {nm: rs[i].get("scores") for nm, rs in zip(names, recs)}}
        if texts is not None:
            ex["text"] = texts[i]
        examples.append(ex)

    generation = {}
    if task == "generation":
        from workbench.core.gen_verdicts import generation_verdicts

        generation = generation_verdicts(names, dicts, reference, n_boot=min(n_boot, 1000), seed=boot_seed,
                                         alpha=alpha)
        for ex, i in zip(examples, range(n)):
            ex["metrics"] = {nm: rs[i].get("metrics") for nm, rs in zip(names, recs)}
            ex["judge"] = {nm: (rs[i].get("judge") or {}).get("score") for nm, rs in zip(names, recs)}
    return ComparisonResult(
        generation=generation,
        names=names, reference=reference, reference_mode="baseline" if baseline else "best", task=task, n=n,
        labels=labels, leaderboard=ranked, verdicts=verdicts, metrics=metrics, examples=examples,
        inputs={"row_indices_hash": _hash(index0), "n": n},
        templates=[{"name": nm, **_template_info(d)} for nm, d in zip(names, dicts)],
        provenance={}, settings={"n_boot": n_boot, "boot_seed": boot_seed, "alpha": alpha,
                                 "confidence": confidence, "holm": holm_applied})


def _template_info(d: dict) -> dict:
    t = d.get("provenance", {}).get("template", {})
    return {"hash": t.get("hash"), "yaml": t.get("yaml"), "eval_run_id": None, "reused": False}


def finish_verdicts(verdicts: list[dict], alpha: float, confidence: float = 0.95, *, holm: bool,
                    what: str = "comparisons") -> None:
    """p_holm, p_used, significant, the accuracy interval and the sentence of each verdict, from one
    method: exact McNemar and its exact interval (stats.mcnemar_interval). The interval's level is
    1 - alpha, scaled by the factor Holm applied to that p (p / p_holm), so it excludes 0 exactly
    when the verdict is significant; the words, the interval and the p can never disagree."""
    from workbench.core import stats

    raw = [v["p_mcnemar"] for v in verdicts]
    adjusted = stats.holm(raw) if holm else raw
    for v, p, p_adj in zip(verdicts, raw, adjusted):
        v["p_holm"] = p_adj if holm else None
        v["p_used"] = p_adj
        v["significant"] = bool(p_adj < alpha and v["delta_acc"] != 0)
        level = 1 - alpha * (p / p_adj if p_adj > 0 else 1.0)
        v["delta_acc_ci"] = list(stats.mcnemar_interval(v["only_a"], v["only_b"], v["n"], level))
        v["delta_acc_ci_level"] = level
        v["text"] = _verdict_text(v, holm, len(verdicts), alpha, confidence, what)


def _verdict_text(v: dict, holm_applied: bool, m: int, alpha: float, confidence: float,
                  what: str = "comparisons") -> str:
    from workbench.core.stats import verdict

    text = verdict(v["a"], v["b"], v["n"], v["delta_acc"], tuple(v["delta_acc_ci"]), v["p_used"], alpha,
                   p_disagree=v["p_disagree"] or None, confidence=v.get("delta_acc_ci_level", 1 - alpha))
    if holm_applied:
        text += f" [McNemar p and interval Holm-adjusted over {m} {what}]"
    if v["delta_f1"] is not None:
        # Measured the same way round as the sentence: winner minus loser when it names a
        # winner, else B minus A (as its accuracy difference).
        d, (lo, hi) = v["delta_f1"], v["delta_f1_ci"]
        first, second = v["b"], v["a"]
        if text.startswith(f"{v['a']} beats "):
            d, lo, hi, first, second = -d, -hi, -lo, v["a"], v["b"]
        text += (f". macro-F1 {first} − {second}: {d * 100:+.1f} pts, {confidence * 100:g}% bootstrap CI "
                 f"[{lo * 100:+.1f}, {hi * 100:+.1f}]")
    return text


def _hash(obj) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(obj, default=str).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------- model part
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


def _row_texts(dataset, rows, templates=(), limit: int = 400) -> list[str] | None:
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


def _resolve_registry(registry, store: bool):
    if registry is not None or not store:
        return registry
    from workbench.storage.runs import RunRegistry

    return RunRegistry()


def _stage_progress(progress: Progress | None, i: int, k: int, name: str):
    """One template's stages (real counts) as part of the whole comparison (core.progress.Nested)."""
    from workbench.core.progress import Nested

    return None if progress is None else Nested(progress, i, k, f"{name} ({i + 1}/{k})")


def _provenance(dataset, session, config) -> dict:
    return {"model": {"name": session.config.model, "identity": session.identity, "adapter": session.adapter},
            "data": {"name": dataset.name, "source": getattr(dataset, "source", None),
                     "fingerprint": dataset.fingerprint(), "split": config.split, "split_seed": config.split_seed},
            "config": asdict(config), "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


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
    names = _unique_names([t.name for t in templates])
    if baseline is not None and baseline not in names:
        raise ConfigError(f"baseline {baseline!r} is not one of the compared templates",
                          f"choose one of: {', '.join(names)}")
    reg = _resolve_registry(registry, store)
    rows, pool = eval_rows(dataset, config)
    demos = {nm: demo_indices(t, rows, pool, config) for nm, t in zip(names, templates)}
    for nm in names[1:]:
        if demos[nm] != demos[names[0]]:
            raise ConfigError(f"template {nm!r} would get other few-shot demos than {names[0]!r}",
                              "give every template the same label_column, so demos are drawn alike")
    return config, names, reg, rows, pool, demos


def compare_templates(
    templates: Sequence,
    dataset,
    session,
    config=None,
    *,
    baseline: str | None = None,
    registry=None,
    store: bool = True,
    name: str | None = None,
    n_boot: int = 2000,
    boot_seed: int = 0,
    alpha: float = 0.05,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
    judge=None,
    judge_session=None,
    judge_labels: str | None = None,
) -> ComparisonResult:
    """Score every template on identical rows and demos, then compare them (see module doc).

    `judge` (a core.judge.JudgeTemplate) scores generation outputs on `judge_session()` (a
    context manager giving the judge model's session; default: this session) once every template
    is scored; its verdicts join the comparison's `generation` part (jobs/judge.py).

    `registry` defaults to the user's run registry (reuse + storing); `store=False` with no
    registry skips both. `progress(done, total, message)` is called as templates advance.
    """
    from workbench.jobs.inference import jsonable

    config, names, reg, rows, pool, demos = paired_setup(templates, dataset, config, baseline, registry, store)
    indices = [jsonable(i) for i in rows.index]
    first = demos[names[0]]

    # Reused evals are looked up first and left out of the count: an instant jump over a reused
    # template would make the rate, and so the ETA, far too optimistic.
    found = {nm: find_reuse(t, dataset, session, config, rows=rows, registry=reg) for nm, t in zip(names, templates)}
    fresh = [nm for nm in names if found[nm] is None]
    results, infos = [], []
    for i, (nm, t) in enumerate(zip(names, templates)):
        if cancel is not None and cancel():
            from workbench.errors import Cancelled
            raise Cancelled()
        if found[nm] is not None:
            (res, run_id), reused = found[nm], True
        else:
            j = fresh.index(nm)
            stage = Nested(progress, j, len(fresh), f"{nm} ({i + 1}/{len(templates)})") if progress else None
            res, run_id, reused = evaluate_or_reuse(t, dataset, session, config, rows=rows, pool=pool, registry=reg,
                                                    progress=stage, cancel=cancel, reuse=False)
        got = [r["index"] for r in res.records]
        if got != indices:   # the invariant the whole comparison rests on
            raise DataError(f"template {nm!r} was scored on other rows than planned",
                            "this is a bug: please report it with the comparison settings")
        results.append((nm, res))
        infos.append({"eval_run_id": run_id, "reused": reused})
    if progress is not None:
        units = max(1, len(fresh)) * UNITS_PER_JOB
        progress(units, units, "statistics")

    from workbench.jobs.judge import judge_results, strip_judge

    for _, res in results:
        strip_judge(res)   # a reused eval may carry an earlier judge's scores: only this job's judge counts
    judged = None
    if judge is not None:
        judged = judge_results(judge, judge_session, session, results, dataset, templates, registry=reg,
                               labels=judge_labels, pairs_with=baseline, cancel=cancel)
        if reg is not None and judge.mode == "pointwise":
            # the stored evals carry the judge's scores and prompts, so the results matrix shows them
            for (_, res), info in zip(results, infos):
                if info.get("eval_run_id"):
                    reg.update(info["eval_run_id"], payload=res.to_dict())
    cmp = compare_results(results, baseline=baseline, n_boot=n_boot, boot_seed=boot_seed, alpha=alpha,
                          texts=_row_texts(dataset, rows, templates))
    if judged is not None:
        judged.finish(cmp)
    for info, t_info, t in zip(infos, cmp.templates, templates):
        t_info.update(info, hash=t.content_hash(), yaml=t.to_yaml())
    row_hash = results[0][1].provenance["data"]["row_indices_hash"]
    cmp.inputs = {
        "identical": True, "n": len(indices), "row_indices_hash": row_hash,
        "row_indices_hash_per_template": {nm: r.provenance["data"]["row_indices_hash"] for nm, r in results},
        "demo_indices": first, "demo_indices_per_template": demos, "shots": config.shots,
        "sampling": config.sampling, "seed": config.seed,
    }
    if len(set(cmp.inputs["row_indices_hash_per_template"].values())) != 1:
        raise DataError("the templates' evals report different row-indices hashes",
                        "this is a bug: please report it with the comparison settings")
    cmp.provenance = _provenance(dataset, session, config)
    if reg is not None:
        cmp.run_id = _store(reg, cmp.to_dict(), name or "compare: " + " vs ".join(names), dataset, session, config,
                            metrics={"n": cmp.n, "reference": cmp.reference, "best": cmp.leaderboard[0]["name"],
                                     "best_accuracy": cmp.leaderboard[0]["accuracy"], "templates": names})
    return cmp


def _store(reg, payload: dict, name: str, dataset, session, config, metrics: dict) -> str:
    settings = {"type": payload.get("type"), "eval": asdict(config), **payload.get("settings", {})}
    return reg.add("compare", name=name, model=session.identity, adapter=session.adapter,
                   data_fingerprint=dataset.fingerprint(), data_name=dataset.name, seed=config.seed,
                   settings=settings, metrics={"type": payload.get("type"), **metrics}, payload=payload)


# ---------------------------------------------------------------------------- reopening and winners
def open_run(run_id: str, registry=None):
    """A stored 'compare' run as its typed result: ComparisonResult, SeedVariance or
    sensitivity.SpreadResult."""
    reg = _resolve_registry(registry, True)
    rec = reg.get(run_id)
    if rec.kind != "compare":
        raise ConfigError(f"run {run_id} is a {rec.kind} run, not a comparison",
                          "open it from the Runs tab instead")
    payload = reg.payload(run_id)
    if payload is None:
        raise ConfigError(f"comparison {run_id} has no stored results", "run the comparison again")
    kind = payload.get("type", "comparison")
    if kind == "seed_variance":
        obj = SeedVariance.from_dict(payload)
    elif kind == "format_spread":
        from workbench.core.formats import SpreadResult
        obj = SpreadResult.from_dict(payload)
    else:
        obj = ComparisonResult.from_dict(payload)
    obj.run_id = run_id
    return obj


def open_comparison(run_id: str, registry=None) -> ComparisonResult:
    obj = open_run(run_id, registry)
    if not isinstance(obj, ComparisonResult):
        raise ConfigError(f"run {run_id} is a {obj.type} run, not a side-by-side comparison",
                          "open it with compare.open_run")
    return obj


def list_comparisons(registry=None, limit: int = 50) -> list[dict]:
    """Stored comparisons, newest first, as small dicts for a picker."""
    reg = _resolve_registry(registry, True)
    return [{"id": r.id, "name": r.name, "created_at": r.created_at, "data": r.data_name,
             "type": r.metrics.get("type", "comparison"), "best": r.metrics.get("best"),
             "winner": r.metrics.get("winner")} for r in reg.list(kind="compare", limit=limit)]


def _payload_templates(payload: dict) -> dict[str, str]:
    """name -> template YAML for every template a stored comparison holds."""
    if payload.get("type") == "format_spread":
        return {v["name"]: v["yaml"] for v in payload.get("variants", [])}
    if payload.get("type") == "seed_variance":
        return {payload["template"]["name"]: payload["template"]["yaml"]}
    return {t["name"]: t["yaml"] for t in payload.get("templates", [])}


def mark_winner(run_id: str, template_name: str, registry=None) -> str:
    """Mark one template of a stored comparison as the winner; returns its YAML.

    Kept in the run's metrics (listable without reading payloads) and in its payload."""
    from datetime import datetime, timezone

    reg = _resolve_registry(registry, True)
    rec = reg.get(run_id)
    if rec.kind != "compare":
        raise ConfigError(f"run {run_id} is a {rec.kind} run, not a comparison", "pick a comparison run")
    payload = reg.payload(run_id) or {}
    tmpl = _payload_templates(payload)
    if template_name not in tmpl:
        raise ConfigError(f"comparison {run_id} has no template named {template_name!r}",
                          f"choose one of: {', '.join(tmpl) or 'none'}")
    now = datetime.now(timezone.utc).isoformat(timespec="microseconds")
    payload["winner"], payload["winner_marked_at"] = template_name, now
    reg.update(run_id, metrics={**rec.metrics, "winner": template_name, "winner_marked_at": now}, payload=payload)
    return tmpl[template_name]


def get_winner_info(run_id: str | None = None, registry=None) -> dict | None:
    """{run_id, name, yaml, marked_at} of the winner of `run_id`, or of the most recently
    marked winner across all comparisons; None if none was marked."""
    reg = _resolve_registry(registry, True)
    if run_id is not None:
        candidates = [reg.get(run_id)]
    else:
        candidates = [r for r in reg.list(kind="compare", limit=10_000) if r.metrics.get("winner")]
        candidates.sort(key=lambda r: r.metrics.get("winner_marked_at", ""), reverse=True)
    for rec in candidates:
        name = rec.metrics.get("winner")
        if not name:
            continue
        yaml_text = _payload_templates(reg.payload(rec.id) or {}).get(name)
        if yaml_text:
            return {"run_id": rec.id, "name": name, "yaml": yaml_text, "marked_at": rec.metrics.get("winner_marked_at")}
    return None


def get_winner(run_id: str | None = None, registry=None) -> str | None:
    """The template YAML of the latest marked winner (or of `run_id`'s winner), else None."""
    info = get_winner_info(run_id, registry)
    return None if info is None else info["yaml"]


# ---------------------------------------------------------------------------- seed variance
@dataclass
class SeedVariance:
    """How much one template's score moves when only the few-shot demonstrations change."""

    template: dict = field(metadata={"help": "name, hash, yaml."})
    n: int = field(metadata={"help": "Examples per seed (the same rows for every seed)."})
    seeds: list[int] = field(metadata={"help": "Demo seeds tried."})
    per_seed: list[dict] = field(metadata={"help": "seed, accuracy, macro_f1, demo_indices, eval_run_id, reused."})
    accuracy: dict = field(metadata={"help": "mean, std (sample, ddof=1), min, max over seeds."})
    macro_f1: dict = field(metadata={"help": "Same for macro-F1 (classification)."})
    provenance: dict = field(default_factory=dict)
    run_id: str | None = None
    winner: str | None = None
    type: str = "seed_variance"
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SeedVariance:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def summary(self) -> str:
        a = self.accuracy
        return (f"{self.template['name']}: accuracy {a['mean'] * 100:.1f} ± {a['std'] * 100:.1f} pts over "
                f"{len(self.seeds)} demo seeds (min {a['min'] * 100:.1f}, max {a['max'] * 100:.1f}), n={self.n}")


def spread_stats(values: Sequence[float]) -> dict:
    """mean, sample std (ddof=1; 0 for one value), min, max and max-min of a list of scores."""
    vals = [float(v) for v in values]
    if not vals:
        return {"mean": None, "std": None, "min": None, "max": None, "spread": None}
    mean = sum(vals) / len(vals)
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
    return {"mean": mean, "std": std, "min": min(vals), "max": max(vals), "spread": max(vals) - min(vals)}


# (seed_variance moved next to the format spread: jobs/sensitivity.py; no re-export here, which would be an
# import cycle, since the studies use this module's evaluate_or_reuse)


# ---------------------------------------------------------------------------- text output
def format_comparison(c: ComparisonResult) -> str:
    """The leaderboard and verdicts as plain text (the CLI prints this)."""
    inp = c.inputs or {}
    demo = (f"{inp.get('shots')} {inp.get('sampling')} demos (seed {inp.get('seed')})"
            if inp.get("shots") else "zero-shot")
    ref = "chosen baseline" if c.reference_mode == "baseline" else "best"
    head = (f"{len(c.names)} templates on the same {c.n} examples (rows {inp.get('row_indices_hash', '?')}, "
            f"{demo}); reference: {c.reference} ({ref})")
    ci = lambda lo, hi: "" if lo is None else f"[{lo * 100:.1f}, {hi * 100:.1f}]"
    table = [("#", "template", "acc %", "95% CI", "macro-F1 %", "95% CI", "Δacc", "p")]
    for r in c.leaderboard:
        p = "" if r["p"] is None else (f"{r['p']:.3f}" if r["p"] >= 0.001 else "<0.001")
        table.append((str(r["rank"]), r["name"], f"{r['accuracy'] * 100:.1f}", ci(r["ci_low"], r["ci_high"]),
                      "-" if r["macro_f1"] is None else f"{r['macro_f1'] * 100:.1f}",
                      ci(r["f1_ci_low"], r["f1_ci_high"]),
                      "ref" if r["is_reference"] else f"{r['delta_acc'] * 100:+.1f}", p))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    left = {1, 3, 5}   # text columns align left, numbers right
    lines = [head, ""]
    for row in table:
        lines.append("  ".join(cell.ljust(w) if i in left else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(row, widths))).rstrip())
    holm = "; p and interval Holm-adjusted" if c.settings.get("holm") else ""
    if c.settings.get("sequential"):
        lines += ["", "Verdicts (anytime-valid confidence sequences, docs/COMPARE.md; the table's p is always-valid):"]
    else:
        lines += ["", f"Verdicts (exact McNemar on discordant pairs, with its exact interval{holm}):"]
    lines += [f"  - {v['text']}" for v in c.verdicts]
    if c.generation:
        from workbench.core.gen_verdicts import format_generation

        lines += ["", format_generation(c.generation)]
    return "\n".join(lines)
