"""How a template's verbalizers tokenize, and what to warn about: one report for Preview,
template validation and the CLI.

    rows, warnings = verbalizer_report(template.choices_for(row), encode, decode)

`encode(word)` returns the token ids of the word's continuation as scoring tokenizes it (Preview:
after the exact context; validation without a model row: `target_delimiter + word` alone), and
`decode(ids)` turns ids back into text. Pure: the caller brings the tokenizer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence


@dataclass
class VerbalizerTokens:
    label: str
    word: str
    ids: list[int]
    tokens: list[str]
    note: str = ""


def verbalizer_report(choices: Iterable[tuple[str, Sequence[str]]], encode: Callable[[str], list[int]],
                      decode: Callable[[list[int]], str]) -> tuple[list[VerbalizerTokens], list[str]]:
    """(one entry per verbalizer, warnings): multi-token words, and words of different labels
    that start with the same token (their scores then differ only after it)."""
    rows: list[VerbalizerTokens] = []
    warnings: list[str] = []
    first: dict[int, tuple[str, str]] = {}
    for label, words in choices:
        for w in words:
            ids = list(encode(w))
            toks = [decode([i]) for i in ids]
            notes = []
            if len(ids) > 1:
                notes.append("multi-token")
                warnings.append(f"verbalizer {w!r} is {len(ids)} tokens ({toks}) for {label!r}; single-token "
                                "verbalizers compare more fairly and score in one pass")
            if ids and ids[0] in first and first[ids[0]][0] != label:
                ol, ow = first[ids[0]]
                notes.append(f"shares first token with {ow!r} ({ol})")
                warnings.append(f"verbalizers {ow!r} ({ol}) and {w!r} ({label}) start with the same token: their "
                                "scores differ only after it")
            if ids:
                first.setdefault(ids[0], (label, w))
            rows.append(VerbalizerTokens(label=label, word=w, ids=ids, tokens=toks, note="; ".join(notes)))
    return rows, warnings
