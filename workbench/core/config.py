"""Job settings: the dataclasses every door fills in (UI form, CLI flags, Python).

Pure data and validation. A RunSpec (workbench.core.spec) embeds them whole, and the CLI builds its
flags from their fields (workbench.commands.common.add_config_args), so a new field reaches every door.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

from workbench.core.search_space import AXES, INSTRUCTIONS
from workbench.errors import ConfigError

METHODS = ("acc", "acc_norm", "acc_bytes")
CALIBRATIONS = ("none", "contextual", "pmi")
SPLITS = ("test", "dev", "train", "all")


@dataclass
class EvalConfig:
    shots: int = field(default=0, metadata={"help": "few-shot demonstrations per prompt (0 = zero-shot)"})
    per_class: bool = field(default=False, metadata={"help": "shots counts demonstrations per class"})
    balanced: bool = field(default=False, metadata={"help": "spread demonstrations evenly across classes"})
    sampling: str = field(default="fixed", metadata={
        "help": "'fixed': one demonstration set for the whole run; 'per_example': drawn per example (seeded); "
                "'similar': the k training rows nearest to the input by sentence embedding (nearest last)"})
    seed: int = field(default=0, metadata={"help": "seed for demonstration sampling and generation"})
    method: str = field(default="acc", metadata={"help": "acc | acc_norm | acc_bytes"})
    calibration: str = field(default="none", metadata={"help": "none | contextual | pmi"})
    content_free: list[str] = field(default_factory=lambda: ["N/A", "", "[MASK]"],
                                    metadata={"help": "content-free inputs for contextual calibration"})
    split: str = field(default="test", metadata={"help": "which split to evaluate: test | dev | train | all"})
    split_seed: int = field(default=0, metadata={"help": "seed of the train/dev/test split (kept apart from `seed` "
                                                         "so changing the demo seed never changes the test set)"})
    dev_fraction: float = field(default=0.1, metadata={"help": "share of rows in the dev split"})
    test_fraction: float = field(default=0.2, metadata={"help": "share of rows in the test split"})
    limit: int | None = field(default=None, metadata={"help": "evaluate only the first N rows of the split"})
    prefix_cache: bool = field(default=True, metadata={"help": "reuse the KV cache of prefixes shared by several prompts (demos, instruction)"})
    max_new_tokens: int | None = field(default=None, metadata={"help": "generation: override the template's limit"})
    retriever: str | None = field(default=None, metadata={
        "help": "self-ask: a corpus for the retriever (PATH, PATH:FIELD or python:MODULE:ATTR)"})
    max_hops: int | None = field(default=None, metadata={"help": "self-ask: the most follow-up questions per example"})

    def validate(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"Unknown scoring method '{self.method}'.", hint=f"Use one of: {', '.join(METHODS)}.")
        if self.calibration not in CALIBRATIONS:
            raise ConfigError(f"Unknown calibration '{self.calibration}'.", hint=f"Use one of: {', '.join(CALIBRATIONS)}.")
        if self.split not in SPLITS:
            raise ConfigError(f"Unknown split '{self.split}'.", hint=f"Use one of: {', '.join(SPLITS)}.")
        if self.shots < 0:
            raise ConfigError(f"shots must be >= 0, got {self.shots}.")
        if self.sampling not in ("fixed", "per_example", "similar"):
            raise ConfigError(f"Unknown demo sampling '{self.sampling}'.", hint="Use fixed, per_example or similar.")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be >= 1, got {self.limit}.", hint="Leave it empty to use the whole split.")


MODES = ("lm", "head")
SELECT_METRICS = ("macro_f1", "accuracy")


@dataclass
class TrainConfig:
    # LoRA
    lora_r: int = field(default=8, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling numerator (scale = alpha / r)"})
    lora_dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA input"})
    target_modules: list[str] | None = field(default=None, metadata={
        "help": "module names to adapt; None = per architecture (llama/mistral/qwen/...: q,k,v,o_proj; "
                "gpt2: c_attn; otherwise every Linear inside attention)"})
    lora_mlp: bool = field(default=False, metadata={"help": "also adapt the MLP (gate/up/down_proj) with the default targets"})
    mode: str = field(default="lm", metadata={
        "help": "'lm': loss on the gold verbalizer tokens after the prompt (prompt masked); "
                "'head': a classification head on the last prompt token (for comparison)"})
    # optimisation
    lr: float = field(default=5e-4, metadata={"help": "peak learning rate (AdamW)"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    epochs: float = field(default=3.0, metadata={"help": "passes over the training rows (ignored when max_steps is set)"})
    max_steps: int | None = field(default=None, metadata={"help": "optimizer steps; overrides epochs"})
    batch_size: int = field(default=4, metadata={"help": "rows per micro-batch"})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    max_length: int = field(default=256, metadata={"help": "longest prompt + answer in tokens; longer rows are an error, never cut"})
    warmup_ratio: float = field(default=0.1, metadata={"help": "share of steps with linear warm-up, then linear decay to 0"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping (0 = off)"})
    seed: int = field(default=0, metadata={"help": "seed for the k-per-class sample, LoRA init, dropout and data order"})
    # data
    shots_per_class: int | None = field(default=None, metadata={"help": "k training rows per class (few-shot); None = the whole train split"})
    split_seed: int = field(default=0, metadata={"help": "seed of the train/dev/test split (same meaning as in eval)"})
    dev_fraction: float = field(default=0.1, metadata={"help": "share of rows in the dev split"})
    test_fraction: float = field(default=0.2, metadata={"help": "share of rows in the test split"})
    # evaluation and stopping
    eval_every: int = field(default=20, metadata={"help": "evaluate on dev every N optimizer steps (0 = only at the end)"})
    patience: int = field(default=3, metadata={"help": "stop after N evaluations without improvement (0 = never)"})
    select_metric: str = field(default="macro_f1", metadata={"help": "dev metric that picks the best adapter: macro_f1 | accuracy"})
    dev_limit: int | None = field(default=200, metadata={"help": "evaluate on at most N dev rows (speed)"})
    test_limit: int | None = field(default=None, metadata={"help": "final base-vs-adapter comparison on at most N test rows"})
    eval_method: str = field(default="acc", metadata={"help": "scoring for dev/test: acc | acc_norm | acc_bytes"})
    final_eval: bool = field(default=True, metadata={"help": "compare base and base+adapter on the test split at the end"})
    device: str | None = field(default=None, metadata={"help": "cuda | mps | cpu; None = auto (bf16 autocast on a GPU that supports it)"})
    gradient_checkpointing: bool = field(default=False, metadata={
        "help": "recompute each layer's activations in the backward pass: far less memory for long rows or "
                "large models, ~30% more compute per step"})

    def validate(self) -> None:
        """Checks that need no data or model (the rest is in `prepare`)."""
        def bad(msg: str, hint: str) -> None:
            raise ConfigError(msg, hint=hint)

        if self.mode not in MODES:
            bad(f"Unknown training mode '{self.mode}'.", "Use 'lm' (loss on the answer tokens) or 'head'.")
        if not self.lr > 0:
            bad(f"The learning rate must be > 0, got {self.lr}.", "Try 1e-4 to 1e-3 for LoRA.")
        if self.batch_size < 1:
            bad(f"batch_size must be >= 1, got {self.batch_size}.", "Use 4 to 16.")
        if self.grad_accum < 1:
            bad(f"grad_accum must be >= 1, got {self.grad_accum}.", "Use 1 unless the batch does not fit in memory.")
        if self.max_steps is None and not self.epochs > 0:
            bad(f"epochs must be > 0, got {self.epochs}.", "Set epochs or max_steps.")
        if self.max_steps is not None and self.max_steps < 1:
            bad(f"max_steps must be >= 1, got {self.max_steps}.", "Leave it empty to train by epochs.")
        if self.lora_r < 1:
            bad(f"lora_r must be >= 1, got {self.lora_r}.", "Ranks 4 to 16 are typical.")
        if not 0 <= self.lora_dropout < 1:
            bad(f"lora_dropout must be in [0, 1), got {self.lora_dropout}.", "0.05 is a common value.")
        if not 0 <= self.warmup_ratio < 1:
            bad(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}.", "0.1 warms up over the first 10% of steps.")
        if self.shots_per_class is not None and self.shots_per_class < 1:
            bad(f"shots_per_class must be >= 1, got {self.shots_per_class}.", "Leave it empty to use the whole train split.")
        if self.max_length < 8:
            bad(f"max_length must be >= 8, got {self.max_length}.", "Use at least the longest prompt + answer.")
        if self.eval_every < 0 or self.patience < 0:
            bad("eval_every and patience must be >= 0.", "0 turns them off.")
        if self.select_metric not in SELECT_METRICS:
            bad(f"Unknown select_metric '{self.select_metric}'.", f"Use one of: {', '.join(SELECT_METRICS)}.")
        if self.eval_method not in ("acc", "acc_norm", "acc_bytes"):
            bad(f"Unknown eval_method '{self.eval_method}'.", "Use acc, acc_norm or acc_bytes.")
        if self.target_modules is not None and not self.target_modules:
            bad("target_modules is an empty list.", "Leave it unset for the per-architecture default.")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"Unknown training setting(s): {', '.join(unknown)}.",
                              hint=f"Known settings: {', '.join(sorted(known))}.")
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> "TrainConfig":
        return cls.from_dict(json.loads(text))


RACINGS = ("halving", "sequential")


@dataclass
class SearchConfig:
    axes: list[str] = field(default_factory=lambda: list(AXES), metadata={
        "help": "axes searched, in this order: verbalizer, format, instruction, demos, calibration"})
    budget_tokens: int | None = field(default=300_000, metadata={
        "help": "stop after this many model tokens (forward-pass tokens, label-word pass included); None = no limit"})
    budget_seconds: float | None = field(default=600.0, metadata={"help": "stop after this much wall time; None = no limit"})
    first_rows: int = field(default=16, metadata={"help": "dev rows in the first racing rung"})
    eta: float = field(default=2.0, metadata={"help": "each rung grows the dev slice by this factor"})
    keep: float = field(default=0.5, metadata={"help": "share of candidates kept after each rung"})
    max_dev_rows: int | None = field(default=None, metadata={"help": "use at most this many dev rows (None = all)"})
    label_rows_per_class: int = field(default=16, metadata={"help": "training rows per class for the label-word pass"})
    words_per_class: int = field(default=3, metadata={"help": "label words kept per class"})
    n_verbalizers: int = field(default=6, metadata={"help": "verbalizer combinations raced"})
    label_names: bool = field(default=True, metadata={"help": "also race the class names as label words, when each is one whole word"})
    plain_label_words: bool = field(default=False, metadata={
        "help": "race only verbalizers without stop-words or words unrelated to their class name (core/label_checks.py)"})
    n_formats: int = field(default=6, metadata={"help": "FormatSpread variants raced"})
    instructions: list[str] = field(default_factory=lambda: list(INSTRUCTIONS), metadata={
        "help": "instruction library; {choices} becomes the label words"})
    propose_instructions: int = field(default=0, metadata={
        "help": "instructions the model proposes from training demonstrations (APE-style); 0 = off"})
    shots: list[int] = field(default_factory=lambda: [0, 2, 4], metadata={"help": "demonstration counts tried"})
    demo_seeds: list[int] = field(default_factory=lambda: [0, 1], metadata={"help": "seeds of the random demo sets"})
    selections: list[str] = field(default_factory=lambda: ["random", "similar"], metadata={
        "help": "how demonstrations are chosen: random (a fixed seeded set) and/or similar (nearest by sentence embedding)"})
    calibrations: list[str] = field(default_factory=lambda: ["none", "contextual", "pmi"], metadata={
        "help": "calibrations tried"})
    seed: int = field(default=0, metadata={"help": "seed of the dev-row order, label-word rows and format draws"})
    evaluate_test: bool = field(default=True, metadata={"help": "score start and winner once on the test split at the end"})
    test_limit: int | None = field(default=None, metadata={"help": "score only the first N test rows (None = all)"})
    n_boot: int = field(default=2000, metadata={"help": "bootstrap resamples of the test verdict"})
    save_winner: bool = field(default=True, metadata={"help": "save the winner as a user template"})
    winner_name: str | None = field(default=None, metadata={"help": "name of the saved winner (default: <start>-search-<id>)"})
    metric: str | None = field(default=None, metadata={
        "help": "generation: the reference metric searched on (default: the template's first `metrics:` entry), "
                "averaged per dev row; classification searches accuracy"})
    racing: str = field(default="halving", metadata={
        "help": "how candidates race on dev: halving (keep a fixed share per rung) or sequential (drop a candidate "
                "once an anytime-valid confidence sequence settles it worse, at alpha)"})
    alpha: float = field(default=0.05, metadata={"help": "sequential racing: the chance of ever dropping a candidate "
                                                         "that is not worse (Bonferroni over pairs)"})

    def validate(self) -> None:
        bad = [a for a in self.axes if a not in AXES]
        if bad or not self.axes:
            raise ConfigError(f"unknown or no search axes: {bad or self.axes}", f"choose from: {', '.join(AXES)}")
        if self.budget_tokens is not None and self.budget_tokens < 1:
            raise ConfigError(f"budget_tokens must be >= 1, got {self.budget_tokens}", "or None for no limit")
        if self.budget_seconds is not None and self.budget_seconds <= 0:
            raise ConfigError(f"budget_seconds must be > 0, got {self.budget_seconds}", "or None for no limit")
        if self.racing not in RACINGS:
            raise ConfigError(f"unknown racing {self.racing!r}", f"use {' or '.join(RACINGS)}")
        if not 0 < self.alpha < 1:
            raise ConfigError(f"alpha must be between 0 and 1, got {self.alpha}", "e.g. 0.05")
        if self.first_rows < 1 or self.eta <= 1 or not 0 < self.keep < 1:
            raise ConfigError("racing needs first_rows >= 1, eta > 1 and 0 < keep < 1", "e.g. 16, 2, 0.5")
        if any(int(k) < 0 for k in self.shots):
            raise ConfigError(f"shots must be >= 0, got {self.shots}", "e.g. 0,2,4")
        bad = [s for s in self.selections if s not in ("random", "similar")]
        if bad:
            raise ConfigError(f"unknown demo selection(s) {bad}", "use random and/or similar")
        bad = [c for c in self.calibrations if c not in CALIBRATIONS]
        if bad:
            raise ConfigError(f"unknown calibration(s) {bad}", f"use {', '.join(CALIBRATIONS)}")

    @classmethod
    def from_dict(cls, d: dict) -> "SearchConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
