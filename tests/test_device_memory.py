"""Device and dtype choice, the GPU token budget, and out-of-memory halving in the scoring loop.
All on CPU: CUDA's answers are monkeypatched, and the OOM comes from a fake runner that raises
torch.OutOfMemoryError on batches over a token limit (tests/test_prefix_scoring.py runs the
same loop on a real model)."""
from __future__ import annotations

import pytest
import torch

from workbench.engine import device_memory as dm
from workbench.engine import prefix_scoring
from workbench.engine.session import pick_device, pick_dtype
from workbench.errors import ModelError


# ----------------------------------------------------------------------------- device / dtype
def test_auto_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device(None) == "cuda" and pick_device("auto") == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device(None) == "cpu"


def test_cuda_requested_without_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ModelError, match="CUDA is not available"):
        pick_device("cuda")
    assert pick_device("cpu") == "cpu"


def test_dtype_bf16_on_cuda_that_supports_it_else_fp16_fp32_on_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert pick_dtype("cuda") is torch.bfloat16
    assert pick_dtype("cuda:1") is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert pick_dtype("cuda") is torch.float16
    assert pick_dtype("cpu") is torch.float32
    assert pick_dtype("mps") is torch.float16
    assert pick_dtype("cuda", "float32") is torch.float32       # asked for: kept
    assert pick_dtype("cpu", "bf16") is torch.bfloat16
    with pytest.raises(ModelError, match="Unknown dtype"):
        pick_dtype("cpu", "float8")


# ----------------------------------------------------------------------------- token budget
TINYLLAMA = {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22,
             "num_attention_heads": 32, "num_key_value_heads": 4}


def test_bytes_per_token_counts_kv_cache_and_one_layer_of_activations():
    per = dm.bytes_per_token(TINYLLAMA, 2)
    kv = 22 * 2 * 4 * 64 * 2                     # layers x (k, v) x kv heads x head dim x bf16
    assert per == kv + (4 * 2048 + 3 * 5632) * 2 + 2 * 2048 * 4


def test_token_budget_from_free_memory_is_a_clamped_power_of_two():
    per = dm.bytes_per_token(TINYLLAMA, 2)
    assert dm.token_budget_for("cpu", per) == dm.CPU_BUDGET          # CPU: fixed, free memory unused
    b = dm.token_budget_for("cuda", per, free_bytes=10 * 2**30)
    assert b & (b - 1) == 0 and dm.MIN_BUDGET <= b <= dm.MAX_BUDGET
    assert b * per <= dm.FREE_FRACTION * 10 * 2**30 < 2 * b * per     # the largest power of two that fits
    assert dm.token_budget_for("cuda", per, free_bytes=100 * 2**30) >= b    # more memory, no smaller budget
    assert dm.token_budget_for("cuda", per, free_bytes=1) == dm.MIN_BUDGET
    assert dm.token_budget_for("cuda", 1, free_bytes=2**40) == dm.MAX_BUDGET


def test_is_oom_recognises_torch_oom_and_its_message_only():
    assert dm.is_oom(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert dm.is_oom(RuntimeError("CUDA error: out of memory"))
    assert not dm.is_oom(RuntimeError("shape mismatch"))
    assert not dm.is_oom(ValueError("out of memory"))


def test_memory_report_on_cpu_has_rss_only():
    rep = dm.memory_report("cpu")
    assert rep["peak_rss_mb"] > 0 and "gpu_mem_mb" not in rep


# ----------------------------------------------------------------------------- OOM halving
V = 11


class FakeRunner:
    """Logits at a position = a fixed random row per (token, position): deterministic, so any
    batching gives the same numbers. Raises OutOfMemoryError on batches of more than `limit`
    padded tokens, like a GPU with little free memory."""

    def __init__(self, limit: int | None = None):
        self.device = "cpu"
        self.limit = limit
        self.table = torch.randn(V, 64, V, generator=torch.Generator().manual_seed(0))
        self.batches: list[int] = []
        self.ooms = 0

    def _check(self, ids):
        if self.limit is not None and ids.numel() > self.limit:
            self.ooms += 1
            raise torch.OutOfMemoryError(f"fake: {ids.numel()} tokens > {self.limit}")
        self.batches.append(ids.numel())

    def prefix(self, ids):
        return None

    def contexts(self, ids, lens, prefix_kv, rows, cols, want_kv):
        self._check(ids)
        kv = [(torch.zeros(ids.shape[0], 1, ids.shape[1], 1), torch.zeros(ids.shape[0], 1, ids.shape[1], 1))]
        return self.table[ids[rows, cols], cols], (kv if want_kv else None)

    def continuations(self, ids, lens, prefix_kv, row_kv, row_index, row_lens, rows, cols):
        self._check(ids)
        return self.table[ids[rows, cols], (cols + row_lens[row_index][rows]) % 64]


def _pairs():
    g = torch.Generator().manual_seed(1)
    out = []
    for i in range(40):
        ctx = torch.randint(1, V, (3 + i % 9,), generator=g).tolist()
        for cont in ([1], [2, 3], [4, 5, 6]):      # single- and multi-token continuations
            out.append((ctx, cont))
    return out


def test_oom_halves_the_budget_and_gives_the_same_scores(caplog):
    pairs = _pairs()
    ref, info0 = prefix_scoring.score(pairs, FakeRunner(), max_len=64, token_budget=512, max_batch=64, pad_id=0)
    assert info0["oom_halvings"] == 0
    runner = FakeRunner(limit=64)
    stats: dict = {}
    with caplog.at_level("WARNING"):
        out, info = prefix_scoring.score(pairs, runner, max_len=64, token_budget=512, max_batch=64, pad_id=0,
                                         stats=stats)
    assert info["oom_halvings"] >= 2 and runner.ooms == info["oom_halvings"]
    assert stats["oom_halvings"] == info["oom_halvings"]
    assert max(runner.batches) <= 64                     # every batch that ran fitted
    assert "token budget halved" in caplog.text          # and it says so
    for (a, ga, na), (b, gb, nb) in zip(ref, out):
        assert a == pytest.approx(b, abs=1e-5) and ga == gb and na == nb


def test_oom_on_a_single_row_is_raised_not_looped():
    with pytest.raises(torch.OutOfMemoryError):
        prefix_scoring.score(_pairs()[:3], FakeRunner(limit=1), max_len=64, token_budget=512, max_batch=64, pad_id=0)


def test_other_errors_are_not_taken_for_oom():
    class Broken(FakeRunner):
        def contexts(self, *a, **k):
            raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        prefix_scoring.score(_pairs(), Broken(), max_len=64, token_budget=512, max_batch=64, pad_id=0)
