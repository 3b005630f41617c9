"""Accelerator memory: what results report (gpu_mem_mb, peak), the scoring token budget chosen
from free GPU memory, and recognising an out-of-memory error so a batch can be halved.

    reset_peak(device); ...; memory_report(device)  -> {"gpu_mem_mb": .., "gpu_peak_mb": .., ...}
    budget = token_budget_for(device, spec_bytes_per_token)   # tokens per scoring batch
    is_oom(exc)                                                # torch.OutOfMemoryError or its message
"""
from __future__ import annotations

import contextlib

# A scoring batch of T tokens holds, per token: the key/value cache of every layer (kept for
# continuation feeds), plus one layer's transient activations (hidden, q/k/v/o, the MLP's gate,
# up and their product). Only this fraction of the free memory is planned for: the caching
# allocator fragments, and the LM head's fp32 log-softmax rows come on top.
FREE_FRACTION = 0.35
MIN_BUDGET, MAX_BUDGET = 2048, 131072
CPU_BUDGET, GPU_DEFAULT_BUDGET = 2048, 32768


def bytes_per_token(cfg: dict, elt: int) -> int:
    """Bytes one scoring token needs at peak (see FREE_FRACTION), from a Llama-style config."""
    h = int(cfg.get("hidden_size") or 0)
    inter = int(cfg.get("intermediate_size") or 4 * h)
    layers = int(cfg.get("num_hidden_layers") or 1)
    heads = int(cfg.get("num_attention_heads") or 1)
    kv = int(cfg.get("num_key_value_heads") or heads)
    hd = int(cfg.get("head_dim") or (h // max(1, heads)))
    kv_cache = layers * 2 * kv * hd * elt
    transient = (4 * h + 3 * inter) * elt + 2 * h * 4      # + fp32 RMSNorm copies
    return max(1, kv_cache + transient)


def token_budget_for(device: str | None, per_token: int, free_bytes: int | None = None) -> int:
    """Tokens per scoring batch: a power of two from the free GPU memory, within
    [MIN_BUDGET, MAX_BUDGET]; CPU_BUDGET on the CPU (larger batches gain nothing there)."""
    if not device or not str(device).startswith("cuda"):
        return CPU_BUDGET
    if free_bytes is None:
        free_bytes = free_gpu_bytes(device)
        if free_bytes is None:
            return GPU_DEFAULT_BUDGET
    t = int(free_bytes * FREE_FRACTION) // max(1, per_token)
    t = max(MIN_BUDGET, min(MAX_BUDGET, t))
    return 1 << (t.bit_length() - 1)            # round down to a power of two


def free_gpu_bytes(device: str) -> int | None:
    import torch

    with contextlib.suppress(Exception):
        free, _total = torch.cuda.mem_get_info(torch.device(device))
        # memory the caching allocator holds but does not use is free for us too
        return int(free + torch.cuda.memory_reserved(torch.device(device)) - torch.cuda.memory_allocated(torch.device(device)))
    return None


def is_oom(exc: BaseException) -> bool:
    """An accelerator out-of-memory error (torch.OutOfMemoryError, or a RuntimeError that says so)."""
    import torch

    oom_type = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def release(device: str | None) -> None:
    """Give cached blocks back after an OOM, so the halved batch has room."""
    if device and str(device).startswith("cuda"):
        import torch

        with contextlib.suppress(Exception):
            torch.cuda.empty_cache()


def reset_peak(device: str | None) -> None:
    if device and str(device).startswith("cuda"):
        import torch

        with contextlib.suppress(Exception):
            torch.cuda.reset_peak_memory_stats(torch.device(device))


def memory_report(device: str | None) -> dict:
    """gpu_mem_mb (allocated now), gpu_peak_mb (since reset_peak), gpu_reserved_mb on CUDA;
    peak_rss_mb (the process's peak resident memory) everywhere."""
    out: dict = {}
    with contextlib.suppress(Exception):
        import resource

        out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if device and str(device).startswith("cuda"):
        import torch

        with contextlib.suppress(Exception):
            d = torch.device(device)
            out["gpu_mem_mb"] = round(torch.cuda.memory_allocated(d) / 2**20, 1)
            out["gpu_peak_mb"] = round(torch.cuda.max_memory_allocated(d) / 2**20, 1)
            out["gpu_reserved_mb"] = round(torch.cuda.memory_reserved(d) / 2**20, 1)
    return out
