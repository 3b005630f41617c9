"""lm-eval task parity for the four output types, filters and metrics (issue #25), in one process.

Made-up docs in each dataset's field shape (tests/data/lmeval_outputs) are read by local
task YAMLs that include the installed ones (winogrande, lambada_openai, wikitext, gsm8k,
cnn_dailymail, wmt14-en-fr) and only swap the data (and shorten generations). lm-eval's
own `simple_evaluate` (HFLM on the same model, float32, CPU) and the workbench run the same
tasks; per-row contexts, filtered outputs and greedy generations must be equal, metrics equal
to 1e-6 (perplexities 1e-4 relative, log-likelihoods 1e-4).
  * winogrande (multiple input) 0- and 2-shot; lambada (loglikelihood, is_greedy);
  * wikitext (loglikelihood_rolling) with a 40-token window, so documents span several windows;
  * gsm8k 0- and 2-shot with its strict-match / flexible-extract regex pipelines, and with
    repeats: 3 + majority_vote;
  * cnn_dailymail (its process_results: ROUGE through rouge-score); wmt14 (BLEU, TER, chrF).
"""
from __future__ import annotations

import math
import os
from pathlib import Path
import pytest

from workbench.core.lmeval_yaml import installed_tasks_dir

DATA = Path(__file__).parent / "data" / "lmeval_outputs"
LIB = installed_tasks_dir()
GEN = 'generation_kwargs:\n  until: ["Question:", "</s>", "<|im_end|>"]\n  do_sample: false\n  temperature: 0.0\n  max_gen_toks: 12\n'


def _task_dir(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)

    def inc(rel):
        return os.path.relpath(LIB / rel, d)

    def files(**splits):
        return "dataset_path: json\ndataset_name: null\ndataset_kwargs:\n  data_files:\n" + "".join(
            f"    {s}: {DATA / f}\n" for s, f in splits.items())

    wino = files(validation="winogrande_validation.jsonl", train="winogrande_train.jsonl")
    gsm = files(test="gsm8k_test.jsonl", train="gsm8k_train.jsonl")
    t = {
        "wino_local": f"include: {inc('winogrande/default.yaml')}\n{wino}",
        "wino_local2": f"include: {inc('winogrande/default.yaml')}\nnum_fewshot: 2\n{wino}",
        "lambada_local": f"include: {inc('lambada/lambada_openai.yaml')}\n{files(test='lambada_test.jsonl')}",
        "wikitext_local": f"include: {inc('wikitext/wikitext.yaml')}\n{files(test='wikitext_test.jsonl', train='wikitext_train.jsonl')}",
        "gsm_local": f"include: {inc('gsm8k/gsm8k.yaml')}\nnum_fewshot: 0\n{gsm}{GEN}",
        "gsm_local2": f"include: {inc('gsm8k/gsm8k.yaml')}\nnum_fewshot: 2\n{gsm}{GEN}",
        "gsm_vote": (f"include: {inc('gsm8k/gsm8k.yaml')}\nnum_fewshot: 0\nrepeats: 3\n{gsm}{GEN}filter_list:\n  - name: maj\n    filter:\n"
                     "      - function: regex\n        regex_pattern: \"(-?[$0-9.,]{2,})|(-?[0-9]+)\"\n        group_select: -1\n"
                     "      - function: majority_vote\n      - function: take_first\n"),
        "cnn_local": (f"include: {inc('cnn_dailymail/cnn_dailymail.yaml')}\n{files(test='cnn_test.jsonl')}"
                      "generation_kwargs:\n  max_gen_toks: 12\n  do_sample: false\n  until: [\"</s>\"]\n"),
        "wmt_local": (f"include: {inc('translation/wmt14_en-fr.yaml')}\n"
                      f"{files(test='wmt_test.jsonl', validation='wmt_validation.jsonl', train='wmt_train.jsonl')}"
                      "generation_kwargs:\n  until: [\"\\n\"]\n  do_sample: false\n  temperature: 0.0\n  max_gen_toks: 12\n"),
    }
    for name, body in t.items():
        (d / f"{name}.yaml").write_text(f"{body}task: {name}\n")
    return d


TASKS = ["wmt_local", "wino_local", "wino_local2", "lambada_local", "gsm_local", "gsm_local2", "gsm_vote", "cnn_local"]
ROLLING_MAX_LEN = 40


@pytest.fixture(scope="module")
def runs(tmp_path_factory, session):
    pytest.importorskip("lm_eval")
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from workbench.storage.lmeval_library import TaskLibrary
    from workbench.engine.models import resolve_model
    from workbench.jobs.lmeval_run import run_task

    d = _task_dir(tmp_path_factory.mktemp("tasks"))
    path = resolve_model("default").path
    tm = TaskManager(include_path=str(d))
    lm = HFLM(pretrained=path, dtype="float32", device="cpu", batch_size=1)
    theirs = lm_eval.simple_evaluate(model=lm, tasks=TASKS, task_manager=tm, log_samples=True)
    short = HFLM(pretrained=lm.model, tokenizer=lm.tokenizer, batch_size=1, max_length=ROLLING_MAX_LEN)
    roll = lm_eval.simple_evaluate(model=short, tasks=["wikitext_local"], task_manager=tm, log_samples=True)
    lib = TaskLibrary(include_paths=[d])
    ours = {t: run_task(lib.load(t, trust_code=True), session) for t in TASKS}
    ours["wikitext_local"] = run_task(lib.load("wikitext_local", trust_code=True), session, max_length=ROLLING_MAX_LEN)
    samples = {**theirs["samples"], **roll["samples"]}
    results = {**theirs["results"], **roll["results"]}
    return ours, samples, results


def _metrics_equal(task, ours, theirs, rel=0.0):
    checked = 0
    for key, v in theirs.items():
        if "_stderr" in key or key in ("alias", "name", "sample_len") or not isinstance(v, (int, float)):
            continue
        assert key in ours.metrics, (task, key, sorted(ours.metrics))
        if rel:
            assert ours.metrics[key] == pytest.approx(v, rel=rel), (task, key)
        else:
            assert ours.metrics[key] == pytest.approx(v, abs=1e-6), (task, key)
        checked += 1
    assert checked, task


def _by_doc(samples, task, filt=None):
    out = {}
    for s in samples[task]:
        if filt is None or s.get("filter") == filt:
            out.setdefault(s["doc_id"], s)
    return [out[k] for k in sorted(out)]


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.parametrize("task", ["wino_local", "wino_local2"])
def test_winogrande_multiple_input(runs, task):
    ours, samples, results = runs
    res = ours[task]
    ss = _by_doc(samples, task)
    assert len(res.records) == len(ss) == 4
    for r, s in zip(res.records, ss):
        ctxs = [a[0] for a in s["arguments"]]
        conts = {a[1] for a in s["arguments"]}
        assert r["prompt"] == ctxs and len(conts) == 1, (r["prompt"], ctxs)
        lls = [float(x[0]) for x in s["filtered_resps"]]
        assert list(r["logprobs"].values()) == pytest.approx(lls, abs=1e-4)
    _metrics_equal(task, res, results[task])
    if task == "wino_local2":   # two demonstrations, each the sentence with its right option
        assert res.records[0]["prompt"][0].count("\n\n") == 2


@pytest.mark.slow
@pytest.mark.model
def test_lambada_loglikelihood(runs):
    ours, samples, results = runs
    res = ours["lambada_local"]
    for r, s in zip(res.records, _by_doc(samples, "lambada_local")):
        assert r["prompt"] == s["arguments"][0][0]
        ll, greedy = s["filtered_resps"][0]
        assert r["resps"][0] == pytest.approx(float(ll), abs=1e-4) and bool(r["resps"][1]) == bool(greedy)
    _metrics_equal("lambada_local", res, results["lambada_local"], rel=1e-4)
    assert res.metrics["acc"] == pytest.approx(results["lambada_local"]["acc,none"], abs=1e-6)


@pytest.mark.slow
@pytest.mark.model
def test_wikitext_rolling_windows(runs):
    ours, samples, results = runs
    res = ours["wikitext_local"]
    for r, s in zip(res.records, _by_doc(samples, "wikitext_local")):
        assert r["resps"] == pytest.approx(float(s["filtered_resps"][0]), rel=1e-4)
    _metrics_equal("wikitext_local", res, results["wikitext_local"], rel=1e-4)


def test_rolling_windows_equal_lm_eval():
    """Fast: the same windows as lm-eval's get_rolling_token_windows + make_disjoint_window."""
    pytest.importorskip("lm_eval")
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

    from workbench.core.lmeval_scoring import rolling_windows

    for n in (0, 1, 5, 8, 9, 17, 40):
        toks = list(range(100, 100 + n))
        for max_len in (1, 2, 4, 8, 16):
            want = [make_disjoint_window(w) for w in get_rolling_token_windows(toks, 7, max_len, 1)]
            assert rolling_windows(toks, 7, max_len) == [(list(a), list(b)) for a, b in want], (n, max_len)


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.parametrize("task", ["gsm_local", "gsm_local2", "gsm_vote", "cnn_local", "wmt_local"])
def test_generate_until_filters_and_metrics(runs, task):
    ours, samples, results = runs
    res = ours[task]
    filters = sorted({s["filter"] for s in samples[task]})
    assert sorted(res.provenance["lm_eval_output"]["filters"]) == filters
    for f in filters:
        ss = _by_doc(samples, task, f)
        assert len(ss) == len(res.records)
        for r, s in zip(res.records, ss):
            assert r["prompt"] == s["arguments"][0][0], task
            assert r["resps"] == s["resps"][0], (task, r["resps"], s["resps"])      # greedy: identical strings
            assert r["filtered"][f] == s["filtered_resps"][0], (task, f)
    _metrics_equal(task, res, results[task], rel=0.0)
    if task == "gsm_vote":
        assert res.provenance["lm_eval_output"]["repeats"] == 3 and all(len(r["resps"]) == 3 for r in res.records)
