"""The two wrappers a prompt search puts around its session: the token/time budget it spends, and a
per-run memo of log-likelihoods (candidates that differ only in calibration send the same requests)."""
from __future__ import annotations

import time


def stats(session) -> dict:
    """The session's counters (a stand-in session without them gets an empty dict to count in)."""
    st = getattr(session, "stats", None)
    if not isinstance(st, dict):
        st = {}
        session.stats = st
    st.setdefault("tokens", 0)
    return st


class Budget:
    def __init__(self, cfg, tokens0: int, seconds0: float, session):
        self.cfg, self.session = cfg, session
        self.tokens0, self.seconds0 = tokens0, seconds0          # spent before this (resumed) run
        self.t0, self.s0 = time.perf_counter(), stats(session)["tokens"]

    @property
    def tokens(self) -> int:
        return self.tokens0 + (stats(self.session)["tokens"] - self.s0)

    @property
    def seconds(self) -> float:
        return self.seconds0 + (time.perf_counter() - self.t0)

    def out(self) -> bool:
        c = self.cfg
        return ((c.budget_tokens is not None and self.tokens >= c.budget_tokens)
                or (c.budget_seconds is not None and self.seconds >= c.budget_seconds))
