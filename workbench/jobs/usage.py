"""What a job spent: tokens forwarded and generated, requests to a server, wall time, and a cost.

    u0 = snapshot(session)
    ...                                  # score, generate
    spent = since(u0, session)           # {"tokens_forwarded", "tokens_generated", "requests", "wall_s"}
    cost(spent, price_per_mtok=0.2)      # 0.0123 (the unit the price is in, per million tokens)

The counters live on the session (`stats["tokens_forwarded"]` from the scorer's prefix tree,
`stats["tokens_generated"]` from `generate`, and an inference server's `requests_sent`), so every
job that runs through a session is counted the same way. A served model's scoring does not pass
the local scorer: its forwarded tokens are then the prompts' token count (`approx=True`).
"""
from __future__ import annotations

import time

KEYS = ("tokens_forwarded", "tokens_generated", "requests")


def snapshot(session) -> dict:
    st = getattr(session, "stats", None)
    st = st if isinstance(st, dict) else {}
    remote = getattr(session, "remote", None)
    return {"tokens_forwarded": int(st.get("tokens_forwarded", 0)), "tokens_generated": int(st.get("tokens_generated", 0)),
            "requests": int(getattr(remote, "requests_sent", 0) or 0), "t": time.perf_counter()}


def since(before: dict, session) -> dict:
    now = snapshot(session)
    out = {k: now[k] - before[k] for k in KEYS}
    out["wall_s"] = round(now["t"] - before["t"], 3)
    return out


def add(total: dict, part: dict) -> dict:
    """Sum of two usage dicts (missing keys count 0)."""
    keys = set(total) | set(part)
    return {k: (total.get(k) or 0) + (part.get(k) or 0) for k in keys if k != "approx"} | (
        {"approx": True} if total.get("approx") or part.get("approx") else {})


def cost(usage: dict, price_per_mtok: float | None) -> float | None:
    """Price of the tokens (forwarded + generated) at `price_per_mtok` per million; None without a price."""
    if price_per_mtok is None:
        return None
    return (usage.get("tokens_forwarded", 0) + usage.get("tokens_generated", 0)) * float(price_per_mtok) / 1e6
