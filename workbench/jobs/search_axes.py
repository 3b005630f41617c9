"""The candidates of each search axis (verbalizer, format, instruction, demos, calibration), drawn from
the incumbent. Functions of the running search `job` (jobs/search.py's _Search): its config, data
splits, session and state, where label words and proposed instructions are kept once per search."""
from __future__ import annotations

import random
from dataclasses import asdict

from workbench.core.search_space import AXES, INSTRUCTIONS, Candidate
from workbench.errors import Cancelled, ConfigError


def stage_candidates(job, stage: str, best: Candidate) -> list[Candidate]:
    from workbench.core import search_space as ss

    if stage == "verbalizer":
        verbs, origin = verbalizers(job, best)
        if job.cfg.plain_label_words:   # issue 28, item 5: no "the" or "pays" as label words
            from workbench.core.label_checks import plain_words

            kept = [(v, o) for v, o in zip(verbs, origin or [None] * len(verbs)) if plain_words(v)]
            verbs, origin = [v for v, _ in kept], ([o for _, o in kept] if origin else origin)
        return ss.verbalizer_candidates(best, verbs, origin)
    if stage == "format":
        from workbench.core.formats import format_variants
        from workbench.errors import TemplateError

        try:
            variants = format_variants(best.template, n_variants=job.cfg.n_formats, seed=job.cfg.seed,
                                       columns=[str(c) for c in job.ds.df.columns], labels=job.ds.labels,
                                       sample_row=job.train.iloc[0], generation=True)
        except TemplateError:
            return []   # nothing to vary (no field labels, no newlines)
        return ss.format_candidates(best, variants)
    if stage == "instruction":
        library = job.cfg.instructions
        if job.objective.task == "generation" and list(library) == list(INSTRUCTIONS):
            library = ss.GENERATION_INSTRUCTIONS   # the default library is about classes
        out = ss.instruction_candidates(best, library, "library")
        if job.cfg.propose_instructions:
            out += ss.instruction_candidates(best, proposed_instructions(job, best), "proposed")
        return out
    if stage == "demos":
        return ss.demo_candidates(best, job.cfg.shots, job.cfg.demo_seeds, job.cfg.selections)
    if stage == "calibration":
        return ss.calibration_candidates(best, job.cfg.calibrations)
    raise ConfigError(f"unknown axis {stage!r}", f"choose from {', '.join(AXES)}")


def verbalizers(job, best: Candidate) -> tuple[list[dict], list[str]]:
    """Ranked label words (once per search; kept in the state) → verbalizer combinations."""
    from workbench.core.label_words import LabelWord, rank_label_words, verbalizer_combinations

    t = best.template
    if not t.answer_choices:
        return [], []
    if job.state.get("label_words") is None:
        from workbench.engine.next_token import next_token_logprobs, whole_word_tokens

        label_col = t.label_column
        import pandas as pd

        k = job.cfg.label_rows_per_class
        rows = pd.concat([g.sample(n=min(len(g), k), random_state=job.cfg.seed)
                          for _, g in job.train.groupby(label_col, sort=True)])
        job._report(f"label words: one forward pass over {len(rows)} training rows")
        lead = "" if t.target_delimiter == " " else t.target_delimiter
        ctxs = []
        for _, r in rows.iterrows():
            ctx = t.build_context(r, [])
            ctxs.append((job.session.apply_chat(ctx) if t.chat else ctx) + lead)
        logp = next_token_logprobs(job.session, ctxs, cancel=job.cancel)
        allowed = whole_word_tokens(job.session, delimiter=t.target_delimiter)
        gold = [t.gold(r) for _, r in rows.iterrows()]
        ranked = rank_label_words(logp, gold, list(t.answer_choices), allowed,
                                  words_per_class=job.cfg.words_per_class)
        job.state["label_words"] = {c: [asdict(w) for w in ws] for c, ws in ranked.items()}
        job.checkpoint(force=True)
    ranked = {c: [LabelWord(**w) for w in ws] for c, ws in job.state["label_words"].items()}
    verbs = verbalizer_combinations(ranked, job.cfg.n_verbalizers)
    origin = ["label words"] * len(verbs)
    if job.cfg.label_names:
        from workbench.engine.next_token import whole_word_tokens

        allowed = set(whole_word_tokens(job.session, delimiter=t.target_delimiter).values())
        names = {c: [str(c)] for c in t.answer_choices}
        if all(str(c) in allowed for c in t.answer_choices) and names not in verbs:
            verbs.append(names)
            origin.append("class names")
    return verbs, origin


def proposed_instructions(job, best: Candidate) -> list[str]:
    """APE-style: the model reads a few training demonstrations and writes the instruction."""
    if job.state.get("proposed_instructions") is not None:
        return job.state["proposed_instructions"]
    t = best.template
    rng = random.Random(job.cfg.seed)
    idx = rng.sample(range(len(job.train)), min(5, len(job.train)))
    demos = "\n\n".join(t.render_demo(job.train.iloc[i]) for i in idx)
    ask = ("Here are a few solved examples of one task.\n\n" + demos +
           "\n\nIn one sentence, write the instruction someone was given to solve this task.")
    try:
        prompt = job.session.apply_chat(ask)
    except Exception:  # noqa: BLE001 - a base model without a chat template gets the plain text
        prompt = ask + "\nInstruction:"
    outs = []
    for s in range(job.cfg.propose_instructions):
        if job.cancel is not None and job.cancel():
            raise Cancelled()
        g = job.session.generate([prompt], max_new_tokens=40, temperature=0.8, stop=["\n"], seed=job.cfg.seed + s)[0]
        # generation does not count in session.stats; charge prompt + output to the budget
        job.session.stats["tokens"] += len(job.session.encode(prompt)) + g.n_tokens
        text = g.text.strip().strip('"').strip()
        if len(text) > 8 and text not in outs:
            outs.append(text)
    job.state["proposed_instructions"] = outs
    return outs
