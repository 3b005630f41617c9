"""The process-wide sessions: one loaded model, shared by UI, CLI and jobs, and who holds it.

    s = get_session("default")                          # loaded once; another model frees it
    with hold_session("default", "eval of T on bbc") as s: ...   # ModelBusy for others meanwhile
    current_session(), session_holders()                # for status displays

This is process-wide state by design: the weights are loaded once per process, whichever door
asks. The model service (jobs/service.py) is the one caller that changes it on a user's behalf.
"""
from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING

from workbench.errors import ModelBusy

if TYPE_CHECKING:
    from workbench.engine.session import ModelSession

_SESSIONS: dict[str, "ModelSession"] = {}
_SESSIONS_LOCK = threading.Lock()


def current_session() -> ModelSession | None:
    """The loaded session, if any, without loading one (for status displays)."""
    with _SESSIONS_LOCK:
        for s in _SESSIONS.values():
            if s.loaded:
                return s
    return None


def _key(model: str, kwargs: dict) -> str:
    return f"{model}|{sorted(kwargs.items())}"


def _explicit(kwargs: dict) -> dict:
    """Session options that differ from SessionConfig's defaults: `device=None` and no device
    name the same session."""
    from dataclasses import fields

    from workbench.engine.loading import SessionConfig

    defaults = {f.name: f.default for f in fields(SessionConfig)}
    return {k: v for k, v in kwargs.items() if k not in defaults or v != defaults[k]}


def _get_locked(model: str, keep_others: bool, kwargs: dict) -> ModelSession:
    """The session for `model` (not yet loaded); the caller holds _SESSIONS_LOCK. Loading
    another model frees the previous one, unless a job holds it: then ModelBusy."""
    key = _key(model, kwargs)
    s = _SESSIONS.get(key)
    if s is None:
        if not keep_others:
            me = threading.get_ident()
            for other in _SESSIONS.values():
                held = [d for tid, d in other.holders.items() if tid != me]
                if held:
                    desc = held[0]
                    raise ModelBusy(f"Cannot load {model}: the model {other.config.model} is in use by {desc}.",
                                    hint="Wait for that job to finish, or cancel it, then load the other model.")
            for other in list(_SESSIONS.values()):
                other.unload()
            _SESSIONS.clear()
        s = _new_session(model, kwargs)
        _SESSIONS[key] = s
    return s


def get_session(model: str = "default", *, keep_others: bool = False, **kwargs) -> ModelSession:
    """The process-wide session for `model`, loaded once. Loading another model frees the
    previous one unless keep_others=True (small machines rarely hold two), and is refused with
    ModelBusy while a job holds the previous one (`hold_session`)."""
    with _SESSIONS_LOCK:
        s = _get_locked(model, keep_others, _explicit(kwargs))
    return s.load()


@contextlib.contextmanager
def hold_session(model: str, holder: str, *, keep_others: bool = False, **kwargs):
    """Hold the session of `model` for the duration of a job, in the job's thread:

        with hold_session("default", "eval of T on bbc") as session:
            session.attach_adapter(path)   # the holding thread may change its own adapter

    While held, `get_session` of another model, and adapter changes from any other thread, raise
    ModelBusy naming `holder`, so nothing is unloaded or changed from under the job.
    `keep_others`: do not free the other sessions (an inference server holds no weights here,
    so holding one need not unload the local model)."""
    me = threading.get_ident()
    with _SESSIONS_LOCK:
        s = _get_locked(model, keep_others, _explicit(kwargs))
        if me in s.holders:
            raise ModelBusy(f"This thread already holds {model} ({s.holders[me]}).")
        s.holders[me] = holder
    try:
        s.load()
        yield s
    finally:
        with _SESSIONS_LOCK:
            s.holders.pop(me, None)


def session_holders() -> list[str]:
    """What holds the loaded model now (running jobs), for status displays."""
    with _SESSIONS_LOCK:
        return [d for s in _SESSIONS.values() for d in s.holders.values()]


def _new_session(model: str, kwargs: dict) -> ModelSession:
    from workbench.engine.session import ModelSession   # session.py imports this module

    return ModelSession(model, **kwargs)
