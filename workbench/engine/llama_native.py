"""A compact, pure-torch Llama decoder for scoring, so that `workbench eval` need not import
transformers' modelling stack (about 3 s of a 10 s run on a 2-core CPU, see BENCHMARKS.md).

It covers the decoder-only family that shares Llama's layout: RMSNorm, rotary positions,
grouped-query attention and a SwiGLU MLP (model_type llama, mistral without a sliding window,
qwen2 with its q/k/v biases). Anything else, or any config field it does not understand, makes
`spec_from_config` return a reason and the session uses transformers instead.

The session never trusts this module blindly: `fastpath.py` runs it side by side with the
transformers model once per (model, dtype, device kind, library versions), and only a model
whose log-probs agree within tolerance is ever scored here. Weights can be shared with an
already loaded transformers model (`from_hf`), so holding both costs no extra memory.

Shapes: B batch, T new tokens, P cached prefix tokens, H hidden size, nh/nkv query/key-value
heads, d head dim, V vocabulary.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

# scaled_dot_product_attention's enable_gqa (torch >= 2.5): grouped-query attention without
# repeating the key/value heads
_SDPA_GQA = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2]) >= (2, 5)

SUPPORTED_TYPES = ("llama", "mistral", "qwen2")
_ROPE_TYPES = ("default", "linear", "llama3")


@dataclass(frozen=True)
class LlamaSpec:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    eps: float
    rope_theta: float
    rope: dict = field(default_factory=dict)     # rope_type and its scaling parameters
    tied: bool = False
    qkv_bias: bool = False
    max_positions: int = 2048


def spec_from_config(cfg: dict) -> LlamaSpec | str:
    """The spec for a config.json, or a short reason why this module cannot run it."""
    mt = cfg.get("model_type")
    if mt not in SUPPORTED_TYPES:
        return f"model_type {mt!r} is not one of {', '.join(SUPPORTED_TYPES)}"
    if cfg.get("hidden_act", "silu") != "silu":
        return f"hidden_act {cfg.get('hidden_act')!r}"
    if cfg.get("mlp_bias") or (mt != "qwen2" and cfg.get("attention_bias")):
        return "biases outside q/k/v"
    if mt == "mistral" and cfg.get("sliding_window"):
        return "sliding-window attention"
    if mt == "qwen2" and cfg.get("use_sliding_window"):
        return "sliding-window attention"
    if cfg.get("pretraining_tp", 1) not in (1, None):
        return "pretraining_tp > 1"
    if cfg.get("final_logit_softcapping") or cfg.get("attn_logit_softcapping"):
        return "logit soft-capping"
    # transformers 5 writes `rope_parameters`; older configs have `rope_theta` + `rope_scaling`.
    rope = dict(cfg.get("rope_parameters") or cfg.get("rope_scaling") or {})
    rope_type = rope.get("rope_type") or rope.get("type") or "default"
    if rope_type not in _ROPE_TYPES:
        return f"rope type {rope_type!r}"
    rope["rope_type"] = rope_type
    theta = rope.get("rope_theta", cfg.get("rope_theta", 10000.0))
    heads = cfg["num_attention_heads"]
    return LlamaSpec(hidden=cfg["hidden_size"], layers=cfg["num_hidden_layers"], heads=heads,
                     kv_heads=cfg.get("num_key_value_heads") or heads,
                     head_dim=cfg.get("head_dim") or cfg["hidden_size"] // heads, vocab=cfg["vocab_size"],
                     eps=float(cfg.get("rms_norm_eps", 1e-6)), rope_theta=float(theta), rope=rope,
                     tied=bool(cfg.get("tie_word_embeddings", False)), qkv_bias=(mt == "qwen2") or bool(cfg.get("attention_bias")),
                     max_positions=int(cfg.get("max_position_embeddings") or 2048))


def inv_freq(spec: LlamaSpec, device=None) -> torch.Tensor:
    """Rotary inverse frequencies [d/2], fp32, with the config's scaling applied."""
    d = spec.head_dim
    base = 1.0 / (spec.rope_theta ** (torch.arange(0, d, 2, dtype=torch.int64).to(device=device, dtype=torch.float) / d))
    kind = spec.rope["rope_type"]
    if kind == "linear":
        return base / float(spec.rope["factor"])
    if kind == "llama3":
        # Llama 3.1: long wavelengths are slowed down by `factor`, short ones kept, and the band
        # between low_freq_factor and high_freq_factor interpolated smoothly.
        factor = float(spec.rope["factor"])
        low, high = float(spec.rope["low_freq_factor"]), float(spec.rope["high_freq_factor"])
        old_ctx = float(spec.rope["original_max_position_embeddings"])
        wavelen = 2 * torch.pi / base
        out = torch.where(wavelen > old_ctx / low, base / factor, base)
        smooth = (old_ctx / wavelen - low) / (high - low)
        mid = (1 - smooth) * out / factor + smooth * out
        is_mid = ~(wavelen < old_ctx / high) & ~(wavelen > old_ctx / low)
        return torch.where(is_mid, mid, out)
    return base


@dataclass
class _Layer:
    ln_in: torch.Tensor
    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    o: torch.Tensor
    ln_post: torch.Tensor
    gate: torch.Tensor
    up: torch.Tensor
    down: torch.Tensor
    q_b: torch.Tensor | None = None
    k_b: torch.Tensor | None = None
    v_b: torch.Tensor | None = None


class NativeLlama:
    """Decoder forward for scoring only: no dropout, no training, no generation."""

    def __init__(self, spec: LlamaSpec, weights: dict[str, torch.Tensor]):
        self.spec = spec
        w = {k.removeprefix("base_model.model."): v for k, v in weights.items()}
        missing = [k for k in ("model.embed_tokens.weight", "model.norm.weight") if k not in w]
        if missing:
            raise KeyError(f"weights lack {missing}")
        self.embed = w["model.embed_tokens.weight"]                     # [V, H]
        self.norm = w["model.norm.weight"]
        self.lm_head = self.embed if spec.tied or "lm_head.weight" not in w else w["lm_head.weight"]
        self.layers = []
        for i in range(spec.layers):
            p = f"model.layers.{i}."
            self.layers.append(_Layer(
                ln_in=w[p + "input_layernorm.weight"], ln_post=w[p + "post_attention_layernorm.weight"],
                q=w[p + "self_attn.q_proj.weight"], k=w[p + "self_attn.k_proj.weight"],
                v=w[p + "self_attn.v_proj.weight"], o=w[p + "self_attn.o_proj.weight"],
                gate=w[p + "mlp.gate_proj.weight"], up=w[p + "mlp.up_proj.weight"], down=w[p + "mlp.down_proj.weight"],
                q_b=w.get(p + "self_attn.q_proj.bias"), k_b=w.get(p + "self_attn.k_proj.bias"),
                v_b=w.get(p + "self_attn.v_proj.bias")))
        self.device = self.embed.device
        self.dtype = self.embed.dtype
        self._inv_freq = inv_freq(spec, self.device)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_folder(cls, folder: str | Path, *, dtype: torch.dtype = torch.float32, device: str = "cpu",
                    config: dict | None = None) -> "NativeLlama":
        """Load a safetensors checkpoint (single file or sharded) straight into tensors.
        `config`: the folder's config.json when the caller has already read it."""
        from safetensors.torch import load_file

        folder = Path(folder)
        cfg = config or json.loads((folder / "config.json").read_text())
        spec = spec_from_config(cfg)
        if isinstance(spec, str):
            raise ValueError(f"not a supported architecture: {spec}")
        index = folder / "model.safetensors.index.json"
        files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() else ["model.safetensors"]
        weights: dict[str, torch.Tensor] = {}
        for name in files:
            for k, t in load_file(str(folder / name), device="cpu").items():
                weights[k] = t.to(device=device, dtype=dtype)
        return cls(spec, weights)

    @classmethod
    def from_hf(cls, model) -> "NativeLlama":
        """Share the parameter tensors of a loaded transformers model (no copy)."""
        spec = spec_from_config(model.config.to_dict())
        if isinstance(spec, str):
            raise ValueError(f"not a supported architecture: {spec}")
        return cls(spec, {n: p.detach() for n, p in model.named_parameters()})

    def num_parameters(self) -> int:
        seen, n = set(), 0
        for t in [self.embed, self.norm, self.lm_head] + [x for L in self.layers for x in vars(L).values()]:
            if t is not None and id(t) not in seen:
                seen.add(id(t))
                n += t.numel()
        return n

    def weight_bytes(self) -> int:
        return self.num_parameters() * self.embed.element_size()

    # ------------------------------------------------------------------ forward
    def _rms(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        # Normalise in fp32 whatever the weights' dtype (bf16 sums of squares lose too much).
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.spec.eps)
        return w * xf.to(x.dtype)

    def _rotary(self, start, T: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin for positions start..start+T-1: [T, d] for an int start, [B, 1, T, d] for
        per-row starts [B]."""
        if isinstance(start, torch.Tensor):
            pos = (start[:, None] + torch.arange(T, device=self.device)).float()    # [B, T]
            freqs = pos[:, None, :, None] * self._inv_freq                          # [B, 1, T, d/2]
        else:
            pos = torch.arange(start, start + T, device=self.device, dtype=torch.float)
            freqs = pos[:, None] * self._inv_freq[None, :]                  # [T, d/2], fp32
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(self.dtype), emb.sin().to(self.dtype)

    @staticmethod
    def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        rot = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return x * cos + rot * sin

    def hidden(self, ids: torch.Tensor, prefix_kv: list | None = None, return_kv: bool = False,
               row_kv: list | None = None, row_index: torch.Tensor | None = None,
               row_lens: torch.Tensor | None = None):
        """Final hidden states [B, T, H] for token ids [B, T], after a cached prefix.

        prefix_kv: per layer (k, v), each [1 or B, nkv, P, d]: a prefix every row shares.
        row_kv, row_index, row_lens: a second, per-row cache after it (a prefix tree's contexts):
          per layer (k, v), each [R, nkv, C, d], right-padded; row b of the batch continues
          cache row row_index[b] ([B] long), whose first row_lens[row_index[b]] entries are real
          ([R] long). Row b's tokens then sit at positions P + row_lens[row_index[b]] + t.
        return_kv: also return the new tokens' own (k, v) per layer, each [B, nkv, T, d].

        Rows are right-padded by the caller. Under a causal mask a real token never attends to
        the padding after it, so no padding mask is needed for the new tokens and every real
        position gets the same result as without padding."""
        s = self.spec
        B, T = ids.shape
        P = prefix_kv[0][0].shape[2] if prefix_kv else 0
        mask = None
        if row_kv is not None:
            C = row_kv[0][0].shape[2]
            lens = row_lens[row_index]                                  # [B]
            cos, sin = self._rotary(lens + P, T)                        # [B, 1, T, d]
            # [B, 1, T, P + C + T]: the shared prefix, the row's real cache entries, causal new tokens
            real = torch.arange(C, device=self.device)[None, :] < lens[:, None]                  # [B, C]
            mask = torch.cat((torch.ones(B, T, P, dtype=torch.bool, device=self.device),
                              real[:, None, :].expand(B, T, C),
                              torch.ones(T, T, dtype=torch.bool, device=self.device).tril().expand(B, T, T)),
                             dim=-1)[:, None]
        else:
            cos, sin = self._rotary(P, T)                               # [T, d]
            if P:
                # New token t sees the whole prefix and new tokens <= t: [T, P + T].
                mask = torch.ones(T, P + T, dtype=torch.bool, device=self.device).tril(P)
        x = F.embedding(ids, self.embed)                                # [B, T, H]
        kv_out = []
        for i, L in enumerate(self.layers):
            a = self._rms(x, L.ln_in)
            q = F.linear(a, L.q, L.q_b).view(B, T, s.heads, s.head_dim).transpose(1, 2)      # [B, nh, T, d]
            k = F.linear(a, L.k, L.k_b).view(B, T, s.kv_heads, s.head_dim).transpose(1, 2)   # [B, nkv, T, d]
            v = F.linear(a, L.v, L.v_b).view(B, T, s.kv_heads, s.head_dim).transpose(1, 2)
            q, k = self._rotate(q, cos, sin), self._rotate(k, cos, sin)
            if return_kv:
                kv_out.append((k, v))
            ks, vs = [], []
            if P:
                pk, pv = prefix_kv[i]
                ks.append(pk.expand(B, -1, -1, -1))
                vs.append(pv.expand(B, -1, -1, -1))
            if row_kv is not None:
                rk, rv = row_kv[i]
                ks.append(rk.index_select(0, row_index))               # [B, nkv, C, d]
                vs.append(rv.index_select(0, row_index))
            if ks:
                k = torch.cat((*ks, k), dim=2)                          # [B, nkv, P+C+T, d]
                v = torch.cat((*vs, v), dim=2)
            gqa = {}
            if s.kv_heads != s.heads:
                if _SDPA_GQA:
                    # query head h reads kv head h // rep inside the kernel: no [B, nh, P+C+T, d]
                    # copies of the keys and values (with a long shared prefix, those copies
                    # cost as much as the attention itself)
                    gqa = {"enable_gqa": True}
                else:
                    rep = s.heads // s.kv_heads
                    k = k.repeat_interleave(rep, dim=1)                 # [B, nh, P+C+T, d]
                    v = v.repeat_interleave(rep, dim=1)
            att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None and T > 1,
                                                 scale=s.head_dim ** -0.5, **gqa)            # [B, nh, T, d]
            x = x + F.linear(att.transpose(1, 2).reshape(B, T, s.heads * s.head_dim), L.o)
            m = self._rms(x, L.ln_post)
            x = x + F.linear(F.silu(F.linear(m, L.gate)) * F.linear(m, L.up), L.down)
        x = self._rms(x, self.norm)
        return (x, kv_out) if return_kv else x

    def prefix(self, ids: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Key/value cache of a shared prefix: per layer (k, v), each [1, nkv, P, d]."""
        t = torch.tensor([list(ids)], device=self.device)
        return self.hidden(t, return_kv=True)[1]

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """Logits [N, V] for hidden states [N, H]."""
        return F.linear(h, self.lm_head)
