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

The statistics themselves live in `workbench.core.stats` (pure and tested by hand). This module
is the front door; the parts live beside it, and their public names are re-exported here:
`compare_result` (the pure part: `compare_results`, `ComparisonResult`, the text report),
`compare_common` (the run plumbing: paired rows and demos, reuse, progress, storing),
`compare_models` (the models × templates grid; `compare_templates` is its one-model case) and
`compare_runs` (stored comparisons and winners). Seed variance is here until it moves next to
the format spread (jobs/sensitivity.py).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields

from workbench.core.options import ALPHA, N_BOOT
from workbench.errors import ConfigError
# The parts of a comparison, re-exported: callers import them from here.
from workbench.jobs.compare_common import (  # noqa: F401
    Progress,
    demo_indices,
    evaluate_or_reuse,
    find_reuse,
    paired_setup,
    resolve_registry,
    row_texts,
    run_provenance,
    stage_progress,
    store_comparison,
)
from workbench.jobs.compare_models import compare_grid
from workbench.jobs.compare_result import (  # noqa: F401
    MAX_TEMPLATES,
    MIN_TEMPLATES,
    SCHEMA_VERSION,
    ComparisonResult,
    compare_results,
    finish_verdicts,
    format_comparison,
    save_json,
    unique_names,
)
from workbench.jobs.compare_runs import (  # noqa: F401
    get_winner,
    get_winner_info,
    list_comparisons,
    mark_winner,
    payload_templates,
)

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
    n_boot: int = N_BOOT,
    boot_seed: int = 0,
    alpha: float = ALPHA,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
    judge=None,
    judge_session=None,
    judge_labels: str | None = None,
) -> ComparisonResult:
    """Score every template on identical rows and demos, then compare them (see module doc).

    The one-model case of the models × templates grid (compare_models.compare_grid), so both
    share one code path: the same reuse, progress, row checks, judge and storing.

    `judge` (a core.judge.JudgeTemplate) scores generation outputs on `judge_session()` (a
    context manager giving the judge model's session; default: this session) once every template
    is scored; its verdicts join the comparison's `generation` part (jobs/judge.py).

    `registry` defaults to the user's run registry (reuse + storing); `store=False` with no
    registry skips both. `progress(done, total, message)` is called as templates advance.
    """
    return compare_grid({"model": session}, templates, dataset, config, baseline=baseline, registry=registry,
                        store=store, name=name, n_boot=n_boot, boot_seed=boot_seed, alpha=alpha, progress=progress,
                        cancel=cancel, judge=judge, judge_session=judge_session, judge_labels=judge_labels)


# ---------------------------------------------------------------------------- reopening
def open_run(run_id: str, registry=None):
    """A stored 'compare' run as its typed result: ComparisonResult, SeedVariance or
    sensitivity.SpreadResult."""
    reg = resolve_registry(registry, True)
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
