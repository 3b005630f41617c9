"""A prompt search's result and its report: the leaderboard and the plain-text summary the CLI
prints, worded for the search's objective (accuracy, or a generation metric such as chrF).

    res = SearchResult(payload, run_id)
    res.summary()          # format_search: winner, dev score, test verdict, dev-to-test change
    res.leaderboard()[:5]  # candidates tried, best first

`payload["dev_accuracy"]`-style keys keep their names for stored searches; for a generation
search they hold the objective's mean per-row utility (core/search_objective.py), and every
sentence names the metric instead of "accuracy".
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from workbench.core.search_objective import Objective


def objective_of(payload: dict) -> Objective:
    return Objective.from_dict(payload.get("objective"))


@dataclass
class SearchResult:
    """A finished (or stopped) search: `payload` is what the registry holds."""

    payload: dict
    run_id: str | None = None

    @property
    def status(self) -> str:
        return self.payload.get("status", "?")

    @property
    def winner(self) -> dict:
        return self.payload.get("winner") or {}

    @property
    def test(self) -> dict | None:
        return self.payload.get("test")

    @property
    def saved_path(self) -> str | None:
        return self.payload.get("saved_path")

    @property
    def objective(self) -> Objective:
        return objective_of(self.payload)

    def winner_template(self):
        from workbench.core.templates import PromptTemplate

        return PromptTemplate.from_yaml(self.winner["yaml"])

    def leaderboard(self) -> list[dict]:
        return leaderboard(self.payload)

    def to_dict(self) -> dict:
        return {**self.payload, "run_id": self.run_id}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False, default=str))
        return path

    def summary(self) -> str:
        return format_search(self.payload, self.run_id)


def leaderboard(payload: dict) -> list[dict]:
    """Candidates tried, best first: those scored on more dev rows first (scores on different
    slices are not comparable), then by dev score (`dev_accuracy`; `metric` names it)."""
    from workbench.core.search_space import template_diff

    start_yaml = payload["start"]["yaml"]
    start_cfg = payload["start"]["config"]
    win = (payload.get("winner") or {}).get("key")
    metric = objective_of(payload).label
    rows = []
    for key, c in payload["candidates"].items():
        if not c.get("n"):
            continue
        extra = {k: v for k, v in c["config"].items() if start_cfg.get(k) != v}
        rows.append({"key": key, "stage": c["stage"], "change": c["change"], "changes": c.get("changes", {}),
                     "n": c["n"], "dev_accuracy": c["accuracy"], "metric": metric, "tokens": c.get("tokens", 0),
                     "is_start": key == payload["start"]["key"], "is_winner": key == win,
                     "diff": template_diff(start_yaml, c["yaml"], extra)})
    rows.sort(key=lambda r: (-r["n"], -r["dev_accuracy"], not r["is_start"]))
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return rows


def dev_to_test_text(t: dict, objective: Objective | None = None) -> str:
    """The winner's change from dev to test in words that agree with the sign ("gained" for a gain;
    the stored `dev_to_test_drop` is dev minus test, so a gain is a negative drop)."""
    obj = objective or Objective.from_dict(t.get("objective"))
    dev = t.get("winner_dev_accuracy")
    if dev is None:
        return f"no dev {obj.label} of the winner to compare with"
    return obj.change_text(dev, t["winner_accuracy"], "the winner", "from dev to test")


def racing_text(payload: dict) -> str:
    """How the candidates were raced, in one line."""
    s = payload.get("settings") or {}
    if s.get("racing") == "sequential":
        return (f"racing: sequential (a candidate leaves once settled worse, anytime-valid at alpha "
                f"{s.get('alpha', 0.05):g})")
    return f"racing: successive halving (keep {s.get('keep', 0.5):g} per rung)"


def format_search(payload: dict, run_id: str | None = None) -> str:
    """Plain-text report (the CLI prints this)."""
    obj = objective_of(payload)
    show, what = obj.show, obj.label
    w = payload.get("winner") or {}
    st = payload["start"]
    lines = [f"search {run_id or ''} · {payload.get('status')} · {payload.get('tokens', 0):,} tokens · "
             f"{payload.get('seconds', 0):.0f} s · {len(payload.get('candidates', {}))} candidates · "
             f"dev rows {payload.get('dev_rows')} · objective: {what}"
             + ("" if obj.is_accuracy else " (mean per dev row)"),
             racing_text(payload),
             f"start  {st['name']}: dev {what} {show(st.get('dev_accuracy'))}",
             f"winner {w.get('name', '-')}: dev {what} {show(w.get('dev_accuracy'))}"
             f" ({w.get('describe') or 'no change'})"]
    t = payload.get("test")
    if t:
        lines += [f"test (n={t['n']}, scored once): start {show(t['start_accuracy'])} → winner "
                  f"{show(t['winner_accuracy'])} {what}; {dev_to_test_text(t, obj)}",
                  f"verdict: {t['verdict']['text']}",
                  f"this test split has now been used by {t['test_uses']} search(es)"
                  + (" — each extra use makes a single good result less convincing" if (t["test_uses"] or 0) > 1 else "")]
    if payload.get("saved_path"):
        lines.append(f"saved: {payload['saved_path']}")
    lines += ["", f"top candidates (dev {what} on n rows):"]
    for r in leaderboard(payload)[:10]:
        mark = "*" if r["is_winner"] else ("s" if r["is_start"] else " ")
        lines.append(f" {mark} {show(r['dev_accuracy']):>6} n={r['n']:<4} {r['tokens']:>8,} tok  "
                     f"[{r['stage']}] {r['change'][:90]}")
    return "\n".join(lines)


def _pct(x) -> str:
    return "-" if x is None else f"{x * 100:.1f}%"
