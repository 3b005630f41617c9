"""The model's tokenizer.json through the `tokenizers` library alone (0.1 s to load, against
about 2 s to import and build a transformers tokenizer on a 2-core CPU).

It offers only what scoring needs (encode, batch encode, decode, the special-token ids) and is
used only after `fastpath.py` has checked, for this model, that it returns exactly the ids the
transformers tokenizer returns.
"""
from __future__ import annotations

import json
from pathlib import Path


def _token_text(v) -> str | None:
    if isinstance(v, dict):     # AddedToken serialised as {"content": ..., ...}
        return v.get("content")
    return v if isinstance(v, str) else None


class RawTokenizer:
    def __init__(self, folder: str | Path):
        from tokenizers import Tokenizer

        folder = Path(folder)
        self._tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        cfg_path = folder / "tokenizer_config.json"
        cfg = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
        smap_path = folder / "special_tokens_map.json"
        smap = json.loads(smap_path.read_text()) if smap_path.exists() else {}
        model_cfg_path = folder / "config.json"
        model_cfg = json.loads(model_cfg_path.read_text()) if model_cfg_path.exists() else {}

        def special(name: str) -> int | None:
            text = _token_text(cfg.get(f"{name}_token")) or _token_text(smap.get(f"{name}_token"))
            if text is not None:
                return self._tok.token_to_id(text)
            v = model_cfg.get(f"{name}_token_id")
            return v if isinstance(v, int) else None

        self.bos_token_id = special("bos")
        self.eos_token_id = special("eos")
        self.pad_token_id = special("pad")
        if self.pad_token_id is None:
            self.pad_token_id = self.eos_token_id     # as the session does for transformers tokenizers

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self._tok.encode(text, add_special_tokens=add_special_tokens).ids

    def __call__(self, texts: list[str], add_special_tokens: bool = True) -> dict:
        return {"input_ids": [e.ids for e in self._tok.encode_batch(list(texts), add_special_tokens=add_special_tokens)]}

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=skip_special_tokens)
