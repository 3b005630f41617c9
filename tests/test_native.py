"""The scoring fast path: built-in Llama decoder + raw tokenizer (llama_native.py,
fast_tokenizer.py) and the per-model check that gates them (fastpath.py).

Tiny random models cover the architecture variants (rope scalings, q/k/v biases, GQA); the
real default model covers the path users get."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from workbench.engine import fastpath
from workbench.engine.fast_tokenizer import RawTokenizer
from workbench.engine.llama_native import NativeLlama, spec_from_config
from workbench.engine.session import ModelSession

LLAMA = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "vocab_size": 128, "intermediate_size": 96, "max_position_embeddings": 256}


# ---------------------------------------------------------------------------- config support
@pytest.mark.parametrize("change, reason", [
    ({"model_type": "gemma"}, "model_type 'gemma'"),
    ({"hidden_act": "gelu"}, "hidden_act 'gelu'"),
    ({"mlp_bias": True}, "biases outside q/k/v"),
    ({"model_type": "mistral", "sliding_window": 4096}, "sliding-window"),
    ({"rope_parameters": {"rope_type": "yarn", "factor": 4.0}}, "rope type 'yarn'"),
    ({"final_logit_softcapping": 30.0}, "soft-capping"),
])
def test_unsupported_configs_name_their_reason(change, reason):
    out = spec_from_config({**LLAMA, **change})
    assert isinstance(out, str) and reason in out


def test_supported_config_reads_gqa_and_tied_head():
    spec = spec_from_config({**LLAMA, "tie_word_embeddings": True})
    assert (spec.heads, spec.kv_heads, spec.head_dim, spec.tied) == (4, 2, 16, True)
    assert spec.rope["rope_type"] == "default"


# ---------------------------------------------------------------------------- tiny random models
def _tiny(model_type: str, **extra):
    import transformers

    cls = {"llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
           "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM),
           "mistral": (transformers.MistralConfig, transformers.MistralForCausalLM)}[model_type]
    kw = {k: v for k, v in LLAMA.items() if k != "model_type"}
    cfg = cls[0](**kw, **extra)
    torch.manual_seed(0)
    model = cls[1](cfg).eval()
    if model_type == "qwen2":   # random init leaves biases at 0; make them matter
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("bias"):
                    p.normal_(0, 0.5)
    return model


@pytest.mark.parametrize("model_type, extra", [
    ("llama", {}),
    ("llama", {"tie_word_embeddings": True}),
    ("llama", {"rope_parameters": {"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0}}),
    # original context 64 puts one of the 8 rotary frequencies (wavelength 32.5) in the smoothed band
    ("llama", {"rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                                   "high_freq_factor": 4.0, "original_max_position_embeddings": 64}}),
    ("qwen2", {}),
    ("mistral", {"sliding_window": None}),
])
def test_native_decoder_equals_transformers(model_type, extra):
    model = _tiny(model_type, **extra)
    native = NativeLlama.from_hf(model)
    torch.manual_seed(1)
    ids = torch.randint(0, 128, (3, 80))          # [B, T]: long enough for the llama3 bands to differ
    # Plain and with a cached prefix of 30 tokens; every position, every vocab entry.
    diff = fastpath.check_model(model, native, ids[0].tolist())
    assert diff < 1e-4
    with torch.inference_mode():
        ref = torch.log_softmax(model(input_ids=ids).logits, -1)
        ours = torch.log_softmax(native.head(native.hidden(ids)), -1)
    assert (ref - ours).abs().max() < 1e-4


def test_right_padding_does_not_change_real_positions():
    model = _tiny("llama")
    native = NativeLlama.from_hf(model)
    torch.manual_seed(2)
    ids = torch.randint(0, 128, (1, 20))
    padded = torch.cat([ids, torch.zeros(1, 12, dtype=torch.long)], 1)
    with torch.inference_mode():
        # Not bitwise: matmul blocking depends on the sequence length; equal to float rounding.
        assert (native.hidden(ids)[0] - native.hidden(padded)[0, :20]).abs().max() < 1e-5


# ---------------------------------------------------------------------------- the real default model
def test_raw_tokenizer_equals_transformers_on_bbc(session, bbc):
    raw = RawTokenizer(session.resolved.path)
    hf = session.tokenizer
    texts = [str(t) for t in bbc.df[bbc.text_column].head(300)]
    texts += [" " + t[:80] for t in texts[:50]] + [t[:40] + "\nAnswer:" for t in texts[:50]]
    for add in (True, False):
        assert hf(texts, add_special_tokens=add)["input_ids"] == raw(texts, add_special_tokens=add)["input_ids"]
    assert (raw.bos_token_id, raw.eos_token_id, raw.pad_token_id) == (hf.bos_token_id, hf.eos_token_id, hf.pad_token_id)
    assert fastpath.check_tokenizer(hf, raw) is None


def test_default_model_passes_the_check_and_scores_identically(session, bbc):
    verdict = fastpath.lookup(session.resolved.path, "float32", "cpu")
    assert verdict and verdict["ok"] and verdict["max_abs_logprob_diff"] < 1e-4
    assert session.backend == "native"
    prompts = [f"Headline: {t}\nTopic:" for t in bbc.df[bbc.text_column].head(12)]
    reqs = [(p, " " + c) for p in prompts for c in ("business", "tech", "sport and games")]
    fast = session.loglikelihood(reqs)
    plain = ModelSession("default", native=False).load()
    assert plain.backend == "transformers"
    slow = plain.loglikelihood(reqs)
    assert max(abs(a.logprob - b.logprob) for a, b in zip(fast, slow)) < 1e-4
    assert [a.greedy for a in fast] == [b.greedy for b in slow]
    plain.unload()


def test_fast_path_session_never_imports_transformers(session):
    """In a fresh process with a passing verdict, loading and scoring stays off transformers,
    and the first thing that needs transformers (generation) loads it and shares the weights."""
    assert session.backend == "native"      # the fixture has made sure the verdict exists
    code = (
        "import sys, json\n"
        "from workbench.engine.session import ModelSession\n"
        "s = ModelSession('default').load()\n"
        "ll = s.loglikelihood([('The capital of France is', ' Paris')])[0]\n"
        "before = 'transformers' in sys.modules\n"
        "s.generate(['Hello'], max_new_tokens=2)\n"
        "shared = s._native.embed.data_ptr() == s._base.get_input_embeddings().weight.data_ptr()\n"
        "print(json.dumps({'backend': s.backend, 'before': before, 'after': 'transformers' in sys.modules,\n"
        "                  'shared': shared, 'logprob': ll.logprob, 'info': s.info()['backend']}))\n")
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res == {**res, "backend": "native", "before": False, "after": True, "shared": True, "info": "native"}
    ref = session.loglikelihood([("The capital of France is", " Paris")])[0].logprob
    assert abs(res["logprob"] - ref) < 1e-4


def test_adapter_switches_scoring_to_transformers(tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    s = ModelSession("default").load()
    assert s.backend == "native"
    base = AutoModelForCausalLM.from_pretrained(s.resolved.path, dtype=torch.float32)
    torch.manual_seed(0)
    lora = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    lora.save_pretrained(str(tmp_path / "adapter"))
    req = [("Headline: Stocks fall\nTopic:", " business")]
    before = s.loglikelihood(req)[0].logprob
    s.attach_adapter(str(tmp_path / "adapter"))
    assert s.backend == "transformers"
    with_adapter = s.loglikelihood(req)[0].logprob
    assert abs(with_adapter - before) > 1e-3          # non-zero LoRA weights: the adapter is really used
    s.detach_adapter()
    assert s.backend == "native"
    assert abs(s.loglikelihood(req)[0].logprob - before) < 1e-5
    s.unload()


def test_failed_check_keeps_scoring_on_transformers(session, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))   # no stored verdict here
    monkeypatch.setattr(fastpath, "TOLERANCE", {"float32": -1.0})    # nothing can pass
    s = ModelSession(session.resolved.path).load()
    assert s.backend == "transformers" and s._native is None
    verdict = fastpath.lookup(session.resolved.path, "float32", "cpu")
    assert verdict["ok"] is False and "log-probs differ" in verdict["reason"]
    s.unload()


def test_tokenizer_mismatch_is_reported(session):
    raw = RawTokenizer(session.resolved.path)

    class Drifted:      # a transformers-like tokenizer that splits digits differently
        bos_token_id, eos_token_id, pad_token_id = raw.bos_token_id, raw.eos_token_id, raw.pad_token_id

        def encode(self, t, add_special_tokens=True):
            ids = raw.encode(t, add_special_tokens=add_special_tokens)
            return ids + [0] if any(ch.isdigit() for ch in t) else ids

        def decode(self, ids):
            return raw.decode(ids)

        def __call__(self, texts, add_special_tokens=True):
            return {"input_ids": [self.encode(t, add_special_tokens) for t in texts]}

    reason = fastpath.check_tokenizer(Drifted(), raw)
    assert reason and "Numbers 12345" in reason


def test_verdict_is_keyed_by_the_model_files(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(LLAMA))
    a = fastpath.verdict_path(folder, "float32", "cpu")
    assert a != fastpath.verdict_path(folder, "bfloat16", "cpu") != fastpath.verdict_path(folder, "float32", "cuda:0")
    (folder / "config.json").write_text(json.dumps({**LLAMA, "rms_norm_eps": 1e-5}))
    assert fastpath.verdict_path(folder, "float32", "cpu") != a


def test_cli_records_backend_and_no_native_gives_same_predictions(session, tmp_path):
    outs = {}
    for flag in ([], ["--no-native"]):
        out = tmp_path / f"r{len(flag)}.json"
        cmd = [str(Path(sys.executable).parent / "workbench"), "eval", "--data", "bbc", "--template",
               "templates_library/bbc_headline_topic.yaml", "--limit", "10", "--out", str(out), "--no-registry", *flag]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"), timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        outs[bool(flag)] = json.loads(out.read_text())
    assert outs[False]["provenance"]["model"]["backend"] == "native"
    assert outs[True]["provenance"]["model"]["backend"] == "transformers"
    assert [r["pred"] for r in outs[False]["records"]] == [r["pred"] for r in outs[True]["records"]]
    for a, b in zip(outs[False]["records"], outs[True]["records"]):
        assert max(abs(a["logprobs"][k] - b["logprobs"][k]) for k in a["logprobs"]) < 1e-4


def test_models_check_command_reports_the_verdict(session):
    cmd = [str(Path(sys.executable).parent / "workbench"), "models", "check", "default"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "built-in scoring path: verified for default (float32, cpu)" in proc.stdout
    assert fastpath.lookup(session.resolved.path, "float32", "cpu")["ok"]


def test_verdicts_of_deleted_models_are_pruned(tmp_path, monkeypatch):
    import shutil

    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    gone, kept = tmp_path / "gone", tmp_path / "kept"
    for folder in (gone, kept):
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(LLAMA))
    fastpath._save(gone, "float32", "cpu", {"ok": True, "folder": str(gone)})
    old = fastpath.verdict_path(gone, "float32", "cpu")
    assert old.exists()
    shutil.rmtree(gone)
    fastpath._save(kept, "float32", "cpu", {"ok": True, "folder": str(kept)})
    assert not old.exists() and fastpath.lookup(kept, "float32", "cpu")["ok"]
