"""LoRA training: validation messages, the answer-token loss, adapters on disk, cancel, the log,
reproducibility, head mode and the CLI.

Plumbing runs on a tiny random Llama saved with the real SmolLM2 tokenizer (fast); the test that
the adapter changes the scores runs a few real steps on the default model.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from workbench.errors import ConfigError, DataError
from workbench.jobs.training import TrainConfig, loss_on_batch, prepare, read_log, read_status, request_cancel, run_training, save_adapter_atomic, train
from workbench.jobs.train_job import TrainJob

LIB = Path(__file__).resolve().parent.parent / "templates_library"
FAST = dict(batch_size=2, max_length=64, eval_every=0, final_eval=False, dev_limit=10, test_limit=10)


@pytest.fixture(scope="module")
def template():
    from workbench.core.templates import load_template

    return load_template(LIB / "bbc_headline_topic.yaml")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    """A 2-layer random Llama with the default model's tokenizer, saved as a model folder."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from workbench.engine.models import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model("default").path)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def small_bbc(tmp_path_factory):
    """60 bbc headlines (12 per class) as a CSV dataset: splits are quick to make and to score."""
    from workbench.storage.data_load import load_dataset

    full = load_dataset("bbc").df
    df = full.groupby("label", group_keys=False).head(12)[["title", "label"]]
    path = tmp_path_factory.mktemp("data") / "bbc_small.csv"
    df.to_csv(path, index=False)
    return load_dataset(str(path), text_column="title", label_column="label")


def _csv_dataset(tmp_path, df, name="d.csv"):
    from workbench.storage.data_load import load_dataset

    path = tmp_path / name
    df.to_csv(path, index=False)
    return load_dataset(str(path), text_column="title", label_column="label")


# ---------------------------------------------------------------------------- config
def test_config_json_round_trip_and_help():
    cfg = TrainConfig(lora_r=4, target_modules=["q_proj", "v_proj"], shots_per_class=16, max_steps=60, seed=1)
    again = TrainConfig.from_json(cfg.to_json())
    assert again == cfg
    from dataclasses import fields
    assert all(f.metadata.get("help") for f in fields(TrainConfig))
    with pytest.raises(ConfigError, match="Unknown training setting.*lora_rank"):
        TrainConfig.from_dict({"lora_rank": 4})


@pytest.mark.parametrize("kw, text", [
    (dict(lr=0), "learning rate must be > 0, got 0"),
    (dict(lr=-1e-4), "learning rate must be > 0"),
    (dict(batch_size=0), "batch_size must be >= 1"),
    (dict(mode="cls"), "Unknown training mode 'cls'"),
    (dict(epochs=0), "epochs must be > 0"),
    (dict(shots_per_class=0), "shots_per_class must be >= 1"),
])
def test_config_errors(kw, text):
    with pytest.raises(ConfigError, match=text):
        TrainConfig(**kw).validate()


# ---------------------------------------------------------------------------- data problems (before any work)
def test_class_with_no_examples(tmp_path, template, tiny_model, small_bbc):
    df = small_bbc.df[small_bbc.df.label != "tech"]
    ds = _csv_dataset(tmp_path, df)
    with pytest.raises(DataError, match=r"Class\(es\) 'tech' have no examples in the training split") as e:
        prepare(tiny_model, template, ds, TrainConfig(**FAST), tmp_path / "run")
    assert "answer_choices" in e.value.hint
    assert not (tmp_path / "run").exists()   # nothing was started


def test_empty_training_split(tmp_path, template, tiny_model, small_bbc):
    from workbench.core.train_data import select_train_rows

    with pytest.raises(DataError, match="training split is empty"):
        select_train_rows(template, small_bbc.df.iloc[:0], None, 0)
    ds = _csv_dataset(tmp_path, small_bbc.df.head(2))
    # the splitter refuses before the trainer sees an empty split; the message names the cause
    with pytest.raises(DataError, match="too few for dev"):
        prepare(tiny_model, template, ds, TrainConfig(**{**FAST, "dev_fraction": 0.5, "test_fraction": 0.45}),
                tmp_path / "run")


def test_batch_larger_than_data(tmp_path, template, tiny_model, small_bbc):
    cfg = TrainConfig(**{**FAST, "shots_per_class": 1, "batch_size": 8})
    with pytest.raises(ConfigError, match=r"batch_size 8 is larger than the training data \(5 rows\)"):
        prepare(tiny_model, template, small_bbc, cfg, tmp_path / "run")


def test_max_length_shorter_than_prompt(tmp_path, template, tiny_model, small_bbc):
    cfg = TrainConfig(**{**FAST, "max_length": 10})
    with pytest.raises(ConfigError, match=r"max_length 10 is shorter than the longest prompt \+ answer: (\d+) tokens") as e:
        prepare(tiny_model, template, small_bbc, cfg, tmp_path / "run")
    n = int(e.value.message.split(": ")[1].split()[0])
    assert n > 10 and f"at least {n}" in e.value.hint


def test_unknown_target_modules_lists_the_models_modules(tmp_path, template, tiny_model, small_bbc):
    cfg = TrainConfig(**{**FAST, "target_modules": ["q_proj", "c_attn"]})
    with pytest.raises(ConfigError, match="Unknown target module.*'c_attn'") as e:
        prepare(tiny_model, template, small_bbc, cfg, tmp_path / "run")
    for name in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "down_proj"):
        assert name in e.value.hint
    assert "lm_head" not in e.value.hint


def test_default_targets_per_architecture(tiny_model):
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

    from workbench.jobs.training import default_target_modules

    llama = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert default_target_modules(llama) == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert default_target_modules(llama, mlp=True)[-3:] == ["gate_proj", "up_proj", "down_proj"]
    gpt2 = GPT2LMHeadModel(GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=50))
    assert default_target_modules(gpt2) == ["c_attn"]
    # an unknown architecture falls back to the Linear layers inside attention blocks
    gpt2.config.model_type = "mystery"
    assert default_target_modules(gpt2) == ["c_attn", "c_proj"]
    del torch


# ---------------------------------------------------------------------------- the loss
def test_answer_token_loss_masks_the_prompt(tmp_path, template, tiny_model, small_bbc):
    import torch

    from workbench.core.train_data import IGNORE
    from workbench.jobs.training import collate

    plan = prepare(tiny_model, template, small_bbc, TrainConfig(**{**FAST, "shots_per_class": 1}), tmp_path / "run",
                   registry=False)
    view_tok = plan.tokenizer
    for ex, (_, row) in zip(plan.examples, plan.train_rows.iterrows()):
        prompt = template.build_context(row)
        word = template.answer_choices[template.gold(row)][0]
        n_prompt = ex.prompt_len
        assert ex.labels[:n_prompt] == [IGNORE] * n_prompt          # every prompt token masked
        answer = ex.labels[n_prompt:]
        assert IGNORE not in answer and answer == ex.input_ids[n_prompt:]
        assert view_tok.decode(answer) == " " + word                 # the gold verbalizer, after the delimiter
        assert view_tok.decode(ex.input_ids[:n_prompt]).endswith(prompt.rstrip()[-20:])
    # Our loss (head only at the answer positions) equals transformers' own masked LM loss.
    batch = collate(plan.examples[:4], plan.tokenizer.pad_token_id)
    plan.model.eval()
    with torch.no_grad():
        ours = loss_on_batch(plan.model, batch, "lm")
        ref = plan.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         labels=batch["labels"]).loss
    assert torch.allclose(ours, ref, atol=1e-5), (ours, ref)


# ---------------------------------------------------------------------------- real model
@pytest.mark.model
def test_real_run_saves_reloads_and_changes_scores(tmp_path, template, session, bbc):
    from workbench.jobs.inference import EvalConfig, evaluate
    from workbench.storage.runs import RunRegistry

    cfg = TrainConfig(shots_per_class=1, batch_size=4, max_steps=4, lr=3e-3, max_length=64, eval_every=0,
                      test_limit=8, seed=1)
    res = train("default", template, bbc, cfg, tmp_path / "run")
    adapter = Path(res.adapter_dir)
    assert res.status == "done" and res.steps == 4
    assert sorted(p.name for p in adapter.iterdir()) == [
        "adapter_config.json", "adapter_model.safetensors", "template.yaml", "train_config.json"]
    assert json.loads((adapter / "train_config.json").read_text())["lr"] == 3e-3
    assert not list(tmp_path.glob("run/.adapter*"))

    rows = [r for r in read_log(tmp_path / "run") if r["event"] == "train"]
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and all(r["loss"] > 0 for r in rows)

    ecfg = EvalConfig(split="test", limit=8)
    base = evaluate(template, bbc, session, ecfg)
    session.attach_adapter(str(adapter))
    try:
        tuned = evaluate(template, bbc, session, ecfg)
    finally:
        session.detach_adapter()
    assert tuned.provenance["model"]["adapter"] == str(adapter)
    diffs = [abs(a["logprobs"][k] - b["logprobs"][k]) for a, b in zip(base.records, tuned.records) for k in a["logprobs"]]
    assert max(diffs) > 0.1, "the adapter should move the class log-probs"
    # The shared session with the reloaded adapter reproduces the trainer's own test metrics.
    assert tuned.metrics["accuracy"] == pytest.approx(res.adapter_metrics["accuracy"])
    assert base.metrics["accuracy"] == pytest.approx(res.base_metrics["accuracy"])
    # ... and detaching gives the base scores back.
    again = evaluate(template, bbc, session, ecfg)
    assert [r["scores"] for r in again.records] == [r["scores"] for r in base.records]

    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert set(result["test"]) == {"base", "adapter"} and "per_class" in result["test"]["adapter"]
    rec = RunRegistry().get(res.registry_id)
    assert rec.kind == "train" and rec.adapter == str(adapter) and rec.metrics["adapter_accuracy"] is not None


# ---------------------------------------------------------------------------- cancel and atomic saves
def _wait_for(pred, timeout=60.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_cancel_keeps_best_adapter_and_leaves_no_partial_one(tmp_path, template, tiny_model, small_bbc):
    cfg = TrainConfig(**{**FAST, "max_steps": 10_000, "eval_every": 3, "patience": 0, "dev_limit": 5})
    job = TrainJob.start(tiny_model, template, small_bbc, cfg, tmp_path / "run", registry=False)
    assert _wait_for(lambda: job.status()["step"] >= 4)
    # a second "browser" attaches to the same folder and presses stop
    other = TrainJob.attach(tmp_path / "run")
    assert other is job
    other.cancel()
    res = job.wait(timeout=60)
    assert res.status == "cancelled" and res.steps < 10_000
    st = read_status(tmp_path / "run")
    assert st["state"] == "cancelled" and st["has_adapter"]
    adapter = tmp_path / "run" / "adapter"
    assert (adapter / "adapter_config.json").exists() and (adapter / "adapter_model.safetensors").exists()
    assert not list((tmp_path / "run").glob(".adapter*"))
    saved = [r["step"] for r in read_log(tmp_path / "run") if r["event"] == "saved"]
    assert json.loads((adapter / "train_config.json").read_text())["step"] == saved[-1]
    assert json.loads((tmp_path / "run" / "result.json").read_text())["status"] == "cancelled"


def test_cancel_before_any_save_leaves_no_adapter(tmp_path, template, tiny_model, small_bbc):
    plan = prepare(tiny_model, template, small_bbc, TrainConfig(**{**FAST, "max_steps": 10_000}), tmp_path / "run",
                   registry=False)
    request_cancel(tmp_path / "run")   # from "another process": the file is enough
    res = run_training(plan)
    assert res.status == "cancelled" and res.steps == 0 and res.adapter_dir is None
    assert not (tmp_path / "run" / "adapter").exists() and not list((tmp_path / "run").glob(".adapter*"))


def test_crash_while_saving_keeps_previous_adapter(tmp_path, template, tiny_model, small_bbc, monkeypatch):
    plan = prepare(tiny_model, template, small_bbc, TrainConfig(**{**FAST, "max_steps": 1}), tmp_path / "run",
                   registry=False)
    first = save_adapter_atomic(plan.model, plan.run_dir, template, plan.config)
    before = (first / "adapter_model.safetensors").read_bytes()

    def broken_save(path, *a, **k):
        Path(path).mkdir(parents=True)
        (Path(path) / "adapter_model.safetensors").write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(plan.model, "save_pretrained", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_adapter_atomic(plan.model, plan.run_dir, template, plan.config)
    assert (first / "adapter_model.safetensors").read_bytes() == before
    assert not list(plan.run_dir.glob(".adapter*"))


# ---------------------------------------------------------------------------- log, reproducibility, head
def test_log_is_readable_while_written_and_tolerates_a_torn_line(tmp_path):
    from workbench.jobs.training import RunLog, list_runs

    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    (tmp_path / "runs" / "not-a-run").mkdir()
    log = RunLog(run)
    log.write("start", total_steps=3, n_train=4, pid=1)
    log.write("train", step=1, loss=2.5, steps_per_s=1.0, eta_s=2.0)
    with open(run / "log.jsonl", "a") as f:
        f.write('{"event": "train", "st')          # a writer died mid-line
    rows = read_log(run)
    assert [r["event"] for r in rows] == ["start", "train"]
    st = read_status(run)
    assert st["state"] == "running" and st["step"] == 1 and st["loss"] == 2.5 and st["total_steps"] == 3
    assert [r["run_dir"] for r in list_runs(tmp_path / "runs")] == [str(run)]


def test_same_seed_same_loss_curve(tmp_path, template, tiny_model, small_bbc):
    def losses(seed, name):
        cfg = TrainConfig(**{**FAST, "shots_per_class": 4, "max_steps": 5, "seed": seed, "lr": 1e-2})
        train(tiny_model, template, small_bbc, cfg, tmp_path / name, registry=False)
        return [r["loss"] for r in read_log(tmp_path / name) if r["event"] == "train"]

    a, b, c = losses(1, "a"), losses(1, "b"), losses(2, "c")
    assert a == b
    assert a != c
    assert len(set(a)) == 5


def test_head_mode_runs_and_saves_its_head(tmp_path, template, tiny_model, small_bbc):
    cfg = TrainConfig(**{**FAST, "mode": "head", "shots_per_class": 2, "max_steps": 3, "eval_every": 2,
                         "final_eval": True, "test_limit": 6, "dev_limit": 5})
    res = train(tiny_model, template, small_bbc, cfg, tmp_path / "run", registry=False)
    assert res.status == "done"
    assert (Path(res.adapter_dir) / "head.safetensors").exists()
    evals = [r for r in read_log(tmp_path / "run") if r["event"] == "eval"]
    assert [r["step"] for r in evals] == [0, 2, 3]
    assert set(evals[0]["dev_per_class_f1"]) == set(template.answer_choices)
    assert res.adapter_metrics["n"] == 6 and res.base_metrics["n"] == 6

    # Attaching it from the Train tab works but says plainly that the head is not used.
    from workbench.app.tab_train import train_attach
    from workbench.engine.session import get_session

    try:
        bar, msg = train_attach(tiny_model, str(tmp_path / "run"))
        assert "attached" in msg and "mode: head" in msg and "LoRA weights only" in msg
        assert "scoring: transformers" in bar
    finally:
        get_session("default")      # give the other tests their model back


def test_figures_from_the_run_folder(tmp_path, template, tiny_model, small_bbc):
    from workbench.jobs.train_job import result_figures

    cfg = TrainConfig(**{**FAST, "shots_per_class": 1, "max_steps": 2, "eval_every": 1, "final_eval": True,
                         "test_limit": 5, "dev_limit": 5})
    train(tiny_model, template, small_bbc, cfg, tmp_path / "run", registry=False)
    figs = result_figures(tmp_path / "run")
    assert set(figs) == {"curves", "per_class", "confusion_base", "confusion_adapter"}
    names = {t.name for t in figs["curves"].data}
    assert {"train loss", "dev accuracy", "dev macro-F1"} <= names


# ---------------------------------------------------------------------------- CLI
def test_cli_train_prints_metrics_and_adapter(tmp_path, tiny_model, small_bbc, capsys):
    from workbench.cli import main

    data = tmp_path / "d.csv"
    small_bbc.df.to_csv(data, index=False)
    out = tmp_path / "runs" / "x"
    rc = main(["train", "--model", tiny_model, "--data", str(data), "--template", str(LIB / "bbc_headline_topic.yaml"),
               "--shots-per-class", "2", "--steps", "2", "--seed", "1", "--batch-size", "2", "--max-length", "64",
               "--eval-every", "0", "--test-limit", "5", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    assert f"adapter: {out / 'adapter'}" in text and "accuracy" in text and "macro-F1" in text
    cfg = json.loads((out / "adapter" / "train_config.json").read_text())
    assert cfg["max_steps"] == 2 and cfg["shots_per_class"] == 2 and cfg["seed"] == 1

    # the saved config starts the next run; options override it
    from workbench.cli import build_parser
    from workbench.commands.train import config_from_args
    args = build_parser().parse_args(["train", "--data", "x", "--template", "t", "--config",
                                      str(out / "adapter" / "train_config.json"), "--seed", "7"])
    from workbench.core.spec import resolve_train

    again = resolve_train(config_from_args(args))
    assert again.seed == 7 and again.max_steps == 2 and again.batch_size == 2


def test_cli_bad_config_message(tmp_path, tiny_model, small_bbc, capsys):
    from workbench.cli import main

    data = tmp_path / "d.csv"
    small_bbc.df.to_csv(data, index=False)
    rc = main(["train", "--model", tiny_model, "--data", str(data), "--template", str(LIB / "bbc_headline_topic.yaml"),
               "--lr", "0", "--out", str(tmp_path / "x")])
    assert rc == 1
    assert "learning rate must be > 0, got 0.0" in capsys.readouterr().err
