"""Evaluation settings: the one dataclass every door fills in (UI form, CLI flags, Python).

Pure data and validation; the RunSpec (workbench.jobs.spec) embeds it whole, so every field here
is part of what decides a result.
"""
from __future__ import annotations

from dataclasses import dataclass, field

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
    prefix_cache: bool = field(default=True, metadata={"help": "reuse the KV cache of a prefix shared by all prompts"})
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
