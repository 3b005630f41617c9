"""Write RANDOM-initialised Llama model folders (seeded, deterministic) + the SmolLM2 tokenizer,
for bench/gpu_check.sh. No weights travel: the GPU machine builds them itself, in one process.

    python bench/gpu_model.py 1b:/tmp/rand1b 8b:/tmp/rand8b [--device cuda] [--dtype bfloat16]
    python bench/gpu_model.py tiny:/tmp/randtiny tinybig:/tmp/randtinybig   (CPU dry run)

Sizes: 8b = Llama-3-8B shape (hidden 4096, 14336, 32 layers, 32 heads, 8 KV heads, vocabulary
128256: ids past the tokenizer's are never used, but the head is full size);
tinybig = tiny with that vocabulary (the dry run of the 8b step); 1b = TinyLlama-1.1B shape (hidden 2048, 5632, 22 layers, 32 heads, 4 KV heads, untied head);
small = SmolLM2-135M's real shape (tied); tiny = 2 layers, hidden 64. Vocabulary = the tokenizer's.
"""
import argparse, json, shutil, time
from pathlib import Path

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

HERE = Path(__file__).resolve().parent
SIZES = {
    "8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=8, max_position_embeddings=8192, tie_word_embeddings=False, rope_theta=500000.0,
               vocab_size=128256),
    "tinybig": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=False,
                    rope_theta=10000.0, vocab_size=128256),
    "1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
               num_key_value_heads=4, max_position_embeddings=2048, tie_word_embeddings=False, rope_theta=10000.0),
    "small": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                  num_key_value_heads=3, head_dim=64, max_position_embeddings=8192, tie_word_embeddings=True,
                  rope_theta=100000.0),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=False, rope_theta=10000.0),
}

ap = argparse.ArgumentParser()
ap.add_argument("specs", nargs="+", help="SIZE:FOLDER")
ap.add_argument("--tokenizer", default=str(HERE.parent / ".gpu" / "data" / "tokenizer"))
ap.add_argument("--dtype", default="bfloat16")
ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
ap.add_argument("--seed", type=int, default=1234)
args = ap.parse_args()

tok = Path(args.tokenizer)
tj = json.loads((tok / "tokenizer.json").read_text())
vocab = max([len(tj["model"]["vocab"])] + [a["id"] + 1 for a in tj.get("added_tokens", [])])
print(f"torch {torch.__version__}, transformers {transformers.__version__}, vocab {vocab}, device {args.device}", flush=True)
for spec in args.specs:
    size, out = spec.split(":", 1)
    t0 = time.time()
    kw = dict(SIZES[size])
    rope_theta = kw.pop("rope_theta")
    kw.setdefault("vocab_size", vocab)
    cfg = LlamaConfig( hidden_act="silu", rms_norm_eps=1e-5, initializer_range=0.02,
                      attention_bias=False, mlp_bias=False, bos_token_id=1, eos_token_id=2, pad_token_id=2,
                      use_cache=True, **kw)
    # transformers 5 keeps rope settings in `rope_parameters`; 4.x in `rope_theta`
    if isinstance(getattr(cfg, "rope_parameters", None), dict):
        cfg.rope_parameters = {"rope_type": "default", "rope_theta": rope_theta}
    else:
        cfg.rope_theta = rope_theta
    torch.manual_seed(args.seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(args.seed)
    with torch.device(args.device):
        model = LlamaForCausalLM(cfg)
    model = model.to(getattr(torch, args.dtype))
    n = sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        checksum = float(sum(p.float().abs().sum() for p in model.parameters()))
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    model.save_pretrained(out)
    del model
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"):
        if (tok / name).exists():
            shutil.copy(tok / name, out / name)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    nbytes = sum(f.stat().st_size for f in out.iterdir())
    print(json.dumps({"size": size, "out": str(out), "params": n, "abs_sum": round(checksum, 1), "vocab": cfg.vocab_size,
                      "dtype": args.dtype, "device": args.device, "bytes": nbytes,
                      "files": sorted(f.name for f in out.iterdir()), "seconds": round(time.time() - t0, 1)}), flush=True)
