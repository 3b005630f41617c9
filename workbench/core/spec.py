"""RunSpec: one serialisable definition of every job (eval, compare, train, export, search).

    spec = build_spec("eval", templates=[t], data=ds, model="default", eval={"shots": 4})
    spec.command()                   # 'workbench eval --model default --data bbc --template T.yaml --shots 4 ...'
    spec.to_json()                   # everything that decides the result, as JSON
    eval_key(t.content_hash(), ds.fingerprint(), spec.eval, rows_hash, session.model_identity())

Every door (the UI tabs, `workbench ...`, Python) builds its spec with `build_spec`, so the rules
that turn a user's choices into settings live here once:
  * a setting the user left unset (None) takes the template's default where the template has one
    (`fewshot.k` -> shots, `fewshot.per_class`, `.balanced`, `.sampling`, `.seed`), else the
    config dataclass's default; a comparison takes those defaults from its first template, so
    every template sees the same rows and demonstrations;
  * the spec renders as the equivalent CLI command, whose flags come from the config dataclasses'
    fields (workbench.commands.common.add_config_args), so running it builds the same spec.

The registry's reuse key of an eval (`eval_key`) is the template's content hash, the data
fingerprint, the rows, the prediction-relevant settings and the full model identity (engine,
model, dtype, device kind, the adapter's *content* hash and the scoring-code version).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shlex
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping, Sequence

from workbench.core.config import EvalConfig, SearchConfig, TrainConfig
from workbench.core.options import Options, check_options, options_class, options_from, stored_options
from workbench.core.spec_checks import check_models, sequential_options, study_options  # noqa: F401 (check_models: public here too)
from workbench.errors import ConfigError

SPEC_VERSION = 1
# Inference-server settings (remote models only) and their defaults; speed and robustness only.
ENGINE_DEFAULTS = {"concurrency": 8, "request_timeout": 300.0, "max_retries": 5, "response_cache": True}
KINDS = ("eval", "compare", "train", "export", "search", "seed_variance", "format_spread")
# Kinds run by another verb's flag: a seed-variance study is `workbench compare --seeds ...`.
VERBS = {"seed_variance": "compare", "format_spread": "compare"}

# EvalConfig fields a template may give defaults for, and the FewShotConfig field each reads.
TEMPLATE_DEFAULTS = {"shots": "k", "per_class": "per_class", "balanced": "balanced", "sampling": "sampling",
                     "seed": "seed"}
# The EvalConfig fields a search takes from its door (scoring, split, generation length); the demos and
# calibration of its start come from the start template, and the rest is what the search varies.
SEARCH_EVAL = ("method", "split_seed", "dev_fraction", "test_fraction", "max_new_tokens")
# Settings that change speed, not predictions: left out of reuse keys.
SPEED_ONLY = frozenset({"prefix_cache"})


@dataclass
class TemplateRef:
    name: str = field(metadata={"help": "The template's name."})
    hash: str = field(metadata={"help": "sha256 of its content (PromptTemplate.content_hash)."})
    yaml: str = field(metadata={"help": "The full template, so the spec alone reproduces the job."})
    path: str | None = field(default=None, metadata={
        "help": "The file it came from, when there is one: the equivalent command names it."})

    @classmethod
    def of(cls, template, path: str | None = None) -> "TemplateRef":
        return cls(name=template.name, hash=template.content_hash(), yaml=template.to_yaml(),
                   path=str(path) if path else None)

    def load(self):
        from workbench.core.templates import load_template

        t = load_template(self.yaml)
        if t.content_hash() != self.hash:
            raise ConfigError(f"Template '{self.name}' in the spec does not match its hash {self.hash[:12]}.",
                              hint="The spec was edited by hand; build it again from the template.")
        return t


@dataclass
class DataRef:
    """The rows a spec names; storage.data_load.load_data_ref loads them (core reads no files)."""

    source: str = field(metadata={"help": "What load_dataset takes: bbc, bigbench:TASK, hf:ID or a path."})
    name: str = field(default="", metadata={"help": "Display name."})
    fingerprint: str = field(default="", metadata={"help": "Dataset.fingerprint() of the loaded table."})
    text_column: str | None = field(default=None, metadata={"help": "Text column override."})
    label_column: str | None = field(default=None, metadata={"help": "Label column override."})

    @classmethod
    def of(cls, dataset) -> "DataRef":
        return cls(source=getattr(dataset, "spec", "") or dataset.name, name=dataset.name,
                   fingerprint=dataset.fingerprint(), text_column=dataset.text_column,
                   label_column=dataset.label_column)


@dataclass
class ModelRef:
    model: str = field(default="default", metadata={"help": "'default', a hub id, a folder, a .gguf or an engine URL."})
    adapter: str | None = field(default=None, metadata={"help": "A peft adapter folder to attach."})
    dtype: str | None = field(default=None, metadata={"help": "float32 | bfloat16 | float16; None = auto."})
    device: str | None = field(default=None, metadata={"help": "cuda | mps | cpu; None = auto."})
    native: bool = field(default=True, metadata={"help": "Allow the verified built-in decoder for scoring."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Run model code from the hub."})
    tokenizer: str | None = field(default=None, metadata={
        "help": "Inference servers: the served model's tokenizer ('default', a folder or hub id)."})
    engine: dict = field(default_factory=dict, metadata={
        "help": "Inference servers: concurrency, request_timeout, max_retries, response_cache (see ENGINE_DEFAULTS)."})

    @property
    def remote(self) -> bool:
        return self.model.startswith("openai:")

    def session_kwargs(self) -> dict:
        kw: dict[str, Any] = {"device": self.device, "dtype": self.dtype, "trust_remote_code": self.trust_remote_code}
        if not self.native:
            kw["native"] = False
        if self.remote:
            kw.update({**ENGINE_DEFAULTS, **self.engine, "tokenizer": self.tokenizer})
        return kw


@dataclass
class JudgeRef:
    name: str = field(metadata={"help": "The judge's name."})
    hash: str = field(metadata={"help": "sha256 of its content (JudgeTemplate.content_hash)."})
    yaml: str = field(metadata={"help": "The full judge template."})
    path: str | None = field(default=None, metadata={"help": "The file it came from (for the command)."})
    model: ModelRef | None = field(default=None, metadata={
        "help": "The judge model; None = the model being evaluated (the same session)."})
    labels: str | None = field(default=None, metadata={
        "help": "A data column of people's ratings: the judge's agreement with them is reported."})

    @classmethod
    def of(cls, judge, path: str | None = None, model: ModelRef | None = None, labels: str | None = None) -> "JudgeRef":
        return cls(name=judge.name, hash=judge.content_hash(), yaml=judge.to_yaml(),
                   path=str(path) if path else None, model=model, labels=labels or None)

    @classmethod
    def from_dict(cls, d: Mapping) -> "JudgeRef":
        d = dict(d)
        if d.get("model") is not None:
            d["model"] = ModelRef(**d["model"])
        return cls(**d)

    def load(self):
        from workbench.core.judge import load_judge

        j = load_judge(self.yaml)
        if j.content_hash() != self.hash:
            raise ConfigError(f"Judge '{self.name}' in the spec does not match its hash {self.hash[:12]}.",
                              hint="The spec was edited by hand; build it again from the judge file.")
        return j


@dataclass
class RunSpec:
    kind: str = field(metadata={"help": "eval | compare | train | export | search"})
    templates: list[TemplateRef] = field(metadata={"help": "The template(s); a comparison has two or more."})
    data: DataRef = field(metadata={"help": "The dataset."})
    models: list[ModelRef] = field(metadata={"help": "The model(s); a model comparison has two or more."})
    eval: EvalConfig = field(default_factory=EvalConfig, metadata={"help": "Scoring settings (all kinds)."})
    train: TrainConfig | None = field(default=None, metadata={"help": "LoRA settings (train)."})
    options: Options | None = field(default=None, metadata={
        "help": "The kind's options (core/options.py: EvalOptions, CompareOptions, ...): out (results/bundle "
                "path), train_run, merge, zip, name, ...; None = its defaults. JSON: the fields that differ "
                "from their defaults."})
    version: int = SPEC_VERSION
    judge: JudgeRef | None = field(default=None, metadata={
        "help": "A model judge of generated outputs (eval, compare): rubric, judge model, label column."})
    search: SearchConfig | None = field(default=None, metadata={
        "help": "Prompt-search settings (search): axes, budgets, racing, test verdict."})

    def __post_init__(self):
        if self.options is None:
            self.options = options_class(self.kind)()
        elif not isinstance(self.options, options_class(self.kind)):
            raise ConfigError(f"A {self.kind} spec's options are {options_class(self.kind).__name__}, "
                              f"not {type(self.options).__name__}.",
                              hint="Build the spec with build_spec, which takes a dict of options too.")

    # -------------------------------------------------------------- serialisation
    def to_dict(self) -> dict:
        d = asdict(self)
        d["options"] = stored_options(self.options)   # as specs have always stored them: the same JSON and hash
        if d.get("judge") is None:
            d.pop("judge", None)   # specs without a judge keep the JSON (and hash) they always had
        if d.get("search") is None:
            d.pop("search", None)  # (and so do specs of other kinds than search)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: Mapping) -> "RunSpec":
        d = dict(d)
        if d.get("version", SPEC_VERSION) > SPEC_VERSION:
            raise ConfigError(f"This run spec has version {d['version']}, newer than this workbench ({SPEC_VERSION}).",
                              hint="Upgrade prompt-workbench.")
        return cls(kind=d["kind"], templates=[TemplateRef(**t) for t in d["templates"]],
                   data=DataRef(**d["data"]), models=[ModelRef(**m) for m in d["models"]],
                   eval=EvalConfig(**d["eval"]),
                   train=TrainConfig.from_dict(d["train"]) if d.get("train") else None,
                   options=options_from(d["kind"], d.get("options")), version=d.get("version", SPEC_VERSION),
                   judge=JudgeRef.from_dict(d["judge"]) if d.get("judge") else None,
                   search=SearchConfig.from_dict(d["search"]) if d.get("search") else None)

    @classmethod
    def from_json(cls, text: str) -> "RunSpec":
        return cls.from_dict(json.loads(text))

    def hash(self) -> str:
        """sha256 of the canonical JSON (display paths excluded): equal specs, equal hashes."""
        d = self.to_dict()
        for t in d["templates"]:
            t.pop("path", None)
        return _digest(d)

    @property
    def template(self) -> TemplateRef:
        return self.templates[0]

    @property
    def model(self) -> ModelRef:
        return self.models[0]

    # -------------------------------------------------------------- the equivalent command
    def argv(self) -> list[str]:
        """`workbench <kind> ...` arguments that build this very spec (see `command`)."""
        verb = VERBS.get(self.kind, self.kind)
        out = ["workbench", verb]
        for m in self.models:
            out += ["--model", m.model]
        m = self.model
        if m.adapter:
            out += ["--adapter", m.adapter]
        if m.dtype:
            out += ["--dtype", m.dtype]
        if m.device:
            out += ["--device", m.device]
        if not m.native:
            out.append("--no-native")
        if m.trust_remote_code:
            out.append("--trust-remote-code")
        if m.tokenizer:
            out += ["--tokenizer", m.tokenizer]
        for k, v in sorted(m.engine.items()):
            if v != ENGINE_DEFAULTS.get(k):
                out += ["--no-response-cache"] if k == "response_cache" else ["--" + k.replace("_", "-"), str(v)]
        task = self.options.task if self.kind == "eval" else None   # an lm-eval task by name
        if not (task and self.data.source.startswith("lmeval:")):     # (whose own rows are no --data)
            out += ["--data", self.data.source]
        if self.data.text_column:
            out += ["--text-column", self.data.text_column]
        if self.data.label_column:
            out += ["--label-column", self.data.label_column]
        if not ((self.kind == "export" and (self.options.train_run or self.options.winner))
                or (self.kind == "search" and self.options.resume) or task):
            # (an export of a training run or a winner names that instead; a resumed search its run)
            for t in self.templates:
                out += ["--template", t.path or f"<{t.name}.yaml>"]
        if self.kind == "train":
            # a training run's split, seeds and scoring come from its TrainConfig
            out += config_flags(self.train or TrainConfig(), TrainConfig(), skip={"device"})
        elif self.kind == "search":
            # the scoring settings a search takes from its door, then what it searches and how
            out += config_flags(self.eval, resolve_eval({}, self.template.load()),
                                skip={f.name for f in fields(EvalConfig)} - set(SEARCH_EVAL))
            flags = config_flags(self.search or SearchConfig(), SearchConfig())
            # no budget is `0` on the command line (an unset flag is the default budget)
            out += ["0" if a == "none" and flags[i - 1] in ("--budget-tokens", "--budget-seconds") else a
                    for i, a in enumerate(flags)]
        elif task:
            # an lm-eval task scores its own prompt: only the scoring method and the row limit are flags
            out += config_flags(self.eval, EvalConfig(), skip={f.name for f in fields(EvalConfig)} - {"method", "limit"})
        else:
            # flags for what differs from the defaults build_spec would apply, the template's included
            out += config_flags(self.eval, resolve_eval({}, self.template.load()))
        if self.judge is not None:
            out += ["--judge", self.judge.path or f"<{self.judge.name}.yaml>"]
            if self.judge.model is not None:
                out += ["--judge-model", self.judge.model.model]
            if self.judge.labels:
                out += ["--judge-labels", self.judge.labels]
        for k, v in sorted(stored_options(self.options).items()):
            flag = "--" + k.replace("_", "-")
            if isinstance(v, (list, tuple)):
                for x in v:                   # a repeatable flag (--include-path A --include-path B)
                    out += [flag, str(x)]
            else:
                out += [flag] if v is True else [flag, str(v)]
        return out

    def command(self) -> str:
        """The equivalent shell command. A template that exists only in the editor has no file:
        the command then shows `<NAME.yaml>`; save it first (the UI does that for you)."""
        return " ".join(shlex.quote(a) if not (a.startswith("<") and a.endswith(">")) else a for a in self.argv())


def config_flags(cfg, default, skip: set[str] = frozenset()) -> list[str]:
    """CLI flags for the fields of `cfg` that differ from `default` (the dataclass's defaults).
    Booleans use --x / --no-x, lists repeat their values after one flag."""
    out: list[str] = []
    for f in fields(cfg):
        if f.name in skip:
            continue
        v, d = getattr(cfg, f.name), getattr(default, f.name)
        if v == d:
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(v, bool):
            out.append(flag if v else "--no-" + f.name.replace("_", "-"))
        elif isinstance(v, (list, tuple)):
            out += [flag, *map(str, v)]
        elif v is None:
            out += [flag, "none"]
        else:
            out += [flag, str(v)]
    return out


# ------------------------------------------------------------------------------ building
def resolve_eval(overrides: Mapping[str, Any] | EvalConfig | None, template=None) -> EvalConfig:
    """EvalConfig from user choices: None = unset = the template's default, else the dataclass's."""
    if isinstance(overrides, EvalConfig):
        return overrides
    given = {k: v for k, v in dict(overrides or {}).items() if v is not None}
    known = {f.name for f in fields(EvalConfig)}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ConfigError(f"Unknown evaluation setting(s): {', '.join(unknown)}.",
                          hint=f"Known settings: {', '.join(sorted(known))}.")
    values: dict[str, Any] = {}
    fs = getattr(template, "fewshot", None)
    for name in known:
        if name in given:
            values[name] = given[name]
        elif fs is not None and name in TEMPLATE_DEFAULTS:
            values[name] = getattr(fs, TEMPLATE_DEFAULTS[name])
    cfg = EvalConfig(**values)
    cfg.validate()
    return cfg


def resolve_train(overrides: Mapping[str, Any] | TrainConfig | None, base: Mapping | None = None) -> TrainConfig:
    if isinstance(overrides, TrainConfig):
        cfg = overrides
    else:
        merged = {**dict(base or {}), **{k: v for k, v in dict(overrides or {}).items() if v is not None}}
        cfg = TrainConfig.from_dict(merged)
    cfg.validate()
    return cfg


def build_spec(kind: str, *, templates: Sequence, data, model: str | ModelRef | Sequence = "default",
               adapter: str | None = None, dtype: str | None = None, device: str | None = None,
               native: bool = True, trust_remote_code: bool = False,
               eval: Mapping[str, Any] | EvalConfig | None = None,
               train: Mapping[str, Any] | TrainConfig | None = None,
               options: Mapping[str, Any] | Options | None = None, judge=None, judge_model: str | ModelRef | None = None,
               judge_labels: str | None = None, search: Mapping[str, Any] | SearchConfig | None = None) -> RunSpec:
    """The one way every door turns a user's choices into a RunSpec.

    `templates`: PromptTemplate objects, (template, path) pairs, TemplateRefs or paths.
    `data`: a loaded Dataset, a DataRef, or what load_dataset takes.
    `model`: a name, a ModelRef, or several (a model comparison); the keyword model options
    apply to names given as strings. `eval`/`train`: dicts of user choices (None = unset). `options`: the
    kind's options dataclass (core/options.py) or a dict of its fields (None, false and defaults = unset).
    `judge`: a JudgeTemplate, (judge, path), a JudgeRef or a path; `judge_model`: the judge's model
    (None or the evaluated model's name: the same session); `judge_labels`: a column of people's
    ratings to check the judge against. `search`: a search's SearchConfig or dict of choices (None = unset);
    a search takes only the SEARCH_EVAL fields of `eval` (its demos come from the start template)."""
    if kind not in KINDS:
        raise ConfigError(f"Unknown job kind '{kind}'.", hint=f"Use one of: {', '.join(KINDS)}.")
    trefs, loaded = [], []
    for t in templates:
        ref, obj = _template_ref(t)
        trefs.append(ref)
        loaded.append(obj)
    if not trefs:
        raise ConfigError("No template given.", hint="Pass at least one template.")
    if kind == "compare" and len(trefs) < 2 and (isinstance(model, (str, ModelRef)) or len(model) < 2):
        raise ConfigError("A comparison needs two or more templates, or two or more models.",
                          hint="Add another template (or --model) to compare.")
    dref = _data_ref(data)
    models = [model] if isinstance(model, (str, ModelRef)) else list(model)
    mrefs = [m if isinstance(m, ModelRef) else ModelRef(model=(m or "").strip() or "default", adapter=adapter,
                                                        dtype=dtype, device=device, native=native,
                                                        trust_remote_code=trust_remote_code)
             for m in models]
    check_models(mrefs)
    if kind == "search":
        given = eval if isinstance(eval, Mapping) or eval is None else {}
        other = sorted(k for k, v in dict(given or {}).items() if v is not None and k not in SEARCH_EVAL)
        if other:
            raise ConfigError(f"A search does not take the evaluation setting(s) {', '.join(other)}: "
                              "it searches demos and calibration itself.",
                              hint=f"Set them in the start template, or give only {', '.join(SEARCH_EVAL)}.")
    cfg = resolve_eval(eval, loaded[0])
    scfg = resolve_search(search) if kind == "search" else None
    tcfg = resolve_train(train) if kind == "train" else None
    if tcfg is not None:
        # one split for training and its evaluation; the eval settings follow the training run's
        cfg = dataclasses.replace(cfg, split_seed=tcfg.split_seed, dev_fraction=tcfg.dev_fraction,
                                  test_fraction=tcfg.test_fraction, method=tcfg.eval_method)
    # the kind's typed options (core/options.py): unknown keys refused; unset, false and default values left
    # out, so the command and the hash are the same whichever door set a default explicitly
    opts = check_options(kind, options)
    if kind in ("seed_variance", "format_spread"):
        opts = study_options(kind, opts, trefs, mrefs, cfg)
    if kind == "compare" and opts.sequential:
        opts = sequential_options(opts)
    jref = _judge_ref(judge, judge_model, judge_labels, mrefs[0]) if judge is not None else None
    if jref is not None and kind not in ("eval", "compare"):
        raise ConfigError(f"A judge scores eval and compare jobs, not {kind}.", hint="Leave out --judge.")
    if jref is not None and any(getattr(t, "task", "generation") != "generation" for t in loaded):
        raise ConfigError("A judge scores generated outputs; a classification template has none.",
                          hint="Use --judge with generation templates (task: generation), or leave it out.")
    return RunSpec(kind=kind, templates=trefs, data=dref, models=mrefs, eval=cfg, train=tcfg, options=opts,
                   judge=jref, search=scfg)


def resolve_search(overrides: Mapping[str, Any] | SearchConfig | None) -> SearchConfig:
    """SearchConfig from user choices (a key left out = the dataclass's default), validated. Unlike
    eval settings, a None given here is kept: `budget_tokens=None` is "no limit", not "unset"."""
    if isinstance(overrides, SearchConfig):
        cfg = dataclasses.replace(overrides)
    else:
        given = dict(overrides or {})
        known = {f.name for f in fields(SearchConfig)}
        unknown = sorted(set(given) - known)
        if unknown:
            raise ConfigError(f"Unknown search setting(s): {', '.join(unknown)}.",
                              hint=f"Known settings: {', '.join(sorted(known))}.")
        cfg = SearchConfig(**given)
    cfg.validate()
    return cfg


def _judge_ref(judge, judge_model, labels, evaluated: ModelRef) -> JudgeRef:
    from workbench.core.judge import load_judge

    if isinstance(judge, JudgeRef):
        judge.load()
        return judge
    path = None
    if isinstance(judge, tuple):
        judge, path = judge
    elif isinstance(judge, str):
        path, judge = judge, load_judge(judge)
    model = None
    if isinstance(judge_model, ModelRef):
        # the evaluated model (same name and adapter) judges in its own session
        model = None if (judge_model.model, judge_model.adapter) == (evaluated.model, evaluated.adapter) else judge_model
    elif judge_model and judge_model.strip() and judge_model.strip() != evaluated.model:
        # another model judges; the evaluated model's name (or none) means the same session
        model = ModelRef(model=judge_model.strip())
    return JudgeRef.of(judge, path, model, labels)


def _template_ref(t) -> tuple[TemplateRef, Any]:
    from workbench.core.templates import load_template

    if isinstance(t, TemplateRef):
        return t, t.load()
    if isinstance(t, tuple):
        obj, path = t
        return TemplateRef.of(obj, path), obj
    if isinstance(t, (str, os.PathLike)):
        obj = load_template(str(t))
        return TemplateRef.of(obj, str(t)), obj
    return TemplateRef.of(t, getattr(t, "source_path", None)), t


def _data_ref(data) -> DataRef:
    if isinstance(data, DataRef):
        return data
    if isinstance(data, (str, os.PathLike)):
        # core reads no files: a name or path is loaded by workbench.build_spec (jobs/runner.py)
        raise ConfigError(f"data={str(data)!r} is a name, not loaded rows.",
                          "Call workbench.build_spec (it loads names and paths), or pass "
                          "workbench.load_dataset(...) or a DataRef.")
    return DataRef.of(data)


# ------------------------------------------------------------------------------ reuse keys
def eval_settings(config: EvalConfig | Mapping) -> dict:
    """The settings of an eval that decide its predictions."""
    d = asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    return {k: v for k, v in d.items() if k not in SPEED_ONLY}


def eval_key(template_hash: str, data_fingerprint: str, config: EvalConfig | Mapping, rows_hash: str | None,
             model_identity: Mapping) -> str:
    """The registry key of one template's predictions: equal keys, equal predictions.

    `model_identity` is ModelSession.model_identity(): engine, model, dtype, device kind, the
    adapter's content hash and the scoring-code version; retraining an adapter into the same
    folder, or switching bf16 for fp32, gives a new key."""
    return _digest({"template": template_hash, "data": data_fingerprint, "config": eval_settings(config),
                    "rows": rows_hash, "model": dict(model_identity)})


def _digest(obj) -> str:
    canon = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()[:24]
