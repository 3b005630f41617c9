"""The render budget's error, in a module of its own so that the sandbox policy
(core/sandbox_policy.py) and the budget (core/render.py) can both raise it without importing
each other."""
from __future__ import annotations

from workbench.errors import TemplateError


class RenderLimitError(TemplateError):
    """A render went past its time, loop, size or regex budget."""
