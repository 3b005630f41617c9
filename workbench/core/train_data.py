"""Training examples for prompt-based fine-tuning: which rows, and their tokens.

    rows = select_train_rows(template, splits.train, shots_per_class=16, seed=1)
    examples = build_examples(template, rows, prompts, encode_pair, label_ids)   # -> [TrainExample]
    batch = jobs.training.collate(examples[:4], pad_id)    # -> dict of tensors (torch stays out of core)

A training example is the rendered prompt followed by the gold class's first verbalizer, tokenized
exactly as scoring tokenizes it (`ModelSession.encode_pair`, the lm-eval convention), so what the
model learns to raise is the very log-probability that `inference.classify` later reads. Labels
copy the answer tokens and mask every prompt token with -100, the ignore index of
`torch.nn.functional.cross_entropy`: the loss is on the answer only (LM-BFF, Gao et al. 2021).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from workbench.errors import ConfigError, DataError

IGNORE = -100   # label of a token that carries no loss (cross_entropy's ignore_index)


@dataclass
class TrainExample:
    index: object            # the row's index in the dataset (for messages and provenance)
    label: str               # gold class label
    class_id: int            # position of `label` in the class list (head mode)
    input_ids: list[int]     # prompt + answer tokens
    labels: list[int]        # IGNORE on prompt tokens, the token id on answer tokens
    prompt_len: int          # number of prompt tokens (the head reads hidden state prompt_len - 1)


def class_labels(template) -> list[str]:
    """The classes a template can predict, in the template's order."""
    if template.task != "classification":
        raise ConfigError(f"Template '{template.name}' is a {template.task} template; training needs a "
                          "classification template.",
                          hint="Pick a template with answer_choices (label -> verbalizer words).")
    if not template.answer_choices:
        raise ConfigError(f"Template '{template.name}' has no answer_choices (its choices vary per row).",
                          hint="Prompt-based fine-tuning needs a fixed label -> verbalizer map; add answer_choices.")
    return [str(k) for k in template.answer_choices]


def gold_labels(template, rows) -> list[str]:
    return [template.gold(row) for _, row in rows.iterrows()]


def select_train_rows(template, train, shots_per_class: int | None, seed: int, split_name: str = "training"):
    """All training rows, or `shots_per_class` rows of each class (seeded). Checks that the split
    is not empty and that every class of the template has at least one example."""
    import numpy as np

    labels = class_labels(template)
    if len(train) == 0:
        raise DataError(f"The {split_name} split is empty (0 rows).",
                        hint="Use a larger dataset, or lower the dev/test fractions.")
    golds = gold_labels(template, train)
    unknown = sorted({g for g in golds if g not in labels})
    if unknown:
        first = next(i for i, g in zip(train.index, golds) if g in unknown)
        raise DataError(f"The {split_name} split has label(s) {', '.join(map(repr, unknown))} (first at row {first}) "
                        f"that template '{template.name}' has no verbalizer for.",
                        hint=f"Add them to answer_choices (now: {', '.join(labels)}), or drop those rows.")
    counts = {lab: 0 for lab in labels}
    for g in golds:
        counts[g] += 1
    missing = [lab for lab, n in counts.items() if n == 0]
    if missing:
        raise DataError(f"Class(es) {', '.join(map(repr, missing))} have no examples in the {split_name} split "
                        f"({len(train)} rows: " + ", ".join(f"{k}={v}" for k, v in counts.items()) + ").",
                        hint="Add examples of every class, or remove the class from the template's answer_choices.")
    if shots_per_class is None:
        return train
    rng = np.random.default_rng(seed)
    keep = []
    gold_arr = np.array(golds, dtype=object)
    for lab in labels:   # template order, so the same seed picks the same rows whatever the data order
        pos = np.flatnonzero(gold_arr == lab)
        take = rng.choice(pos, size=min(shots_per_class, len(pos)), replace=False)
        keep.extend(sorted(take.tolist()))
    # Interleave nothing here: the training loop shuffles with its own seeded generator.
    return train.iloc[sorted(keep)]


def build_examples(template, rows, prompts: Sequence[str], encode_pair: Callable[[str, str], tuple[list[int], list[int]]],
                   labels: Sequence[str]) -> list[TrainExample]:
    """Tokenize prompt + target_delimiter + first verbalizer of the gold class, masking the prompt."""
    out = []
    for (idx, row), ctx in zip(rows.iterrows(), prompts):
        gold = template.gold(row)
        answer = template.target_delimiter + template.answer_choices[gold][0]
        ctx_ids, ans_ids = encode_pair(ctx, answer)
        if not ans_ids:
            raise ConfigError(f"The answer {answer!r} of row {idx} tokenizes to nothing.",
                              hint="Every verbalizer must contain some text.")
        out.append(TrainExample(index=idx, label=gold, class_id=list(labels).index(gold),
                                input_ids=list(ctx_ids) + list(ans_ids),
                                labels=[IGNORE] * len(ctx_ids) + list(ans_ids), prompt_len=len(ctx_ids)))
    return out


def check_lengths(examples: Sequence[TrainExample], max_length: int) -> None:
    longest = max(examples, key=lambda e: len(e.input_ids))
    if len(longest.input_ids) > max_length:
        raise ConfigError(f"max_length {max_length} is shorter than the longest prompt + answer: "
                          f"{len(longest.input_ids)} tokens (row {longest.index}).",
                          hint=f"Set max_length to at least {len(longest.input_ids)}, or shorten the template.")
