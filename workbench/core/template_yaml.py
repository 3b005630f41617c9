"""YAML for templates: safe loading (PromptSource tags read as plain dicts, lm-eval `!function`
refused, alias bombs and oversize files refused) and the dumper that writes them back.
Split out of core/templates.py (#23)."""
from __future__ import annotations

import os
import re
from typing import Any

import yaml

from workbench.errors import TemplateError


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


class PSTemplate(dict):
    pass


class PSMetadata(dict):
    pass


_Dumper.add_representer(PSTemplate, lambda d, v: d.represent_mapping("!Template", dict(v)))
_Dumper.add_representer(PSMetadata, lambda d, v: d.represent_mapping("!TemplateMetadata", dict(v)))


def dump_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
