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

import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from workbench.core.search_space import AXES, INSTRUCTIONS, Candidate
from workbench.errors import Cancelled, ConfigError, DataError

SCHEMA_VERSION = 1
RACINGS = ("halving", "sequential")
Progress = Callable[..., None]   # progress(done, total, message)


@dataclass
class SearchConfig:
    axes: list[str] = field(default_factory=lambda: list(AXES), metadata={
        "help": "axes searched, in this order: verbalizer, format, instruction, demos, calibration"})
    budget_tokens: int | None = field(default=300_000, metadata={
        "help": "stop after this many model tokens (forward-pass tokens, label-word pass included); None = no limit"})
    budget_seconds: float | None = field(default=600.0, metadata={"help": "stop after this much wall time; None = no limit"})
    first_rows: int = field(default=16, metadata={"help": "dev rows in the first racing rung"})
    eta: float = field(default=2.0, metadata={"help": "each rung grows the dev slice by this factor"})
    keep: float = field(default=0.5, metadata={"help": "share of candidates kept after each rung"})
    max_dev_rows: int | None = field(default=None, metadata={"help": "use at most this many dev rows (None = all)"})
    label_rows_per_class: int = field(default=16, metadata={"help": "training rows per class for the label-word pass"})
    words_per_class: int = field(default=3, metadata={"help": "label words kept per class"})
    n_verbalizers: int = field(default=6, metadata={"help": "verbalizer combinations raced"})
    label_names: bool = field(default=True, metadata={"help": "also race the class names as label words, when each is one whole word"})
    plain_label_words: bool = field(default=False, metadata={
        "help": "race only verbalizers without stop-words or words unrelated to their class name (core/label_checks.py)"})
    n_formats: int = field(default=6, metadata={"help": "FormatSpread variants raced"})
    instructions: list[str] = field(default_factory=lambda: list(INSTRUCTIONS), metadata={
        "help": "instruction library; {choices} becomes the label words"})
    propose_instructions: int = field(default=0, metadata={
        "help": "instructions the model proposes from training demonstrations (APE-style); 0 = off"})
    shots: list[int] = field(default_factory=lambda: [0, 2, 4], metadata={"help": "demonstration counts tried"})
    demo_seeds: list[int] = field(default_factory=lambda: [0, 1], metadata={"help": "seeds of the random demo sets"})
    selections: list[str] = field(default_factory=lambda: ["random", "similar"], metadata={
        "help": "how demonstrations are chosen: random (a fixed seeded set) and/or similar (nearest by sentence embedding)"})
    calibrations: list[str] = field(default_factory=lambda: ["none", "contextual", "pmi"], metadata={
        "help": "calibrations tried"})
    seed: int = field(default=0, metadata={"help": "seed of the dev-row order, label-word rows and format draws"})
    evaluate_test: bool = field(default=True, metadata={"help": "score start and winner once on the test split at the end"})
    test_limit: int | None = field(default=None, metadata={"help": "score only the first N test rows (None = all)"})
    n_boot: int = field(default=2000, metadata={"help": "bootstrap resamples of the test verdict"})
    save_winner: bool = field(default=True, metadata={"help": "save the winner as a user template"})
    winner_name: str | None = field(default=None, metadata={"help": "name of the saved winner (default: <start>-search-<id>)"})
    metric: str | None = field(default=None, metadata={
        "help": "generation: the reference metric searched on (default: the template's first `metrics:` entry), "
                "averaged per dev row; classification searches accuracy"})
    racing: str = field(default="halving", metadata={
        "help": "how candidates race on dev: halving (keep a fixed share per rung) or sequential (drop a candidate "
                "once an anytime-valid confidence sequence settles it worse, at alpha)"})
    alpha: float = field(default=0.05, metadata={"help": "sequential racing: the chance of ever dropping a candidate "
                                                         "that is not worse (Bonferroni over pairs)"})

    def validate(self) -> None:
        bad = [a for a in self.axes if a not in AXES]
        if bad or not self.axes:
            raise ConfigError(f"unknown or no search axes: {bad or self.axes}", f"choose from: {', '.join(AXES)}")
        if self.budget_tokens is not None and self.budget_tokens < 1:
            raise ConfigError(f"budget_tokens must be >= 1, got {self.budget_tokens}", "or None for no limit")
        if self.budget_seconds is not None and self.budget_seconds <= 0:
            raise ConfigError(f"budget_seconds must be > 0, got {self.budget_seconds}", "or None for no limit")
        if self.racing not in RACINGS:
            raise ConfigError(f"unknown racing {self.racing!r}", f"use {' or '.join(RACINGS)}")
        if not 0 < self.alpha < 1:
            raise ConfigError(f"alpha must be between 0 and 1, got {self.alpha}", "e.g. 0.05")
        if self.first_rows < 1 or self.eta <= 1 or not 0 < self.keep < 1:
            raise ConfigError("racing needs first_rows >= 1, eta > 1 and 0 < keep < 1", "e.g. 16, 2, 0.5")
        if any(int(k) < 0 for k in self.shots):
            raise ConfigError(f"shots must be >= 0, got {self.shots}", "e.g. 0,2,4")
        bad = [s for s in self.selections if s not in ("random", "similar")]
        if bad:
            raise ConfigError(f"unknown demo selection(s) {bad}", "use random and/or similar")
        from workbench.core.config import CALIBRATIONS
        bad = [c for c in self.calibrations if c not in CALIBRATIONS]
        if bad:
            raise ConfigError(f"unknown calibration(s) {bad}", f"use {', '.join(CALIBRATIONS)}")

    @classmethod
    def from_dict(cls, d: dict) -> SearchConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


from workbench.jobs.search_report import (SearchResult, dev_to_test_text, format_search,  # noqa: E402,F401 (re-exported)
                                         leaderboard)


# ---------------------------------------------------------------------------- the search
def _stats(session) -> dict:
    """The session's counters (a stand-in session without them gets an empty dict to count in)."""
    st = getattr(session, "stats", None)
    if not isinstance(st, dict):
        st = {}
        session.stats = st
    st.setdefault("tokens", 0)
    return st


class _Budget:
    def __init__(self, cfg: SearchConfig, tokens0: int, seconds0: float, session):
        self.cfg, self.session = cfg, session
        self.tokens0, self.seconds0 = tokens0, seconds0          # spent before this (resumed) run
        self.t0, self.s0 = time.perf_counter(), _stats(session)["tokens"]

    @property
    def tokens(self) -> int:
        return self.tokens0 + (_stats(self.session)["tokens"] - self.s0)

    @property
    def seconds(self) -> float:
        return self.seconds0 + (time.perf_counter() - self.t0)

    def out(self) -> bool:
        c = self.cfg
        return ((c.budget_tokens is not None and self.tokens >= c.budget_tokens)
                or (c.budget_seconds is not None and self.seconds >= c.budget_seconds))


class _Memo:
    """The session, with every (context, continuation) log-likelihood kept for the run: candidates
    that differ only in calibration send the very same requests, and are not scored twice."""

    def __init__(self, inner):
        self._inner = inner
        self._memo: dict[tuple[str, str], object] = {}

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def loglikelihood(self, requests, **kw):
        reqs = [tuple(r) for r in requests]
        todo = list(dict.fromkeys(r for r in reqs if r not in self._memo))
        if todo:
            for r, ll in zip(todo, self._inner.loglikelihood(todo, **kw)):
                self._memo[r] = ll
        return [self._memo[r] for r in reqs]


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
        self.scorer = _Memo(session)
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

    # ---------------------------------------------------------------- axes
    def stage_candidates(self, stage: str, best: Candidate) -> list[Candidate]:
        from workbench.core import search_space as ss

        if stage == "verbalizer":
            verbs, origin = self.verbalizers(best)
            if self.cfg.plain_label_words:   # issue 28, item 5: no "the" or "pays" as label words
                from workbench.core.label_checks import plain_words

                kept = [(v, o) for v, o in zip(verbs, origin or [None] * len(verbs)) if plain_words(v)]
                verbs, origin = [v for v, _ in kept], ([o for _, o in kept] if origin else origin)
            return ss.verbalizer_candidates(best, verbs, origin)
        if stage == "format":
            from workbench.core.formats import format_variants
            from workbench.errors import TemplateError

            try:
                variants = format_variants(best.template, n_variants=self.cfg.n_formats, seed=self.cfg.seed,
                                           columns=[str(c) for c in self.ds.df.columns], labels=self.ds.labels,
                                           sample_row=self.train.iloc[0], generation=True)
            except TemplateError:
                return []   # nothing to vary (no field labels, no newlines)
            return ss.format_candidates(best, variants)
        if stage == "instruction":
            library = self.cfg.instructions
            if self.objective.task == "generation" and list(library) == list(INSTRUCTIONS):
                library = ss.GENERATION_INSTRUCTIONS   # the default library is about classes
            out = ss.instruction_candidates(best, library, "library")
            if self.cfg.propose_instructions:
                out += ss.instruction_candidates(best, self.proposed_instructions(best), "proposed")
            return out
        if stage == "demos":
            return ss.demo_candidates(best, self.cfg.shots, self.cfg.demo_seeds, self.cfg.selections)
        if stage == "calibration":
            return ss.calibration_candidates(best, self.cfg.calibrations)
        raise ConfigError(f"unknown axis {stage!r}", f"choose from {', '.join(AXES)}")

    def verbalizers(self, best: Candidate) -> tuple[list[dict], list[str]]:
        """Ranked label words (once per search; kept in the state) → verbalizer combinations."""
        from workbench.core.label_words import LabelWord, rank_label_words, verbalizer_combinations

        t = best.template
        if not t.answer_choices:
            return [], []
        if self.state.get("label_words") is None:
            from workbench.engine.next_token import next_token_logprobs, whole_word_tokens

            label_col = t.label_column
            import pandas as pd

            k = self.cfg.label_rows_per_class
            rows = pd.concat([g.sample(n=min(len(g), k), random_state=self.cfg.seed)
                              for _, g in self.train.groupby(label_col, sort=True)])
            self._report(f"label words: one forward pass over {len(rows)} training rows")
            lead = "" if t.target_delimiter == " " else t.target_delimiter
            ctxs = []
            for _, r in rows.iterrows():
                ctx = t.build_context(r, [])
                ctxs.append((self.session.apply_chat(ctx) if t.chat else ctx) + lead)
            logp = next_token_logprobs(self.session, ctxs, cancel=self.cancel)
            allowed = whole_word_tokens(self.session, delimiter=t.target_delimiter)
            gold = [t.gold(r) for _, r in rows.iterrows()]
            ranked = rank_label_words(logp, gold, list(t.answer_choices), allowed,
                                      words_per_class=self.cfg.words_per_class)
            self.state["label_words"] = {c: [asdict(w) for w in ws] for c, ws in ranked.items()}
            self.checkpoint(force=True)
        ranked = {c: [LabelWord(**w) for w in ws] for c, ws in self.state["label_words"].items()}
        verbs = verbalizer_combinations(ranked, self.cfg.n_verbalizers)
        origin = ["label words"] * len(verbs)
        if self.cfg.label_names:
            from workbench.engine.next_token import whole_word_tokens

            allowed = set(whole_word_tokens(self.session, delimiter=t.target_delimiter).values())
            names = {c: [str(c)] for c in t.answer_choices}
            if all(str(c) in allowed for c in t.answer_choices) and names not in verbs:
                verbs.append(names)
                origin.append("class names")
        return verbs, origin

    def proposed_instructions(self, best: Candidate) -> list[str]:
        """APE-style: the model reads a few training demonstrations and writes the instruction."""
        if self.state.get("proposed_instructions") is not None:
            return self.state["proposed_instructions"]
        t = best.template
        rng = random.Random(self.cfg.seed)
        idx = rng.sample(range(len(self.train)), min(5, len(self.train)))
        demos = "\n\n".join(t.render_demo(self.train.iloc[i]) for i in idx)
        ask = ("Here are a few solved examples of one task.\n\n" + demos +
               "\n\nIn one sentence, write the instruction someone was given to solve this task.")
        try:
            prompt = self.session.apply_chat(ask)
        except Exception:  # noqa: BLE001 - a base model without a chat template gets the plain text
            prompt = ask + "\nInstruction:"
        outs = []
        for s in range(self.cfg.propose_instructions):
            if self.cancel is not None and self.cancel():
                raise Cancelled()
            g = self.session.generate([prompt], max_new_tokens=40, temperature=0.8, stop=["\n"], seed=self.cfg.seed + s)[0]
            # generation does not count in session.stats; charge prompt + output to the budget
            self.session.stats["tokens"] += len(self.session.encode(prompt)) + g.n_tokens
            text = g.text.strip().strip('"').strip()
            if len(text) > 8 and text not in outs:
                outs.append(text)
        self.state["proposed_instructions"] = outs
        return outs

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

    def final_test(self) -> None:
        """Start and winner, once each, on the same test rows; the paired verdict of compare."""
        from workbench.jobs.compare import compare_results, evaluate_or_reuse

        s = self.state
        rows = self._test_rows.iloc[: self.cfg.test_limit] if self.cfg.test_limit else self._test_rows
        start = self._candidate(s["start"]["key"])
        win = self._candidate(s["incumbent_key"])
        results, ids = [], []
        for label, c in ((f"start: {start.template.name}", start), (f"winner: {s['winner']['name']}", win)):
            if c.key == start.key and results:       # no change found: the start is the winner
                results.append((label, results[0][1]))
                ids.append(dict(ids[0], reused=True))
                continue
            cfg = replace(c.config, split="test", limit=self.cfg.test_limit)
            t = c.template if c.key == start.key else replace(c.template, name=s["winner"]["name"])   # the Runs list shows who it is
            res, rid, reused = evaluate_or_reuse(t, self.ds, self.session, cfg, rows=rows, pool=self.train,
                                                 registry=self.reg, cancel=self.cancel)
            results.append((label, res))
            ids.append({"eval_run_id": rid, "reused": reused})
        if self.objective.task == "generation":
            self._final_test_generation(results, ids)
            return
        cmp = compare_results(results, baseline=results[0][0], n_boot=self.cfg.n_boot)
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
        self.checkpoint(force=True)
        s["test"]["test_uses"] = test_uses(self.ds, self.eval_cfg, self.reg) if self.reg is not None else 1

    def _final_test_generation(self, results, ids) -> None:
        """The objective's metric on the test rows, start vs winner, with Compare's paired verdict
        for that metric (gen_verdicts.metric_verdict: McNemar if binary, else a paired bootstrap)."""
        from workbench.core.gen_verdicts import metric_verdict
        from workbench.core.records import hash_indices

        s = self.state
        obj = self.objective
        (la, ra), (lb, rb) = [(lab, r if isinstance(r, dict) else r.to_dict()) for lab, r in results]
        golds = [r["gold"] for r in ra["records"]]
        if [r["index"] for r in ra["records"]] != [r["index"] for r in rb["records"]]:
            raise DataError("start and winner were scored on other test rows", "this is a bug: please report it")
        pa, pb = [r["pred"] for r in ra["records"]], [r["pred"] for r in rb["records"]]
        v = metric_verdict(obj.metric, la, lb, pa, pb, golds, n_boot=min(self.cfg.n_boot, 1000))
        u_start, u_win = float(obj.utilities(pa, golds).mean()), float(obj.utilities(pb, golds).mean())
        w_dev = s["winner"]["dev_accuracy"]
        s["test"] = {"n": len(golds), "objective": obj.to_dict(), "start_accuracy": u_start, "winner_accuracy": u_win,
                     "start_dev_accuracy": s["start"]["dev_accuracy"], "winner_dev_accuracy": w_dev,
                     "dev_to_test_drop": (w_dev - u_win) if w_dev is not None else 0.0,
                     "verdict": {k: v.get(k) for k in ("text", "significant", "p", "method", "metric", "delta", "ci",
                                                       "value_a", "value_b", "only_a", "only_b", "n")},
                     "evals": ids, "row_indices_hash": hash_indices([r["index"] for r in ra["records"]]),
                     "test_uses": None, "majority_baseline": None, "one_class": {}}
        self.checkpoint(force=True)
        s["test"]["test_uses"] = test_uses(self.ds, self.eval_cfg, self.reg) if self.reg is not None else 1

    def save_winner(self) -> None:
        from workbench import paths
        from workbench.core.templates import PromptTemplate

        s = self.state
        w = s["winner"]
        t = PromptTemplate.from_yaml(w["yaml"])
        meta = dict(t.metadata or {})
        meta.pop("format_variant_of", None)
        meta.pop("format_variant", None)
        meta["search"] = {"run_id": self.run_id, "start": self.start.name, "start_hash": self.start.content_hash(),
                          "data": self.ds.name, "data_fingerprint": self.ds.fingerprint(),
                          "model": self.session.identity, "changes": w["changes"],
                          "eval": w["config"], "dev_accuracy": w["dev_accuracy"],
                          "test": {k: (s.get("test") or {}).get(k) for k in ("n", "start_accuracy", "winner_accuracy",
                                                                              "test_uses")} if s.get("test") else None,
                          "settings": s["settings"]}
        t = replace(t, name=w["name"], metadata=meta,
                    description=f"Found by prompt search {self.run_id or ''} from {self.start.name}: {w['describe']}")
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in w["name"])
        path = t.save(paths.user_templates_dir() / f"{safe}.yaml")
        s["saved_path"] = str(path)
        s["winner"]["yaml"] = t.to_yaml()


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


def _split_key(cfg) -> str:
    return f"seed={cfg.split_seed} dev={cfg.dev_fraction} test={cfg.test_fraction}"


def test_uses(dataset, eval_cfg, registry) -> int:
    """How many stored searches have scored this dataset's test split (same split settings)."""
    key = _split_key(eval_cfg)
    fp = dataset.fingerprint()
    return sum(1 for r in registry.list(kind="search", limit=100_000)
               if r.data_fingerprint == fp and r.metrics.get("test_used") and r.metrics.get("split") == key)


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


def list_searches(registry=None, limit: int = 50) -> list[dict]:
    from workbench.storage.runs import RunRegistry

    reg = registry or RunRegistry()
    return [{"id": r.id, "name": r.name, "status": r.metrics.get("status", r.status), "data": r.data_name,
             "created_at": r.created_at, "winner": r.metrics.get("winner"),
             "best_dev_accuracy": r.metrics.get("best_dev_accuracy"),
             "test_winner_accuracy": r.metrics.get("test_winner_accuracy")}
            for r in reg.list(kind="search", limit=limit)]
