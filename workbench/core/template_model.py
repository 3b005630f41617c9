"""The prompt template model: its fields and sub-configs, rendering a row into a context, the
gold label and choices, validation against the data, and its YAML/dict form and content hash.
Split out of core/templates.py (#23); loading files and interop live beside it."""
from __future__ import annotations

import ast
import dataclasses
import difflib
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.core.template_checks import (FIELD_TYPES, SUB_TYPES, checked_choices, guess_column, locate,
                                            typed_value)
from workbench.core.template_jinja import (ROW_VARIABLE, column_ref, eval_expression, is_template_form, jinja_env,
                                           quoted_ref, undeclared_names, with_row, wrap_jinja_error)
from workbench.core.render import render
from workbench.core.template_yaml import dump_yaml, yaml_load
from workbench.errors import TemplateError

TASKS = ("classification", "generation")
MANY_CLASSES = 1000           # above this, validate() warns about the number of requests per row
KINDS = ("direct", "cot", "self_ask")
AGGREGATES = ("max", "mean")
SAMPLINGS = ("fixed", "per_example", "similar")


# --------------------------------------------------------------------------------------------
# Config dataclasses
# --------------------------------------------------------------------------------------------
@dataclass
class FewShotConfig:
    k: int = field(default=0, metadata={"help": "Number of demonstrations (0 = zero-shot)."})
    per_class: bool = field(default=False, metadata={"help": "Take k demonstrations per class instead of k in total."})
    balanced: bool = field(default=False, metadata={"help": "Draw demonstrations so every class is equally represented."})
    sampling: str = field(default="fixed", metadata={"help": "'fixed': one demo set for the whole run; 'per_example': a fresh draw per example; 'similar': the k training rows most similar to the input (sentence embeddings)."})
    seed: int = field(default=0, metadata={"help": "Seed of the demonstration draw."})


@dataclass
class GenerationConfig:
    max_new_tokens: int = field(default=32, metadata={"help": "Most tokens generated per example."})
    stop: list[str] = field(default_factory=lambda: ["\n\n"], metadata={"help": "Generation stops at the first of these strings (lm-eval `until`)."})
    extract: str | None = field(default=None, metadata={"help": "Regex with one group that pulls the answer out of the generation; None = first non-empty line."})
    temperature: float = field(default=0.0, metadata={"help": "0 = greedy decoding."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass (only when temperature > 0)."})


@dataclass
class Problem:
    severity: str  # "error" | "warning"
    field: str
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = f" (line {self.line}" + (f", column {self.column}" if self.column else "") + ")" if self.line else ""
        return f"{self.severity}: {self.field}{where}: {self.message}"


# --------------------------------------------------------------------------------------------
# PromptTemplate
# --------------------------------------------------------------------------------------------
_JINJA_FIELDS = ("input", "target", "choices_expr", "demo_format", "instruction")


@dataclass
class PromptTemplate:
    name: str = field(metadata={"help": "Unique name of the template."})
    input: str = field(metadata={"help": "Jinja for phi(x): the row's columns are the variables."})
    task: str = field(default="classification", metadata={"help": "'classification' (score each choice) or 'generation'."})
    kind: str = field(default="direct", metadata={"help": "'direct', 'cot' (chain of thought) or 'self_ask'."})
    answer_choices: dict[str, list[str]] = field(default_factory=dict, metadata={"help": "Label -> verbalizer strings; the first is used in demos and training."})
    choices_expr: str | None = field(default=None, metadata={"help": "Jinja expression giving the per-row list of choice strings; each choice is its own label."})
    target: str | None = field(default=None, metadata={"help": "Jinja for the gold: the gold label (classification; default '{{ <label_column> }}') or the gold answer text (generation)."})
    label_column: str = field(default="label", metadata={"help": "Column holding the gold label."})
    target_delimiter: str = field(default=" ", metadata={"help": "Placed between the input and the answer; continuations are target_delimiter + choice."})
    fewshot_delimiter: str = field(default="\n\n", metadata={"help": "Placed after each demonstration."})
    instruction: str = field(default="", metadata={"help": "Optional Jinja text placed before the demonstrations."})
    instruction_delimiter: str | None = field(default=None, metadata={"help": "Placed after the instruction; None = fewshot_delimiter. '' reproduces an lm-eval description used verbatim."})
    demo_format: str | None = field(default=None, metadata={"help": "Optional Jinja for one demonstration; default = input + target_delimiter + answer. Variables: the row, plus `answer`."})
    chat: bool = field(default=False, metadata={"help": "Wrap the context in the tokenizer's chat template (done by inference)."})
    choice_aggregate: str = field(default="max", metadata={"help": "Class score over its verbalizers: 'max' (default) or 'mean'."})
    fewshot: FewShotConfig = field(default_factory=FewShotConfig, metadata={"help": "Few-shot demonstration settings."})
    generation: GenerationConfig = field(default_factory=GenerationConfig, metadata={"help": "Generation settings (generation task, cot)."})
    metrics: list[str] = field(default_factory=list, metadata={"help": "Generation: reference metrics scored per row and compared with paired tests: exact_match, token_f1, chrf, bleu, ter, rouge1, rouge2, rougeL, regex (the reference as pattern) or regex:PATTERN (core/gen_verdicts.py)."})
    description: str = field(default="", metadata={"help": "Free text for people; not part of the prompt."})
    metadata: dict = field(default_factory=dict, metadata={"help": "Free-form provenance (source, author, ...); excluded from the hash."})
    dataset: str | None = field(default=None, metadata={"help": "The dataset this template was written for, e.g. 'bbc'."})

    # ---- rendering -------------------------------------------------------------------------
    def _render(self, what: str, source: str, row: Mapping) -> str:
        try:
            return render(source, with_row(row))
        except Exception as e:  # noqa: BLE001
            raise wrap_jinja_error(e, f"template '{self.name}' {what}", row) from e

    def render_input(self, row: Mapping) -> str:
        return self._render("input", self.input, row)

    def _target_source(self) -> str:
        return self.target if self.target is not None else "{{ %s }}" % self.label_column

    def _row_choices(self, row: Mapping) -> list[str]:
        """Evaluate choices_expr like lm-eval's doc_to_choice: a Jinja expression, or a template
        whose output is a Python list literal."""
        expr = self.choices_expr or ""
        if is_template_form(expr):
            text = self._render("choices_expr", expr, row)
            try:
                value = ast.literal_eval(text.strip())
            except (ValueError, SyntaxError) as e:
                raise TemplateError(f"template '{self.name}' choices_expr: rendered {text[:80]!r}, which is not a list literal",
                                    "make the template print a list, e.g. {{ [a, b] }}, or write a plain expression like `choices`") from e
        else:
            value = eval_expression(expr, row)
        if isinstance(value, Mapping):  # lm-eval: a dict's values are the choices
            value = list(value.values())
        from jinja2 import Undefined

        if isinstance(value, (str, Undefined)) or not hasattr(value, "__iter__"):
            raise TemplateError(f"template '{self.name}' choices_expr gave {type(value).__name__}, not a list of choices",
                                "the expression must yield a list of strings, e.g. `choices` or `[option_a, option_b]`")
        try:
            return [str(v) for v in value]
        except TemplateError:
            raise
        except Exception as e:  # noqa: BLE001 - a lazy value (map, select) fails while it is listed
            raise wrap_jinja_error(e, f"template '{self.name}' choices_expr", row) from e

    def gold(self, row: Mapping) -> str:
        """The gold label (classification) or gold answer text (generation) of `row`.

        With `choices_expr`, a gold that renders as digits is an index into the row's choices,
        as in lm-eval (`doc_to_target` returning an int)."""
        g = self._render("target", self._target_source(), row)
        if self.task == "classification" and self.choices_expr:
            choices = self._row_choices(row)
            if g.strip().isdigit():
                i = int(g.strip())
                if i >= len(choices):
                    raise TemplateError(f"template '{self.name}': gold index {i} is out of range for {len(choices)} choices",
                                        "check `target` and `choices_expr`")
                return choices[i]
        return g

    def choices_for(self, row: Mapping) -> list[tuple[str, list[str]]]:
        if self.choices_expr:
            return [(c, [c]) for c in self._row_choices(row)]
        return [(label, list(words)) for label, words in self.answer_choices.items()]

    def _answer_text(self, row: Mapping) -> str:
        g = self.gold(row)
        if self.task == "generation" or self.choices_expr:
            return g
        words = self.answer_choices.get(g)
        if not words:
            raise TemplateError(f"template '{self.name}': gold label {g!r} has no verbalizer",
                                f"add {g!r} to answer_choices (known labels: {', '.join(self.answer_choices) or 'none'})")
        return words[0]

    def render_demo(self, row: Mapping) -> str:
        """One demonstration, without the fewshot_delimiter that follows it."""
        answer = self._answer_text(row)
        if self.demo_format:
            return self._render("demo_format", self.demo_format, {**dict(row), "answer": answer})
        q = self.render_input(row)
        # lm-eval adds the target delimiter only when there is an answer (`has_answer`).
        return q + self.target_delimiter + answer if answer != "" else q

    def render_instruction(self, row: Mapping) -> str:
        return self._render("instruction", self.instruction, row) if self.instruction else ""

    def build_context(self, row: Mapping, demos: Sequence[Mapping] = (), *, demo_block: str | None = None) -> str:
        """The context string, assembled as lm-eval 0.4.13 `fewshot_context` does (plain text).

        instruction [+ instruction_delimiter] + (demo + fewshot_delimiter) * k + input.
        `demo_block`: `render_demos(demos)` computed once for many rows (fixed demonstrations)."""
        parts: list[str] = []
        instr = self.render_instruction(row)
        if instr:
            delim = self.fewshot_delimiter if self.instruction_delimiter is None else self.instruction_delimiter
            parts.append(instr + delim)
        parts.append(self.render_demos(demos) if demo_block is None else demo_block)
        parts.append(self.render_input(row))
        return "".join(parts)

    def render_demos(self, demos: Sequence[Mapping]) -> str:
        """The demonstrations part of a context: (demo + fewshot_delimiter) for each."""
        parts = []
        for d in demos:
            demo = self.render_demo(d)
            # lm-eval's empty-answer demo has no assistant turn, hence no fewshot delimiter.
            parts.append(demo if (not self.demo_format and self._answer_text(d) == "") else demo + self.fewshot_delimiter)
        return "".join(parts)

    # ---- introspection ---------------------------------------------------------------------
    def _field_sources(self) -> list[tuple[str, str, int]]:
        """(field, Jinja source, column offset) for every Jinja-bearing field that is set."""
        out = []
        for f in _JINJA_FIELDS:
            v = getattr(self, f)
            if f == "target" and v is None:
                v = self._target_source() if self.task == "classification" and not self.choices_expr else None
            if not v:
                continue
            if f == "choices_expr" and not is_template_form(v):
                out.append((f, "{{ " + v + " }}", 3))
            else:
                out.append((f, v, 0))
        return out

    def variables(self) -> set[str]:
        """Undeclared Jinja variables (row columns) used across all Jinja fields."""
        env = jinja_env()
        names: set[str] = set()
        for f, src, _ in self._field_sources():
            try:
                found = undeclared_names(env.parse(src))
            except Exception:  # noqa: BLE001 - syntax errors are reported by validate()
                continue
            if f == "demo_format":
                found.discard("answer")
            names |= found
        return names - set(env.globals) - {ROW_VARIABLE}

    def validate(self, columns: Sequence[str] | None = None, labels: Sequence[Any] | None = None,
                 tokenizer=None, sample_row: Mapping | None = None) -> list[Problem]:
        """Every problem found, errors and warnings, at once (never raises for template content)."""
        from jinja2 import TemplateSyntaxError

        probs: list[Problem] = []
        P = lambda sev, fld, msg, line=None, col=None: probs.append(Problem(sev, fld, msg, line, col))  # noqa: E731

        if self.task not in TASKS:
            P("error", "task", f"unknown task {self.task!r}; use one of {', '.join(TASKS)}")
        if self.kind not in KINDS:
            P("error", "kind", f"unknown kind {self.kind!r}; use one of {', '.join(KINDS)}")
        if self.choice_aggregate not in AGGREGATES:
            P("error", "choice_aggregate", f"unknown aggregate {self.choice_aggregate!r}; use 'max' or 'mean'")
        if self.fewshot.sampling not in SAMPLINGS:
            P("error", "fewshot.sampling", f"unknown sampling {self.fewshot.sampling!r}; use 'fixed', 'per_example' or 'similar'")
        if self.fewshot.k < 0:
            P("error", "fewshot.k", f"k must be >= 0, got {self.fewshot.k}")
        if not self.input.strip():
            P("error", "input", "input is empty: the model would see no text from the row")
        for m in self.metrics:
            from workbench.core.gen_verdicts import parse_metric
            from workbench.errors import ConfigError as _CE

            try:
                parse_metric(m)
            except _CE as e:
                P("error", "metrics", f"{e.message}; {e.hint}")
        if self.metrics and self.task != "generation":
            P("warning", "metrics", "reference metrics apply to generation templates; classification reports accuracy and F1")
        if self.generation.extract:
            try:
                if re.compile(self.generation.extract).groups != 1:
                    P("error", "generation.extract", "the extract regex must have exactly one capture group")
            except re.error as e:
                P("error", "generation.extract", f"invalid regex: {e}")

        # Jinja syntax and variables, per field.
        env = jinja_env()
        cols = [str(c) for c in columns] if columns is not None else None
        syntax_ok = True
        for f, src, offset in self._field_sources():
            try:
                ast_ = env.parse(src)
                env.compile(ast_)  # unknown filters/tests only fail at compile time
            except TemplateSyntaxError as e:
                syntax_ok = False
                P("error", f, f"Jinja syntax error: {e.message}", e.lineno, guess_column(src, e, offset))
                continue
            except Exception as e:  # noqa: BLE001 - e.g. nested too deeply, or Jinja's optimizer failing on a constant
                syntax_ok = False
                P("error", f, f"the template cannot be compiled: {wrap_jinja_error(e, f).message}")
                continue
            if cols is None:
                continue
            extra = {"answer", ROW_VARIABLE} if f == "demo_format" else {ROW_VARIABLE}
            if ROW_VARIABLE in cols and ROW_VARIABLE in undeclared_names(ast_):
                P("warning", f, f"`{ROW_VARIABLE}` is the whole row; the data's column '{ROW_VARIABLE}' is "
                  f"{ROW_VARIABLE}['{ROW_VARIABLE}']", *locate(src, ROW_VARIABLE, offset))
            for var in sorted(undeclared_names(ast_) - set(env.globals) - extra):
                if var not in cols:
                    close = difflib.get_close_matches(var, cols, n=1)
                    line, col = locate(src, var, offset)
                    shown = ", ".join(column_ref(c) for c in cols[:50]) + (f", … ({len(cols)} in all)" if len(cols) > 50 else "")
                    P("error", f, f"variable '{var}' is not a column of the data (available: {shown or 'none'})"
                      + (f"; did you mean {quoted_ref(close[0])}?" if close else ""), line, col)

        # Choices and verbalizers.
        if self.task == "classification":
            if self.choices_expr and self.answer_choices:
                P("warning", "answer_choices", "both choices_expr and answer_choices are set; choices_expr wins")
            if not self.choices_expr:
                if not self.answer_choices:
                    P("error", "answer_choices", "a classification template needs answer_choices (label -> verbalizers) or choices_expr")
                owner: dict[str, str] = {}
                for label, words in self.answer_choices.items():
                    if not words:
                        P("error", "answer_choices", f"label '{label}' has no verbalizer")
                    seen = set()
                    for w in words:
                        if w in seen:
                            P("warning", "answer_choices", f"label '{label}' lists verbalizer {w!r} twice")
                        seen.add(w)
                        if w in owner and owner[w] != label:
                            P("error", "answer_choices", f"verbalizer {w!r} is used by both '{owner[w]}' and '{label}'; scores could not tell them apart")
                        owner.setdefault(w, label)
                        if w and self.target_delimiter and self.target_delimiter[-1:].isspace() and w[0].isspace():
                            P("warning", "answer_choices", f"verbalizer {w!r} starts with whitespace and target_delimiter ends with it: the continuation has a double space")
                n_cls = len(self.answer_choices)
                if n_cls == 1:
                    P("warning", "answer_choices", f"only one class ('{next(iter(self.answer_choices))}'): every prediction "
                      "is that class, so accuracy says nothing about the prompt")
                elif n_cls > MANY_CLASSES:
                    n_req = sum(len(w) for w in self.answer_choices.values())
                    P("warning", "answer_choices", f"{n_cls:,} classes: every row is scored {n_req:,} times "
                      f"(1,000 rows = {1000 * n_req:,} requests); consider choices_expr with per-row candidates")
                if labels is not None and n_cls > 1 and len({str(v) for v in labels}) == 1:
                    P("warning", "answer_choices", f"the data has only one class ('{labels[0]}'): accuracy is the share "
                      "of rows predicted as that class, and says little about the prompt")
                if labels is not None and syntax_ok:
                    missing = []
                    for v in labels:
                        g = self._label_of(v)
                        if g not in self.answer_choices:
                            missing.append(str(v) if g == str(v) else f"{v} (-> {g})")
                    if missing:
                        P("error", "answer_choices", f"labels in the data without a verbalizer: {', '.join(missing)}")
                if tokenizer is not None:
                    probs.extend(self._token_problems(tokenizer))
        elif self.target is None:
            P("error", "target", "a generation template needs `target` (Jinja for the gold answer text)")

        if sample_row is not None and syntax_ok:
            for what, fn in (("input", self.render_input), ("target", self.gold), ("choices_expr", self.choices_for),
                             ("demo_format", self.render_demo), ("instruction", self.render_instruction)):
                try:
                    fn(sample_row)
                except TemplateError as e:
                    if "no verbalizer" in e.message:
                        what = "answer_choices"
                    elif what == "demo_format" and not self.demo_format:
                        continue  # already reported under input/target
                    if not any(p.field == what and e.message in p.message for p in probs):
                        P("error", what, f"rendering the sample row failed: {e.message}")
        return probs

    def _label_of(self, value: Any) -> str:
        """The answer_choices key a data label value maps to, through `target` when it only
        reads the label column (e.g. an imported index -> choice mapping)."""
        if self.target is None:
            return str(value)
        try:
            used = undeclared_names(jinja_env().parse(self.target))
        except Exception:  # noqa: BLE001
            return str(value)
        if used <= {self.label_column}:
            try:
                return self.gold({self.label_column: value})
            except TemplateError:
                return str(value)
        return str(value)

    def _token_problems(self, tokenizer) -> list[Problem]:
        from workbench.core.verbalizers import verbalizer_report

        def encode(w: str) -> list[int]:
            return tokenizer(self.target_delimiter + w, add_special_tokens=False)["input_ids"]

        decode = getattr(tokenizer, "decode", None) or (lambda ids: " ".join(map(str, ids)))   # a bare callable: ids
        _, warnings = verbalizer_report(self.answer_choices.items(), encode, decode)
        return [Problem("warning", "answer_choices", w) for w in warnings]

    # ---- serialization ---------------------------------------------------------------------
    def to_dict(self) -> dict:
        """All fields, nested configs as dicts (round-trips through from_dict)."""
        return dataclasses.asdict(self)

    def _compact_dict(self) -> dict:
        """Fields that differ from their defaults (name and input always), in field order."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name in ("fewshot", "generation"):
                sub = {k: x for k, x in dataclasses.asdict(v).items() if x != dataclasses.asdict(type(v)()).get(k)}
                if sub:
                    out[f.name] = sub
                continue
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            if f.name in ("name", "input") or v != default:
                out[f.name] = v if not isinstance(v, dict) else {str(k): list(x) if isinstance(x, (list, tuple)) else x for k, x in v.items()}
        return out

    def to_yaml(self) -> str:
        return dump_yaml(self._compact_dict())

    @classmethod
    def from_dict(cls, d: Mapping) -> "PromptTemplate":
        if not isinstance(d, Mapping):
            raise TemplateError(f"a template must be a YAML mapping, got {type(d).__name__}", "start the file with `name:` and `input:`")
        d = dict(d)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = [k for k in d if k not in known]
        if unknown:
            hints = []
            for k in unknown:
                close = difflib.get_close_matches(str(k), sorted(known), n=1)
                hints.append(f"'{k}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
            raise TemplateError(f"template {d.get('name', '?')!r}: unknown field(s) {', '.join(hints)}",
                                f"known fields: {', '.join(sorted(known))}")
        for req in ("name", "input"):
            if req not in d or d[req] is None:
                raise TemplateError(f"template {d.get('name', '?')!r}: missing required field '{req}'",
                                    "every template needs `name` and `input` (Jinja for the prompt)")
        for sub, sub_cls in (("fewshot", FewShotConfig), ("generation", GenerationConfig)):
            v = d.get(sub)
            if v is None:
                d.pop(sub, None)
            elif isinstance(v, Mapping):
                sub_known = {f.name for f in dataclasses.fields(sub_cls)}
                bad = [k for k in v if k not in sub_known]
                if bad:
                    raise TemplateError(f"template {d['name']!r}: unknown {sub} field(s) {', '.join(map(str, bad))}",
                                        f"known {sub} fields: {', '.join(sorted(sub_known))}")
                d[sub] = sub_cls(**{k: typed_value(f"{sub}.{k}", x, SUB_TYPES[sub][k], d["name"]) for k, x in v.items()})
            elif not isinstance(v, sub_cls):
                raise TemplateError(f"template {d['name']!r}: '{sub}' must be a mapping", f"e.g. {sub}: {{...}}")
        ac = d.get("answer_choices") or {}
        if not isinstance(ac, Mapping):
            raise TemplateError(f"template {d['name']!r}: answer_choices must map label -> list of verbalizers",
                                "e.g. answer_choices: {business: [business, finance], tech: [tech]}")
        d["answer_choices"] = checked_choices(ac, str(d["name"]))
        if d.get("metadata") is None:
            d["metadata"] = {}
        for s in ("instruction", "description"):
            if s in d and d[s] is None:
                d[s] = ""   # an empty YAML value means "none"
        for s in ("label_column", "target_delimiter", "fewshot_delimiter"):
            if s in d and d[s] is None:
                raise TemplateError(f"template {d['name']!r}: '{s}' is null",
                                    f"give '{s}' a string; write {s}: \"\" for an empty one, or leave the key out "
                                    "for the default")
        for k, kind in FIELD_TYPES.items():
            if k in d and not (k == "metadata" and d[k] == {}):
                d[k] = typed_value(k, d[k], kind, d["name"])
        return cls(**d)

    @classmethod
    def from_yaml(cls, text: str) -> "PromptTemplate":
        return cls.from_dict(yaml_load(text))

    def save(self, path: str | Path) -> Path:
        """Write to_yaml() atomically (temp file in the same folder, then rename)."""
        from workbench.core.fileutil import write_text_atomic

        return write_text_atomic(path, self.to_yaml())

    def content_hash(self) -> str:
        """sha256 of what shapes the prompts and scores.

        Excluded: `name`, `description`, `metadata` and `dataset`, so a renamed or re-described
        copy is recognised as the same prompt. Default-valued fields are dropped before
        hashing, so adding a new optional field later does not change existing hashes."""
        d = self._compact_dict()
        for k in ("name", "description", "metadata", "dataset"):
            d.pop(k, None)
        canon = json.dumps(d, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canon.encode("utf-8")).hexdigest()
