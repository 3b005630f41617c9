"""The end of a prompt search: start and winner scored once each on the test split with Compare's
paired verdict, and the winner saved as a user template. Functions of the running search `job`
(jobs/search.py's _Search)."""
from __future__ import annotations

from dataclasses import replace

from workbench.errors import DataError
from workbench.storage.search_runs import test_uses


def final_test(job) -> None:
    """Start and winner, once each, on the same test rows; the paired verdict of compare."""
    from workbench.jobs.compare import compare_results, evaluate_or_reuse

    s = job.state
    rows = job._test_rows.iloc[: job.cfg.test_limit] if job.cfg.test_limit else job._test_rows
    start = job._candidate(s["start"]["key"])
    win = job._candidate(s["incumbent_key"])
    results, ids = [], []
    for label, c in ((f"start: {start.template.name}", start), (f"winner: {s['winner']['name']}", win)):
        if c.key == start.key and results:       # no change found: the start is the winner
            results.append((label, results[0][1]))
            ids.append(dict(ids[0], reused=True))
            continue
        cfg = replace(c.config, split="test", limit=job.cfg.test_limit)
        t = c.template if c.key == start.key else replace(c.template, name=s["winner"]["name"])   # the Runs list shows who it is
        res, rid, reused = evaluate_or_reuse(t, job.ds, job.session, cfg, rows=rows, pool=job.train,
                                             registry=job.reg, cancel=job.cancel)
        results.append((label, res))
        ids.append({"eval_run_id": rid, "reused": reused})
    if job.objective.task == "generation":
        final_test_generation(job, results, ids)
        return
    cmp = compare_results(results, baseline=results[0][0], n_boot=job.cfg.n_boot)
    from workbench.core.collapse import one_class
    v = cmp.verdicts[0]
    acc = {nm: next(r["accuracy"] for r in cmp.leaderboard if r["name"] == nm) for nm, _ in results}
    w_dev = s["winner"]["dev_accuracy"]
    w_test = acc[results[1][0]]
    s["test"] = {"n": cmp.n, "start_accuracy": acc[results[0][0]], "winner_accuracy": w_test,
                 "start_dev_accuracy": s["start"]["dev_accuracy"], "winner_dev_accuracy": w_dev,
                 "dev_to_test_drop": (w_dev - w_test) if w_dev is not None else 0.0,
                 "verdict": {k: v[k] for k in ("text", "significant", "p_mcnemar", "delta_acc", "delta_acc_ci",
                                               "only_a", "only_b", "n")},
                 "evals": ids, "row_indices_hash": cmp.inputs.get("row_indices_hash"),
                 "test_uses": None,
                 # a winner that answers one class for most rows (issue 28, item 4)
                 "majority_baseline": (cmp.metrics.get(results[0][0]) or {}).get("majority_baseline"),
                 "one_class": {role: one_class(cmp.metrics.get(nm))
                               for role, (nm, _) in zip(("start", "winner"), results)}}
    job.checkpoint(force=True)
    s["test"]["test_uses"] = test_uses(job.ds, job.eval_cfg, job.reg) if job.reg is not None else 1


def final_test_generation(job, results, ids) -> None:
    """The objective's metric on the test rows, start vs winner, with Compare's paired verdict
    for that metric (gen_verdicts.metric_verdict: McNemar if binary, else a paired bootstrap)."""
    from workbench.core.gen_verdicts import metric_verdict
    from workbench.core.records import hash_indices

    s = job.state
    obj = job.objective
    (la, ra), (lb, rb) = [(lab, r if isinstance(r, dict) else r.to_dict()) for lab, r in results]
    golds = [r["gold"] for r in ra["records"]]
    if [r["index"] for r in ra["records"]] != [r["index"] for r in rb["records"]]:
        raise DataError("start and winner were scored on other test rows", "this is a bug: please report it")
    pa, pb = [r["pred"] for r in ra["records"]], [r["pred"] for r in rb["records"]]
    v = metric_verdict(obj.metric, la, lb, pa, pb, golds, n_boot=min(job.cfg.n_boot, 1000))
    u_start, u_win = float(obj.utilities(pa, golds).mean()), float(obj.utilities(pb, golds).mean())
    w_dev = s["winner"]["dev_accuracy"]
    s["test"] = {"n": len(golds), "objective": obj.to_dict(), "start_accuracy": u_start, "winner_accuracy": u_win,
                 "start_dev_accuracy": s["start"]["dev_accuracy"], "winner_dev_accuracy": w_dev,
                 "dev_to_test_drop": (w_dev - u_win) if w_dev is not None else 0.0,
                 "verdict": {k: v.get(k) for k in ("text", "significant", "p", "method", "metric", "delta", "ci",
                                                   "value_a", "value_b", "only_a", "only_b", "n")},
                 "evals": ids, "row_indices_hash": hash_indices([r["index"] for r in ra["records"]]),
                 "test_uses": None, "majority_baseline": None, "one_class": {}}
    job.checkpoint(force=True)
    s["test"]["test_uses"] = test_uses(job.ds, job.eval_cfg, job.reg) if job.reg is not None else 1


def save_winner(job) -> None:
    from workbench import paths
    from workbench.core.templates import PromptTemplate

    s = job.state
    w = s["winner"]
    t = PromptTemplate.from_yaml(w["yaml"])
    meta = dict(t.metadata or {})
    meta.pop("format_variant_of", None)
    meta.pop("format_variant", None)
    meta["search"] = {"run_id": job.run_id, "start": job.start.name, "start_hash": job.start.content_hash(),
                      "data": job.ds.name, "data_fingerprint": job.ds.fingerprint(),
                      "model": job.session.identity, "changes": w["changes"],
                      "eval": w["config"], "dev_accuracy": w["dev_accuracy"],
                      "test": {k: (s.get("test") or {}).get(k) for k in ("n", "start_accuracy", "winner_accuracy",
                                                                          "test_uses")} if s.get("test") else None,
                      "settings": s["settings"]}
    t = replace(t, name=w["name"], metadata=meta,
                description=f"Found by prompt search {job.run_id or ''} from {job.start.name}: {w['describe']}")
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in w["name"])
    path = t.save(paths.user_templates_dir() / f"{safe}.yaml")
    s["saved_path"] = str(path)
    s["winner"]["yaml"] = t.to_yaml()
