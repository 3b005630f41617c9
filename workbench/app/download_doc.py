"""What a results download holds beside the matrix (issue 28, item 8): what the screen shows.

Compare's and Run's *Download JSON* used to hold only the per-row matrix. The document now also
carries, per run shown: the metrics with per-class scores, the accuracy's interval and the
majority baseline, a one-class flag (core/collapse.py), the provenance, and the run's spec
(kind, templates, data, model, scoring settings) as recorded by the run; a comparison adds its
leaderboard (intervals), verdicts (p-values, Δ intervals), settings and input evidence.
"""
from __future__ import annotations


def _spec_of(kind: str, prov: dict, templates: list[dict]) -> dict:
    """The RunSpec's fields as the run recorded them (the registry keeps the provenance, from
    which the same run can be started again: template text and hash, data, model, settings)."""
    return {"kind": kind, "templates": templates, "data": prov.get("data") or {},
            "models": [prov.get("model") or {}], "eval": prov.get("config") or {}}


def eval_doc(payload: dict, run_id: str) -> dict:
    from workbench.core.collapse import one_class
    from workbench.core.stats import wilson_interval

    m = dict(payload.get("metrics") or {})
    prov = payload.get("provenance") or {}
    out = {"run_id": run_id, "task": payload.get("task"), "metrics": m, "provenance": prov,
           "timings": payload.get("timings") or {},
           "spec": _spec_of("eval", prov, [prov.get("template") or {}])}
    if isinstance(m.get("accuracy"), (int, float)) and m.get("n"):
        lo, hi = wilson_interval(round(m["accuracy"] * m["n"]), int(m["n"]))
        out["accuracy_interval"] = {"low": lo, "high": hi, "confidence": 0.95, "method": "wilson"}
        out["one_class"] = one_class(m)
    return out


def compare_doc(run_id: str) -> dict:
    from workbench.core.collapse import one_class
    from workbench.jobs.compare import open_run

    res = open_run(run_id)
    d = res.to_dict()
    d.pop("examples", None)          # the rows are the matrix's
    prov = d.get("provenance") or {}
    tmpl = [{k: t.get(k) for k in ("name", "hash", "yaml")} for t in d.get("templates") or []]
    d["one_class"] = {n: one_class((d.get("metrics") or {}).get(n)) for n in d.get("names") or []}
    d["spec"] = _spec_of("compare", prov, tmpl)
    return d


def results_doc(spec: dict | None) -> dict:
    """{"comparison": ...} or {"runs": [...]} for a matrix spec."""
    from workbench.app.common import run_payload

    if not spec:
        return {}
    if spec.get("compare"):
        return {"comparison": compare_doc(spec["compare"])}
    out = []
    for rid in spec.get("runs") or []:
        try:
            out.append(eval_doc(run_payload(rid), rid))
        except Exception as e:  # noqa: BLE001 - a run without a stored payload: say so, keep the rest
            out.append({"run_id": rid, "error": str(e)})
    return {"runs": out}
