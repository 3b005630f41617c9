"""Decide, once per model, whether scoring may skip transformers.

`workbench eval` spends most of a short run importing transformers and building its model and
tokenizer. `llama_native.NativeLlama` + `fast_tokenizer.RawTokenizer` load the same files in a
fraction of that, but a fast path is only worth having if it gives the same answers. So the
first time a model folder is loaded (through transformers, as always), the session runs both
side by side on a fixed probe:

  * tokenizer: the ids of ~20 probe strings (spaces, newlines, digits, accents, CJK, emoji, the
    special tokens' own text), with and without special tokens, one by one and batched, their
    decoding (whole and token by token), and the BOS/EOS/PAD ids and the BOS text;
  * model: next-token log-probs at every position of two probe sequences, with and without a
    cached prefix, must agree within `TOLERANCE[dtype]`.

The verdict is written to `$WORKBENCH_CACHE/fastpath/<key>.json`, where the key covers the
folder's files (name, size, mtime), the dtype, the device kind and the torch / transformers /
tokenizers versions, so any change re-runs the check. Later loads with a passing verdict use
the fast path; everything else (a failing check, an unsupported architecture, an adapter,
`native=False`) scores through transformers exactly as before.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from workbench.core.fileutil import write_text_atomic
from workbench.paths import cache_home

log = logging.getLogger(__name__)

CHECK_VERSION = 3   # bump whenever the check itself changes: old verdicts are then re-checked
# Max |Δ log p| allowed between the two implementations. fp32 runs the same kernels in the same
# order (observed difference: 0 without a prefix cache, ~1e-5 with one); half precision rounds
# every intermediate, so ordering differences show up at its own resolution.
TOLERANCE = {"float32": 1e-4, "bfloat16": 5e-2, "float16": 1e-2}
# Half precision, scaled (docs/SCORING.md, "bf16 tolerance"): each implementation ends with
# logits rounded to the dtype, whose step near |z| is |z| * 2^-(mantissa bits); a log-prob
# inherits the rounding of its own logit and of the log-sum-exp's dominant ones, so two correct
# implementations can differ by a few steps of the largest logit. Allowed: the fixed floor
# above or ULPS steps at the probe's largest |logit|, whichever is larger. A wrong decoder
# (a mis-rotated head, a missing norm) is off by whole nats, far above either.
MANTISSA_BITS = {"bfloat16": 8, "float16": 11}
ULPS = 4


def tolerance(dtype: str, max_abs_logit: float = 0.0) -> float:
    """Max |Δ log p| allowed between transformers and the native decoder for `dtype`."""
    base = TOLERANCE.get(dtype, 1e-4)
    bits = MANTISSA_BITS.get(dtype)
    if bits is None:
        return base
    return max(base, ULPS * max_abs_logit * 2.0 ** -bits)

PROBE_TEXTS = [
    "Topic of the article: Oil prices rise as OPEC cuts output.\nAnswer:",
    " leading space", "trailing space ", "  two  spaces  ", "\n\nnew\nlines\n", "\ttab\tseparated",
    "Numbers 12345 and 3.14159, 1,000,000.", "Accents: café, naïve, Ünïcödé, Ångström.",
    "中文文本和日本語のテキスト", "Emoji 🙂👍🏽 and symbols ©®™ → ∑", "MiXeD CaSe and under_scores and CamelCase",
    "Q: Who wrote Hamlet?\nA: William Shakespeare", "'quotes' \"double\" `back`", "",
    " business", " entertainment", " politics", " sport", " tech", "positive", " negative",
]


def _versions() -> str:
    from workbench.engine.versions import package_versions

    v = package_versions(("torch", "transformers", "tokenizers"), missing="none")
    return ",".join(f"{k}={v[k]}" for k in ("torch", "transformers", "tokenizers"))


def _folder_signature(folder: Path) -> list:
    sig = []
    for p in sorted(folder.iterdir()):
        if p.suffix in (".json", ".safetensors", ".model", ".jinja") and p.is_file():
            st = p.stat()
            sig.append([p.name, st.st_size, st.st_mtime_ns])
    return sig


def verdict_path(folder: str | Path, dtype: str, device: str) -> Path:
    folder = Path(folder).resolve()
    key = json.dumps([CHECK_VERSION, str(folder), _folder_signature(folder), dtype, device.split(":")[0], _versions()])
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return cache_home() / "fastpath" / f"{digest}.json"


def lookup(folder: str | Path, dtype: str, device: str) -> dict | None:
    """The stored verdict for this model folder/dtype/device, or None if it was never checked."""
    try:
        return json.loads(verdict_path(folder, dtype, device).read_text())
    except (OSError, ValueError):
        return None


def _prune(directory: Path) -> None:
    """Drop verdicts of model folders that no longer exist (temporary and deleted models)."""
    for p in directory.glob("*.json"):
        try:
            if not Path(json.loads(p.read_text())["folder"]).exists():
                p.unlink()
        except (OSError, ValueError, KeyError):
            continue


def _save(folder, dtype: str, device: str, verdict: dict) -> None:
    path = verdict_path(folder, dtype, device)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _prune(path.parent)
        write_text_atomic(path, json.dumps(verdict, indent=1))
    except OSError as exc:     # a read-only cache only costs speed
        log.warning("could not store the fast-path verdict at %s: %s", path, exc)


def check_tokenizer(hf_tok, raw) -> str | None:
    """None if the raw tokenizer matches the transformers one on the probe, else the first mismatch."""
    for attr in ("bos_token_id", "eos_token_id", "pad_token_id"):
        if getattr(hf_tok, attr) != getattr(raw, attr):
            return f"{attr}: transformers {getattr(hf_tok, attr)} vs raw {getattr(raw, attr)}"
    texts = list(PROBE_TEXTS)
    for tid in (hf_tok.bos_token_id, hf_tok.eos_token_id):
        if tid is not None:
            if hf_tok.decode([tid]) != raw.decode([tid]):
                return f"decode([{tid}]) differs"
            special = hf_tok.decode([tid])
            texts += [special + "Hello", "a" + special + "b"]
    for add in (True, False):
        for t in texts:
            ids = hf_tok.encode(t, add_special_tokens=add)
            if ids != raw.encode(t, add_special_tokens=add):
                return f"encode({t!r}, add_special_tokens={add}) differs"
            # The token view in Preview decodes with the raw tokenizer too, whole and token by token.
            if hf_tok.decode(ids) != raw.decode(ids) or [hf_tok.decode([i]) for i in ids] != [raw.decode([i]) for i in ids]:
                return f"decode of {t!r} differs"
        if hf_tok(texts, add_special_tokens=add)["input_ids"] != raw(texts, add_special_tokens=add)["input_ids"]:
            return f"batch encode (add_special_tokens={add}) differs"
    return None


def check_model(hf_model, native, token_ids: list[int], scale: dict | None = None) -> float:
    """Max |Δ log p| between transformers and the native decoder over all positions of two
    probe sequences, plain and with a cached prefix. `scale` (if given) gets the reference's
    largest |logit| as "max_abs_logit" (what a half-precision tolerance scales with)."""
    import torch

    ids = torch.tensor([token_ids, token_ids[::-1]], device=native.device)        # [2, T]
    T = ids.shape[1]
    P = T // 2
    with torch.inference_mode():
        logits = hf_model(input_ids=ids).logits.float()                             # [2, T, V]
        if scale is not None:
            scale["max_abs_logit"] = float(logits.abs().max())
        ref = torch.log_softmax(logits, -1)
        plain = torch.log_softmax(native.head(native.hidden(ids)).float(), -1)
        kv = native.prefix(token_ids[:P])
        cached = torch.log_softmax(native.head(native.hidden(ids[:1, P:], prefix_kv=kv)).float(), -1)
    return max(float((ref - plain).abs().max()), float((ref[:1, P:] - cached).abs().max()))


def verify(hf_model, hf_tok, folder: str | Path, dtype: str, device: str) -> dict:
    """Run the side-by-side check, store the verdict, return it. Never raises: a failing or
    crashing check only means scoring stays on transformers."""
    from workbench.engine.fast_tokenizer import RawTokenizer
    from workbench.engine.llama_native import NativeLlama, spec_from_config

    verdict: dict = {"ok": False, "folder": str(folder), "dtype": dtype, "device": device, "versions": _versions(),
                     "check_version": CHECK_VERSION}
    try:
        spec = spec_from_config(hf_model.config.to_dict())
        if isinstance(spec, str):
            verdict["reason"] = f"architecture: {spec}"
        elif not list(Path(folder).glob("*.safetensors")) or not (Path(folder) / "tokenizer.json").exists():
            verdict["reason"] = "the folder has no safetensors weights or no tokenizer.json"
        else:
            raw = RawTokenizer(folder)
            bad = check_tokenizer(hf_tok, raw)
            if bad:
                verdict["reason"] = f"tokenizer: {bad}"
            else:
                native = NativeLlama.from_hf(hf_model)
                probe = hf_tok.encode(" ".join(PROBE_TEXTS[:12]), add_special_tokens=False)[:64]
                scale: dict = {}
                diff = check_model(hf_model, native, probe, scale)
                verdict["max_abs_logprob_diff"] = diff
                tol = tolerance(dtype, scale.get("max_abs_logit", 0.0))
                verdict["tolerance"] = tol
                verdict["max_abs_logit"] = scale.get("max_abs_logit")
                if diff <= tol:
                    verdict["ok"] = True
                else:
                    verdict["reason"] = f"log-probs differ by {diff:.2e} (> {tol:g})"
    except Exception as exc:  # noqa: BLE001 - any failure just keeps the transformers path
        verdict["reason"] = f"check failed: {type(exc).__name__}: {exc}"
    _save(folder, dtype, device, verdict)
    if not verdict["ok"]:
        log.info("native scoring off for %s: %s", folder, verdict.get("reason"))
    return verdict
