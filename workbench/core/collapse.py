"""Has a prompt collapsed onto one class? (issue 28, item 4)

A prompt that answers "billing" for every row scores exactly the share of billing rows: the
accuracy then looks like a result while it only measures the class balance. This module reads
that off the confusion matrix of `core.metrics.classification_metrics` (rows gold, columns
predicted), so every tab words it the same way. Pure: no I/O.
"""
from __future__ import annotations

# One class for at least this share of rows is flagged, when that is clearly more than the
# class's own share of the gold labels (a 90 % class predicted for 95 % of rows is no collapse).
MIN_SHARE = 0.8
MIN_EXCESS = 0.15


def one_class(metrics: dict | None) -> dict | None:
    """{"label", "share", "gold_share", "majority_baseline", "accuracy", "n"} when one class is
    predicted for most rows, else None."""
    conf = (metrics or {}).get("confusion") or {}
    labels, matrix = conf.get("labels") or [], conf.get("matrix") or []
    if not labels or not matrix:
        return None
    n = sum(sum(row) for row in matrix)
    if n < 2:
        return None
    predicted = [sum(row[j] for row in matrix) for j in range(len(labels))]   # [L] column sums
    j = max(range(len(labels)), key=lambda k: predicted[k])
    share, gold_share = predicted[j] / n, sum(matrix[j]) / n
    if share < MIN_SHARE or share - gold_share < MIN_EXCESS:
        return None
    return {"label": str(labels[j]), "share": share, "gold_share": gold_share, "n": n,
            "majority_baseline": float(metrics.get("majority_baseline", 0.0)),
            "accuracy": float(metrics.get("accuracy", 0.0))}


def one_class_text(metrics: dict | None, who: str = "") -> str:
    """One line for the page ("" when the prompt did not collapse)."""
    c = one_class(metrics)
    if c is None:
        return ""
    who = f"**{who}** " if who else ""
    return (f"⚠ {who}predicts one class for {c['share']:.0%} of rows (*{c['label']}*, {round(c['share'] * c['n'])} "
            f"of {c['n']}): accuracy {c['accuracy']:.1%} vs majority baseline {c['majority_baseline']:.1%}. "
            "The scores measure the class balance, not the prompt; try other label words, calibration, or demos.")
