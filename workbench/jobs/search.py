"""Prompt search: from a start template and labelled data to a better template, proven once on
held-out test rows.

    cfg = SearchConfig(budget_tokens=300_000, budget_seconds=600)
    res = search(start, load_dataset("bbc"), get_session("default"), cfg)
    res.summary()                      # winner, dev score, test verdict vs the start, dev-to-test drop
    res.leaderboard()[:5]              # candidates tried: change, dev accuracy, rows, tokens
    res.saved_path                     # the winner as a normal user template (metadata.search)
    search(start, ds, session, cfg, resume=res.run_id)   # continue a cancelled / out-of-budget search

What it maximises (core/search_objective.py): accuracy for a classification template; for a
generation template, one reference metric averaged per dev row (the template's first `metrics:`
entry, or `SearchConfig.metric`), on the axes that exist for generation (format, instruction,
demos), with the final test verdict of that metric (McNemar if binary, else a paired bootstrap).

How it works (docs/SEARCH.md has the details):
- One axis at a time (verbalizer, format, instruction, demos, calibration; each can be
  switched off), the incumbent's variants along that axis race each other by successive
  halving (`core.racing`) on prefixes of one fixed order of the dev rows; the race's winner on
  all dev rows becomes the incumbent. The incumbent is in every race and wins ties. With
  `racing="sequential"` (`core.racing_seq`) a candidate leaves the race only once an anytime-valid
  confidence sequence settles it worse than another on the paired dev rows, at `alpha`.
- Label words come from the model's next-token log-probabilities after φ(x) over training
  rows (`core.label_words`, LM-BFF / PETAL likelihood ratio); formats from the FormatSpread
  grammar (`core.formats`); instructions from a small library plus, optionally, ones the model
  proposes from training demonstrations (APE-style); demonstrations drawn at random or by
  sentence-embedding similarity; calibration none / contextual / PMI.
- Nothing is scored twice: per candidate, every dev row's prediction is kept (a survivor only
  scores its new rows), the state is checkpointed in the run registry ("search" runs), and a
  resumed search reuses it all.
- Honest selection: the search reads the train split (label words, demonstrations) and the dev
  split (racing) only. When it ends, the winner and the start are each scored ONCE on the test
  split (evals reused from / recorded in the registry), compared with the paired verdict of
  `compare.compare_results` (exact McNemar, paired bootstrap CI), and the report gives the
  dev-to-test drop and how many searches have used this test split.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, replace

from workbench.core.config import RACINGS, SearchConfig  # noqa: F401 (re-exported: the settings live in core)
from workbench.core.search_space import AXES, Candidate
from workbench.errors import Cancelled, ConfigError, DataError
from workbench.engine.caching import CachedSession
from workbench.jobs.search_budget import Budget as _Budget, stats as _stats
from workbench.jobs.search_report import (SearchResult, dev_to_test_text, format_search,  # noqa: F401 (re-exported)
                                          leaderboard)
from workbench.storage.search_runs import list_searches, split_key as _split_key, test_uses  # noqa: F401 (re-exported)

SCHEMA_VERSION = 1
Progress = Callable[..., None]   # progress(done, total, message)


# ---------------------------------------------------------------------------- the search
class _Search:
    """One search run: state, scorer, stages. `search()` below is the entry point."""

    def __init__(self, start, dataset, session, cfg: SearchConfig, eval_cfg, registry, progress, cancel, name,
                 objective=None):
        from workbench.core.data import split_dataset
        from workbench.core.search_objective import ACCURACY

        self.start, self.ds, self.session, self.cfg = start, dataset, session, cfg
        self.objective = objective or ACCURACY
        self.eval_cfg, self.reg, self.progress, self.cancel = eval_cfg, registry, progress, cancel
        self.name = name
        sp = split_dataset(dataset, seed=eval_cfg.split_seed, dev=eval_cfg.dev_fraction, test=eval_cfg.test_fraction)
        self.train = sp.train
        dev = sp.dev.sample(frac=1.0, random_state=cfg.seed)      # one fixed order; rungs are its prefixes
        self.dev = dev.iloc[: cfg.max_dev_rows] if cfg.max_dev_rows else dev
        # The test split stays out of reach until the final, single scoring: only its index is
        # kept, to check that no row the search scores belongs to it.
        self._test_index = set(sp.test.index)
        self._test_rows = sp.test
        if len(self.dev) == 0:
            raise DataError(f"the dev split of {dataset.name!r} is empty", "raise dev_fraction or use more rows")
        if len(self.train) == 0:
            raise DataError(f"the train split of {dataset.name!r} is empty", "use more rows")
        self.state: dict = {}
        self.run_id: str | None = None
        # every request answered once for the run: candidates that differ only in calibration send
        # the very same requests (the engine layer's one cache, in memory, keyed by model identity)
        self.scorer = CachedSession(session)
        self.on_start: Callable[[str], None] | None = None
        self._last_ckpt = 0.0

    # ---------------------------------------------------------------- state
    def new_state(self) -> dict:
        start = Candidate(template=self.start, config=self._cand_config(self.eval_cfg))
        return {"type": "search", "schema_version": SCHEMA_VERSION, "status": "running",
                "settings": asdict(self.cfg), "eval": asdict(self.eval_cfg), "objective": self.objective.to_dict(),
                "start": {"name": self.start.name, "yaml": self.start.to_yaml(), "key": start.key,
                          "config": _pred_cfg(start.config), "dev_accuracy": None},
                "incumbent": self._cand_dict(start), "incumbent_key": start.key,
                "stage_index": 0, "stages": [], "candidates": {start.key: self._cand_dict(start)},
                "cache": {}, "history": [], "curve": [], "tokens": 0, "seconds": 0.0,
                "dev_rows": len(self.dev), "train_rows": len(self.train), "label_words": None,
                "proposed_instructions": None, "winner": None, "test": None, "saved_path": None}

    def _cand_config(self, cfg):
        return replace(cfg, split="dev", limit=None)

    def _cand_dict(self, c: Candidate) -> dict:
        return {"yaml": c.template.to_yaml(), "config": _pred_cfg(c.config), "stage": c.stage, "change": c.change,
                "changes": dict(c.changes), "n": 0, "accuracy": None, "tokens": 0, "scores": {}}

    def _candidate(self, key: str) -> Candidate:
        from workbench.core.templates import PromptTemplate

        d = self.state["candidates"][key]
        cfg = replace(self._cand_config(self.eval_cfg), **d["config"])
        return Candidate(template=PromptTemplate.from_yaml(d["yaml"]), config=cfg, stage=d["stage"],
                         change=d["change"], changes=dict(d.get("changes", {})))

    def checkpoint(self, force: bool = False) -> None:
        self.state["tokens"], self.state["seconds"] = self.budget.tokens, round(self.budget.seconds, 2)
        if self.reg is None or self.run_id is None:
            return
        now = time.perf_counter()
        if not force and now - self._last_ckpt < 5.0:
            return
        self._last_ckpt = now
        self.reg.update(self.run_id, status=_registry_status(self.state["status"]), metrics=self._metrics(),
                        payload=self.state)

    def _metrics(self) -> dict:
        s = self.state
        w = s.get("winner") or {}
        best = max((c["accuracy"] for c in s["candidates"].values() if c["n"] == len(self.dev) and c["accuracy"] is not None),
                   default=None)
        t = s.get("test") or {}
        return {"status": s["status"], "tokens": s["tokens"], "seconds": s["seconds"],
                "candidates": len(s["candidates"]), "start_dev_accuracy": s["start"].get("dev_accuracy"),
                "best_dev_accuracy": best, "winner": w.get("name"), "winner_dev_accuracy": w.get("dev_accuracy"),
                "test_used": bool(t), "test_start_accuracy": t.get("start_accuracy"),
                "test_winner_accuracy": t.get("winner_accuracy"), "significant": (t.get("verdict") or {}).get("significant"),
                "split": _split_key(self.eval_cfg), "stage": self._stage_name(), "objective": self.objective.label,
                "racing": self.cfg.racing}

    def _stage_name(self) -> str | None:
        axes = self.stages
        i = self.state.get("stage_index", 0)
        return axes[i] if i < len(axes) else None

    @property
    def stages(self) -> list[str]:
        # generation has no label words or calibration: those axes are skipped (new_state notes it)
        return [a for a in AXES if a in self.cfg.axes and a in self.objective.axes]

    # ---------------------------------------------------------------- scoring
    def score(self, key: str, n: int) -> float:
        """Dev accuracy of candidate `key` on the first n dev rows; only unscored rows go to the model."""
        from workbench.jobs.inference import build_prompts, classify, jsonable

        if self.cancel is not None and self.cancel():
            raise Cancelled()
        cand = self.state["candidates"][key]
        cache = self.state["cache"].setdefault(key, {})
        rows = self.dev.iloc[:n]
        missing = rows[[str(jsonable(i)) not in cache for i in rows.index]]
        if len(missing):
            if self._test_index.intersection(missing.index) or self._test_index.intersection(self.train.index):
                raise DataError("prompt search was about to score test rows", "this is a bug: please report it")
            c = self._candidate(key)
            tok0 = _stats(self.session)["tokens"]
            prompts = build_prompts(c.template, missing, self.train, c.config, self.scorer)
            if self.objective.task == "generation":
                for r in self._generate(c, missing, prompts):
                    cache[str(r["index"])] = [r["pred"], r["utility"]]
            else:
                recs = classify(c.template, missing, prompts, self.scorer, c.config, pool=self.train, cancel=self.cancel)
                for r in recs:
                    cache[str(r["index"])] = [r["pred"], bool(r["correct"])]
            cand["tokens"] += _stats(self.session)["tokens"] - tok0
        acc = sum(float(cache[str(jsonable(i))][1]) for i in rows.index) / len(rows)
        if n >= cand["n"]:
            cand["n"], cand["accuracy"] = n, acc
        cand["scores"][str(n)] = acc
        s = self.state
        s["history"].append({"stage": cand["stage"], "key": key, "n": n, "accuracy": acc,
                             "tokens": self.budget.tokens, "seconds": round(self.budget.seconds, 2)})
        if n == len(self.dev):
            if key == s["start"]["key"]:
                s["start"]["dev_accuracy"] = acc
            best = max([acc] + [p["best"] for p in s["curve"][-1:]])
            s["curve"].append({"tokens": self.budget.tokens, "seconds": round(self.budget.seconds, 2), "best": best})
        self._report(f"{cand['stage']}: {cand['change'][:50]} · {self.objective.show(acc)} on {n} dev rows")
        self.checkpoint()
        return acc

    def row_scores(self, key: str, n: int):
        """Per-row scores in [0, 1] of candidate `key` on the first n dev rows (sequential racing)."""
        import numpy as np

        from workbench.jobs.inference import jsonable

        self.score(key, n)
        cache = self.state["cache"][key]
        return np.array([float(cache[str(jsonable(i))][1]) for i in self.dev.index[:n]])

    def _generate(self, c: Candidate, rows, prompts) -> list[dict]:
        """Generate for `rows` and score each output by the objective's metric (utility in [0, 1])."""
        from workbench.jobs.selfask import dispatch_generation

        before = _stats(self.session).get("tokens_generated", 0)
        recs = dispatch_generation(c.template, rows, prompts, self.session, c.config, cancel=self.cancel)
        # generation does not pass the scorer's token count: charge prompts + outputs to the budget
        st = _stats(self.session)
        made = st.get("tokens_generated", 0) - before
        if not made:   # a session that does not count what it generates
            made = sum(len(self.session.encode(str(r.get("output", r["pred"])))) for r in recs)
        st["tokens"] += sum(len(self.session.encode(p)) for p in prompts) + made
        for r, u in zip(recs, self.objective.utilities([r["pred"] for r in recs], [r["gold"] for r in recs])):
            r["utility"] = round(float(u), 6)
        return recs

    def _report(self, what: str) -> None:
        if self.progress is None:
            return
        best = self.state["curve"][-1]["best"] if self.state["curve"] else None
        head = f"best so far {self.objective.show(best)} dev {self.objective.label} · " if best is not None else ""
        total = self.cfg.budget_tokens or 0
        if total:
            self.progress(min(self.budget.tokens, total), total, head + what)
        else:
            secs = int(self.cfg.budget_seconds or 1)
            self.progress(min(int(self.budget.seconds), secs), secs, head + what)

    # ---------------------------------------------------------------- axes and the final test
    def stage_candidates(self, stage: str, best: Candidate) -> list[Candidate]:
        from workbench.jobs.search_axes import stage_candidates

        return stage_candidates(self, stage, best)

    def final_test(self) -> None:
        from workbench.jobs.search_final import final_test

        final_test(self)

    def save_winner(self) -> None:
        from workbench.jobs.search_final import save_winner

        save_winner(self)

    # ---------------------------------------------------------------- run
    def run(self, resume: dict | None, store: bool) -> SearchResult:
        from workbench.core.racing import race, rung_sizes
        from workbench.core.racing_seq import race_sequential

        self.session.load()      # model loading is not search time
        self.state = resume if resume is not None else self.new_state()
        self.budget = _Budget(self.cfg, int(self.state.get("tokens", 0)), float(self.state.get("seconds", 0.0)),
                              self.session)
        self.state["status"] = "running"
        self.state["settings"] = asdict(self.cfg)
        ident = getattr(self.session, "model_identity", None)
        if callable(ident):
            # what scores this (part of the) search: model, dtype, and the attached adapter's content hash
            self.state["model"] = ident()
        if resume is None and store and self.reg is not None:
            self.run_id = self.reg.add(
                "search", name=self.name, template_hash=self.start.content_hash(), template_yaml=self.start.to_yaml(),
                model=self.session.identity, adapter=self.session.adapter, data_fingerprint=self.ds.fingerprint(),
                data_name=self.ds.name, seed=self.cfg.seed,
                settings={"search": asdict(self.cfg), "eval": asdict(self.eval_cfg)}, metrics={}, payload=self.state,
                status="running")
        if self.on_start is not None and self.run_id is not None:
            self.on_start(self.run_id)
        sizes = rung_sizes(len(self.dev), self.cfg.first_rows, self.cfg.eta)
        try:
            while self.state["stage_index"] < len(self.stages):
                stage = self.stages[self.state["stage_index"]]
                best = self._candidate(self.state["incumbent_key"])
                cands = self.stage_candidates(stage, best)
                for c in cands:
                    self.state["candidates"].setdefault(c.key, self._cand_dict(c))
                keys = [best.key] + [c.key for c in cands if c.key != best.key]
                if self.cfg.racing == "sequential":
                    # the target is the winner on all dev rows (a seeded random order of them): the
                    # finite-population sequences, which close on that very set as rows run out
                    res = race_sequential(keys, self.row_scores, sizes, alpha=self.cfg.alpha,
                                          out_of_budget=self.budget.out, prefer=best.key, population=len(self.dev))
                else:
                    res = race(keys, self.score, sizes, keep=self.cfg.keep, out_of_budget=self.budget.out,
                               prefer=best.key)
                n_all = len(self.dev)
                changed = res.winner is not None and res.winner_n == n_all and res.winner != best.key
                if changed:
                    # The incumbent may have left the race early; the new winner must still beat it
                    # on all dev rows (cached rows: cheap), or nothing changes.
                    changed = self.score(res.winner, n_all) > self.score(best.key, n_all)
                self.state["stages"].append({"stage": stage, "candidates": len(keys), "complete": res.complete,
                                             "winner": res.winner, "winner_accuracy": res.winner_score,
                                             "winner_n": res.winner_n, "changed": changed,
                                             "rungs": [{"n": r["n"], "scored": len(r["scores"]),
                                                        "kept": len(r["kept"]),
                                                        **({"dropped": r["dropped"]} if "dropped" in r else {})}
                                                       for r in res.rungs]})
                if not res.complete and not changed:
                    # The budget stops exploring, not judging: the open race's leader is scored on
                    # all dev rows (one candidate: a bounded overshoot) and replaces the incumbent
                    # only if it beats it there.
                    leader = _race_leader(res)
                    if leader is not None and leader != best.key:
                        n = len(self.dev)
                        if self.score(leader, n) > self.score(best.key, n):
                            changed = True
                            res.winner, res.winner_n = leader, n
                            self.state["stages"][-1].update(winner=leader, winner_n=n, changed=True,
                                                            winner_accuracy=self.state["candidates"][leader]["accuracy"])
                if changed:
                    self.state["incumbent_key"] = res.winner
                if not res.complete:
                    # The budget ends the search: the incumbent so far is the winner.
                    self.state["budget_exhausted"] = True
                    break
                self.state["stage_index"] += 1
            self._finish_winner()
            self.checkpoint(force=True)
            if self.cfg.evaluate_test and self.state.get("test") is None:
                self._report("scoring start and winner once on the test split")
                self.final_test()
            if self.cfg.save_winner and self.state.get("saved_path") is None:
                self.save_winner()
            self.state["status"] = "done"
        except (Cancelled, KeyboardInterrupt):
            self.state["status"] = "cancelled"
            self.checkpoint(force=True)
            raise
        except Exception:
            self.state["status"] = "failed"
            self.checkpoint(force=True)
            raise
        self.checkpoint(force=True)
        return SearchResult(self.state, self.run_id)

    def _finish_winner(self) -> None:
        s = self.state
        key = s["incumbent_key"]
        # The report compares start and winner on all dev rows, even if the race (or the
        # budget) left one of them on a smaller slice; cached rows make this cheap.
        for k in dict.fromkeys([s["start"]["key"], key]):
            if s["candidates"][k]["n"] < len(self.dev):
                self.score(k, len(self.dev))
        c = s["candidates"][key]
        cand = self._candidate(key)
        name = self.cfg.winner_name or f"{self.start.name}-search-{(self.run_id or 'local')[-6:]}"
        s["winner"] = {"key": key, "name": name, "yaml": replace(cand.template, name=name).to_yaml(), "config": c["config"],
                       "dev_accuracy": c["accuracy"] if c["n"] == len(self.dev) else None,
                       "changes": c.get("changes", {}), "describe": cand.describe()}

def _race_leader(res):
    """The best candidate of the largest rung with scores (fully scored or not)."""
    for r in reversed(res.rungs):
        if r["scores"]:
            return max(r["scores"], key=lambda c: r["scores"][c])
    return None


def _pred_cfg(cfg) -> dict:
    from workbench.core.search_space import prediction_settings

    return prediction_settings(cfg)


def _registry_status(status: str) -> str:
    return status   # running | done | cancelled | failed, as the registry knows them


# ---------------------------------------------------------------------------- entry points
def search(start, dataset, session, config: SearchConfig | None = None, eval_config=None, *, registry=None,
           store: bool = True, resume: str | None = None, name: str | None = None,
           progress: Progress | None = None, cancel: Callable[[], bool] | None = None,
           on_start: Callable[[str], None] | None = None) -> SearchResult:
    """Search from template `start` on `dataset` (see the module docstring).

    `eval_config` gives the scoring method, the split and the start's demo/calibration settings
    (its split/limit are ignored: the search scores dev rows, then test once). `resume` is the
    run id of a stopped search; its settings and scores are reused and `config`'s budgets (if
    given) replace the stored ones. `on_start(run_id)` is called once the run is in the registry
    (the UI shows the live leaderboard from there)."""
    from workbench.jobs.inference import EvalConfig

    reg = registry
    if reg is None and store:
        from workbench.storage.runs import RunRegistry
        reg = RunRegistry()
    state = None
    if resume:
        if reg is None:
            raise ConfigError("resuming a search needs the run registry", "drop --no-registry")
        rec = reg.get(resume)
        if rec.kind != "search":
            raise ConfigError(f"run {resume} is a {rec.kind} run, not a search", "pick a search run")
        state = reg.payload(resume)
        if state.get("status") == "done":
            return SearchResult(state, resume)
        if rec.data_fingerprint != dataset.fingerprint():
            raise DataError("the data changed since this search started", "resume with the same data")
        stored = SearchConfig.from_dict(state["settings"])
        if config is not None:
            stored.budget_tokens, stored.budget_seconds = config.budget_tokens, config.budget_seconds
        config = stored
        eval_config = EvalConfig(**state["eval"])
        from workbench.core.templates import PromptTemplate
        start = PromptTemplate.from_yaml(state["start"]["yaml"])
        name = name or rec.name
    if start is None:
        raise ConfigError("prompt search needs a start template", "pass one, or the run id of a search to resume")
    config = config or SearchConfig()
    config.validate()
    from workbench.core.search_objective import objective_for

    objective = objective_for(start, config.metric)   # accuracy, or the generation metric searched on
    if not [a for a in config.axes if a in objective.axes]:
        raise ConfigError(f"none of the axes {config.axes} applies to a {start.task} template",
                          f"use some of: {', '.join(objective.axes)}")
    eval_config = eval_config or EvalConfig(shots=start.fewshot.k, sampling=start.fewshot.sampling,
                                            seed=start.fewshot.seed, per_class=start.fewshot.per_class,
                                            balanced=start.fewshot.balanced)
    eval_config.validate()
    problems = [p for p in start.validate(columns=[str(c) for c in dataset.df.columns], labels=dataset.labels)
                if p.severity == "error"]
    if problems:
        from workbench.errors import TemplateError
        raise TemplateError(f"the start template {start.name!r} has errors: " + "; ".join(str(p) for p in problems[:3]),
                            "fix it in the Templates tab first")
    s = _Search(start, dataset, session, config, eval_config, reg if store or resume else None, progress, cancel,
                name or f"search: {start.name} on {dataset.name}", objective=objective)
    s.run_id = resume
    s.on_start = on_start
    return s.run(state, store)


def open_search(run_id: str, registry=None) -> SearchResult:
    from workbench.storage.runs import RunRegistry

    reg = registry or RunRegistry()
    rec = reg.get(run_id)
    if rec.kind != "search":
        raise ConfigError(f"run {run_id} is a {rec.kind} run, not a search", "open it from the Runs tab")
    payload = reg.payload(run_id)
    if payload is None:
        raise ConfigError(f"search {run_id} has no stored state", "run the search again")
    return SearchResult(payload, run_id)
