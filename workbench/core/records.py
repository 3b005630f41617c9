"""Small pure helpers for per-example records: JSON-safe row indices, answer extraction,
and the hash that identifies which rows were evaluated."""
from __future__ import annotations

import json


def extract_answer(text: str, pattern: str | None) -> str:
    if pattern:
        # the template's regex runs with a timeout: a catastrophic pattern ends in a TemplateError
        import regex

        from workbench.core.render import regex_search
        m = regex_search(pattern, text, flags=regex.MULTILINE | regex.IGNORECASE)
        if not m:
            return ""
        return (m.group(1) if m.groups() else m.group(0)).strip()
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def hash_indices(indices) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(indices).encode()).hexdigest()[:16]


def jsonable(v):
    try:
        import numpy as np
        if isinstance(v, np.generic):
            return v.item()
    except ImportError:
        pass
    return v
