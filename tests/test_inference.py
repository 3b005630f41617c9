"""End-to-end evaluation on the real default model and real BBC data, plus the CLI and the
lm-evaluation-harness equivalence check."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.errors import ConfigError, TemplateError
from workbench.core.records import extract_answer
from workbench.jobs.inference import EvalConfig, EvalResult, build_prompts, eval_rows, evaluate
from workbench.core.templates import load_template

ROOT = Path(__file__).resolve().parent.parent
TOPIC = ROOT / "templates_library" / "bbc_headline_topic.yaml"
PHRASES = ROOT / "templates_library" / "bbc_headline_phrase_topic.yaml"

pytestmark = pytest.mark.model


def test_zero_shot_bbc_beats_majority(session, bbc):
    tpl = load_template(TOPIC)
    res = evaluate(tpl, bbc, session, EvalConfig(limit=40))
    m = res.metrics
    assert m["n"] == 40 and set(m["per_class"]) == set(bbc.labels)
    assert m["accuracy"] > m["majority_baseline"] + 0.1          # the prompt carries real signal
    r = res.records[0]
    assert set(r) >= {"index", "gold", "pred", "scores", "prompt", "correct"}
    assert set(r["scores"]) == set(tpl.answer_choices)
    assert r["prompt"] == tpl.build_context(bbc.df.loc[r["index"]])
    prov = res.provenance
    assert prov["template"]["hash"] == tpl.content_hash()
    assert prov["data"]["fingerprint"] == bbc.fingerprint()
    assert prov["model"]["identity"].startswith("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert res.timings["total_s"] > 0


def test_few_shot_fixed_demos_are_shared_and_excluded_from_eval(session, bbc):
    tpl = load_template(TOPIC)
    cfg = EvalConfig(shots=3, seed=2, limit=6)
    rows, pool = eval_rows(bbc, cfg)
    prompts = build_prompts(tpl, rows, pool, cfg)
    # fixed sampling: every prompt starts with the same demonstration block
    head = prompts[0][: prompts[0].rindex(tpl.render_input(rows.iloc[0]))]
    assert head and all(p.startswith(head) for p in prompts)
    assert head.count(tpl.fewshot_delimiter) >= 3
    assert not set(rows.index) & set(pool.index)                  # demos come from the train split
    res = evaluate(tpl, bbc, session, cfg)
    assert res.metrics["n"] == 6


def test_per_example_demos_are_reproducible():
    from workbench.storage.data_load import load_dataset

    ds = load_dataset("bbc")
    tpl = load_template(TOPIC)
    cfg = EvalConfig(shots=2, sampling="per_example", seed=5, limit=4)
    rows, pool = eval_rows(ds, cfg)
    a = build_prompts(tpl, rows, pool, cfg)
    b = build_prompts(tpl, rows, pool, cfg)
    assert a == b and len(set(a)) == 4
    # and the same across processes (no salted hash())
    code = ("from workbench.storage.data_load import load_dataset;from workbench.core.templates import load_template;"
            "from workbench.jobs.inference import *;ds=load_dataset('bbc');t=load_template(r'%s');"
            "c=EvalConfig(shots=2,sampling='per_example',seed=5,limit=4);r,p=eval_rows(ds,c);"
            "print(build_prompts(t,r,p,c)[1])" % TOPIC)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.rstrip("\n") == a[1]


@pytest.mark.parametrize("method,calibration", [("acc_norm", "none"), ("acc", "contextual"), ("acc", "pmi")])
def test_scoring_methods_and_calibration_run(session, bbc, method, calibration):
    tpl = load_template(TOPIC)
    res = evaluate(tpl, bbc, session, EvalConfig(limit=10, method=method, calibration=calibration))
    assert res.metrics["n"] == 10
    base = evaluate(tpl, bbc, session, EvalConfig(limit=10))
    # Each rule checked against the raw log-probabilities the same run stored.
    import math

    per_row = []
    for r in res.records:
        raw = r["logprobs"]
        if method == "acc_norm":
            words = {lab: ws[0] for lab, ws in tpl.answer_choices.items()}
            for lab, s in r["scores"].items():
                assert s == pytest.approx(raw[lab] / len(words[lab]), abs=1e-5)
        elif calibration == "pmi":
            # score = log p(y|x) - log p(y): raw - score is each label's prior, the same on every row
            per_row.append({k: raw[k] - s for k, s in r["scores"].items()})
        elif calibration == "contextual":
            # score = log p(y|x) - log p_cf(y) with p = softmax(raw): p / exp(score) is p_cf,
            # a distribution, the same on every row
            z = max(raw.values())
            denom = sum(math.exp(v - z) for v in raw.values())
            cf = {k: math.exp(raw[k] - z) / denom / math.exp(s) for k, s in r["scores"].items()}
            assert sum(cf.values()) == pytest.approx(1.0, abs=1e-4)
            per_row.append(cf)
    for d in per_row[1:]:
        for k in d:
            assert d[k] == pytest.approx(per_row[0][k], abs=1e-4)
    if (method, calibration) != ("acc", "none"):
        assert [r["scores"] for r in res.records] != [r["scores"] for r in base.records]


def test_generation_with_extraction(session):
    import pandas as pd

    from workbench.core.data import Dataset

    df = pd.DataFrame({"question": ["What is the capital of France?", "What color is the sky on a clear day?"],
                       "answer": ["Paris", "blue"]})
    ds = Dataset(name="qa", df=df, text_column="question", label_column=None, source="test")
    tpl = load_template("""
name: qa_gen
task: generation
input: "{{ question }} Answer in one word."
target: "{{ answer }}"
label_column: answer
chat: true
generation:
  max_new_tokens: 12
  stop: ["\\n"]
""")
    res = evaluate(tpl, ds, session, EvalConfig(split="all"))
    assert res.task == "generation"
    assert {"exact_match", "token_f1", "contains"} <= set(res.metrics)
    assert all("output" in r and "stop_reason" in r and "token_f1" in r for r in res.records)
    assert "paris" in res.records[0]["output"].lower()


def test_results_json_round_trip(session, bbc, tmp_path):
    tpl = load_template(TOPIC)
    res = evaluate(tpl, bbc, session, EvalConfig(limit=5))
    p = res.save(tmp_path / "r.json")
    back = EvalResult.load(p)
    assert back.metrics == json.loads(p.read_text())["metrics"]
    assert back.records[0]["prompt"] == res.records[0]["prompt"]


def test_cli_eval_writes_results_and_table(tmp_path):
    out = tmp_path / "results.json"
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, "-m", "workbench.cli", "eval", "--data", "bbc", "--template", str(TOPIC),
                           "--limit", "12", "--out", str(out)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "accuracy" in proc.stdout and "macro-F1" in proc.stdout
    d = json.loads(out.read_text())
    assert d["schema_version"] == 1 and len(d["records"]) == 12
    assert d["metrics"]["confusion"]["labels"] and d["provenance"]["config"]["limit"] == 12
    from workbench.storage.runs import RunRegistry
    assert RunRegistry().list(kind="eval")[0].data_name == "bbc"       # recorded in the registry


def test_bad_config_and_template_errors(session, bbc):
    tpl = load_template(TOPIC)
    with pytest.raises(ConfigError, match="Unknown scoring method 'accc'"):
        evaluate(tpl, bbc, session, EvalConfig(method="accc"))
    broken = load_template(TOPIC.read_text().replace("{{ title }}", "{{ headline }}"))
    with pytest.raises(TemplateError, match="headline"):
        evaluate(broken, bbc, session, EvalConfig(limit=2))


def test_cli_reports_errors_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "workbench.cli", "eval", "--data", str(tmp_path / "nope.csv"),
                           "--template", str(TOPIC)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "nope.csv" in proc.stderr and "Traceback" not in proc.stderr


def test_extract_answer():
    assert extract_answer("  \nParis is nice\nmore", None) == "Paris is nice"
    assert extract_answer("So the final answer is: Yes.", r"final answer is:\s*(\w+)") == "Yes"
    assert extract_answer("nothing here", r"answer: (\w+)") == ""


@pytest.mark.slow
def test_predictions_equal_lm_eval_harness(session, bbc, tmp_path):
    """The same rows through `lm_eval --model hf` (the exported task YAML) give identical
    per-example predictions and log-likelihoods within 1e-4: single-token choices zero- and
    2-shot, and multi-token phrase choices (scored over the prefix tree: each headline once,
    then only the phrases' own tokens)."""
    pytest.importorskip("lm_eval")
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_scoring import choice_lists, lmeval_predictions, prepare

    from workbench.engine.models import resolve_model

    # One `lm_eval` process scores the three cases' tasks (each in its own folder under tmp_path, found by
    # --include_path's walk): the harness's import and model load once, not once per case (~10 s each).
    cases = {}
    for template, shots in ((TOPIC, 0), (TOPIC, 2), (PHRASES, 0)):
        tpl, task, rows = prepare(str(template), "bbc", 12, shots, 1, tmp_path / "tasks" / f"{template.stem}_s{shots}")
        cases[task] = (template, shots, tpl, rows)
    assert len(cases) == 3, sorted(cases)   # distinct task names, or one case would read another's samples
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1")
    lm_eval = Path(sys.executable).parent / "lm_eval"
    subprocess.run([str(lm_eval), "--model", "hf", "--model_args",
                    f"pretrained={resolve_model('default').path},dtype=float32", "--tasks", ",".join(cases),
                    "--include_path", str(tmp_path / "tasks"), "--batch_size", "8", "--device", "cpu", "--log_samples",
                    "--output_path", str(tmp_path / "out")], check=True, env=env, capture_output=True)
    for task, (template, shots, tpl, rows) in cases.items():
        ours = evaluate(load_template(template), bbc, session, EvalConfig(limit=12, shots=shots, seed=1))
        preds, lls = lmeval_predictions(tmp_path / "out", task)
        choices = choice_lists(tpl, rows)
        assert len(preds) == len(ours.records) == 12
        assert [c.index(r["pred"]) for c, r in zip(choices, ours.records)] == preds
        for r, ll, labels in zip(ours.records, lls, choices):
            for j, lab in enumerate(labels):
                assert r["logprobs"][lab] == pytest.approx(ll[j], abs=1e-4)
        if template == PHRASES:
            assert ours.timings["tokens_minimal"] / ours.timings["tokens_forwarded"] >= 0.9
