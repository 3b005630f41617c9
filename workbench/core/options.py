"""The typed options of each job kind: what a RunSpec carries besides its templates, data, models and
config dataclasses (where results go, a comparison's baseline and bootstrap, a study's seeds, ...).

    OPTIONS["compare"]                          # CompareOptions: baseline, name, out, n_boot, alpha, ...
    options_of("compare", {"n_boot": 500})      # CompareOptions(n_boot=500, ...)
    check_options("compare", {"nboot": 500})    # ConfigError: unknown option nboot, with the known ones

A spec stores its options as the dict of the fields that differ from the dataclass's defaults, so the
JSON, the hash and the command are the same whichever door set a default explicitly; every default
(n_boot = 2000, alpha = 0.05, ...) is written once, here. The runner registers each kind with its
options class (jobs/runner.py, KIND_REGISTRY). Pure data and validation.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from workbench.errors import ConfigError

N_BOOT = 2000      # bootstrap resamples of a comparison's intervals
ALPHA = 0.05       # a comparison's significance level


@dataclass
class EvalOptions:
    out: str | None = field(default=None, metadata={"help": "results JSON path"})
    # an lm-eval task by name (jobs/task_eval.py)
    task: str | None = field(default=None, metadata={"help": "an lm-eval task, group or tag name"})
    trust_task_code: bool = field(default=False, metadata={"help": "allow the task's `!function` code"})
    include_path: list[str] | None = field(default=None, metadata={"help": "folders of your own task YAMLs"})
    num_fewshot: int | None = field(default=None, metadata={"help": "override the task's num_fewshot"})
    fewshot_seed: int | None = field(default=None, metadata={"help": "lm-eval's sampler seed (None = 1234)"})


@dataclass
class CompareOptions:
    baseline: str | None = field(default=None, metadata={"help": "the reference column (None = the best)"})
    name: str | None = field(default=None, metadata={"help": "the run's name in the registry"})
    out: str | None = field(default=None, metadata={"help": "results JSON path"})
    n_boot: int | None = field(default=None, metadata={
        "help": f"bootstrap resamples (None = {N_BOOT}; 1000 for an lm-eval task comparison)"})
    alpha: float | None = field(default=None, metadata={"help": f"significance level (None = {ALPHA})"})
    # a sequential comparison (core/sequential.py SequentialOptions: its keys, checked there)
    sequential: bool = False
    margin: float | None = None
    first_batch: int | None = None
    growth: float | None = None
    order_seed: int | None = None
    price_per_mtok: float | None = None
    # an lm-eval task's rows (jobs/task_compare.py)
    task: str | None = None
    trust_task_code: bool = False
    include_path: list[str] | None = None
    task_data: str | None = None
    num_fewshot: int | None = None
    limit: int | None = None
    fewshot_seed: int | None = None

    @property
    def boot(self) -> int:
        return int(self.n_boot or N_BOOT)

    @property
    def level(self) -> float:
        return float(self.alpha if self.alpha is not None else ALPHA)


@dataclass
class StudyOptions:
    """A seed variance ("seeds": "0,1,2", as the command writes them) or a format spread ("spread": variants)."""
    seeds: str | None = None
    spread: int | None = None
    out: str | None = None


@dataclass
class TrainOptions:
    out: str | None = field(default=None, metadata={"help": "the run folder"})


@dataclass
class ExportOptions:
    out: str | None = field(default=None, metadata={"help": "the bundle folder"})
    train_run: str | None = field(default=None, metadata={"help": "export a training run's adapter"})
    winner: str | bool = field(default=False, metadata={"help": "export a marked winner (True: the latest; or its run id)"})
    merge: bool = False
    overwrite: bool = False
    no_data: bool = False
    zip: bool = False
    force: bool = False


@dataclass
class SearchOptions:
    resume: str | None = field(default=None, metadata={"help": "the run id of a stopped search"})
    name: str | None = field(default=None, metadata={"help": "the run's name in the registry"})
    out: str | None = field(default=None, metadata={"help": "write the report as JSON"})


OPTIONS: dict[str, type] = {"eval": EvalOptions, "compare": CompareOptions, "train": TrainOptions,
                            "export": ExportOptions, "search": SearchOptions, "seed_variance": StudyOptions,
                            "format_spread": StudyOptions}


def check_options(kind: str, options: Mapping[str, Any] | None) -> dict:
    """The stored form of a kind's options: known keys only (else a ConfigError naming the unknown ones),
    unset (None), false and default values left out."""
    cls = OPTIONS[kind]
    known = {f.name: f for f in fields(cls)}
    given = {k: v for k, v in dict(options or {}).items() if v is not None and v is not False}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ConfigError(f"Unknown {kind} option(s): {', '.join(unknown)}.",
                          hint=f"Known options: {', '.join(sorted(known))}.")
    default = cls()
    if kind == "compare":
        # the explicit defaults of the resamples and the level are the same choice as leaving them out
        given = {k: v for k, v in given.items()
                 if not (k == "n_boot" and int(v) == (1000 if given.get("task") else N_BOOT))
                 and not (k == "alpha" and float(v) == ALPHA and not given.get("sequential"))}
    return {k: v for k, v in given.items() if v != getattr(default, k)}


def options_of(kind: str, options: Mapping[str, Any] | None):
    """The kind's options dataclass filled from a spec's stored options."""
    cls = OPTIONS[kind]
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in dict(options or {}).items() if k in known})
