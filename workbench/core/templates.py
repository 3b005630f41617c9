"""Prompt templates: the YAML format, sandboxed Jinja rendering, validation, and interop.

Usage:
    from workbench.core.templates import load_template
    t = load_template("templates_library/bbc_headline_topic.yaml")
    problems = t.validate(columns=["title", "text", "label"], labels=["business", "tech"])
    ctx = t.build_context(row, demos=[demo_row1, demo_row2])
    continuations = [t.target_delimiter + w for _, words in t.choices_for(row) for w in words]

A template is *data*, not code: every Jinja string is rendered in one shared
`SandboxedEnvironment` with `StrictUndefined`, and YAML is read with a `SafeLoader` subclass
that never instantiates Python objects. `load_template` also reads lm-evaluation-harness task
YAML and PromptSource `templates.yaml`; `to_lm_eval_yaml` / `to_promptsource_yaml` write them.
The prompt assembly reproduces lm-evaluation-harness 0.4.13 (see docs/TEMPLATES.md).
"""
from __future__ import annotations

import ast
import dataclasses
import difflib
import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from workbench.core.render import compile_template, evaluate_expression, render, sandbox
from workbench.errors import TemplateError

TASKS = ("classification", "generation")
ROW_VARIABLE = "row"          # the whole row, for columns whose names are not identifiers
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
# Sandboxed Jinja
# --------------------------------------------------------------------------------------------
def _env():
    # The one budgeted sandbox (workbench.core.render): every render has time, loop and size limits.
    return sandbox()


def _compile(source: str):
    return compile_template(source)


def _wrap_jinja_error(e: Exception, what: str, variables: Mapping | None = None) -> TemplateError:
    from jinja2 import TemplateSyntaxError, UndefinedError
    from jinja2.exceptions import SecurityError

    if isinstance(e, TemplateError):
        return e
    if isinstance(e, SecurityError):
        return TemplateError(f"{what}: blocked by the sandbox: {e}",
                             "templates may only read row values and call safe filters; access to Python internals is not allowed")
    if isinstance(e, TemplateSyntaxError):
        return TemplateError(f"{what}: Jinja syntax error at line {e.lineno}: {e.message}",
                             "check the matching of {{ }}, {% %} and quotes on that line")
    if isinstance(e, UndefinedError):
        # a pandas Series iterates over its values; the hint must list column names, never data
        keys = variables.keys() if hasattr(variables, "keys") else (variables or [])
        avail = sorted(map(str, keys))
        m = re.search(r"'([^']+)' is undefined", str(e))
        sug = ""
        if m and avail:
            close = difflib.get_close_matches(m.group(1), avail, n=1)
            sug = f"; did you mean {_quoted_ref(close[0])}?" if close else ""
        shown = [column_ref(a) for a in avail[:50]] + ([f"… ({len(avail)} in all)"] if len(avail) > 50 else [])
        return TemplateError(f"{what}: {e}", f"available variables: {', '.join(shown) or '(none)'}{sug}")
    return TemplateError(f"{what}: render failed: {type(e).__name__}: {e}",
                         "check the filters and expressions used on this row's values")


def render_string(source: str, variables: Mapping) -> str:
    """Render Jinja `source` with `variables` in the shared sandboxed, strict environment."""
    try:
        return render(source, variables)
    except Exception as e:  # noqa: BLE001 - every failure becomes an actionable TemplateError
        raise _wrap_jinja_error(e, "template", variables) from e


def with_row(row: Mapping) -> dict:
    """The variables of a render: every column by name, and `row`, the whole row as a mapping,
    so a column whose name is not an identifier is reachable as row['my title']. `row` is
    always the whole row: a column named `row` is row['row']."""
    d = dict(row)
    d[ROW_VARIABLE] = dict(row)
    return d


def column_ref(name: str) -> str:
    """How a template refers to a column: its name, or row['...'] when it is not an identifier
    (or is `row` itself)."""
    if _IDENT.match(name) and name != ROW_VARIABLE:
        return name
    return f"{ROW_VARIABLE}[{name!r}]"   # a Python str literal is a Jinja one


def _quoted_ref(name: str) -> str:
    ref = column_ref(name)
    return f"'{ref}'" if ref == name else ref


def _eval_expression(expr: str, variables: Mapping) -> Any:
    try:
        return evaluate_expression(expr, with_row(variables))
    except Exception as e:  # noqa: BLE001
        raise _wrap_jinja_error(e, "choices_expr", variables) from e


def _is_template_form(s: str) -> bool:
    return "{{" in s or "{%" in s


def _jinja_str(s: str) -> str:
    """A Jinja string literal for `s` (JSON escaping is valid Jinja string syntax)."""
    return json.dumps(s, ensure_ascii=False)


# --------------------------------------------------------------------------------------------
# YAML: safe loading with PromptSource tags as plain dicts, lm-eval !function rejected
# --------------------------------------------------------------------------------------------
class _SafeLoader(yaml.SafeLoader):
    """SafeLoader that knows the foreign tags we meet, and never builds Python objects."""


def _tag_as_dict(loader, node):
    return loader.construct_mapping(node, deep=True)


def _reject_function(loader, node):
    value = loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else "?"
    line = node.start_mark.line + 1
    raise TemplateError(
        f"line {line}: '!function {value}' refers to Python code; the workbench does not run code from templates",
        "for a task of the installed lm-eval library or a task folder you trust, run it with --task NAME "
        "--trust-task-code (and --include-path DIR for your own folder); otherwise replace the !function "
        "with a Jinja string, or preprocess the dataset so a plain column holds the value",
    )


# YAML 1.1 reads yes/no/on/off as booleans, which would turn a verbalizer list `[yes, no]`
# into True/False. Only true/false (YAML 1.2) stay booleans here.
_SafeLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_SafeLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
def _construct_mapping_unique(loader, node, deep=False):
    # PyYAML keeps the last of two equal keys without a word; a duplicated label or field is
    # almost always a mistake, so refuse it. Merge keys (<<) may be overridden, as YAML intends.
    seen: dict[tuple, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            try:
                key = loader.construct_object(key_node, deep=True)
                hash(key)
            except (TypeError, yaml.YAMLError):
                continue
            line = key_node.start_mark.line + 1
            tk = (type(key).__name__, key)   # 1 and true are different keys
            if tk in seen:
                raise TemplateError(f"line {line}: duplicate key {str(key)!r} (first at line {seen[tk]})",
                                    "YAML would keep only the last value; remove or merge the duplicate")
            seen[tk] = line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_SafeLoader.construct_mapping = _construct_mapping_unique
_SafeLoader.add_constructor("!Template", _tag_as_dict)
_SafeLoader.add_constructor("!TemplateMetadata", _tag_as_dict)
_SafeLoader.add_constructor("!function", _reject_function)


MAX_YAML_NODES = 200_000   # after expanding aliases; a template file has a few hundred
# Characters of a YAML file, and of its values once every alias is expanded: an alias of a
# 10 KB string, used 19,000 times, is 190 MB of text that every writer and reader copies
# (issue 29, item 6). A template file is a few KB; a PromptSource file of many templates ~100 KB.
MAX_YAML_CHARS = int(os.environ.get("WORKBENCH_TEMPLATE_MAX_YAML_CHARS", 4_000_000) or 4_000_000)


def _expanded_nodes(root) -> int:
    """How many nodes the document has once every alias is expanded (memoized per node, so a
    "billion laughs" file is measured in microseconds, not built)."""
    return _expanded(root)[0]


def _expanded(root) -> tuple[int, int]:
    """(nodes, characters of scalar values) once every alias is expanded (core/yaml_budget.py)."""
    from workbench.core.yaml_budget import expanded

    return expanded(root, MAX_YAML_NODES, MAX_YAML_CHARS)


def yaml_load(text: str, origin: str = "template") -> Any:
    if len(text) > MAX_YAML_CHARS:
        raise TemplateError(f"{origin}: the file is {len(text):,} characters long (limit {MAX_YAML_CHARS:,})",
                            "a template file holds prompts, not data; raise $WORKBENCH_TEMPLATE_MAX_YAML_CHARS "
                            "if this one is legitimate")
    try:
        loader = _SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            nodes, chars = _expanded(node)
            if nodes > MAX_YAML_NODES:
                raise TemplateError(f"{origin}: the YAML expands to more than {MAX_YAML_NODES:,} values through "
                                    "aliases (*name) — an alias bomb?",
                                    "write the values out instead of nesting aliases of aliases")
            if chars > MAX_YAML_CHARS:
                raise TemplateError(f"{origin}: the YAML's values come to more than {MAX_YAML_CHARS:,} characters "
                                    "once its aliases (*name) are expanded",
                                    "write shorter values, or do not repeat long ones through aliases "
                                    "(limit: $WORKBENCH_TEMPLATE_MAX_YAML_CHARS)")
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except TemplateError as e:
        if origin != "template" and origin not in e.message:
            raise TemplateError(f"{origin}: {e.message}", e.hint) from e
        raise
    except RecursionError as e:
        raise TemplateError(f"{origin}: the YAML is nested too deeply", "flatten the structure") from e
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise TemplateError(f"{origin}: invalid YAML{where}: {e.problem}",
                            "check indentation and quoting; strings with ':' or '{' need quotes or a | block") from e
    except yaml.YAMLError as e:
        raise TemplateError(f"{origin}: invalid YAML: {e}", "check the YAML syntax") from e


class _Dumper(yaml.SafeDumper):
    pass


def _str_representer(dumper, s: str):
    # Multi-line Jinja is far easier to read as a block scalar; PyYAML falls back to a quoted
    # style by itself when a block cannot represent the string exactly.
    style = "|" if "\n" in s else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", s, style=style)


_Dumper.add_representer(str, _str_representer)


class _PSTemplate(dict):
    pass


class _PSMetadata(dict):
    pass


_Dumper.add_representer(_PSTemplate, lambda d, v: d.represent_mapping("!Template", dict(v)))
_Dumper.add_representer(_PSMetadata, lambda d, v: d.represent_mapping("!TemplateMetadata", dict(v)))


def dump_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


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
            raise _wrap_jinja_error(e, f"template '{self.name}' {what}", row) from e

    def render_input(self, row: Mapping) -> str:
        return self._render("input", self.input, row)

    def _target_source(self) -> str:
        return self.target if self.target is not None else "{{ %s }}" % self.label_column

    def _row_choices(self, row: Mapping) -> list[str]:
        """Evaluate choices_expr like lm-eval's doc_to_choice: a Jinja expression, or a template
        whose output is a Python list literal."""
        expr = self.choices_expr or ""
        if _is_template_form(expr):
            text = self._render("choices_expr", expr, row)
            try:
                value = ast.literal_eval(text.strip())
            except (ValueError, SyntaxError) as e:
                raise TemplateError(f"template '{self.name}' choices_expr: rendered {text[:80]!r}, which is not a list literal",
                                    "make the template print a list, e.g. {{ [a, b] }}, or write a plain expression like `choices`") from e
        else:
            value = _eval_expression(expr, row)
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
            raise _wrap_jinja_error(e, f"template '{self.name}' choices_expr", row) from e

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
            if f == "choices_expr" and not _is_template_form(v):
                out.append((f, "{{ " + v + " }}", 3))
            else:
                out.append((f, v, 0))
        return out

    def variables(self) -> set[str]:
        """Undeclared Jinja variables (row columns) used across all Jinja fields."""
        env = _env()
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
        env = _env()
        cols = [str(c) for c in columns] if columns is not None else None
        syntax_ok = True
        for f, src, offset in self._field_sources():
            try:
                ast_ = env.parse(src)
                env.compile(ast_)  # unknown filters/tests only fail at compile time
            except TemplateSyntaxError as e:
                syntax_ok = False
                P("error", f, f"Jinja syntax error: {e.message}", e.lineno, _guess_column(src, e, offset))
                continue
            except Exception as e:  # noqa: BLE001 - e.g. nested too deeply, or Jinja's optimizer failing on a constant
                syntax_ok = False
                P("error", f, f"the template cannot be compiled: {_wrap_jinja_error(e, f).message}")
                continue
            if cols is None:
                continue
            extra = {"answer", ROW_VARIABLE} if f == "demo_format" else {ROW_VARIABLE}
            if ROW_VARIABLE in cols and ROW_VARIABLE in undeclared_names(ast_):
                P("warning", f, f"`{ROW_VARIABLE}` is the whole row; the data's column '{ROW_VARIABLE}' is "
                  f"{ROW_VARIABLE}['{ROW_VARIABLE}']", *_locate(src, ROW_VARIABLE, offset))
            for var in sorted(undeclared_names(ast_) - set(env.globals) - extra):
                if var not in cols:
                    close = difflib.get_close_matches(var, cols, n=1)
                    line, col = _locate(src, var, offset)
                    shown = ", ".join(column_ref(c) for c in cols[:50]) + (f", … ({len(cols)} in all)" if len(cols) > 50 else "")
                    P("error", f, f"variable '{var}' is not a column of the data (available: {shown or 'none'})"
                      + (f"; did you mean {_quoted_ref(close[0])}?" if close else ""), line, col)

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
            used = undeclared_names(_env().parse(self.target))
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
                d[sub] = sub_cls(**{k: _typed(f"{sub}.{k}", x, _SUB_TYPES[sub][k], d["name"]) for k, x in v.items()})
            elif not isinstance(v, sub_cls):
                raise TemplateError(f"template {d['name']!r}: '{sub}' must be a mapping", f"e.g. {sub}: {{...}}")
        ac = d.get("answer_choices") or {}
        if not isinstance(ac, Mapping):
            raise TemplateError(f"template {d['name']!r}: answer_choices must map label -> list of verbalizers",
                                "e.g. answer_choices: {business: [business, finance], tech: [tech]}")
        d["answer_choices"] = _checked_choices(ac, str(d["name"]))
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
        for k, kind in _FIELD_TYPES.items():
            if k in d and not (k == "metadata" and d[k] == {}):
                d[k] = _typed(k, d[k], kind, d["name"])
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


def undeclared_names(ast_) -> set[str]:
    from jinja2 import meta, nodes
    from jinja2.exceptions import TemplateAssertionError

    try:
        return set(meta.find_undeclared_variables(ast_))
    except TemplateAssertionError:
        # An unknown filter stops Jinja's own analysis; approximate with loaded minus stored names.
        loaded = {n.name for n in ast_.find_all(nodes.Name) if n.ctx == "load"}
        stored = {n.name for n in ast_.find_all(nodes.Name) if n.ctx in ("store", "param")}
        return loaded - stored


# What each YAML field may hold: "str" (a number is read as its text), "str?" (or null),
# "int", "float", "bool", "dict", "strlist" (a string or a list of strings).
_FIELD_TYPES = {"name": "str", "input": "str", "task": "str", "kind": "str", "choices_expr": "str?", "target": "str?",
                "label_column": "str", "target_delimiter": "str", "fewshot_delimiter": "str", "instruction": "str",
                "instruction_delimiter": "str?", "demo_format": "str?", "chat": "bool", "choice_aggregate": "str",
                "description": "str", "metadata": "dict", "dataset": "str?",
                "metrics": "strlist"}
_SUB_TYPES = {"fewshot": {"k": "int", "per_class": "bool", "balanced": "bool", "sampling": "str", "seed": "int"},
              "generation": {"max_new_tokens": "int", "stop": "strlist", "extract": "str?", "temperature": "float",
                             "top_p": "float"}}


def _typed(key: str, v: Any, kind: str, name: Any) -> Any:
    """`v` as the type field `key` needs, or a TemplateError naming the field."""
    def bad(what: str) -> TemplateError:
        return TemplateError(f"template {name!r}: '{key}' must be {what}, not {type(v).__name__} {str(v)[:40]!r}",
                             f"fix the value of '{key}' (docs/TEMPLATES.md lists every field)")

    if kind in ("str", "str?"):
        if v is None and kind == "str?":
            return None
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise bad("a string")
        return str(v)
    if kind == "bool":
        if not isinstance(v, bool):
            raise bad("true or false")
        return v
    if kind == "int":
        if isinstance(v, bool) or not isinstance(v, int):
            raise bad("a whole number")
        return v
    if kind == "float":
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise bad("a number")
        return float(v)
    if kind == "dict":
        if not isinstance(v, Mapping):
            raise bad("a mapping")
        return dict(v)
    if kind == "strlist":
        items = [v] if isinstance(v, str) else v
        if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
            raise bad("a string or a list of strings")
        return list(items)
    raise AssertionError(kind)


def _checked_choices(ac: Mapping, name: str) -> dict[str, list[str]]:
    """answer_choices with string labels and verbalizers; a null, an empty string or a nested
    list/mapping is refused naming its label (they used to become 'None' or "['x']")."""
    out: dict[str, list[str]] = {}
    for k, v in ac.items():
        if k is None or isinstance(k, (list, dict)):
            raise TemplateError(f"template {name!r}: answer_choices has a {'null' if k is None else 'non-scalar'} label {k!r}",
                                "labels are the data's label values, e.g. business: [business]")
        label = _label_key(k)   # YAML reads `0:` / `yes:` keys as int / bool; labels are strings everywhere else.
        words = v if isinstance(v, (list, tuple)) else [v]
        if v is None or not words:
            raise TemplateError(f"template {name!r}: answer_choices label '{label}' has no verbalizer (the value is "
                                f"{'null' if v is None else 'empty'})", f"write e.g. {label}: [{label}]")
        for w in words:
            if w is None or isinstance(w, (list, tuple, dict)):
                raise TemplateError(f"template {name!r}: answer_choices label '{label}' has a "
                                    f"{'null' if w is None else type(w).__name__} verbalizer {w!r}",
                                    "each label maps to a flat list of strings, e.g. yes: [yes, sure]")
            if str(w) == "":
                raise TemplateError(f"template {name!r}: answer_choices label '{label}' has an empty verbalizer \"\"",
                                    "a verbalizer must contain some text; the continuation would be only the delimiter")
        out[label] = [_label_key(w) for w in words]
    return out


def _label_key(k: Any) -> str:
    if isinstance(k, bool):  # YAML 1.1 reads yes/no/true/false keys as booleans
        return "true" if k else "false"
    return str(k)


def _guess_column(src: str, e, offset: int) -> int | None:
    """Best-effort 1-based column of a syntax error: Jinja reports only the line, so look for
    the token the message quotes on that line, else point at the first unclosed tag."""
    lines = src.splitlines() or [""]
    if not e.lineno or e.lineno > len(lines):
        return None
    line = lines[e.lineno - 1]
    for tok in re.findall(r"'([^']+)'", e.message or ""):
        i = line.rfind(tok)  # the offending token is usually the last one on the line
        if i >= 0:
            return max(1, i + 1 - offset)
    for opener, closer in (("{{", "}}"), ("{%", "%}")):
        i = line.rfind(opener)
        if i >= 0 and closer not in line[i:]:
            return max(1, i + 1 - offset)
    return None


def _locate(src: str, var: str, offset: int) -> tuple[int | None, int | None]:
    for n, line in enumerate(src.splitlines(), 1):
        m = re.search(r"(?<![\w.])" + re.escape(var) + r"\b", line)
        if m:
            return n, max(1, m.start() + 1 - offset)
    return None, None


# --------------------------------------------------------------------------------------------
# Loading: our format, lm-eval task YAML, PromptSource templates.yaml
# --------------------------------------------------------------------------------------------
_LM_EVAL_KEYS = {"doc_to_text", "doc_to_target", "doc_to_choice", "output_type", "dataset_path", "include"}


def _read(path_or_text: str | Path) -> tuple[str, Path | None]:
    if isinstance(path_or_text, Path):
        p = path_or_text
    elif "\n" not in path_or_text and len(path_or_text) < 4096 and (
            path_or_text.endswith((".yaml", ".yml")) or os.path.exists(path_or_text)):
        p = Path(path_or_text)
    else:
        return path_or_text, None
    if not p.is_file():
        raise TemplateError(f"template file not found: {p}", "check the path, or pass the YAML text itself")
    return read_utf8(p), p


def read_utf8(p: Path) -> str:
    """A template file's text; a file that is not UTF-8 is a TemplateError naming the bad byte."""
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise TemplateError(f"{p}: not valid UTF-8: byte 0x{raw[e.start]:02x} at offset {e.start} (line {line})",
                            "re-save the template as UTF-8 (templates are read as UTF-8 only)") from e
    return text[1:] if text.startswith("\ufeff") else text


def load_templates(path_or_text: str | Path, *, include_roots=None) -> list[PromptTemplate]:
    """Every template in a file: one for our format and lm-eval, all for PromptSource.

    `include_roots` (a workbench.core.lmeval_yaml.IncludeRoots) says where an lm-eval
    `include:` may read; default: the file's own folder and the installed lm-eval tasks."""
    text, path = _read(path_or_text)
    origin = str(path) if path else "template"
    data = yaml_load(text, origin)
    if not isinstance(data, Mapping):
        raise TemplateError(f"{origin}: expected a YAML mapping, got {type(data).__name__}",
                            "a template file is a mapping with `name:` and `input:` (or lm-eval / PromptSource YAML)")
    try:
        if "templates" in data and isinstance(data["templates"], Mapping):
            return _from_promptsource(data)
        if "input" in data and "name" in data:
            return [PromptTemplate.from_dict(data)]
        if "group" in data and isinstance(data.get("task"), list):
            raise TemplateError(f"{origin}: this is the lm-eval group {data['group']!r}, not one task",
                                f"run its tasks by name: workbench eval --task {data['group']} (see docs/TEMPLATES.md)")
        if _LM_EVAL_KEYS & set(data):
            return [_from_lm_eval(data, path, include_roots)]
    except TemplateError as e:
        if path and str(path) not in e.message:
            raise TemplateError(f"{path}: {e.message}", e.hint) from e
        raise
    raise TemplateError(f"{origin}: not a recognised template format (keys: {', '.join(map(str, data))})",
                        "our format needs `name` and `input`; lm-eval needs `doc_to_text`; PromptSource needs `templates`")


def load_template(path_or_text: str | Path, name: str | None = None, *, include_roots=None) -> PromptTemplate:
    ts = load_templates(path_or_text, include_roots=include_roots)
    if name is not None:
        for t in ts:
            if t.name == name:
                return t
        raise TemplateError(f"no template named {name!r} in {str(path_or_text)[:200]}",
                            f"available: {', '.join(t.name for t in ts)}")
    if len(ts) > 1:
        raise TemplateError(f"{str(path_or_text)[:200]} holds {len(ts)} templates",
                            f"pass name=... (one of: {', '.join(t.name for t in ts)}) or use load_templates")
    return ts[0]


# ---- lm-eval ----------------------------------------------------------------------------------
_IDENT = re.compile(r"^[A-Za-z_]\w*$")


def lm_field_to_jinja(v: Any) -> str:
    """lm-eval evaluates a bare column name as that column, anything else as Jinja. We cannot
    see the dataset's columns, so an identifier-only string is taken as a column name."""
    s = str(v)
    return "{{ %s }}" % s if _IDENT.match(s) else s


def _lm_plain_column(s: str) -> str | None:
    if _IDENT.match(s):
        return s
    m = re.fullmatch(r"\{\{\s*([A-Za-z_]\w*)\s*\}\}", s)
    return m.group(1) if m else None


def _resolve_include(data: dict, path: Path | None, roots=None) -> dict:
    """Merge the `include:` chain, confined to trusted roots (workbench.core.lmeval_yaml)."""
    from workbench.core.lmeval_yaml import IncludeRoots, resolve_includes

    if roots is None and path is not None:
        roots = IncludeRoots.for_file(path)
    return resolve_includes(data, path, roots, lambda text, origin, _p: yaml_load(text, origin))


def _lm_str(data: Mapping, key: str, default: str, name: str) -> str:
    v = data.get(key, default)
    if v is None or isinstance(v, (list, dict)):
        raise TemplateError(f"lm-eval task {name!r}: '{key}' is {'null' if v is None else 'not a string'}",
                            f"give '{key}' a string (write \"\" for none), or leave it out for the default {default!r}")
    return str(v)


def _from_lm_eval(data: Mapping, path: Path | None, roots=None) -> PromptTemplate:
    data = _resolve_include(dict(data), path, roots)
    name = str(data.get("task") or (path.stem if path else "lm_eval_task"))
    if isinstance(data.get("task"), list):
        raise TemplateError(f"{name}: this is an lm-eval group, not a task", "load one of the task YAML files it lists")
    out_type = data.get("output_type", "generate_until")
    if out_type not in ("multiple_choice", "generate_until"):
        raise TemplateError(f"lm-eval task {name!r}: output_type {out_type!r} is not supported",
                            "only multiple_choice (classification) and generate_until (generation) map to a prompt template")
    if "doc_to_text" not in data:
        raise TemplateError(f"lm-eval task {name!r} has no doc_to_text", "add doc_to_text (a Jinja string or a column name)")
    if data.get("gen_prefix"):
        # a plain template has no answer prefix: importing it would silently change the prompt
        raise TemplateError(f"lm-eval task {name!r} uses gen_prefix, which a plain template cannot hold",
                            f"run it as an lm-eval task: workbench eval --task {name} (with --include-path for your folder)")
    kw: dict[str, Any] = {
        "name": name,
        "input": lm_field_to_jinja(data["doc_to_text"]),
        "target_delimiter": _lm_str(data, "target_delimiter", " ", name),
        "fewshot_delimiter": _lm_str(data, "fewshot_delimiter", "\n\n", name),
        "metadata": {"source": "lm-eval", **({"dataset_path": data["dataset_path"]} if data.get("dataset_path") else {})},
    }
    desc = data.get("description") or ""
    if desc:
        # lm-eval joins the description to the first demo with nothing in between.
        fd = kw["fewshot_delimiter"]
        if fd and desc.endswith(fd):
            kw["instruction"] = desc[: -len(fd)]
        else:
            kw["instruction"], kw["instruction_delimiter"] = desc, ""
    if data.get("num_fewshot"):
        kw["fewshot"] = FewShotConfig(k=int(data["num_fewshot"]))
    tgt = data.get("doc_to_target")
    if out_type == "generate_until":
        kw["task"] = "generation"
        kw["target"] = lm_field_to_jinja(tgt) if tgt is not None else None
        gk = data.get("generation_kwargs") or {}
        until = gk.get("until", ["\n\n"])
        g = GenerationConfig(stop=[until] if isinstance(until, str) else list(until))
        if "max_gen_toks" in gk:
            g.max_new_tokens = int(gk["max_gen_toks"])
        if "temperature" in gk:
            g.temperature = float(gk["temperature"])
        if "top_p" in gk:
            g.top_p = float(gk["top_p"])
        kw["generation"] = g
        return PromptTemplate(**kw)

    choice = data.get("doc_to_choice")
    if choice is None:
        raise TemplateError(f"lm-eval task {name!r}: multiple_choice needs doc_to_choice", "add doc_to_choice (a list, column or Jinja)")
    if isinstance(choice, Mapping):
        choice = list(choice.values())
    if isinstance(choice, list):
        choices = [str(c) for c in choice]
        # Keys are the choice texts; `target` reproduces lm-eval's gold rule (digits -> index
        # into the list, otherwise the text itself), so both integer and text label columns
        # line up with the keys.
        kw["answer_choices"] = {c: [c] for c in choices}
        lit = "[" + ", ".join(_jinja_str(c) for c in choices) + "]"
        if tgt is None:
            raise TemplateError(f"lm-eval task {name!r} has no doc_to_target", "add doc_to_target (index, column or Jinja)")
        if isinstance(tgt, bool) or not isinstance(tgt, (int, str)):
            raise TemplateError(f"lm-eval task {name!r}: doc_to_target {tgt!r} is not supported", "use an int, a column name or a Jinja string")
        if isinstance(tgt, int):
            kw["target"] = "{{ %s }}" % _jinja_str(choices[tgt])
        else:
            src = lm_field_to_jinja(tgt)
            col = _lm_plain_column(src)
            if col:
                kw["label_column"] = col
            kw["target"] = ("{% set t %}" + src + "{% endset %}"
                            "{{ " + lit + "[t | int] if t.strip().isdigit() else t }}")
    else:
        c = str(choice)
        kw["choices_expr"] = c  # a column name is a valid Jinja expression; templates stay templates
        kw["target"] = lm_field_to_jinja(tgt) if not isinstance(tgt, int) else str(tgt)
        col = _lm_plain_column(kw["target"])
        if col:
            kw["label_column"] = col
    return PromptTemplate(**kw)


def to_lm_eval_yaml(template: PromptTemplate, dataset_path: str = "json", data_files: Mapping[str, str] | str | None = None,
                    test_split: str = "test", fewshot_split: str | None = None, task_name: str | None = None) -> str:
    """An lm-eval 0.4.x task YAML whose prompts equal `template.build_context`.

    Demonstrations: lm-eval draws its own; with `fewshot_split` the `first_n` sampler takes
    that split's rows in order, so writing our demos there reproduces the same context.
    Only the first verbalizer of each label can be exported (lm-eval scores one string per
    choice)."""
    t = template
    if t.demo_format:
        raise TemplateError(f"template '{t.name}' uses demo_format, which lm-eval cannot express",
                            "remove demo_format (demos are input + target_delimiter + answer) before exporting")
    d: dict[str, Any] = {"task": task_name or re.sub(r"\W+", "_", t.name), "dataset_path": dataset_path}
    if data_files is not None:
        d["dataset_kwargs"] = {"data_files": dict(data_files) if isinstance(data_files, Mapping) else {test_split: data_files}}
    d["test_split"] = test_split
    if fewshot_split:
        d["fewshot_split"] = fewshot_split
        d["fewshot_config"] = {"sampler": "first_n"}
    d["output_type"] = "multiple_choice" if t.task == "classification" else "generate_until"
    if t.instruction:
        delim = t.fewshot_delimiter if t.instruction_delimiter is None else t.instruction_delimiter
        d["description"] = t.instruction + delim
    d["doc_to_text"] = t.input
    comments = [f"# Exported from prompt-workbench template '{t.name}' (content {t.content_hash()[:12]})."]
    if t.task == "classification":
        if t.choices_expr:
            expr = t.choices_expr
            d["doc_to_choice"] = expr if (_is_template_form(expr) or _IDENT.match(expr)) else "{{ (" + expr + ") | list }}"
            d["doc_to_target"] = t._target_source()
        else:
            labels = list(t.answer_choices)
            d["doc_to_choice"] = [t.answer_choices[k][0] for k in labels]
            index = "{" + ", ".join(f"{_jinja_str(k)}: {i}" for i, k in enumerate(labels)) + "}"
            src = t._target_source()
            d["doc_to_target"] = "{% set t %}" + src + "{% endset %}{{ " + index + "[t] }}"
            if any(len(w) > 1 for w in t.answer_choices.values()):
                comments.append("# Only the first verbalizer of each label is exported (lm-eval scores one string per choice).")
        d["metric_list"] = [{"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                            {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True}]
    else:
        d["doc_to_target"] = t._target_source()
        g = t.generation
        d["generation_kwargs"] = {"until": list(g.stop), "max_gen_toks": g.max_new_tokens,
                                  "do_sample": g.temperature > 0, "temperature": g.temperature}
        d["metric_list"] = [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}]
    d["target_delimiter"] = t.target_delimiter
    d["fewshot_delimiter"] = t.fewshot_delimiter
    d["num_fewshot"] = t.fewshot.k
    if t.chat:
        comments.append("# This template is chat-style: run lm-eval with --apply_chat_template.")
    return "\n".join(comments) + "\n" + dump_yaml(d)


# ---- PromptSource -----------------------------------------------------------------------------
def _split_bars(s: str) -> list[str]:
    return [p.strip() for p in s.split("|||")]


def _ps_choice_expr(part: str) -> str:
    """A PromptSource answer choice (text with {{ }} inserts) as one Jinja expression."""
    if "{%" in part:
        raise TemplateError(f"PromptSource answer choice {part!r} uses a {{% %}} block", "only {{ }} inserts are supported in per-row answer_choices")
    pieces = []
    pos = 0
    for m in re.finditer(r"\{\{(.*?)\}\}", part, flags=re.S):
        if m.start() > pos:
            pieces.append(_jinja_str(part[pos:m.start()]))
        pieces.append("((" + m.group(1).strip() + ") | string)")
        pos = m.end()
    if pos < len(part):
        pieces.append(_jinja_str(part[pos:]))
    return " ~ ".join(pieces) or '""'


_ANSWER_CHOICES = re.compile(r"(?<![\w.])answer_choices\b")
_PS_GOLD = re.compile(r"^\{\{\s*answer_choices\s*\[\s*([A-Za-z_]\w*)\s*\]\s*\}\}$")


def _from_promptsource(data: Mapping) -> list[PromptTemplate]:
    ds = data.get("dataset")
    sub = data.get("subset")
    out = []
    for tid, tp in (data.get("templates") or {}).items():
        if not isinstance(tp, Mapping) or "jinja" not in tp:
            raise TemplateError(f"PromptSource template {tid}: missing `jinja`", "each template needs `jinja: input ||| target`")
        name = str(tp.get("name") or tid)
        parts = str(tp["jinja"]).split("|||")
        if len(parts) > 2:
            raise TemplateError(f"PromptSource template {name!r}: jinja has {len(parts) - 1} '|||' separators", "use exactly one: input ||| target")
        # PromptSource strips both rendered parts; we strip the source, which matches unless
        # a value itself starts or ends with whitespace.
        inp = parts[0].strip()
        tgt = parts[1].strip() if len(parts) == 2 else None
        meta = dict(tp.get("metadata") or {})
        kw: dict[str, Any] = {"name": name, "input": inp, "dataset": None,
                              "metadata": {"source": "promptsource", "id": str(tp.get("id", tid)),
                                           **({"hf_dataset": ds} if ds else {}), **({"subset": sub} if sub else {}),
                                           **({k: v for k, v in meta.items() if k in ("metrics", "original_task", "choices_in_prompt", "languages")})}}
        if tp.get("reference"):
            kw["description"] = str(tp["reference"])
        ac = tp.get("answer_choices")
        m = _PS_GOLD.match(tgt or "")
        if not ac:
            kw["task"] = "generation"
            kw["target"] = tgt
        else:
            choices = _split_bars(str(ac))
            per_row = any(_is_template_form(c) for c in choices)
            if per_row:
                kw["choices_expr"] = "[" + ", ".join(_ps_choice_expr(c) for c in choices) + "]"
                if m:
                    kw["label_column"] = m.group(1)
                    kw["target"] = "{{ %s }}" % m.group(1)  # digits -> index into the row's choices
                else:
                    kw["target"] = _ANSWER_CHOICES.sub("(" + kw["choices_expr"] + ")", tgt or "")
            elif m:
                # The common case: integer dataset labels index the fixed list, so the keys are
                # the label values "0", "1", ... and the label column is the indexing variable.
                kw["label_column"] = m.group(1)
                kw["answer_choices"] = {str(i): [c] for i, c in enumerate(choices)}
            else:
                # Any other target: `answer_choices` becomes the literal list, so the target
                # renders the choice text, which is the key.
                kw["answer_choices"] = {c: [c] for c in choices}
                kw["target"] = _ANSWER_CHOICES.sub("[" + ", ".join(_jinja_str(c) for c in choices) + "]", tgt or "")
        if tgt is None:
            raise TemplateError(f"PromptSource template {name!r}: jinja has no '|||' target part", "write jinja as: input ||| target")
        out.append(PromptTemplate(**kw))
    if not out:
        raise TemplateError("PromptSource file holds no templates", "add entries under `templates:`")
    return out


def to_promptsource_yaml(template: PromptTemplate, dataset: str | None = None, template_id: str | None = None) -> str:
    """PromptSource `templates.yaml` text (with !Template tags) holding this template."""
    import uuid

    t = template
    tid = template_id or str(uuid.uuid5(uuid.NAMESPACE_URL, "prompt-workbench:" + t.content_hash()))
    entry: dict[str, Any] = {}
    if t.task == "classification" and t.choices_expr:
        raise TemplateError(f"template '{t.name}' uses choices_expr, which has no PromptSource equivalent here",
                            "export to lm-eval YAML instead")
    if t.task == "classification":
        labels = list(t.answer_choices)
        entry["answer_choices"] = " ||| ".join(t.answer_choices[k][0] for k in labels)
        src = t._target_source()
        if labels == [str(i) for i in range(len(labels))] and _lm_plain_column(src):
            gold = "{{ answer_choices[%s] }}" % _lm_plain_column(src)
        else:
            index = "{" + ", ".join(f"{_jinja_str(k)}: {i}" for i, k in enumerate(labels)) + "}"
            gold = "{% set t %}" + src + "{% endset %}{{ answer_choices[" + index + "[t]] }}"
    else:
        entry["answer_choices"] = None
        gold = t._target_source()
    entry["id"] = tid
    entry["jinja"] = t.input + " ||| " + gold
    entry["metadata"] = _PSMetadata({"choices_in_prompt": False, "languages": ["en"],
                                     "metrics": ["Accuracy"] if t.task == "classification" else ["Other"],
                                     "original_task": True})
    entry["name"] = t.name
    entry["reference"] = t.description
    return dump_yaml({"dataset": dataset or t.dataset or "unknown", "templates": {tid: _PSTemplate(entry)}})


# --------------------------------------------------------------------------------------------
# Library
# --------------------------------------------------------------------------------------------
def list_library(dirs: Sequence[str | Path] | None = None) -> list[dict]:
    """Templates in templates_library/ and the user's folder, with where they came from.

    A file that fails to load is listed with an `error` entry instead of hiding it."""
    from workbench import paths

    lib = paths.library_dir().resolve()
    roots = [Path(d) for d in dirs] if dirs is not None else [lib, paths.user_templates_dir()]
    out = []
    for root in roots:
        if not root.is_dir():
            continue
        source = "library" if root.resolve() == lib else "user"
        for p in sorted([*root.glob("*.yaml"), *root.glob("*.yml")]):
            try:
                for t in load_templates(p):
                    out.append({"name": t.name, "path": str(p), "dataset": t.dataset, "task": t.task,
                                "kind": t.kind, "source": source, "description": t.description})
            except TemplateError as e:
                out.append({"name": p.stem, "path": str(p), "dataset": None, "task": None, "kind": None,
                            "source": source, "error": str(e)})
    return out
