"""The typed options of each job kind: what a RunSpec carries besides its templates, data, models and
config dataclasses (where results go, a comparison's baseline and bootstrap, a study's seeds, ...).

    OPTIONS["compare"]                               # CompareOptions: baseline, name, out, n_boot, alpha, ...
    check_options("compare", {"n_boot": 500})        # CompareOptions(n_boot=500, ...), as build_spec stores it
    check_options("compare", {"nboot": 500})         # ConfigError: unknown option nboot, with the known ones
    stored_options(CompareOptions(n_boot=500))       # {"n_boot": 500}: the spec's JSON form

`RunSpec.options` holds the kind's dataclass. Its JSON form (`stored_options`) is the dict of the fields that
differ from their defaults, so the JSON, the hash and the command are the same whichever door set a default
explicitly, and specs saved before the options were typed load and hash as they did. Every default
(n_boot = 2000, alpha = 0.05, a study's seeds, ...) is written once, here. The runner registers each kind
with its options class (jobs/runner.py, KIND_REGISTRY). Pure data and validation.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping, Union

from workbench.errors import ConfigError

N_BOOT = 2000      # bootstrap resamples of a comparison's intervals
TASK_N_BOOT = 1000  # ... of an lm-eval task comparison's (jobs/task_compare.py)
ALPHA = 0.05       # a comparison's significance level
FEWSHOT_SEED = 1234  # lm-eval's default sampler seed for an lm-eval task's demonstrations
SEEDS = "0,1,2,3,4"  # a seed variance's demo seeds, as the command writes them
SPREAD = 8         # a format spread's variants


@dataclass
class EvalOptions:
    out: str | None = field(default=None, metadata={"help": "results JSON path"})
    # an lm-eval task by name (jobs/task_eval.py)
    task: str | None = field(default=None, metadata={"help": "an lm-eval task, group or tag name"})
    trust_task_code: bool = field(default=False, metadata={"help": "allow the task's `!function` code"})
    include_path: list[str] | None = field(default=None, metadata={"help": "folders of your own task YAMLs"})
    num_fewshot: int | None = field(default=None, metadata={"help": "override the task's num_fewshot"})
    fewshot_seed: int | None = field(default=None, metadata={"help": f"lm-eval's sampler seed (None = {FEWSHOT_SEED})"})

    @property
    def sampler_seed(self) -> int:
        return int(self.fewshot_seed or FEWSHOT_SEED)


@dataclass
class CompareOptions:
    baseline: str | None = field(default=None, metadata={"help": "the reference column (None = the best)"})
    name: str | None = field(default=None, metadata={"help": "the run's name in the registry"})
    out: str | None = field(default=None, metadata={"help": "results JSON path"})
    n_boot: int | None = field(default=None, metadata={
        "help": f"bootstrap resamples (None = {N_BOOT}; {TASK_N_BOOT} for an lm-eval task comparison)"})
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
        return int(self.n_boot or (TASK_N_BOOT if self.task else N_BOOT))

    @property
    def level(self) -> float:
        return float(self.alpha if self.alpha is not None else ALPHA)

    @property
    def sampler_seed(self) -> int:
        return int(self.fewshot_seed or FEWSHOT_SEED)


@dataclass
class StudyOptions:
    """A seed variance ("seeds": "0,1,2", as the command writes them) or a format spread ("spread": variants)."""
    seeds: str | None = field(default=None, metadata={"help": f"the demo seeds (None = {SEEDS})"})
    spread: int | None = field(default=None, metadata={"help": f"the number of format variants (None = {SPREAD})"})
    out: str | None = None

    # (build_spec writes the defaults in: a study's spec names its seeds or variant count)
    @property
    def seed_list(self) -> list[int]:
        return [int(x) for x in str(self.seeds or SEEDS).split(",")]

    @property
    def variants(self) -> int:
        return int(self.spread or SPREAD)


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
# what RunSpec.options holds: the options class of its kind
Options = Union[EvalOptions, CompareOptions, TrainOptions, ExportOptions, SearchOptions, StudyOptions]


def options_class(kind: str) -> type:
    cls = OPTIONS.get(kind)
    if cls is None:
        raise ConfigError(f"Unknown job kind '{kind}'.", hint=f"Use one of: {', '.join(OPTIONS)}.")
    return cls


def options_from(kind: str, options: Mapping[str, Any] | Options | None) -> Options:
    """The kind's options dataclass from a spec's stored options (or the instance itself), as given:
    unknown keys, or another kind's options class, are a ConfigError; nothing else is normalised, so a
    stored spec keeps its JSON and hash."""
    cls = options_class(kind)
    if isinstance(options, cls):
        return options
    if options is not None and not isinstance(options, Mapping):
        raise ConfigError(f"A {kind} job's options are {cls.__name__} or a dict, not {type(options).__name__}.",
                          hint=f"Pass {cls.__name__}(...) (workbench.core.options) or a dict of its fields.")
    given = dict(options or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ConfigError(f"Unknown {kind} option(s): {', '.join(unknown)}.",
                          hint=f"Known options: {', '.join(sorted(known))}.")
    return cls(**given)


def stored_options(options: Options) -> dict:
    """The JSON form of a spec's options: the fields that are set (not None, not false) and differ from
    the dataclass's defaults, as specs have always stored them."""
    default = type(options)()
    return {k: v for k, v in asdict(options).items()
            if v is not None and v is not False and v != getattr(default, k)}


def check_options(kind: str, options: Mapping[str, Any] | Options | None) -> Options:
    """A kind's options as build_spec stores them, from a dict of a door's choices or the dataclass:
    known keys only (else a ConfigError naming the unknown ones); unset (None), false and default values
    left out, and a comparison's explicit default resamples and level made unset, so every door's spelling
    of one choice gives one spec."""
    if isinstance(options, options_class(kind)):
        options = stored_options(options)
    elif options is not None and not isinstance(options, Mapping):
        options_from(kind, options)       # (raises: not the kind's options)
    given = {k: v for k, v in dict(options or {}).items() if v is not None and v is not False}
    given = stored_options(options_from(kind, given))
    if kind == "compare":
        # the explicit defaults of the resamples and the level are the same choice as leaving them out
        given = {k: v for k, v in given.items()
                 if not (k == "n_boot" and int(v) == (TASK_N_BOOT if given.get("task") else N_BOOT))
                 and not (k == "alpha" and float(v) == ALPHA and not given.get("sequential"))}
    return options_from(kind, given)
