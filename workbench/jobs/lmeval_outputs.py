"""An lm-eval task's requests, responses, filters and metrics, for all four output types.

    result = run_outputs(task, template, rows, contexts_fn, session)   # EvalResult

Requests are built as lm-eval builds them (api/task.py construct_requests) and sent to the
session, which serves them on every engine it has (native decoder, transformers, an
OpenAI-compatible server):
  * multiple_choice: (context, delimiter + choice) per choice, or for a multiple-input task
    (winogrande) (context_i, delimiter + target) per choice; + ("", delimiter + choice)
    when acc_mutual_info is asked for. Scored through session.loglikelihood, i.e. the
    prefix tree: a context is computed once for all of its choices;
  * loglikelihood: (context, doc_to_target), is_greedy kept;
  * loglikelihood_rolling: the whole doc_to_target over rolling token windows of the
    model's length (core/lmeval_scoring.rolling_windows), log-likelihoods summed;
  * generate_until: until / max_gen_toks / do_sample + temperature / top_p from
    generation_kwargs, `repeats` generations per doc (greedy repeats are equal, so they are
    generated once and repeated). The common prompt prefix is kept (prefix_generate.py).
Then every filter pipeline of the task (core/lmeval_filters.py) and its metrics
(core/lmeval_scoring.py, or the task's trusted process_results); metrics are reported as
"metric,pipeline" (lm-eval's keys), and under the bare name too for the "none" pipeline.
Per-row items are kept in the records, for paired verdicts (jobs/task_compare.py).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from workbench.core import lmeval_scoring as S
from workbench.core.lmeval_filters import build_pipelines
from workbench.core.lmeval_tasks import LmEvalTask, to_doc
from workbench.errors import ConfigError, TemplateError


def jsonable(x: Any) -> Any:
    """`x` with numpy arrays and scalars as plain Python (for results.json)."""
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    return x


def _token_loglik(session, pairs, progress=None, cancel=None) -> list[tuple[float, bool]]:
    """(sum log-prob, greedy) of each (context ids, continuation ids): the session's engine scores
    them, whichever it is (built-in decoder, transformers, or an inference server)."""
    if not pairs:
        return []
    return [(r.logprob, r.greedy) for r in session.loglikelihood_tokens(pairs, progress=progress, cancel=cancel)]


def _loglik(session, reqs, progress=None, cancel=None) -> list[tuple[float, bool]]:
    if not reqs:
        return []
    out = session.loglikelihood(reqs, progress=progress, cancel=cancel)
    return [(r.logprob, bool(getattr(r, "greedy", False))) for r in out]


# ------------------------------------------------------------------------------ responses
def _mc_responses(task, template, docs, contexts, session, specs, progress, cancel):
    """Per doc: (lls, greedy, choices, gold, unconditional lls or None)."""
    delim = task.target_delimiter
    mutual = any(s.name == "acc_mutual_info" for s in specs)
    reqs, spans, meta = [], [], []
    for row, ctx in zip(docs, contexts):
        choices = template._row_choices(row)
        if isinstance(ctx, list):   # multiple input: one context per choice, one shared continuation
            gold = template._call("doc_to_text", row)
            cont = task.doc_target(row)
            cont = cont[0] if isinstance(cont, list) else cont
            mine = [(c, f"{delim}{cont}") for c in ctx]
        else:
            gold = task.doc_target(row)
            mine = [(ctx, f"{delim}{c}") for c in choices]
        if mutual:
            mine += [("", f"{delim}{c}") for c in choices]
        spans.append((len(reqs), len(reqs) + len(mine)))
        reqs += mine
        meta.append((choices, gold))
    res = _loglik(session, reqs, progress, cancel)
    out = []
    for (a, b), (choices, gold) in zip(spans, meta):
        lls = [r[0] for r in res[a:b]]
        greedy = [r[1] for r in res[a:b]]
        n = len(choices)
        out.append((lls[:n], greedy[:n], choices, gold, lls[n:] if mutual else None))
    return out


def _rolling(task, docs, session, max_length, progress, cancel) -> list[float]:
    return rolling_logliks([str(task.doc_target(row)) for row in docs], session, max_length, progress, cancel)


def rolling_logliks(texts: Sequence[str], session, max_length=None, progress=None, cancel=None) -> list[float]:
    """Each text's log-likelihood summed over lm-eval's rolling token windows of the model's
    length (core/lmeval_scoring.rolling_windows)."""
    prefix = session._prefix_token_id()
    max_len = int(max_length or session.max_length)
    pairs, owner = [], []
    for i, text in enumerate(texts):
        for w in S.rolling_windows(session.encode(str(text)), prefix, max_len):
            pairs.append(w)
            owner.append(i)
    res = _token_loglik(session, pairs, progress, cancel)
    sums = [0.0] * len(texts)
    for i, (lp, _) in zip(owner, res):
        sums[i] += lp
    return sums


def _generate(task, contexts, session, progress, cancel, seed: int) -> list[list[str]]:
    return generate_texts(task.generation_kwargs, task.repeats, contexts, session, progress=progress, cancel=cancel,
                          seed=seed, where=f"task {task.name!r}")


def generate_texts(gk: dict, reps: int, contexts: Sequence[str], session, *, progress=None, cancel=None, seed: int = 0,
                   where: str = "the task") -> list[list[str]]:
    """`reps` generations per context with lm-eval's generation_kwargs (until, max_gen_toks,
    do_sample, temperature, top_p); greedy repeats are generated once and repeated."""
    until = gk.get("until")
    until = [until] if isinstance(until, str) else list(until or [])
    max_gen = int(gk.get("max_gen_toks", 256))
    do_sample = bool(gk.get("do_sample", False))
    temperature = float(gk.get("temperature", 0.0) or 0.0)
    if not do_sample:
        temperature = 0.0       # lm-eval/HF: do_sample false means greedy whatever the temperature
    elif temperature == 0.0:
        raise ConfigError(f"{where}: do_sample with temperature 0", "set a temperature > 0")
    top_p = float(gk.get("top_p", 1.0) or 1.0)
    tok = getattr(session, "tokenizer", None)
    eos = tok.decode([tok.eos_token_id]) if tok is not None and getattr(tok, "eos_token_id", None) is not None else None
    stop = until + ([eos] if eos and eos not in until else [])
    if temperature == 0.0:
        # Greedy repeats are identical: generate once per doc, repeat the text.
        gens = session.generate(list(contexts), max_new_tokens=max_gen, temperature=0.0, stop=stop,
                                progress=progress, cancel=cancel)
        return [[g.text] * reps for g in gens]
    out: list[list[str]] = [[] for _ in contexts]
    for r in range(reps):
        gens = session.generate(list(contexts), max_new_tokens=max_gen, temperature=temperature, top_p=top_p,
                                stop=stop, seed=seed + r, cancel=cancel)
        for i, g in enumerate(gens):
            out[i].append(g.text)
        if progress:
            progress(r + 1, reps)
    return out


# ------------------------------------------------------------------------------ metrics
def _call_metric(spec, gold, result) -> Any:
    fn = spec.fn
    try:
        v = fn(references=[gold], predictions=[result], **spec.kwargs)
    except TypeError:
        v = fn([gold, result])
    return v


def _items(task: LmEvalTask, specs, out_type: str, row, resp, filtered) -> dict:
    """One doc's metric items from its filtered response (lm-eval's process_results)."""
    if task.process_results is not None:
        try:
            return dict(task.process_results(to_doc(row), filtered) or {})
        except (Exception, SystemExit) as e:  # noqa: BLE001 - the task's own code
            raise TemplateError(f"task {task.name!r}: process_results failed on a doc: {type(e).__name__}: {e}",
                                "check that the data has the task's columns") from e
    if out_type == "multiple_choice":
        lls, greedy, choices, gold, uncond = resp
        lls = [f[0] for f in filtered]
        greedy = [bool(f[1]) for f in filtered]
        return S.mc_items(specs, lls, greedy, choices, gold, uncond)
    if out_type == "loglikelihood":
        ll, greedy = filtered[0]
        return S.loglikelihood_items(specs, ll, greedy)
    if out_type == "loglikelihood_rolling":
        return S.rolling_items(specs, filtered[0], str(task.doc_target(row)))
    gold = task.doc_target(row)
    choices = task.doc_choices(row) if task.config.get("doc_to_choice") is not None else None
    out = S.generate_items([s for s in specs if s.fn is None], filtered[0], gold, choices)
    for s in specs:
        if s.fn is not None:
            g = choices[gold] if choices is not None else gold
            v = _call_metric(s, g, filtered[0])
            if isinstance(v, dict):
                out.update(v)
            else:
                out[s.name] = v
    return out


def run_outputs(task: LmEvalTask, template, rows, contexts: Sequence, session, *, max_length: int | None = None,
                seed: int = 0, progress: Callable | None = None, cancel: Callable | None = None,
                source: str = "") -> "Any":
    """Score `rows` (a DataFrame of the task's docs) whose contexts are given (a string per
    row, or a list of strings per row for a multiple-input task); an EvalResult."""
    from workbench.engine.versions import package_versions
    from workbench.jobs.inference import EvalResult

    t0 = time.perf_counter()
    out_type = task.output_type
    specs = S.metric_specs(task.code or task.config, out_type)
    docs = [r for _, r in rows.iterrows()]
    doc_dicts = [to_doc(r) for r in docs]
    session.load()
    t_load = time.perf_counter()
    if out_type == "multiple_choice":
        resps = _mc_responses(task, template, docs, contexts, session, specs, progress, cancel)
        # lm-eval filters each choice's request on its own: [(ll, greedy)] per request
        per_request = [[[(ll, g)] for ll, g in zip(r[0], r[1])] for r in resps]
    elif out_type == "loglikelihood":
        reqs = [(c, str(task.doc_target(r))) for r, c in zip(docs, contexts)]
        resps = _loglik(session, reqs, progress, cancel)
        per_request = [[[r]] for r in resps]
    elif out_type == "loglikelihood_rolling":
        resps = _rolling(task, docs, session, max_length, progress, cancel)
        per_request = [[[r]] for r in resps]
    else:
        resps = _generate(task, contexts, session, progress, cancel, seed)
        per_request = [[r] for r in resps]
    pipes = build_pipelines((task.code or task.config).get("filter_list"), where=f"task {task.name!r}")
    records = []
    for i, (idx, row) in enumerate(rows.iterrows()):
        ctx = contexts[i]
        rec = {"index": jsonable(idx), "prompt": ctx, "resps": jsonable(resps[i]), "filtered": {}, "items": {},
               "scores": {}}
        if out_type == "multiple_choice":
            lls, greedy, choices, gold, _ = resps[i]
            rec["logprobs"] = {c: ll for c, ll in zip(choices, lls)}
            gi = gold if isinstance(gold, int) else (choices.index(gold) if isinstance(gold, str) and gold in choices else -1)
            rec["gold"] = choices[gi] if 0 <= gi < len(choices) else str(gold)
            rec["pred"] = choices[int(np.argmax(lls))]
        elif out_type == "generate_until":
            g = task.doc_target(row)
            ch = task.doc_choices(row) if task.config.get("doc_to_choice") is not None else None
            rec["gold"] = jsonable(ch[g] if ch is not None else g)
        else:
            rec["gold"] = str(task.doc_target(row))
        records.append(rec)
    metrics: dict[str, Any] = {"n": len(records)}
    per_metric: dict[str, list] = {}
    for pipe in pipes:
        if out_type == "multiple_choice":
            # every request of every doc through the pipeline, then regrouped per doc
            flat = [req for doc in per_request for req in doc]
            owners = [i for i, doc in enumerate(per_request) for _ in doc]
            filt = pipe.apply(flat, [doc_dicts[i] for i in owners])
            filtered_docs: list[list] = [[] for _ in docs]
            for i, f in zip(owners, filt):
                filtered_docs[i].append(f)
        else:
            filt = pipe.apply([doc[0] for doc in per_request], doc_dicts)
            filtered_docs = [[f] for f in filt]
        for i, (row, rec) in enumerate(zip(docs, records)):
            items = _items(task, specs, out_type, row, resps[i], filtered_docs[i])
            items.pop("_pred", None)
            if out_type != "multiple_choice":
                rec["filtered"][pipe.name] = jsonable(filtered_docs[i][0])
            for name, item in items.items():
                key = f"{name},{pipe.name}"
                rec["items"][key] = jsonable(item)
                spec = next((s for s in specs if s.name == name), S.MetricSpec(name))
                rec["scores"][key] = S.row_value(spec, item)
                per_metric.setdefault(key, []).append(item)
        for s in specs:
            key = f"{s.name},{pipe.name}"
            if key not in per_metric:
                continue
            val = S.aggregate(s, per_metric[key])
            metrics[key] = float(val) if isinstance(val, (int, float, np.floating, np.integer)) else val
            if pipe.name == "none":
                metrics[s.name] = metrics[key]
        # process_results may add metrics the metric_list does not name: lm-eval means them
        for key, items in per_metric.items():
            if key.endswith(f",{pipe.name}") and key not in metrics:
                try:
                    metrics[key] = float(sum(items) / len(items))
                except TypeError:
                    continue
                if pipe.name == "none":
                    metrics[key.split(",")[0]] = metrics[key]
    if pipes and out_type == "generate_until":
        for rec in records:
            v = rec["filtered"].get(pipes[0].name, "")
            rec["pred"] = v if isinstance(v, str) else str(v)
    elif out_type in ("loglikelihood", "loglikelihood_rolling"):
        for rec in records:
            rec["pred"] = rec["resps"][0] if out_type == "loglikelihood" else rec["resps"]
    t_end = time.perf_counter()
    provenance = {
        "template": {"name": template.name, "hash": template.content_hash(), "yaml": template.to_yaml()},
        "model": {"name": session.config.model, "identity": session.identity, "adapter": session.adapter,
                  "device": session.device, "dtype": str(session.dtype).replace("torch.", ""),
                  "backend": session.backend, "model_identity": session.model_identity()},
        "data": {"name": task.name, "source": source, "n_examples": len(records)},
        "warnings": [],
        "lm_eval_output": {"output_type": out_type, "filters": [p.name for p in pipes],
                           "metrics": {s.name: {"aggregation": s.aggregation_name, "higher_is_better": s.higher_is_better,
                                                "kwargs": jsonable({k: v for k, v in s.kwargs.items() if not callable(v)})}
                                       for s in specs},
                           "repeats": task.repeats if out_type == "generate_until" else 1},
        "versions": package_versions(),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    timings = {"total_s": round(t_end - t0, 3), "load_s": round(t_load - t0, 3), "model_s": round(t_end - t_load, 3),
               "examples_per_s": round(len(records) / max(1e-9, t_end - t_load), 2)}
    kind = "classification" if out_type == "multiple_choice" else "generation"
    res = EvalResult(task=kind, metrics=metrics, records=records, provenance=provenance, timings=timings)
    return res


def finite(x: float) -> bool:
    return isinstance(x, float) and math.isfinite(x)
