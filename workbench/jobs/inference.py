"""Template × examples → requests → session → predictions and metrics.

    cfg = EvalConfig(shots=4, seed=1, method="acc", limit=200)
    result = evaluate(template, dataset, get_session("default"), cfg)
    result.metrics["accuracy"], result.records[0]["scores"]
    result.save("results.json")

Classification scores each class by the log-likelihood of `target_delimiter + verbalizer`
after the context, exactly as lm-evaluation-harness's multiple_choice does:
  acc       argmax of summed log-probs
  acc_norm  summed log-prob / len(choice) in characters (lm-eval's acc_norm)
  acc_bytes summed log-prob / len(choice.encode()) (lm-eval's acc_bytes)
A class with several verbalizers scores as the max (default) or mean of its words.
Calibration (optional): "contextual" (Zhao et al. 2021: divide the class probabilities by
those of content-free inputs such as "N/A") or "pmi" (subtract the log-likelihood of the
continuation with no context, lm-eval's acc_mutual_info).
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from workbench.core.config import CALIBRATIONS, METHODS, SPLITS, EvalConfig  # noqa: F401 (re-exported)
from workbench.core.progress import staged
from workbench.core.records import hash_indices, jsonable
from workbench.engine.versions import package_versions
from workbench.errors import ConfigError

SCHEMA_VERSION = 1
LARGE_REQUESTS = 10_000   # warn before scoring more requests than this (e.g. 10,000 classes x 2 rows)
log = logging.getLogger("workbench")


def request_count(template, rows) -> int:
    """How many log-likelihood requests classification will send (static choices; per-row
    choices are counted on the first row)."""
    if template.task != "classification" or len(rows) == 0:
        return 0
    if template.choices_expr:
        per_row = len(template.choices_for(rows.iloc[0]))
    else:
        per_row = sum(len(w) for w in template.answer_choices.values())
    return per_row * len(rows)


def count_truncated(template, rows, prompts: Sequence[str], session) -> tuple[int, int]:
    """(prompts cut at the left to fit the model's window, the window). A prompt is cut when
    its tokens and its longest continuation (classification) or max_new_tokens (generation)
    do not fit, as scoring and generation then drop its first tokens."""
    window = getattr(session, "max_length", None)
    if not isinstance(window, int) or window <= 0:   # a backend that does not say its window
        return 0, 0
    if template.task == "classification":
        first = rows.iloc[0] if len(rows) else {}
        words = [w for _, ws in template.choices_for(first) for w in ws] if len(rows) else []
        reserve = max((len(session.encode(template.target_delimiter + w)) for w in words), default=1) - 1
    else:
        reserve = template.generation.max_new_tokens
    n = 0
    for p in prompts:
        # a token is at least one UTF-8 byte: short prompts cannot be cut (the +8 covers BOS and the like)
        if len(p.encode("utf-8")) + reserve + 8 <= window:
            continue
        if len(session.encode(p)) + reserve > window:
            n += 1
    return n, window
@dataclass
class EvalResult:
    task: str                                   # "classification" | "generation"
    metrics: dict
    records: list[dict]
    provenance: dict
    timings: dict
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: str | Path) -> Path:
        """Write results.json atomically. A write that fails (a full disk: ENOSPC) removes its
        partial temp file and must not cost the finished run: the results go to a rescue file
        in the temp folder instead, and the error says where (issue 29, item 10)."""
        from workbench.core.fileutil import write_text_atomic

        path = Path(path)
        text = json.dumps(self.to_dict(), indent=1, ensure_ascii=False)
        try:
            return write_text_atomic(path, text)
        except OSError as e:
            raise _rescued(self, path, e) from None

    @classmethod
    def from_dict(cls, d: dict) -> "EvalResult":
        return cls(**{k: d[k] for k in ("task", "metrics", "records", "provenance", "timings")},
                   schema_version=d.get("schema_version", SCHEMA_VERSION))

    @classmethod
    def load(cls, path: str | Path) -> "EvalResult":
        return cls.from_dict(json.loads(Path(path).read_text()))

    @property
    def golds(self) -> list[str]:
        return [r["gold"] for r in self.records]

    @property
    def preds(self) -> list[str]:
        return [r["pred"] for r in self.records]


# ---------------------------------------------------------------------------- prompts
def eval_rows(dataset, config: EvalConfig):
    """(rows to evaluate, demo pool), both DataFrames keeping the dataset's row index."""
    from workbench.core.data import split_dataset

    df = dataset.df
    if config.split == "all":
        rows, pool = df, df
    else:
        sp = split_dataset(dataset, seed=config.split_seed, dev=config.dev_fraction, test=config.test_fraction)
        rows = {"test": sp.test, "dev": sp.dev, "train": sp.train}[config.split]
        pool = sp.train
    if config.limit:
        rows = rows.iloc[: config.limit]
    if len(rows) == 0:
        raise ConfigError(f"The {config.split} split of '{dataset.name}' is empty.",
                          hint="Use a larger dataset, a different split, or --split all.")
    return rows, pool


def demos_for(template, pool, config: EvalConfig, row_index: Any | None, label_column: str | None, row=None):
    """Demonstrations for one example (fixed sampling ignores row_index). 'similar' sampling
    needs the row itself; without it (content-free calibration inputs) it falls back to the
    fixed seeded draw."""
    from workbench.core.data import sample_demos

    if config.shots <= 0:
        return []
    if config.sampling == "similar" and row is not None:
        from workbench.engine.embeddings import similar_demos

        return similar_demos(template, pool, row, config.shots, exclude=row_index)
    # per-example seeds must not use hash(): Python salts str hashes per process
    seed = config.seed if config.sampling == "fixed" else _stable_seed(config.seed, row_index)
    exclude = row_index if config.sampling == "per_example" else None
    demos = sample_demos(pool, config.shots, label_column=label_column, per_class=config.per_class,
                         balanced=config.balanced, seed=seed, exclude=exclude)
    return [r for _, r in demos.iterrows()]


def _stable_seed(seed: int, row_index) -> int:
    import hashlib

    return int(hashlib.sha256(f"{seed}:{row_index}".encode()).hexdigest()[:8], 16)


def build_prompts(template, rows, pool, config: EvalConfig, session=None, demos_fn=None, *,
                  progress: Callable[..., None] | None = None) -> list[str]:
    """The exact context string the model receives for each row (chat template applied).
    `demos_fn(index, row)`, when given, picks each row's demonstrations (lm-eval's samplers).
    `progress(done, total, stage)` sees "building prompts" with the rows built so far
    (and "embedding rows" first when 'similar' demos need every row embedded)."""
    from workbench.core.progress import every, staged

    progress = staged(progress)
    n = len(rows)
    label_col = template.label_column if template.label_column in rows.columns else None
    fixed = demos_for(template, pool, config, None, label_col) if config.sampling == "fixed" and demos_fn is None else None
    if config.sampling == "similar" and config.shots > 0 and demos_fn is None:
        from workbench.engine.embeddings import warm

        if progress:
            progress(0, n, "embedding rows")
        warm(template, rows)   # one batch instead of one encoder call per row
        if progress:
            progress(n, n, "embedding rows")
    if progress:
        progress(0, n, "building prompts")
    step = every(n)
    # Fixed demonstrations are the same text in every prompt: rendered once, not once per row.
    fixed_block = template.render_demos(fixed) if fixed is not None else None
    prompts = []
    for idx, row in rows.iterrows():
        if fixed_block is not None:
            ctx = template.build_context(row, demo_block=fixed_block)
        else:
            demos = demos_fn(idx, row) if demos_fn is not None else demos_for(template, pool, config, idx, label_col, row=row)
            ctx = template.build_context(row, demos)
        if template.chat:
            if session is None:
                raise ConfigError("This template uses the chat template, which needs a loaded model.")
            ctx = session.apply_chat(ctx)
        prompts.append(ctx)
        if progress and (len(prompts) % step == 0 or len(prompts) == n):
            progress(len(prompts), n, "building prompts")
    return prompts


# ---------------------------------------------------------------------------- scoring
def _normalize(logprob: float, choice: str, method: str) -> float:
    if method == "acc_norm":
        return logprob / max(1, len(choice))
    if method == "acc_bytes":
        return logprob / max(1, len(choice.encode("utf-8")))
    return logprob


def _aggregate(values: Sequence[float], how: str) -> float:
    if how == "mean":
        # mean of probabilities is dominated by the best word anyway; mean of log-probs is what
        # "the mean of its words" means for a log-linear scorer, and it is what we document.
        return sum(values) / len(values)
    return max(values)


def _softmax(xs: Sequence[float]) -> list[float]:
    m = max(xs)
    e = [math.exp(x - m) for x in xs]
    s = sum(e)
    return [v / s for v in e]


def _argmax(xs: Sequence[float]) -> int:
    best = 0
    for i, x in enumerate(xs):
        if x > xs[best]:
            best = i   # strict '>' keeps the first of ties, like numpy.argmax
    return best


def classify(template, rows, prompts: Sequence[str], session, config: EvalConfig, *,
             progress: Callable[..., None] | None = None, cancel: Callable[[], bool] | None = None,
             pool=None, with_gold: bool = True) -> list[dict]:
    """Score every (prompt, class verbalizer) pair and return one record per row.
    `with_gold=False` scores unlabeled rows (prediction only): gold and correct are None.
    `progress(done, total, stage)` sees "scoring" (rows; calibration's requests included)."""
    reqs: list[tuple[str, str]] = []
    layout = []  # per row: [(label, [(choice_text, req_idx), ...]), ...]
    for (idx, row), ctx in zip(rows.iterrows(), prompts):
        per_label = []
        for label, words in template.choices_for(row):
            slots = []
            for w in words:
                slots.append((w, len(reqs)))
                reqs.append((ctx, template.target_delimiter + w))
            per_label.append((label, slots))
        layout.append(per_label)
    extra_reqs: list[tuple[str, str]] = []
    if config.calibration == "pmi":
        # lm-eval's acc_mutual_info: the same continuation scored with an empty context.
        uniq = sorted({c for _, c in reqs})
        extra_reqs = [("", c) for c in uniq]
    cf_prompts: list[str] = []
    cf_sets: dict[tuple, int] = {}       # choice set -> offset of its content-free requests in extra_reqs
    if config.calibration == "contextual":
        # Content-free scores per distinct choice set: rows whose choices differ (choices_expr,
        # lm-eval and BIG-bench tasks) are each calibrated against their own choices.
        cf_prompts = _content_free_prompts(template, rows, pool, config, session)
        for per_label in layout:
            sig = _choice_set(per_label)
            if sig in cf_sets:
                continue
            cf_sets[sig] = len(extra_reqs)
            for cfp in cf_prompts:
                for _, words in sig:
                    for w in words:
                        extra_reqs.append((cfp, template.target_delimiter + w))
    # One call for the rows' and calibration's requests: the prefix tree shares what they have
    # in common (few-shot demonstrations under content-free prompts, prefix_scoring.py). The
    # stage counts rows: calibration's few requests are folded into the same count.
    progress = staged(progress)
    lls = session.loglikelihood(reqs + extra_reqs, cancel=cancel, prefix_cache=config.prefix_cache,
                                progress=_rows_progress(progress, len(rows), len(reqs) + len(extra_reqs), "scoring"))
    main, extra = lls[: len(reqs)], lls[len(reqs):]
    if progress:
        progress(len(rows), len(rows), "scoring")

    uncond = {}
    if config.calibration == "pmi":
        uncond = {c: ll.logprob for (_, c), ll in zip(extra_reqs, extra)}
    p_cf: dict[tuple, list[float]] = {}
    for sig, start in cf_sets.items():
        # mean class distribution over the content-free inputs: p_cf[sig][k], one entry per label
        mean = [0.0] * len(sig)
        j = start
        for _ in cf_prompts:
            label_scores = []
            for _, words in sig:
                vals = []
                for w in words:
                    vals.append(_normalize(extra[j].logprob, w, config.method))
                    j += 1
                label_scores.append(_aggregate(vals, template.choice_aggregate))
            for k, p in enumerate(_softmax(label_scores)):
                mean[k] += p / len(cf_prompts)
        p_cf[sig] = mean

    records = []
    for (idx, row), ctx, per_label in zip(rows.iterrows(), prompts, layout):
        labels, scores, raw = [], [], []
        for label, slots in per_label:
            vals, raws = [], []
            for w, ri in slots:
                lp = main[ri].logprob
                if uncond:
                    lp -= uncond[template.target_delimiter + w]
                raws.append(main[ri].logprob)
                vals.append(_normalize(lp, w, config.method))
            labels.append(label)
            scores.append(_aggregate(vals, template.choice_aggregate))
            raw.append(max(raws))
        if p_cf:
            # contextual calibration: log p(label | x) - log p_cf(label), p_cf of this row's choices
            probs = _softmax(scores)
            q = p_cf[_choice_set(per_label)]
            scores = [math.log(max(p, 1e-300)) - math.log(max(qk, 1e-300)) for p, qk in zip(probs, q)]
        k = _argmax(scores)
        gold = template.gold(row) if with_gold else None
        records.append({
            "index": jsonable(idx), "gold": gold, "pred": labels[k],
            "correct": (labels[k] == gold) if with_gold else None,
            "scores": {lab: round(s, 6) for lab, s in zip(labels, scores)},
            "logprobs": {lab: round(s, 6) for lab, s in zip(labels, raw)},
            "prompt": ctx,
        })
    return records


def _rows_progress(progress, n_rows: int, n_reqs: int, stage: str):
    """The backend counts requests; people count rows. Every row's requests share its context,
    which the prefix tree scores as a whole, so requests done x rows / requests is the rows
    done (exact for a fixed set of choices, close for per-row choices)."""
    if progress is None:
        return None
    progress(0, n_rows, stage)

    def cb(done: int, total: int, *_) -> None:
        progress(min(n_rows, done * n_rows // max(1, total or n_reqs)), n_rows, stage)
    return cb


def _choice_set(per_label) -> tuple:
    """A row's choices as a hashable key: ((label, (word, ...)), ...)."""
    return tuple((label, tuple(w for w, _ in slots)) for label, slots in per_label)


def _content_free_prompts(template, rows, pool, config: EvalConfig, session) -> list[str]:
    first = rows.iloc[0]
    label_col = template.label_column if template.label_column in rows.columns else None
    demos = demos_for(template, pool, config, rows.index[0] if config.sampling == "per_example" else None, label_col)
    out = []
    cols = template.variables() & set(rows.columns)
    for cf in config.content_free:
        row = first.copy()
        for c in cols:
            if c != template.label_column:
                row[c] = cf
        ctx = template.build_context(row, demos)
        out.append(session.apply_chat(ctx) if template.chat else ctx)
    return out


# ---------------------------------------------------------------------------- evaluate
def evaluate(template, dataset, session, config: EvalConfig | None = None, *,
             progress: Callable[..., None] | None = None, cancel: Callable[[], bool] | None = None,
             rows=None, pool=None, demos_fn=None) -> EvalResult:
    """Run one template over a dataset split; the one function behind UI, CLI and API.
    `demos_fn(index, row)` overrides the demonstration draw (lm-eval tasks' own samplers).
    `progress(done, total, stage)` sees real counts per stage (core/progress.py); a two-argument
    callback gets (done, total) of each stage."""
    from workbench.core.metrics import classification_metrics, generation_metrics

    config = config or EvalConfig()
    config.validate()
    t0 = time.perf_counter()
    problems = [p for p in template.validate(columns=list(dataset.df.columns)) if p.severity == "error"]
    if problems:
        from workbench.errors import TemplateError
        raise TemplateError("The template has errors:\n" + "\n".join(f"  - {p.field}: {p.message}" for p in problems),
                            hint="Fix them in the template (the Templates tab shows where).")
    if rows is None:
        rows, default_pool = eval_rows(dataset, config)
        pool = default_pool if pool is None else pool
    if pool is None:
        pool = rows
    warnings: list[str] = []
    n_req = request_count(template, rows)
    if n_req > LARGE_REQUESTS:
        warnings.append(f"{n_req:,} scoring requests ({len(rows):,} rows x {n_req // max(1, len(rows)):,} choices); "
                        "this takes long: use --limit, fewer classes, or per-row choices (choices_expr)")
        log.warning(warnings[-1])
    session.load()
    t_load = time.perf_counter()
    work0 = _work_counters(session)
    from workbench.jobs import usage

    used0 = usage.snapshot(session)
    stats0 = dict(getattr(session, "stats", None) or {})
    device = getattr(session, "device", None) if getattr(session, "remote", None) is None else None
    from workbench.engine.device_memory import memory_report, reset_peak
    reset_peak(device)
    progress = staged(progress)
    prompts = build_prompts(template, rows, pool, config, session, demos_fn=demos_fn, progress=progress)
    n_truncated, window = count_truncated(template, rows, prompts, session)
    if n_truncated:
        warnings.append(f"{n_truncated} of {len(prompts)} prompts are longer than the model's window of {window} "
                        "tokens and were cut at the left (their beginning is not seen by the model)")
        log.warning(warnings[-1])
    t_prompts = time.perf_counter()
    if template.task == "generation":
        from workbench.jobs.selfask import dispatch_generation, trace_metrics

        # direct, chain-of-thought (answer extraction) and self-ask (multi-step, traces)
        gen_progress = None
        if progress:
            progress(0, len(rows), "generating")
            gen_progress = lambda d, t, *_: progress(min(d, len(rows)), len(rows), "generating")  # noqa: E731
        records = dispatch_generation(template, rows, prompts, session, config, progress=gen_progress, cancel=cancel)
        if progress:
            progress(len(rows), len(rows), "generating")
        gm = generation_metrics([r["gold"] for r in records], [r["pred"] for r in records])
        metrics = {k: v for k, v in gm.items() if not isinstance(v, (list, dict))}
        metrics["n"] = len(records)
        metrics.update(trace_metrics(records))
        per = gm["per_example"]
        for r, f1, contained in zip(records, per["token_f1"], per["contains"]):
            r["token_f1"], r["contains"] = f1, contained
        if template.metrics:
            # the template's own reference metrics (sacrebleu / rouge-score), kept per row for paired verdicts
            from workbench.core.gen_verdicts import metric_corpus, metric_rows

            golds, preds = [r["gold"] for r in records], [r["pred"] for r in records]
            per_metric = metric_rows(template.metrics, preds, golds)
            for i, r in enumerate(records):
                r["metrics"] = {m: round(float(v[i]), 6) for m, v in per_metric.items()}
            metrics["reference_metrics"] = metric_corpus(template.metrics, preds, golds)
    else:
        records = classify(template, rows, prompts, session, config, progress=progress, cancel=cancel, pool=pool)
        labels = _label_order(template, records)
        warnings.extend(_one_class_warnings(template, records))
        metrics = classification_metrics([r["gold"] for r in records], [r["pred"] for r in records], labels)
    t_end = time.perf_counter()
    n_tokens = sum(len(session.encode(p)) for p in prompts[:50]) * len(prompts) / max(1, min(50, len(prompts)))
    timings = {"total_s": round(t_end - t0, 3), "load_s": round(t_load - t0, 3),
               "prompts_s": round(t_prompts - t_load, 3), "model_s": round(t_end - t_prompts, 3),
               "examples_per_s": round(len(records) / max(1e-9, t_end - t_prompts), 2),
               "approx_prompt_tokens": int(n_tokens)}
    work1 = _work_counters(session)
    if work0 is not None and work1 is not None:
        # tokens the model read vs. the distinct (prefix, token) positions the requests needed
        timings["tokens_forwarded"] = work1[0] - work0[0]
        timings["tokens_minimal"] = work1[1] - work0[1]
        st1 = getattr(session, "stats", None) or {}
        # padded tokens, LM-head rows and forward seconds: what a FLOP count (MFU) needs
        for k in ("padded", "head_positions", "forward_s", "oom_halvings"):
            if k in st1:
                timings[k] = round(st1[k] - stats0.get(k, 0), 4)
    # what the job spent (jobs/usage.py): generated tokens, server requests; a served model's scoring
    # is not counted by the local scorer, so its prompts' token count stands in
    spent = usage.since(used0, session)
    timings["tokens_generated"], timings["requests"] = spent["tokens_generated"], spent["requests"]
    if "tokens_forwarded" not in timings or getattr(session, "remote", None) is not None:
        timings["tokens_forwarded"], timings["tokens_approx"] = int(n_tokens), True
    # every result says what memory it took (on CUDA: now and at peak during this evaluation)
    timings["memory"] = memory_report(device)
    provenance = {
        "template": {"name": template.name, "hash": template.content_hash(), "yaml": template.to_yaml()},
        "model": {"name": session.config.model, "identity": session.identity, "adapter": session.adapter,
                  "device": session.device, "dtype": str(session.dtype).replace("torch.", ""),
                  "backend": session.backend, "model_identity": session.model_identity()},
        "data": {"name": dataset.name, "source": dataset.source, "fingerprint": dataset.fingerprint(),
                 "split": config.split, "split_seed": config.split_seed, "n_examples": len(records),
                 "row_indices_hash": hash_indices([r["index"] for r in records]),
                 "n_truncated": n_truncated},
        "warnings": warnings,
        "config": asdict(config),
        "versions": package_versions(),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return EvalResult(task=template.task, metrics=metrics, records=records, provenance=provenance, timings=timings)


def _work_counters(session) -> tuple[int, int] | None:
    """(tokens forwarded, tokens minimal) so far, from a session that counts them."""
    st = getattr(session, "stats", None)
    if not isinstance(st, dict) or "tokens_minimal" not in st:
        return None
    return st.get("tokens_forwarded", 0), st["tokens_minimal"]
def _one_class_warnings(template, records) -> list[str]:
    """A run whose task has one class reports accuracy 1.0 (or the share of one label) that says
    nothing about the prompt: say so next to the numbers."""
    out = []
    if not template.choices_expr and len(template.answer_choices) == 1:
        out.append(f"the template has one class ('{next(iter(template.answer_choices))}'): every prediction is that "
                   "class, so accuracy says nothing about the prompt")
    golds = {r["gold"] for r in records}
    if len(records) > 1 and len(golds) == 1:
        out.append(f"every evaluated row has the gold label '{next(iter(golds))}': accuracy is only how often the "
                   "model picks it")
    for w in out:
        log.warning(w)
    return out


MAX_METRIC_LABELS = 1000   # above this, per-class metrics cover only the labels that occur


def _label_order(template, records) -> list[str]:
    labels = list(template.answer_choices) if template.answer_choices else []
    seen = set(labels)
    for r in records:
        for lab in (r["gold"], r["pred"]):
            if lab not in seen:
                labels.append(lab)
                seen.add(lab)
    if len(labels) > MAX_METRIC_LABELS:
        # 10,000 classes would make a 10,000 x 10,000 confusion matrix (gigabytes in results.json);
        # a class that is neither gold nor predicted has no precision or recall to report anyway.
        occurring = {lab for r in records for lab in (r["gold"], r["pred"])}
        labels = [lab for lab in labels if lab in occurring]
    return labels








def _rescued(result: "EvalResult", path: Path, err: OSError):
    """A ConfigError for a results file that could not be written, after keeping the results
    in a rescue file elsewhere (the temp folder, else the working folder) when possible."""
    import os
    import tempfile

    from workbench.errors import ConfigError

    why = err.strerror or str(err)
    compact = json.dumps(result.to_dict(), ensure_ascii=False)
    for folder in (Path(tempfile.gettempdir()), Path.cwd()):
        rescue = folder / f"workbench-rescued-{os.getpid()}-{int(time.time())}-{path.name}"
        try:
            rescue.write_text(compact)
            return ConfigError(f"could not write {path} ({why}); the finished results were kept in {rescue}",
                               hint=f"free some space, then move {rescue} to where you want it")
        except OSError:
            try:
                rescue.unlink(missing_ok=True)
            except OSError:
                pass
    return ConfigError(f"could not write {path} ({why}), nor a rescue copy; the metrics were: "
                       f"{json.dumps(result.metrics, default=str)[:2000]}",
                       hint="free some space and run again (finished requests of a remote model are cached)")

