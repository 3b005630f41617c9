"""The statistics of a template comparison: results in, verdicts out (pure: no model, no registry).

    cmp = compare_results([("A", res_a), ("B", res_b)], baseline="A")
    cmp.leaderboard[0]; [v["text"] for v in cmp.verdicts]; print(format_comparison(cmp))

Each template is compared with one reference (the best by accuracy, or a chosen baseline) by
tests on *paired* outcomes: exact McNemar on the discordant examples, and a paired bootstrap
(same resampled examples for both) for Δaccuracy and Δmacro-F1. With more than one comparison
(> 2 templates) the McNemar p-values are Holm-adjusted, so "one of seven templates looks
better" does not pass as a finding by chance. The tests themselves live in `core.stats`; the
model part (scoring the columns on identical rows) is `jobs/compare_models.py`.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from workbench.core.options import ALPHA, N_BOOT
from workbench.errors import ConfigError, DataError

SCHEMA_VERSION = 1
MIN_TEMPLATES, MAX_TEMPLATES = 2, 8

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
        return save_json(self.to_dict(), path)

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


def save_json(d: dict, path: str | Path) -> Path:
    from workbench.core.fileutil import write_text_atomic

    return write_text_atomic(path, json.dumps(d, indent=1, ensure_ascii=False, default=str))


# ---------------------------------------------------------------------------- pure part
def unique_names(names: Sequence[str]) -> list[str]:
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
    n_boot: int = N_BOOT,
    boot_seed: int = 0,
    alpha: float = ALPHA,
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
    from workbench.core.records import hash_indices

    if not MIN_TEMPLATES <= len(results) <= MAX_TEMPLATES:
        raise ConfigError(f"a comparison needs {MIN_TEMPLATES} to {MAX_TEMPLATES} templates, got {len(results)}",
                          "add or remove templates")
    names = unique_names([n for n, _ in results])
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
        inputs={"row_indices_hash": hash_indices(index0), "n": n},
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
