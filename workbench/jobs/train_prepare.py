"""A training run's plan: which LoRA targets, which model (a name or the spec's ModelRef), and every check
that needs no training step: data, lengths, modules, the run folder. `prepare` returns the TrainPlan that
`jobs.training.run_training` consumes, after loading a private copy of the model."""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from workbench.core.config import TrainConfig
from workbench.errors import ConfigError, ModelError
from workbench.jobs.run_folder import (ADAPTER_NAME, CANCEL_NAME, INTERRUPTED_NAME, LOG_NAME, RESULT_NAME,
                                      read_status)


# ---------------------------------------------------------------------------- LoRA targets
_ATTN_DEFAULTS = {
    # model_type -> attention projections (peft matches these as module-name suffixes)
    **{t: ["q_proj", "k_proj", "v_proj", "o_proj"] for t in (
        "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma", "gemma2", "gemma3_text",
        "olmo", "olmo2", "granite", "smollm3", "cohere", "starcoder2")},
    "gpt2": ["c_attn"], "gpt_bigcode": ["c_attn"],
    "phi3": ["qkv_proj", "o_proj"],
    "gpt_neox": ["query_key_value"], "falcon": ["query_key_value"], "bloom": ["query_key_value"],
}
_MLP_DEFAULTS = ["gate_proj", "up_proj", "down_proj"]


def linear_module_names(model) -> list[str]:
    """Leaf names of the model's Linear (and GPT-2 Conv1D) modules, without the output head."""
    import torch

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names = set()
    for full, mod in model.named_modules():
        if mod is head:
            continue
        if isinstance(mod, torch.nn.Linear) or type(mod).__name__ == "Conv1D":
            names.add(full.rsplit(".", 1)[-1])
    return sorted(names)


def default_target_modules(model, mlp: bool = False) -> list[str]:
    mt = getattr(model.config, "model_type", "")
    present = set(linear_module_names(model))
    if mt in _ATTN_DEFAULTS and set(_ATTN_DEFAULTS[mt]) <= present:
        out = list(_ATTN_DEFAULTS[mt])
    else:
        # Unknown architecture: every Linear whose path runs through an attention block.
        out = sorted({full.rsplit(".", 1)[-1] for full, mod in model.named_modules()
                      if (type(mod).__name__ in ("Linear", "Conv1D")) and any(
                          k in full.lower() for k in ("attn", "attention"))})
        if not out:
            raise ModelError(f"Could not find attention projections in model type '{mt}'.",
                             hint=f"Set target_modules from: {', '.join(sorted(present))}.")
    if mlp:
        out += [m for m in _MLP_DEFAULTS if m in present]
    return out


def resolve_target_modules(model, cfg: TrainConfig) -> list[str]:
    if cfg.target_modules is None:
        return default_target_modules(model, cfg.lora_mlp)
    present = linear_module_names(model)
    unknown = [t for t in cfg.target_modules if t not in present]
    if unknown:
        raise ConfigError(f"Unknown target module(s) {', '.join(map(repr, unknown))} for model type "
                          f"'{getattr(model.config, 'model_type', '?')}'.",
                          hint=f"This model's linear modules are: {', '.join(present)}.")
    return list(cfg.target_modules)


# ---------------------------------------------------------------------------- session over a model
def session_for_model(model, tokenizer, *, name: str, identity: str, path: str = "", device: str = "cpu",
                      dtype=None, adapter: str | None = "(training)"):
    """A `ModelSession` that scores through the in-memory (peft) model being trained, so dev/test
    evaluation uses exactly `inference.evaluate` and its lm-eval scoring."""
    from workbench.engine.session import ModelSession

    return ModelSession.from_model(model, tokenizer, name=name, identity=identity, path=path, device=device,
                                   dtype=dtype, adapter=adapter)


# ---------------------------------------------------------------------------- plan (validation)
def check_train_model(model) -> tuple[str, bool, str | None]:
    """(model name, trust_remote_code, device) of what a training run may start from: a name or a
    ModelRef. The parts of a ModelRef that training cannot honour are refused, not dropped: a run
    trains fp32 master weights (bf16 autocast on a GPU), starts from the base model, and needs weights."""
    if isinstance(model, str) or model is None:
        return (model or "default"), False, None
    if model.remote:
        raise ConfigError(f"{model.model} is an inference server: its weights cannot be trained here.",
                          hint="Train a local model (a hub id, a folder or 'default'), then serve its adapter.")
    if model.adapter:
        raise ConfigError(f"Training starts from the base model; the adapter {model.adapter} is attached to it.",
                          hint="Detach the adapter (model bar), then train: the new run's adapter is saved on its own.")
    if model.dtype not in (None, "float32", "fp32"):
        raise ConfigError(f"Training keeps float32 master weights; --dtype {model.dtype} does not apply.",
                          hint="Leave --dtype out: a GPU with bf16 support trains under bf16 autocast by itself.")
    return model.model, bool(model.trust_remote_code), model.device

@dataclass
class TrainPlan:
    """Everything checked and loaded before the first step; `run_training` consumes it."""
    config: TrainConfig
    template: Any
    dataset: Any
    run_dir: Path
    model_name: str
    identity: str
    model: Any              # the peft model (fp32 master weights, on device)
    tokenizer: Any
    device: str
    amp_dtype: Any          # torch.bfloat16 under CUDA autocast, or None
    labels: list[str]
    target_modules: list[str]
    train_rows: Any
    dev_rows: Any
    test_rows: Any
    examples: list
    head: Any = None        # torch.nn.Linear in head mode
    registry: bool = True


def prepare(model, template, dataset, config: TrainConfig, run_dir: str | Path | None = None, *,
            registry: bool = True) -> TrainPlan:
    """Validate everything, load a private copy of the model and tokenize the training rows. Raises
    ConfigError / DataError with the exact problem before any training work starts. `model`: a name or
    the spec's ModelRef, whose every field is honoured or refused (check_train_model)."""
    import torch

    model, trust, ref_device = check_train_model(model)
    if config.device is None and ref_device:
        config = replace(config, device=ref_device)

    from workbench.core import train_data as td
    from workbench.core.data import split_dataset
    from workbench.jobs.inference import EvalConfig, build_prompts
    from workbench.engine.models import resolve_model
    from workbench.engine.session import pick_device

    config.validate()
    labels = td.class_labels(template)
    problems = [p for p in template.validate(columns=list(dataset.df.columns)) if p.severity == "error"]
    if problems:
        from workbench.errors import TemplateError
        raise TemplateError("The template has errors:\n" + "\n".join(f"  - {p.field}: {p.message}" for p in problems),
                            hint="Fix them in the template first.")
    splits = split_dataset(dataset, seed=config.split_seed, dev=config.dev_fraction, test=config.test_fraction)
    train_rows = td.select_train_rows(template, splits.train, config.shots_per_class, config.seed)
    if config.batch_size > len(train_rows):
        raise ConfigError(f"batch_size {config.batch_size} is larger than the training data ({len(train_rows)} rows).",
                          hint=f"Use batch_size <= {len(train_rows)}, or more training rows.")
    dev_rows = splits.dev.iloc[: config.dev_limit] if config.dev_limit else splits.dev
    test_rows = splits.test.iloc[: config.test_limit] if config.test_limit else splits.test

    # A private copy of the model: the shared session keeps serving the other tabs untouched.
    resolved = resolve_model(model)
    device = pick_device(config.device)
    from transformers import AutoModelForCausalLM, AutoTokenizer
    try:
        tok = AutoTokenizer.from_pretrained(resolved.path, trust_remote_code=trust)
        base = AutoModelForCausalLM.from_pretrained(resolved.path, dtype=torch.float32, attn_implementation="sdpa",
                                                    trust_remote_code=trust)
    except (OSError, ValueError) as exc:
        raise ModelError(f"Could not load model '{model}' from {resolved.path}: {exc}") from exc
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    targets = resolve_target_modules(base, config)

    view = session_for_model(base, tok, name=model, identity=resolved.identity, path=resolved.path, device="cpu")
    prompts = build_prompts(template, train_rows, train_rows, EvalConfig(shots=0), session=view)
    examples = td.build_examples(template, train_rows, prompts, view.encode_pair, labels)
    td.check_lengths(examples, config.max_length)

    run_dir = Path(run_dir) if run_dir else _default_run_dir(template)
    _claim_run_dir(run_dir)

    # Seed right before anything random is created: LoRA's A matrices, the head, dropout.
    torch.manual_seed(config.seed)
    from peft import LoraConfig, get_peft_model
    lcfg = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=targets, bias="none", task_type="CAUSAL_LM")
    if config.gradient_checkpointing:
        # non-reentrant checkpointing works with frozen inputs (LoRA: only adapter weights need grad)
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        base.config.use_cache = False
    peft_model = get_peft_model(base, lcfg)
    head = None
    if config.mode == "head":
        head = torch.nn.Linear(base.config.hidden_size, len(labels))
    amp = None
    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        amp = torch.bfloat16
    peft_model.to(device)
    if head is not None:
        head.to(device)
    return TrainPlan(config=config, template=template, dataset=dataset, run_dir=run_dir, model_name=model,
                     identity=resolved.identity, model=peft_model, tokenizer=tok, device=device, amp_dtype=amp,
                     labels=labels, target_modules=targets, train_rows=train_rows, dev_rows=dev_rows,
                     test_rows=test_rows, examples=examples, head=head, registry=registry)


def _default_run_dir(template) -> Path:
    from workbench.paths import train_dir
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in template.name)[:60]
    return train_dir() / f"{time.strftime('%Y%m%d-%H%M%S')}-{safe}"


def _claim_run_dir(run_dir: Path) -> None:
    """Create the run folder, or clear the files of a finished earlier run in it. Refuses a folder
    whose log shows a run that is still alive."""
    run_dir.mkdir(parents=True, exist_ok=True)
    st = read_status(run_dir)
    if st["state"] == "running":
        raise ConfigError(f"{run_dir} holds a training run that is still running (step {st['step']}).",
                          hint="Cancel it first, or pick another output folder.")
    for name in (LOG_NAME, RESULT_NAME, CANCEL_NAME, INTERRUPTED_NAME, "base_results.json", "adapter_results.json"):
        (run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir / ADAPTER_NAME, ignore_errors=True)
