"""Errors the user can act on.

Every error raised for bad input is a `WorkbenchError`: its message names the problem, and its
`hint` says how to fix it. The CLI prints both without a traceback; the UI shows them in a toast.
"""
from __future__ import annotations


class WorkbenchError(Exception):
    """An error caused by user input or environment, with a fix the user can apply."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message

    def __reduce__(self):
        # keep the hint across pickling (a render run in a child process hands its error back)
        return (type(self), (self.message, self.hint))


class DataError(WorkbenchError):
    """A dataset could not be read or does not fit the task."""


class TemplateError(WorkbenchError):
    """A template could not be parsed, validated or rendered."""


class ModelError(WorkbenchError):
    """A model could not be found, downloaded or loaded."""


class ModelBusy(ModelError):
    """The model is held by a running job; loading another model or changing its adapter would
    pull it from under that job. The message names the job; wait for it or cancel it."""


class ConfigError(WorkbenchError):
    """A run configuration (eval, training, comparison, export) is invalid."""


class Cancelled(Exception):
    """Raised inside long work when the user pressed cancel. Not an error."""
