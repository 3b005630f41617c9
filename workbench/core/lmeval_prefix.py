"""lm-eval's `gen_prefix`: text that starts the model's answer, written after the eval doc's
input and before each demonstration's answer (lm-eval 0.4.13, api/task.py build_qa_turn, the
plain-text path without a chat template).

    qa_turn("Q: 2+2?", "4", "Answer:", " ", "\\n\\n")   # 'Q: 2+2? Answer: 4\\n\\n'
    qa_turn("Q: 2+2?\\n", None, "Answer:", " ", "")     # 'Q: 2+2?\\nAnswer:'

The rules, as lm-eval applies them:
- the input is followed by the target delimiter when there is an answer and no prefix, or when
  there is a prefix and neither side of the input/prefix join is whitespace; else by nothing;
- an answer is written after the prefix with one space between them, unless either side of
  that join is whitespace (lm-eval's maybe_delimit); then the few-shot delimiter;
- without an answer (the eval doc) the turn ends with the prefix itself: a multiple-choice
  continuation is still target_delimiter + choice, and generation continues after the prefix.
An empty prefix counts as none.
"""
from __future__ import annotations


def _joins_without_space(left: str, right: str) -> bool:
    """True when neither side of left+right is whitespace (lm-eval's requires_delimiter)."""
    return bool(left) and bool(right) and not (left[-1].isspace() or right[0].isspace())


def maybe_delimit(prefix: str | None, suffix: str | None, delimiter: str = " ") -> str:
    if not prefix:
        return suffix or ""
    if not suffix:
        return prefix
    return prefix + delimiter + suffix if _joins_without_space(prefix, suffix) else prefix + suffix


def qa_turn(question: str, answer: str | None, prefix: str | None, target_delimiter: str,
            fewshot_delimiter: str) -> str:
    """One question/answer turn as plain text (answer None or "": the eval doc's turn)."""
    has_answer = answer is not None and answer != ""
    if prefix:
        sep = target_delimiter if _joins_without_space(question, prefix) else ""
    else:
        sep = target_delimiter if has_answer else ""
    if has_answer:
        return question + sep + maybe_delimit(prefix, answer) + fewshot_delimiter
    return question + sep + (prefix or "")
