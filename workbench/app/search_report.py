"""What the Search tab says beside its winner, so the result can be trusted (issue 28, item 5):
an ETA that stays within the time budget, the axes the budget never reached, doubtful label
words (core/label_checks.py), and the user's best saved template scored on the same test rows.
"""
from __future__ import annotations


def capped_eta(st: dict) -> dict:
    """A job status whose ETA is at most the time budget left: the job's steady ETA follows
    the token count, which can promise far more time than the budget allows (150 s budget,
    "ETA 108 min")."""
    budget = ((st or {}).get("meta") or {}).get("budget_seconds")
    if not budget or st.get("state") != "running":
        return st
    left = max(0.0, float(budget) - float(st.get("elapsed_s") or 0.0))
    eta = st.get("eta_s")
    return {**st, "eta_s": left if eta is None else min(float(eta), left)}


def unreached(payload: dict) -> list[str]:
    """The chosen axes no stage of the search got to (budget used up or the search stopped)."""
    from workbench.core.search_objective import Objective

    applies = Objective.from_dict(payload.get("objective")).axes   # generation has no verbalizer/calibration stage
    chosen = [a for a in (payload.get("settings") or {}).get("axes") or [] if a in applies]
    done = {s.get("stage") for s in payload.get("stages") or []}
    return [a for a in chosen if a not in done]


def word_warnings(winner_yaml: str | None) -> list[dict]:
    from workbench.core.label_checks import word_problems
    from workbench.core.templates import load_template

    if not winner_yaml:
        return []
    try:
        t = load_template(winner_yaml)
    except Exception:  # noqa: BLE001
        return []
    return word_problems(t.answer_choices)


def best_saved_on_rows(payload: dict, run_id: str | None) -> dict | None:
    """The best stored eval of one of the user's saved templates on the very test rows the
    winner was scored on (same row-indices hash, same model), other than the start and the
    winner: {"name", "accuracy", "run_id"}; None when there is none."""
    from workbench.app import template_list
    from workbench.storage.runs import RunRegistry

    t = payload.get("test") or {}
    rows_hash = t.get("row_indices_hash")
    if not rows_hash or not run_id or (payload.get("objective") or {}).get("metric", "accuracy") != "accuracy":
        return None
    reg = RunRegistry()
    try:
        me = reg.get(run_id)
    except Exception:  # noqa: BLE001
        return None
    skip = {(payload.get("start") or {}).get("name"), (payload.get("winner") or {}).get("name")}
    saved = {d["name"] for d in template_list.entries() if d.get("source") == "user"} - skip
    best = None
    for r in reg.list(kind="eval", limit=500):
        if r.name not in saved or r.data_fingerprint != me.data_fingerprint or (me.model and r.model != me.model):
            continue
        p = reg.payload(r.id) or {}
        if ((p.get("provenance") or {}).get("data") or {}).get("row_indices_hash") != rows_hash:
            continue
        acc = (p.get("metrics") or {}).get("accuracy")
        if acc is not None and (best is None or acc > best["accuracy"]):
            best = {"name": r.name, "accuracy": float(acc), "run_id": r.id}
    return best


def report_lines(payload: dict, run_id: str | None) -> list[str]:
    """Markdown lines for the Search summary."""
    lines = []
    if payload.get("status") != "running":
        gone = unreached(payload)
        if gone:
            lines.append(f"- Never reached: **{', '.join(gone)}** "
                         f"({'the budget ran out' if payload.get('budget_exhausted') else 'the search stopped'} "
                         "first); raise the budget or resume to try them.")
    words = word_warnings((payload.get("winner") or {}).get("yaml"))
    if words:
        shown = ", ".join(f"{w['label']}→{w['word']} ({w['why']})" for w in words[:8])
        lines.append(f"- ⚠ Doubtful label words in the winner: {shown}. They may fit these dev rows by chance; "
                     "tick *Only plain label words* to race verbalizers without them.")
    t = payload.get("test") or {}
    best = best_saved_on_rows(payload, run_id) if t else None
    if best is not None:
        d = (t.get("winner_accuracy") or 0.0) - best["accuracy"]
        lines.append(f"- Your best saved template on these {t.get('n')} test rows: **{best['name']}** "
                     f"{best['accuracy']:.1%} (run `{best['run_id']}`), the winner is {abs(d) * 100:.1f} pts "
                     f"{'above' if d > 0 else 'below' if d < 0 else 'level with'} it.")
    elif t:
        lines.append("- None of your saved templates was scored on these test rows; compare the winner with "
                     "them in Compare (same rows, paired verdict).")
    return lines
