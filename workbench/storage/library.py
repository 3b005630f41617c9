"""The template library on disk: templates_library/ and the user's folder, listed with where each
template came from. Moved out of core/templates.py (#23): it reads folders, and core does no I/O."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from workbench.core.templates import load_templates
from workbench.errors import TemplateError


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
