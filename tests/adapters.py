"""A LoRA adapter for the real-model tests that really changes the model.

peft starts every LoRA B matrix at zero (the identity); tests that check an adapter takes part
need one that does not, so its B matrices are filled with seeded noise of size `scale`."""
from __future__ import annotations

from pathlib import Path


def write_random_lora(base_path: str, out: str | Path, *, scale: float, seed: int = 0) -> Path:
    """Save an r=4 LoRA on q_proj/v_proj of the model at `base_path` to `out`; returns `out`."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=g) * scale)
    model.save_pretrained(str(out))
    return Path(out)
