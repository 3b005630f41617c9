"""The local tokenizer of a served model: scoring sends token ids, so the workbench needs it.

    tokenizer_folder("default", client)     # --tokenizer, else the served name or the reported root
"""
from __future__ import annotations

from workbench.errors import ModelError


_TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "config.json",
                    "generation_config.json", "*.model", "*.tiktoken", "*.jinja", "vocab.*", "merges.txt"]


def tokenizer_folder(name: str | None, engine) -> str:
    """A local folder with the served model's tokenizer: `name` (--tokenizer) if given, else the
    served name or the model the server reports, if either is 'default', a folder, a .gguf or a
    hub id whose tokenizer files can be fetched (only those, never the weights)."""
    candidates = [name] if name else [engine.served_name, engine.root]
    last = None
    for c in candidates:
        if not c:
            continue
        try:
            return _tokenizer_folder(str(c))
        except ModelError as exc:
            last = exc
    if name and last is not None:
        raise last
    raise ModelError(f"Which tokenizer does '{engine.served_name}' at {engine.base_url} use? Scoring sends token "
                     "ids, so the workbench needs the served model's tokenizer locally.",
                     hint="Pass --tokenizer default (SmolLM2), a model folder or a hub id (only its tokenizer files "
                          "are fetched). Its agreement with the server is checked when connecting.")


def _tokenizer_folder(c: str) -> str:
    import re
    from pathlib import Path

    from workbench.engine.models import DEFAULT_HUB_ID, DEFAULT_MODEL, resolve_model

    p = Path(c).expanduser()
    if c in (DEFAULT_MODEL, DEFAULT_HUB_ID) and not p.exists():
        return resolve_model(c).path
    if p.suffix == ".gguf" and p.exists():
        return resolve_model(str(p)).path
    if p.is_dir():
        if (p / "tokenizer.json").exists() or (p / "tokenizer_config.json").exists():
            return str(p.resolve())
        raise ModelError(f"Folder {p} has no tokenizer files.", hint="Pass the model folder that holds tokenizer.json.")
    if re.fullmatch(r"[\w.-]+/[\w.-]+", c):
        try:
            from huggingface_hub import snapshot_download

            return snapshot_download(c, allow_patterns=_TOKENIZER_FILES)
        except Exception as exc:  # noqa: BLE001 - offline, gated, unknown: all mean "not available here"
            raise ModelError(f"Could not get the tokenizer of '{c}' from the Hugging Face hub ({type(exc).__name__}).",
                             hint="Pass a local folder with its tokenizer: --tokenizer DIR") from exc
    raise ModelError(f"'{c}' is not a tokenizer: not 'default', a folder, a .gguf file or a hub id.",
                     hint="Pass --tokenizer default, a model folder or a hub id.")


