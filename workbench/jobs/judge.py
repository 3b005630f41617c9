"""Run a judge on a model: per-row scores through the session's own scoring path.

    j = load_judge("templates_library/judges/helpfulness_yesno.yaml")
    rows = score_items(j, session, [{"input": q, "output": a} for q, a in pairs])
    rows[0]["score"], rows[0]["dist"], rows[0]["prompt"]
    summary = judge_result(eval_result, j, session, dataset=ds)   # adds record["judge"] to every row
    prefs = judge_pair(result_a, result_b, j, session, dataset=ds)  # pairwise, both orders

The judge's requests are ordinary (context, continuation) log-likelihood requests: the rubric is a
context, each verdict word a continuation. So the prefix tree reads each rubric once for all its
words (one forward pass per row), a rubric prefix shared by every row (instructions, examples) is
computed once per call, and on an inference server the response cache applies.

Judged results are stored in the run registry (kind "judge") under a key of the judge's content
hash, the judge model's identity and the judged eval's own reuse key, so the same judge on the same
outputs is read back instead of rescored.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Callable, Sequence

from workbench.core.judge import CONTENT_FREE, JudgeTemplate, pair_preference
from workbench.core.options import ALPHA
from workbench.errors import ConfigError

JUDGE_VERSION = 1   # bump when a change here can change a judge score


def _context(judge: JudgeTemplate, session, item: dict, **override) -> str:
    vs = {k: v for k, v in item.items() if k != "row"}
    vs.update(override)
    ctx = judge.render(row=item.get("row"), **vs)
    return session.apply_chat(ctx) if judge.chat else ctx


def score_items(judge: JudgeTemplate, session, items: Sequence[dict], *, progress: Callable | None = None,
                cancel: Callable[[], bool] | None = None, prefix_cache: bool = True) -> list[dict]:
    """Pointwise: one dict per item {"score", "dist", "verdict", "logprobs", "prompt"}. An item holds
    "output" and optionally "input", "reference" and "row" (the data row, for column variables)."""
    if judge.mode != "pointwise":
        raise ConfigError(f"judge {judge.name!r} is pairwise: it compares two outputs",
                          "use judge_pair (workbench compare --judge) or a pointwise judge")
    ctxs = [_context(judge, session, it) for it in items]
    reqs = [r for c in ctxs for r in judge.requests(c)]
    cf_index: dict[str, int] = {}
    extra: list[tuple[str, str]] = []
    if judge.calibration == "contextual":
        for it in items:
            cf = _context(judge, session, it, output=CONTENT_FREE)
            if cf not in cf_index:
                cf_index[cf] = len(extra)
                extra += judge.requests(cf)
    lls = session.loglikelihood(reqs + extra, progress=progress, cancel=cancel, prefix_cache=prefix_cache)
    k = len(judge.words())
    out = []
    for i, (it, ctx) in enumerate(zip(items, ctxs)):
        lp = [ll.logprob for ll in lls[i * k:(i + 1) * k]]
        cf_lp = None
        if cf_index:
            j = len(reqs) + cf_index[_context(judge, session, it, output=CONTENT_FREE)]
            cf_lp = [ll.logprob for ll in lls[j:j + k]]
        s = judge.pointwise_score(lp, cf_lp)
        s["logprobs"] = {w: round(x, 6) for w, x in zip(judge.words(), lp)}
        s["prompt"] = ctx
        out.append(s)
    return out


def compare_items(judge: JudgeTemplate, session, items: Sequence[dict], *, progress: Callable | None = None,
                  cancel: Callable[[], bool] | None = None, prefix_cache: bool = True) -> list[dict]:
    """Pairwise, both orders: items hold "x" and "y" (the two outputs) and optionally "input",
    "reference", "row". Returns per item pair_preference(...) (P(x better) per order, their mean
    `pref_x`, the row's pull to the first position) with both prompts."""
    if judge.mode != "pairwise":
        raise ConfigError(f"judge {judge.name!r} is pointwise: it scores one output",
                          "use a pairwise judge (mode: pairwise) to compare two outputs")
    ctxs = []
    for it in items:
        base = {k: v for k, v in it.items() if k not in ("x", "y")}
        ctxs.append((_context(judge, session, base, output_a=it["x"], output_b=it["y"]),
                     _context(judge, session, base, output_a=it["y"], output_b=it["x"])))
    reqs = [r for xy, yx in ctxs for r in judge.requests(xy) + judge.requests(yx)]
    lls = session.loglikelihood(reqs, progress=progress, cancel=cancel, prefix_cache=prefix_cache)
    out = []
    for i, (xy, yx) in enumerate(ctxs):
        a = [ll.logprob for ll in lls[4 * i:4 * i + 2]]
        b = [ll.logprob for ll in lls[4 * i + 2:4 * i + 4]]
        r = pair_preference(judge.p_first(a), judge.p_first(b))
        r.update(prompt_xy=xy, prompt_yx=yx)
        out.append(r)
    return out


# ------------------------------------------------------------------------ eval results
def _items(result: dict, dataset=None, template=None) -> list[dict]:
    """Judge items from an eval result's records: the raw generation as output, the template's
    rendered input (or the record's prompt) as input, the gold as reference, the data row."""
    items = []
    df = getattr(dataset, "df", None)
    for r in result["records"]:
        row = None
        if df is not None:
            try:
                row = df.loc[r["index"]]
            except KeyError:
                row = None
        inp = template.render_input(row) if (template is not None and row is not None) else r.get("prompt", "")
        ref = r.get("gold")
        items.append({"input": inp, "output": r.get("output", r.get("pred", "")),
                      "reference": "" if ref is None else (ref if isinstance(ref, str) else str(ref)),
                      "row": None if row is None else dict(row)})
    return items


def _live(result) -> dict:
    """The result's parts as a dict of the SAME objects (an EvalResult's to_dict() would copy them,
    and the judge's scores must land in the result itself)."""
    if isinstance(result, dict):
        return result
    return {"records": result.records, "metrics": result.metrics, "provenance": result.provenance,
            "task": result.task, "timings": result.timings}


def strip_judge(result) -> None:
    """Remove a judge's scores from a result (in place)."""
    d = _live(result)
    for r in d["records"]:
        r.pop("judge", None)
        r.pop("judge_prompt", None)
    d["metrics"].pop("judge_score", None)
    d["metrics"].pop("judge_checks", None)
    d["provenance"].pop("judge", None)


def judge_identity(judge: JudgeTemplate, session) -> dict:
    return {"name": judge.name, "hash": judge.content_hash(), "mode": judge.mode, "version": JUDGE_VERSION,
            "model": session.model_identity()}


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _registry(registry, store):
    if registry is not None or not store:
        return registry
    from workbench.storage.runs import RunRegistry

    return RunRegistry()


def judge_result(result, judge: JudgeTemplate, session, *, dataset=None, template=None, labels: str | None = None,
                 registry=None, store: bool = True, progress: Callable | None = None,
                 cancel: Callable[[], bool] | None = None) -> dict:
    """Score every record of an eval result with a pointwise judge, in place: record["judge"] =
    {"score", "dist", "verdict"} and record["judge_prompt"]; result.metrics["judge_score"] = the
    mean; the judge's identity in provenance; checks (length bias, a flat judge, agreement with
    the `labels` column when the data has it) in metrics["judge_checks"]. Returns the summary."""
    from workbench.core import judge_checks
    from workbench.storage.runs import result_key

    d = _live(result)
    ident = judge_identity(judge, session)
    reg = _registry(registry, store)
    key = _key("pointwise", ident, result_key(d))
    rows = None
    if reg is not None:
        rec = reg.find_by_key(key, kind="judge")
        payload = reg.payload(rec.id) if rec is not None else None
        if payload and len(payload.get("rows", [])) == len(d["records"]):
            rows = payload["rows"]
    reused = rows is not None
    items = _items(d, dataset, template)
    if rows is None:
        from workbench.core.progress import staged

        progress = staged(progress)
        n = len(items)
        # the backend counts requests; the stage counts rows ("judging 12/64 rows")
        cb = None if progress is None else (lambda done, total, *_: progress(min(n, done * n // max(1, total)), n,
                                                                              "judging"))
        if progress is not None:
            progress(0, n, "judging")
        rows = score_items(judge, session, items, progress=cb, cancel=cancel)
        if progress is not None:
            progress(n, n, "judging")
        if reg is not None:
            reg.add("judge", name=f"{judge.name} on {d['provenance']['template']['name']}",
                    template_hash=judge.content_hash(), template_yaml=judge.to_yaml(),
                    model=getattr(session, "identity", None), data_fingerprint=d["provenance"]["data"]["fingerprint"],
                    data_name=d["provenance"]["data"]["name"], settings={"judge": ident},
                    metrics={"judge_score": sum(r["score"] for r in rows) / max(1, len(rows))},
                    payload={"rows": rows}, key=key)
    scores = [r["score"] for r in rows]
    verdicts = [r["verdict"] for r in rows]
    summary = {"judge": ident, "n": len(rows), "mean": sum(scores) / max(1, len(scores)), "reused": reused,
               "length_bias": judge_checks.length_bias(scores, [it["output"] for it in items]),
               "flat": judge_checks.flat_judge(scores, judge.score_range, verdicts)}
    if labels and dataset is not None and labels in dataset.df.columns:
        human = [float(dataset.df.loc[r["index"], labels]) for r in d["records"]]
        summary["agreement"] = judge_checks.agreement(scores, human, judge_verdicts=verdicts)
        summary["agreement"]["labels"] = labels
    for rec, s in zip(d["records"], rows):
        rec["judge"] = {"score": round(s["score"], 6), "dist": s["dist"], "verdict": s["verdict"],
                        "logprobs": s["logprobs"]}
        rec["judge_prompt"] = s["prompt"]
    d["metrics"]["judge_score"] = summary["mean"]
    d["metrics"]["judge_checks"] = {k: v for k, v in summary.items() if k not in ("judge", "mean", "reused")}
    d["provenance"]["judge"] = {**ident, "yaml": judge.to_yaml(), "reused": reused}
    if summary["flat"]:
        d["provenance"].setdefault("warnings", []).append(summary["flat"])
    return summary


def judge_pair(result_a, result_b, judge: JudgeTemplate, session, *, dataset=None, template=None,
               progress: Callable | None = None, cancel: Callable[[], bool] | None = None) -> dict:
    """A pairwise judge on two eval results of the same rows: per row P(B's output better),
    debiased over both orders, and the position bias it measured (core/judge_checks)."""
    from workbench.core import judge_checks

    da, db = _live(result_a), _live(result_b)
    if [r["index"] for r in da["records"]] != [r["index"] for r in db["records"]]:
        raise ConfigError("a pairwise judge needs both results on the same rows in the same order",
                          "compare the templates in one comparison (same data, split, limit)")
    ia, ib = _items(da, dataset, template), _items(db, dataset, template)
    items = [{**a, "x": b["output"], "y": a["output"]} for a, b in zip(ia, ib)]
    for it in items:
        it.pop("output", None)
    rows = compare_items(judge, session, items, progress=progress, cancel=cancel)
    pulls = [r["first_pull"] for r in rows]
    return {"judge": judge_identity(judge, session), "pref_b": [r["pref_x"] for r in rows], "rows": rows,
            "position_bias": judge_checks.position_bias(pulls),
            "consistent": sum(r["consistent"] for r in rows) / max(1, len(rows)),
            # does the judge prefer B more where B's output is the longer one?
            "length_bias": judge_checks.length_bias(
                [r["pref_x"] for r in rows], lengths=[len(str(x["x"])) - len(str(x["y"])) for x in items])}


# ------------------------------------------------------------------------ comparisons
class Judged:
    """A judge's part of a comparison: pointwise summaries now, pairwise verdicts once the
    comparison knows its reference (`finish`)."""

    def __init__(self, judge, opener, results, dataset, templates, summaries, cancel):
        self.judge, self.opener, self.results = judge, opener, dict(results)
        self.dataset, self.templates, self.summaries, self.cancel = dataset, templates, summaries, cancel

    def finish(self, cmp) -> None:
        from workbench.core.gen_verdicts import pairwise_verdict, score_verdict  # noqa: F401

        g = cmp.generation if cmp.generation else {"metric_verdicts": [], "judge_verdicts": []}
        g["judge"] = {"name": self.judge.name, "hash": self.judge.content_hash(), "mode": self.judge.mode,
                      "yaml": self.judge.to_yaml(), "summaries": self.summaries}
        if self.judge.mode == "pairwise":
            pair_info = {}
            with self.opener() as s:
                for v in cmp.verdicts:
                    a, b = v["a"], v["b"]
                    res = judge_pair(self.results[a], self.results[b], self.judge, s, dataset=self.dataset,
                                     template=self.templates.get(a), cancel=self.cancel)
                    pv = pairwise_verdict(self.judge.name, a, b, res["pref_b"], alpha=cmp.settings.get("alpha", ALPHA))
                    pb = res["position_bias"]
                    pv["text"] += (f"; position bias {pb['value']:+.2f} (95% CI [{pb['ci_low']:+.2f}, {pb['ci_high']:+.2f}]) "
                                   f"toward the first shown, cancelled by asking in both orders; "
                                   f"{res['consistent'] * 100:.0f}% of rows get the same verdict in both orders")
                    pv["position_bias"], pv["consistent"] = pb, res["consistent"]
                    pv["length_bias"] = res["length_bias"]
                    g.setdefault("judge_verdicts", []).append(pv)
                    pair_info[f"{a} vs {b}"] = [{k: r[k] for k in ("pref_x", "p_x_first", "p_x_second", "first_pull",
                                                                     "consistent", "prompt_xy", "prompt_yx")}
                                                for r in res["rows"]]
            g["judge"]["pairs"] = pair_info
        cmp.generation = g


def judge_results(judge, opener, session, results, dataset, templates, *, registry=None, labels=None,
                  pairs_with=None, cancel=None) -> Judged:
    """Judge every (name, EvalResult) of a comparison. Pointwise: each result in place (its records
    get their scores, so compare_results makes the judge's paired verdict). Pairwise: left to
    Judged.finish, which knows the reference."""
    import contextlib

    if any(getattr(r, "task", None) != "generation" for _, r in results):
        raise ConfigError("a judge scores generated outputs; these templates classify",
                          "use --judge with generation templates (task: generation)")
    opener = opener or (lambda: contextlib.nullcontext(session))
    tmap = {nm: t for (nm, _), t in zip(results, templates)}
    summaries = {}
    if judge.mode == "pointwise":
        with opener() as s:
            for nm, res in results:
                sm = judge_result(res, judge, s, dataset=dataset, template=tmap[nm], labels=labels,
                                  registry=registry, store=registry is not None, cancel=cancel)
                summaries[nm] = {k: v for k, v in sm.items() if k != "judge"}
    return Judged(judge, opener, results, dataset, tmap, summaries, cancel)


def format_judge(result) -> str:
    """The judge's lines of `workbench eval` (mean score and its checks)."""
    m, prov = result.metrics, result.provenance.get("judge", {})
    ch = m.get("judge_checks", {})
    lines = [f"judge {prov.get('name')} ({prov.get('hash', '')[:12]}): mean score {m.get('judge_score', float('nan')):.3f}"
             + (" (reused)" if prov.get("reused") else "")]
    lb = ch.get("length_bias")
    if lb:
        lines.append(f"  length bias: Spearman(score, output length) {lb['value']:+.2f} "
                     f"[{lb['ci_low']:+.2f}, {lb['ci_high']:+.2f}]")
    ag = ch.get("agreement")
    if ag:
        for k in ("spearman", "kappa", "pairwise_accuracy"):
            if k in ag:
                v = ag[k]
                lines.append(f"  agreement with '{ag.get('labels')}': {k} {v['value']:.3f} "
                             f"[{v['ci_low']:.3f}, {v['ci_high']:.3f}]" + (f" ({v['kind']})" if v.get("kind") else ""))
    if ch.get("flat"):
        lines.append(f"  WARNING: {ch['flat']}")
    return "\n".join(lines)
