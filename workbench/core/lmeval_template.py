"""The prompt half of an lm-eval task: its docs as lm-eval hands them to task code, and
LmEvalTemplate, a PromptTemplate whose doc_to_text / doc_to_target / doc_to_choice may be the
task's own (trusted, already resolved) functions. Pure: the functions come in resolved
(storage/lmeval_code.py imports task code; this module never does)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from workbench.core.templates import PromptTemplate
from workbench.errors import TemplateError

# Template fields that a !function may stand in for (lm-eval key -> our template field).
FN_FIELDS = {"doc_to_text": "input", "doc_to_target": "target", "doc_to_choice": "choices_expr"}
PLACEHOLDER = "__lmeval_{}__"


def to_doc(row: Any) -> dict:
    """A row (pandas Series or mapping) as the plain dict lm-eval hands its functions."""
    d = row.to_dict() if hasattr(row, "to_dict") else dict(row)
    return {k: _plain(v) for k, v in d.items()}


def _plain(v: Any) -> Any:
    if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):
        return v.tolist()
    if isinstance(v, Mapping):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


@dataclass
class LmEvalTemplate(PromptTemplate):
    """A PromptTemplate whose doc_to_text / doc_to_target / doc_to_choice may be lm-eval task
    functions. Jinja fields render on the same plain dict the functions receive."""
    functions: dict = field(default_factory=dict, compare=False, repr=False,
                            metadata={"help": "lm-eval field -> trusted task function (not serialised)."})
    function_names: dict = field(default_factory=dict, compare=False,
                                 metadata={"help": "lm-eval field -> '!function module.name' text."})
    code_hash: str = field(default="", metadata={"help": "sha256 of the task code's source files."})
    demo_template: Any = field(default=None, compare=False, repr=False, metadata={
        "help": "How demonstrations are written when fewshot_config overrides doc_to_text / doc_to_target / "
                "doc_to_choice / delimiters / gen_prefix (lm-eval's FewshotConfig); None = like the eval doc."})
    gen_prefix: str | None = field(default=None, metadata={
        "help": "lm-eval's gen_prefix: the start of the model's answer, written after the input (a column name "
                "or Jinja); demonstrations carry it before their answer (core/lmeval_prefix.py)."})

    def build_context(self, row: Mapping, demos: Sequence[Mapping] = ()) -> str:
        dt = self.demo_template
        if (dt is None or not demos) and not self._any_prefix():
            return super().build_context(row, demos)
        # description (+ delimiter), then each demo in the few-shot format, then the input
        head, inp = super().build_context(row, ()), self.render_input(row)
        parts = [head[: len(head) - len(inp)]]
        for d in demos:
            parts.append((dt or self).lm_demo(d))
        return "".join(parts) + self.lm_eval_turn(inp, row)

    def _any_prefix(self) -> bool:
        return bool(self.gen_prefix) or bool(self.demo_template is not None and self.demo_template.gen_prefix)

    def prefix_for(self, row: Mapping) -> str | None:
        """The row's gen_prefix as lm-eval resolves it: the column of that name, else Jinja."""
        if not self.gen_prefix:
            return None
        doc = to_doc(row)
        if self.gen_prefix in doc:
            v = doc[self.gen_prefix]
            return None if v is None else str(v)
        return self._render("gen_prefix", self.gen_prefix, row)

    def lm_demo(self, row: Mapping) -> str:
        """One demonstration with what follows it, as lm-eval's build_qa_turn writes it."""
        from workbench.core.lmeval_prefix import qa_turn

        return qa_turn(self.render_input(row), self._answer_text(row), self.prefix_for(row),
                       self.target_delimiter, self.fewshot_delimiter)

    def lm_eval_turn(self, inp: str, row: Mapping, *, target_delimiter: str | None = None) -> str:
        """The eval doc's turn: its input, then the gen_prefix (delimited as lm-eval does)."""
        from workbench.core.lmeval_prefix import qa_turn

        tgt = self.target_delimiter if target_delimiter is None else target_delimiter
        return qa_turn(inp, None, self.prefix_for(row), tgt, "")

    def _render(self, what: str, source: str, row: Mapping) -> str:
        return super()._render(what, source, to_doc(row))

    def _call(self, key: str, row: Mapping) -> Any:
        try:
            return self.functions[key](to_doc(row))
        except TemplateError:
            raise
        except (Exception, SystemExit) as e:  # noqa: BLE001 - foreign code on a data row
            raise TemplateError(f"task '{self.name}': {self.function_names.get(key, key)} failed on a row: "
                                f"{type(e).__name__}: {e}", "check that the data has the task's columns") from e

    def render_input(self, row: Mapping) -> str:
        if "doc_to_text" not in self.functions:
            return super().render_input(row)
        v = self._call("doc_to_text", row)
        if isinstance(v, int) and not isinstance(v, bool):
            # A multiple-input task (winogrande): the text is the choice at that index, as
            # lm-eval writes a demonstration; an eval doc gets one context per choice
            # (multi_contexts).
            return self._row_choices(row)[v]
        return str(v)

    def is_multiple_input(self, row: Mapping) -> bool:
        """lm-eval's test on a doc: doc_to_text gives a choice index."""
        if "doc_to_text" not in self.functions or self.task != "classification":
            return False
        v = self._call("doc_to_text", row)
        return isinstance(v, int) and not isinstance(v, bool)

    def multi_contexts(self, row: Mapping, demos: Sequence[Mapping] = ()) -> list[str]:
        """A multiple-input doc's contexts: description and demonstrations, then each choice
        as the input (lm-eval's multiple_input_context, plain text)."""
        full, inp = self.build_context(row, demos), self.render_input(row)
        head = full[: len(full) - len(self.lm_eval_turn(inp, row))]
        # each choice is the input of its own turn, with no target delimiter before the prefix
        return [head + self.lm_eval_turn(c, row, target_delimiter="") for c in self._row_choices(row)]

    def _row_choices(self, row: Mapping) -> list[str]:
        if "doc_to_choice" not in self.functions:
            return super()._row_choices(row)
        v = self._call("doc_to_choice", row)
        if isinstance(v, Mapping):
            v = list(v.values())
        return [str(c) for c in v]

    def gold(self, row: Mapping) -> str:
        if "doc_to_target" not in self.functions:
            return super().gold(row)
        v = self._call("doc_to_target", row)
        if isinstance(v, list):  # lm-eval multiple targets: any is right; we score the first
            v = v[0] if v else ""
        if self.task == "generation":
            return str(v)
        choices = [c for c, _ in self.choices_for(row)]
        if isinstance(v, bool) or not isinstance(v, (int, str)):
            v = str(v)
        if isinstance(v, str) and v.strip().isdigit() and v not in choices:
            v = int(v.strip())
        if isinstance(v, int):
            if not 0 <= v < len(choices):
                raise TemplateError(f"task '{self.name}': gold index {v} is out of range for {len(choices)} choices",
                                    "check the data against the task")
            return choices[v]
        return v

    def _function_fields(self) -> set[str]:
        return {FN_FIELDS[k] for k in self.functions if k in FN_FIELDS}

    def variables(self) -> set[str]:
        return {v for v in super().variables() if not v.startswith("__lmeval_")}

    def validate(self, columns=None, labels=None, tokenizer=None, sample_row=None):
        fn_fields = self._function_fields()
        probs = super().validate(columns=columns, labels=None, tokenizer=tokenizer, sample_row=sample_row)
        return [p for p in probs if not (p.field in fn_fields and "__lmeval_" in p.message)]

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(PromptTemplate)}
        d = dataclasses.asdict(PromptTemplate(**d))
        d["metadata"] = {**d.get("metadata", {}), "functions": dict(self.function_names), "code_hash": self.code_hash}
        if self.gen_prefix:
            d["metadata"]["gen_prefix"] = self.gen_prefix
        return d

    def _compact_dict(self) -> dict:
        base = PromptTemplate(**{f.name: getattr(self, f.name) for f in dataclasses.fields(PromptTemplate)})
        d = base._compact_dict()
        if self.function_names:
            d["metadata"] = {**d.get("metadata", {}), "functions": dict(self.function_names), "code_hash": self.code_hash}
        if self.gen_prefix:
            # shown to the user; a plain template has no such field, so the prefix is not re-imported
            d["metadata"] = {**d.get("metadata", {}), "gen_prefix": self.gen_prefix}
        return d

    def content_hash(self) -> str:
        h = super().content_hash()
        if not self.function_names and self.demo_template is None and not self.gen_prefix:
            return h
        demo = self.demo_template.content_hash() if self.demo_template is not None else None
        extra = json.dumps([self.function_names, self.code_hash, demo] + ([self.gen_prefix] if self.gen_prefix else []),
                           sort_keys=True)
        return hashlib.sha256((h + extra).encode()).hexdigest()

