"""Stored comparisons: the list for a picker, and the winner a user marks for Export.

    mark_winner(run_id, "A")     # kept in the run's metrics (listable) and its payload
    get_winner()                 # the YAML of the most recently marked winner (Export picks it up)
"""
from __future__ import annotations

from workbench.errors import ConfigError
from workbench.jobs.compare_common import resolve_registry


def list_comparisons(registry=None, limit: int = 50) -> list[dict]:
    """Stored comparisons, newest first, as small dicts for a picker."""
    reg = resolve_registry(registry, True)
    return [{"id": r.id, "name": r.name, "created_at": r.created_at, "data": r.data_name,
             "type": r.metrics.get("type", "comparison"), "best": r.metrics.get("best"),
             "winner": r.metrics.get("winner")} for r in reg.list(kind="compare", limit=limit)]


def payload_templates(payload: dict) -> dict[str, str]:
    """name -> template YAML for every template a stored comparison holds."""
    if payload.get("type") == "format_spread":
        return {v["name"]: v["yaml"] for v in payload.get("variants", [])}
    if payload.get("type") == "seed_variance":
        return {payload["template"]["name"]: payload["template"]["yaml"]}
    return {t["name"]: t["yaml"] for t in payload.get("templates", [])}


def mark_winner(run_id: str, template_name: str, registry=None) -> str:
    """Mark one template of a stored comparison as the winner; returns its YAML.

    Kept in the run's metrics (listable without reading payloads) and in its payload."""
    from datetime import datetime, timezone

    reg = resolve_registry(registry, True)
    rec = reg.get(run_id)
    if rec.kind != "compare":
        raise ConfigError(f"run {run_id} is a {rec.kind} run, not a comparison", "pick a comparison run")
    payload = reg.payload(run_id) or {}
    tmpl = payload_templates(payload)
    if template_name not in tmpl:
        raise ConfigError(f"comparison {run_id} has no template named {template_name!r}",
                          f"choose one of: {', '.join(tmpl) or 'none'}")
    now = datetime.now(timezone.utc).isoformat(timespec="microseconds")
    payload["winner"], payload["winner_marked_at"] = template_name, now
    reg.update(run_id, metrics={**rec.metrics, "winner": template_name, "winner_marked_at": now}, payload=payload)
    return tmpl[template_name]


def get_winner_info(run_id: str | None = None, registry=None) -> dict | None:
    """{run_id, name, yaml, marked_at} of the winner of `run_id`, or of the most recently
    marked winner across all comparisons; None if none was marked."""
    reg = resolve_registry(registry, True)
    if run_id is not None:
        candidates = [reg.get(run_id)]
    else:
        candidates = [r for r in reg.list(kind="compare", limit=10_000) if r.metrics.get("winner")]
        candidates.sort(key=lambda r: r.metrics.get("winner_marked_at", ""), reverse=True)
    for rec in candidates:
        name = rec.metrics.get("winner")
        if not name:
            continue
        yaml_text = payload_templates(reg.payload(rec.id) or {}).get(name)
        if yaml_text:
            return {"run_id": rec.id, "name": name, "yaml": yaml_text, "marked_at": rec.metrics.get("winner_marked_at")}
    return None


def get_winner(run_id: str | None = None, registry=None) -> str | None:
    """The template YAML of the latest marked winner (or of `run_id`'s winner), else None."""
    info = get_winner_info(run_id, registry)
    return None if info is None else info["yaml"]
