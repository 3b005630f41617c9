"""Multi-step prompts: Self-Ask (with or without a retriever), chain-of-thought extraction,
step-by-step traces and the compositionality gap.

    from workbench.jobs.selfask import dispatch_generation, trace_to_markdown
    records = dispatch_generation(template, rows, prompts, session, config, retriever="facts.txt")
    print(trace_to_markdown(records[0]["trace"]))

Self-Ask (Press et al. 2022) text looks like

    Question: Is the Eiffel Tower older than the Titanic?
    Are follow up questions needed here: Yes.
    Follow up: When was the Eiffel Tower completed?
    Intermediate answer: In 1889.
    Follow up: When was the Titanic launched?
    Intermediate answer: In 1911.
    So the final answer is: Yes.

`run_selfask_records` drives the model through that format one generate call at a time:

* with a retriever, generation stops at `Intermediate answer:`; the pending `Follow up:`
  question goes to the retriever, the best sentence of its top passage is spliced in as
  `Intermediate answer: <text>` and generation continues from the grown prompt;
* without one, the model writes its own intermediate answers, and generation runs until the
  final answer, a template stop string (`\\n\\n`, `\\nQuestion:`), end of text, or the budget.

After every call the whole continuation is re-parsed (`parse_selfask`, tolerant of case and
spacing variants), and `_scan` decides: a final answer ends the chain ("final_answer"); a
follow-up asked twice ends it ("loop"); a follow-up beyond `max_hops` ends it ("hop_limit");
spending the token budget ends it ("token_budget"); stopping any other way ends it
("no_final_answer"). Every record carries a `trace` saying which, and where.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from workbench.errors import Cancelled, ConfigError
from workbench.core.config import EvalConfig
from workbench.core.records import extract_answer, jsonable

END_REASONS = ("final_answer", "no_final_answer", "loop", "hop_limit", "token_budget")

# ---------------------------------------------------------------------------- parser
# One alternation, tried left to right at each position. "needed" comes before "follow_up" so
# "Are follow up questions needed here:" is never read as a follow-up; "question" must start
# a line so "Follow up question:" is a follow-up, not a new question.
_MARKERS = re.compile(
    r"(?P<needed>are\s+(?:any\s+)?follow[\s-]*ups?\s+questions?\s+needed(?:\s+here)?\s*[:?]+)"
    r"|(?P<follow_up>follow[\s-]*up(?:\s+question)?\s*:)"
    r"|(?P<intermediate>intermediate\s+answer\s*:)"
    r"|(?P<final>(?:so\s*,?\s+)?the\s+final\s+answer\s+is\s*:?)"
    r"|(?P<question>(?<![^\n])[ \t]*question\s*:)",
    re.IGNORECASE,
)
_INTERMEDIATE_STOP = re.compile(r"intermediate\s+answer", re.IGNORECASE)
RETRIEVER_STOPS = ("Intermediate answer:", "Intermediate Answer:", "intermediate answer:")


@dataclass
class Segment:
    kind: str        # preamble | needed | follow_up | intermediate | final | question
    text: str        # the content after the marker (first line for one-line kinds), stripped
    start: int       # offset of the marker (of the content, for the preamble)
    end: int         # offset just past the content
    closed: bool     # a newline or another marker follows the content (the line is finished)


def parse_selfask(text: str) -> list[Segment]:
    """Split Self-Ask text into marker segments, in order.

    Follow-ups, intermediate answers and the final answer are one line each: their content is
    the rest of the marker's line (or, if that is empty, the next non-empty line, for a model
    that puts the answer under the marker). Text before the first marker is the `preamble`.
    """
    out: list[Segment] = []
    matches = list(_MARKERS.finditer(text))
    first = matches[0].start() if matches else len(text)
    if text[:first].strip():
        out.append(Segment("preamble", text[:first].strip(), 0, first, bool(matches)))
    for j, m in enumerate(matches):
        kind = m.lastgroup or ""
        body_end = matches[j + 1].start() if j + 1 < len(matches) else len(text)
        body = text[m.end():body_end]
        if kind == "question":
            out.append(Segment(kind, body.strip(), m.start(), body_end, True))
            continue
        lead = len(body) - len(body.lstrip(" \t"))
        nl = body.find("\n", lead)
        line = body[lead:nl] if nl != -1 else body[lead:]
        end = m.end() + (nl if nl != -1 else len(body))
        if not line.strip() and nl != -1:
            # "Intermediate answer:\nIn 1889." -> take the next non-empty line
            rest = body[nl + 1:]
            nxt = rest.lstrip("\n")
            k = nxt.find("\n")
            line = nxt[:k] if k != -1 else nxt
            start_next = m.end() + nl + 1 + (len(rest) - len(nxt))
            end = start_next + (k if k != -1 else len(nxt))
            nl = k if k != -1 else -1
        closed = nl != -1 or j + 1 < len(matches)
        out.append(Segment(kind, line.strip(), m.start(), end, closed))
    return out


def final_answer_text(text: str) -> str:
    """The final answer of a Self-Ask text ('' if none), trailing period removed."""
    for s in parse_selfask(text):
        if s.kind == "final" and s.text:
            return s.text.rstrip(".").strip()
    return ""


def _norm_q(q: str) -> str:
    from workbench.core.metrics import normalize_answer

    return normalize_answer(q)


def _scan(segs: Sequence[Segment], max_hops: int, ignore_open_tail: bool, head_len: int = 0):
    """Walk the parsed continuation once. Returns (end_reason | None, cut_offset | None,
    detail, pending_follow_up | None, n_follow_ups).

    `ignore_open_tail`: generation ran out of tokens for this call but the budget is not spent,
    so the last, unfinished line is still being written and must not be judged yet.
    `head_len`: the prompt's own last line is parsed too (it usually ends with the "needed"
    marker); a `Question:` there is the example's own question, not the model starting another.
    """
    seen: dict[str, int] = {}
    n = 0
    pending: Segment | None = None
    for j, s in enumerate(segs):
        if ignore_open_tail and j == len(segs) - 1 and not s.closed:
            break
        if s.kind == "follow_up":
            key = _norm_q(s.text)
            if key and key in seen:
                return "loop", s.start, f"follow-up {s.text!r} repeats hop {seen[key]}", None, n
            if n >= max_hops:
                return "hop_limit", s.start, f"follow-up {s.text!r} would be hop {n + 1}; the limit is {max_hops}", None, n
            n += 1
            if key:
                seen[key] = n
            pending = s
        elif s.kind == "intermediate":
            pending = None
        elif s.kind == "final" and s.text:
            return "final_answer", s.end, "", None, n
        elif s.kind == "question" and s.start >= head_len:
            return "no_final_answer", s.start, "the model began a new question without a final answer", None, n
    return None, None, "", pending, n


# ---------------------------------------------------------------------------- config
@dataclass
class SelfAskConfig:
    max_hops: int = field(default=4, metadata={"help": "most follow-up questions per example; one more ends the chain (hop_limit)"})
    token_budget: int | None = field(default=None, metadata={
        "help": "most generated tokens per example over all steps; None = EvalConfig.max_new_tokens or the template's generation.max_new_tokens"})
    step_tokens: int = field(default=64, metadata={
        "help": "most tokens per generate call; a call that runs out with budget left just continues (lets examples share batches)"})
    retrieve_k: int = field(default=3, metadata={"help": "passages fetched per follow-up (all are kept in the trace; the top one answers)"})
    answer_chars: int = field(default=240, metadata={"help": "longest spliced intermediate answer, in characters"})
    no_result: str = field(default="Unknown.", metadata={"help": "spliced when the retriever finds nothing"})
    subquestion_columns: tuple[str, str] = field(default=("sub_questions", "sub_answers"), metadata={
        "help": "row columns with gold sub-questions and their answers; when both exist, each sub-question is asked "
                "directly and the compositionality gap is reported"})

    def validate(self) -> None:
        if self.max_hops < 0:
            raise ConfigError(f"max_hops must be >= 0, got {self.max_hops}.")
        if self.step_tokens < 1:
            raise ConfigError(f"step_tokens must be >= 1, got {self.step_tokens}.")
        if self.token_budget is not None and self.token_budget < 1:
            raise ConfigError(f"token_budget must be >= 1, got {self.token_budget}.",
                              hint="Leave it empty to use the template's generation.max_new_tokens.")


def selfask_config_from(config: Any, selfask: SelfAskConfig | dict | None = None) -> SelfAskConfig:
    """SelfAskConfig from an explicit value, else from same-named attributes of an EvalConfig
    (`max_hops`, `token_budget`, ...) when inference grows them, else defaults."""
    if isinstance(selfask, SelfAskConfig):
        cfg = selfask
    elif isinstance(selfask, dict):
        cfg = SelfAskConfig(**selfask)
    else:
        names = SelfAskConfig.__dataclass_fields__
        cfg = SelfAskConfig(**{k: getattr(config, k) for k in names if getattr(config, k, None) is not None})
    cfg.validate()
    return cfg


# ---------------------------------------------------------------------------- runner
@dataclass
class _Chain:
    prompt: str
    head: str                                   # the prompt's last line when it holds a marker
    budget: int
    output: str = ""                            # the continuation, splices included
    tokens: int = 0
    splices: list[dict] = field(default_factory=list)
    calls: list[dict] = field(default_factory=list)
    end_reason: str | None = None
    detail: str = ""
    failed_at: str | None = None

    @property
    def text(self) -> str:
        return self.head + self.output


def _prompt_head(prompt: str) -> str:
    last = prompt.rsplit("\n", 1)[-1]
    return last if _MARKERS.search(last) else ""


def _stops(template, with_retriever: bool) -> list[str]:
    stops = [s for s in (template.generation.stop or []) if s and not _INTERMEDIATE_STOP.search(s)]
    if with_retriever:
        stops = list(RETRIEVER_STOPS) + stops
    return stops


def _advance(ch: _Chain, gen, cfg: SelfAskConfig, retriever) -> None:
    """Fold one generate call into the chain: finish it, splice a retrieved answer, or leave
    it open for another call."""
    ch.output += gen.text
    ch.tokens += gen.n_tokens
    ch.calls.append({"n_tokens": gen.n_tokens, "stop_reason": gen.stop_reason, "text": gen.text})
    spent = ch.tokens >= ch.budget
    ran_out = gen.stop_reason == "length"
    segs = parse_selfask(ch.text)
    end, cut, detail, pending, _ = _scan(segs, cfg.max_hops, ignore_open_tail=ran_out and not spent,
                                         head_len=len(ch.head))
    if end:
        if end in ("loop", "hop_limit"):
            ch.failed_at = ch.text[cut:].split("\n", 1)[0].strip()
        _finish(ch, end, detail, cut)
        return
    if ran_out:
        if spent:
            _finish(ch, "token_budget", f"{ch.tokens} tokens generated; the budget is {ch.budget}")
        return   # budget left: the next round continues this text
    if retriever is not None and pending is not None:
        if not pending.text:
            _finish(ch, "no_final_answer", "an empty follow-up question")
            return
        _splice(ch, pending.text, cfg, retriever)
        if ch.tokens >= ch.budget:
            _finish(ch, "token_budget", f"{ch.tokens} tokens generated; the budget is {ch.budget}")
        return
    how = "at a stop string" if gen.stop_reason == "stop" else "at end of text"
    _finish(ch, "no_final_answer", f"the model stopped {how} without a final answer")


def _splice(ch: _Chain, question: str, cfg: SelfAskConfig, retriever) -> None:
    from workbench.core.retriever import answer_from_passage

    passages = retriever.search(question, cfg.retrieve_k)
    answer = answer_from_passage(question, passages[0].text, cfg.answer_chars) if passages else cfg.no_result
    answer = " ".join(answer.split())   # one line: a newline would end the answer for the parser
    ch.output = ch.output.rstrip(" \t")
    if ch.output and not ch.output.endswith("\n"):
        ch.output += "\n"
    offset = len(ch.head) + len(ch.output)
    ch.output += f"Intermediate answer: {answer}\n"
    ch.splices.append({"offset": offset, "question": question, "answer": answer,
                       "passages": [p.to_dict() for p in passages]})


def _finish(ch: _Chain, reason: str, detail: str, cut: int | None = None) -> None:
    if cut is not None:
        ch.output = ch.text[:cut][len(ch.head):]
    ch.end_reason = reason
    ch.detail = detail


def build_trace(ch: _Chain, question: str | None = None) -> dict:
    """The step list for one chain, from the final text plus what the runner recorded."""
    spliced = {s["offset"]: s for s in ch.splices}
    steps: list[dict] = []
    hop: dict | None = None
    final = None
    for s in parse_selfask(ch.text):
        if s.kind == "needed":
            steps.append({"kind": "needed", "text": s.text})
        elif s.kind == "preamble":
            steps.append({"kind": "text", "text": s.text})
        elif s.kind == "follow_up":
            hop = {"kind": "hop", "n": sum(st["kind"] == "hop" for st in steps) + 1, "follow_up": s.text,
                   "answer": None, "source": None, "passages": []}
            steps.append(hop)
        elif s.kind == "intermediate":
            sp = spliced.get(s.start)
            if hop is None or hop["answer"] is not None:   # an answer with no question before it
                hop = {"kind": "hop", "n": sum(st["kind"] == "hop" for st in steps) + 1, "follow_up": None,
                       "answer": None, "source": None, "passages": []}
                steps.append(hop)
            hop.update(answer=s.text, source="retriever" if sp else "model", passages=sp["passages"] if sp else [])
        elif s.kind == "final":
            final = s.text
            steps.append({"kind": "final", "answer": s.text})
    return {"question": question, "end_reason": ch.end_reason, "detail": ch.detail, "failed_at": ch.failed_at,
            "final_answer": final, "hops": sum(st["kind"] == "hop" for st in steps),
            "retrieved": len(ch.splices), "generated_tokens": ch.tokens, "budget": ch.budget,
            "steps": steps, "calls": ch.calls}


def run_selfask_records(template, rows, prompts: Sequence[str], session, config, retriever=None, *,
                        selfask: SelfAskConfig | dict | None = None, progress: Callable[[int, int], None] | None = None,
                        cancel: Callable[[], bool] | None = None) -> list[dict]:
    """Self-Ask over `rows` (a DataFrame; `prompts` from inference.build_prompts), one record
    per row like inference.generate_records' plus `trace`, `end_reason`, `hops`.

    Chains advance in rounds; every open chain with the same per-call token limit shares one
    `session.generate` batch.
    """
    from workbench.core.metrics import normalize_answer
    from workbench.core.retriever import as_retriever

    cfg = selfask_config_from(config, selfask)
    retriever = as_retriever(retriever)
    g = template.generation
    budget = cfg.token_budget or getattr(config, "max_new_tokens", None) or g.max_new_tokens
    stops = _stops(template, retriever is not None)
    chains = [_Chain(prompt=p, head=_prompt_head(p), budget=budget) for p in prompts]
    total = len(chains)
    # Each round either ends a chain, splices (at most max_hops + 1 times per chain) or spends
    # tokens (at most budget / 1 calls), so this cap is never reached by a correct runner; it
    # is the guard that makes an endless loop impossible even if a fake or odd model misbehaves.
    max_rounds = cfg.max_hops + 2 + budget
    for _ in range(max_rounds):
        open_ = [c for c in chains if c.end_reason is None]
        if not open_:
            break
        if cancel and cancel():
            raise Cancelled()
        groups: dict[int, list[_Chain]] = {}
        for c in open_:
            groups.setdefault(min(cfg.step_tokens, c.budget - c.tokens), []).append(c)
        for mnt, group in sorted(groups.items(), reverse=True):
            outs = session.generate([c.prompt + c.output for c in group], max_new_tokens=mnt,
                                    temperature=g.temperature, top_p=g.top_p, stop=stops,
                                    seed=getattr(config, "seed", 0))
            for c, out in zip(group, outs):
                _advance(c, out, cfg, retriever)
        if progress:
            progress(sum(c.end_reason is not None for c in chains), total)
    for c in chains:
        if c.end_reason is None:
            _finish(c, "token_budget", "the runner's round limit was reached")

    records = []
    for (idx, row), c in zip(rows.iterrows(), chains):
        gold = template.gold(row)
        pred = extract_prediction(template, c.output)
        trace = build_trace(c, question=_safe_input(template, row))
        if retriever is not None:
            trace["retriever"] = repr(retriever)
        records.append({"index": jsonable(idx), "gold": gold, "pred": pred, "output": c.output,
                        "stop_reason": c.calls[-1]["stop_reason"] if c.calls else None,
                        "correct": normalize_answer(pred) == normalize_answer(gold), "prompt": c.prompt,
                        "end_reason": c.end_reason, "hops": trace["hops"], "trace": trace})
    return records


def _safe_input(template, row) -> str | None:
    """The example's question for the trace header: the rendered input without its Self-Ask
    markers ("Question:", "Are follow up questions needed here:")."""
    try:
        text = template.render_input(row)
    except Exception:  # noqa: BLE001 - the trace is for people; the prompt is in the record anyway
        return None
    return " ".join(_MARKERS.sub(" ", text).split()) or text


# ---------------------------------------------------------------------------- extraction
_COT_ANSWER = re.compile(r"answer\s+is\s*:?\s*(.+)", re.IGNORECASE)


def extract_cot_answer(text: str) -> str:
    """Chain-of-thought answer: what follows the last 'answer is' ('So the answer is: Yes.'),
    up to the end of its line, trailing period removed; else the last non-empty line."""
    ms = list(_COT_ANSWER.finditer(text))
    if ms:
        return ms[-1].group(1).split("\n", 1)[0].strip().rstrip(".").strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def extract_prediction(template, output: str) -> str:
    """The prediction for `output` following the template's answer format: its `extract` regex
    when set; otherwise the Self-Ask final answer, the CoT 'answer is', or the first line."""
    pattern = template.generation.extract
    if template.kind == "self_ask":
        if pattern:
            return extract_answer(output, pattern)
        return final_answer_text(output)
    if template.kind == "cot" and not pattern:
        return extract_cot_answer(output)
    return extract_answer(output, pattern)


# ---------------------------------------------------------------------------- dispatch
def generate_records(template, rows, prompts, session, config: EvalConfig, *, progress=None, cancel=None) -> list[dict]:
    g = template.generation
    outs = session.generate(prompts, max_new_tokens=config.max_new_tokens or g.max_new_tokens,
                            temperature=g.temperature, top_p=g.top_p, stop=g.stop, seed=config.seed,
                            progress=progress, cancel=cancel)
    from workbench.core.metrics import normalize_answer

    records = []
    for (idx, row), ctx, out in zip(rows.iterrows(), prompts, outs):
        gold = template.gold(row)
        pred = extract_answer(out.text, g.extract)
        records.append({"index": jsonable(idx), "gold": gold, "pred": pred, "output": out.text,
                        "stop_reason": out.stop_reason,
                        "correct": normalize_answer(pred) == normalize_answer(gold), "prompt": ctx})
    return records


def dispatch_generation(template, rows, prompts: Sequence[str], session, config, *, retriever=None,
                        selfask: SelfAskConfig | dict | None = None, progress=None, cancel=None) -> list[dict]:
    """Records for a generation template of any kind: direct (one generate call, template
    extraction), cot (one call, CoT extraction unless the template has a regex), self_ask
    (multi-step, `run_selfask_records`). `retriever` (or `config.retriever`, a corpus spec)
    only matters for self_ask. When the rows carry gold sub-questions, each is also asked
    directly (`attach_subquestion_scores`) so the compositionality gap can be reported."""
    config = config if config is not None else EvalConfig()
    if template.kind == "self_ask":
        retriever = retriever if retriever is not None else getattr(config, "retriever", None)
        records = run_selfask_records(template, rows, prompts, session, config, retriever,
                                      selfask=selfask, progress=progress, cancel=cancel)
    else:
        records = generate_records(template, rows, prompts, session, config, progress=progress, cancel=cancel)
        if template.kind == "cot" and not template.generation.extract:
            from workbench.core.metrics import normalize_answer

            for r in records:
                r["pred"] = extract_cot_answer(r["output"])
                r["correct"] = normalize_answer(r["pred"]) == normalize_answer(r["gold"])
    cfg = selfask_config_from(config, selfask)
    qcol, acol = cfg.subquestion_columns
    if qcol in rows.columns and acol in rows.columns:
        attach_subquestion_scores(records, rows, session, questions_column=qcol, answers_column=acol,
                                  seed=getattr(config, "seed", 0))
    return records


# ---------------------------------------------------------------------------- sub-questions
SUBQ_PROMPT = ("Question: What is the capital of France?\nAnswer: Paris\n\n"
               "Question: How many legs does a spider have?\nAnswer: Eight\n\n"
               "Question: {question}\nAnswer:")


def _as_list(v) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        s = v.strip()
        if s.startswith("["):
            try:
                return [str(x) for x in json.loads(s)]
            except json.JSONDecodeError:
                pass
        return [x.strip() for x in s.split("|") if x.strip()] if s else []
    try:
        return [str(x) for x in list(v)]
    except TypeError:
        return [str(v)]


def attach_subquestion_scores(records: list[dict], rows, session, *, questions_column: str = "sub_questions",
                              answers_column: str = "sub_answers", max_new_tokens: int = 24, seed: int = 0) -> None:
    """Ask every gold sub-question on its own (a fixed two-shot direct prompt, greedy, one
    line) and mark it right when the normalized gold answer is contained in the model's
    answer. Adds `sub_questions` ([{question, gold, output, correct}]) and `sub_correct`
    ([bool]) to each record. Column values: a list, a JSON list string, or 'a | b'."""
    from workbench.core.metrics import normalize_answer

    asks: list[tuple[int, str, str]] = []
    for k, (_, row) in enumerate(rows.iterrows()):
        qs, ans = _as_list(row[questions_column]), _as_list(row[answers_column])
        if len(qs) != len(ans):
            raise ConfigError(f"Row {rows.index[k]}: {len(qs)} sub-questions but {len(ans)} sub-answers.",
                              hint=f"'{questions_column}' and '{answers_column}' must line up one to one.")
        asks += [(k, q, a) for q, a in zip(qs, ans)]
    outs = session.generate([SUBQ_PROMPT.format(question=q) for _, q, _ in asks], max_new_tokens=max_new_tokens,
                            stop=["\n"], seed=seed) if asks else []
    for r in records:
        r["sub_questions"], r["sub_correct"] = [], []
    for (k, q, a), out in zip(asks, outs):
        ok = bool(normalize_answer(a)) and normalize_answer(a) in normalize_answer(out.text)
        records[k]["sub_questions"].append({"question": q, "gold": a, "output": out.text.strip(), "correct": ok})
        records[k]["sub_correct"].append(ok)


def compositionality_gap(records: Sequence[dict]) -> dict:
    """Press et al.'s compositionality gap: among questions whose sub-questions are all
    answered right, the share whose final answer is wrong.

    Needs per record `correct` (the final answer) and `sub_correct` (one bool per gold
    sub-question, e.g. from `attach_subquestion_scores`). Records without `sub_correct` are
    skipped; `gap` is None when no question has all sub-questions right."""
    with_subs = [r for r in records if r.get("sub_correct")]
    all_right = [r for r in with_subs if all(r["sub_correct"])]
    wrong = sum(not r["correct"] for r in all_right)
    return {"gap": wrong / len(all_right) if all_right else None, "n_all_sub_correct": len(all_right),
            "n_final_wrong": wrong, "n_with_subquestions": len(with_subs)}


def trace_metrics(records: Sequence[dict]) -> dict:
    """Run-level numbers for multi-step records: how chains ended, hops, tokens, and the
    compositionality gap when sub-question labels exist. Empty for records without traces
    (so it is safe to merge into any generation run's metrics)."""
    traced = [r for r in records if r.get("trace")]
    out: dict = {}
    if traced:
        n = len(traced)
        counts = {k: 0 for k in END_REASONS}
        for r in traced:
            counts[r["trace"]["end_reason"]] = counts.get(r["trace"]["end_reason"], 0) + 1
        out["end_reasons"] = counts
        out["final_answer_rate"] = counts["final_answer"] / n
        out["mean_hops"] = sum(r["trace"]["hops"] for r in traced) / n
        out["mean_generated_tokens"] = sum(r["trace"]["generated_tokens"] for r in traced) / n
    if any(r.get("sub_correct") for r in records):
        cg = compositionality_gap(records)
        out["compositionality_gap"] = cg["gap"]
        out["n_all_sub_correct"] = cg["n_all_sub_correct"]
    return out


# ---------------------------------------------------------------------------- display
_END_TEXT = {
    "final_answer": "reached a final answer",
    "no_final_answer": "FAILED: no final answer",
    "loop": "FAILED: loop (a follow-up question repeated)",
    "hop_limit": "FAILED: hop limit reached",
    "token_budget": "FAILED: token budget spent",
}


def _md(s: str | None) -> str:
    # keep model text from turning into markdown structure (headings, lists, html)
    s = "" if s is None else str(s)
    return re.sub(r"([\\`*_#<>|\[\]])", r"\\\1", " ".join(s.split()))


def trace_to_markdown(trace: dict, max_passage_chars: int = 300) -> str:
    """A trace as Markdown, one numbered step per line: follow-ups, retrieved passages (with
    BM25 scores), intermediate answers (marked retrieved or model-written), the final answer,
    and how the chain ended, pointing at the step where it failed."""
    lines = []
    if trace.get("question"):
        lines.append(f"**Question:** {_md(trace['question'])}")
        lines.append("")
    n = 0
    for st in trace.get("steps", []):
        n += 1
        k = st["kind"]
        if k == "needed":
            lines.append(f"{n}. Follow-up questions needed: {_md(st['text'])}")
        elif k == "text":
            lines.append(f"{n}. (text) {_md(st['text'])}")
        elif k == "hop":
            q = _md(st["follow_up"]) if st["follow_up"] is not None else "*(no follow-up question)*"
            lines.append(f"{n}. **Follow up {st['n']}:** {q}")
            for p in st.get("passages", [])[:3]:
                txt = p["text"] if len(p["text"]) <= max_passage_chars else p["text"][:max_passage_chars] + "..."
                score = "" if p.get("score") is None else f" [{p['score']:.2f}]"
                lines.append(f"    - retrieved{score}: {_md(txt)}")
            if st["answer"] is None:
                lines.append("    - **Intermediate answer:** *(none)*")
            else:
                lines.append(f"    - **Intermediate answer** ({st['source']}): {_md(st['answer'])}")
        elif k == "final":
            lines.append(f"{n}. **Final answer:** {_md(st['answer'])}")
    end = trace.get("end_reason")
    if end and end != "final_answer":
        n += 1
        where = f" at `{_md(trace['failed_at'])}`" if trace.get("failed_at") else ""
        lines.append(f"{n}. **Stopped here{where}.**")
    lines.append("")
    tail = f"**Ended:** {_END_TEXT.get(end, end)}"
    if trace.get("detail"):
        tail += f" ({_md(trace['detail'])})"
    tail += f". {trace.get('hops', 0)} hops, {trace.get('generated_tokens', 0)}/{trace.get('budget', '?')} tokens."
    lines.append(tail)
    return "\n".join(lines)


__all__ = ["SelfAskConfig", "Segment", "parse_selfask", "final_answer_text", "run_selfask_records",
           "dispatch_generation", "extract_prediction", "extract_cot_answer", "attach_subquestion_scores",
           "compositionality_gap", "trace_metrics", "trace_to_markdown", "build_trace", "END_REASONS",
           "RETRIEVER_STOPS", "selfask_config_from"]
