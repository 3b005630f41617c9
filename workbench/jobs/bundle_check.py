"""What a bundle may claim, checked before it is used (docs/SECURITY.md): its manifest's shape,
its paths, its files' sizes and checksums, and the size limits.

    manifest = verify_bundle("out/best")     # DataError naming the field or file, never a traceback

- the manifest is a JSON object of the expected shape (`check_manifest`);
- every path (files, the adapter) is relative and stays inside the bundle (`inside`); the adapter
  folder must hold an adapter whose files are listed in the manifest, so they are checksummed too;
- every listed file exists with its size and sha256; unlisted files are refused.
Both sides of a bundle use these: the writer (jobs/export.py) and the readers (jobs/bundle.py,
jobs/bundle_zip.py).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from workbench.core.fileutil import sha256_file
from workbench.errors import ConfigError, DataError

FORMAT = "prompt-workbench-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# A manifest is a few kB; anything much bigger is not one.
MAX_MANIFEST_BYTES = 4 << 20
MAX_FILES = 10_000
# Default cap on a bundle's total size (a merged 1B-parameter model in float32 is ~4 GB).
DEFAULT_MAX_BUNDLE_MB = 16_384
_SHA_RX = re.compile(r"^[0-9a-f]{64}$")



DEFAULT_MAX_ZIP_RATIO = 50   # weights and JSON compress ~1.1-5x; a zip bomb 1000x or more


def max_zip_ratio() -> float:
    """The largest ratio of a zip's extracted size to its compressed size ($WORKBENCH_MAX_ZIP_RATIO)."""
    raw = os.environ.get("WORKBENCH_MAX_ZIP_RATIO") or DEFAULT_MAX_ZIP_RATIO
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"WORKBENCH_MAX_ZIP_RATIO={raw!r} is not a number.", hint="Set it to a number, e.g. 50.")


def max_bundle_bytes() -> int:
    """The largest total size of a bundle that is read or extracted ($WORKBENCH_MAX_BUNDLE_MB)."""
    raw = os.environ.get("WORKBENCH_MAX_BUNDLE_MB") or DEFAULT_MAX_BUNDLE_MB
    try:
        mb = float(raw)
    except ValueError:
        raise ConfigError(f"WORKBENCH_MAX_BUNDLE_MB={raw!r} is not a number.", hint="Set it to a size in MB, e.g. 4096.")
    return int(mb * (1 << 20))


_NAME_RX = re.compile(r"[^A-Za-z0-9._-]+")


def sanitize_name(name: str) -> str:
    """A safe single path component: other characters become '-', leading dots and dashes
    go (no hidden files, no '..'), at most 80 characters."""
    s = _NAME_RX.sub("-", str(name or "")).strip(".-_")[:80].strip(".-_")
    if not s:
        raise ConfigError(f"Export name {name!r} has no usable characters.",
                          hint="Use letters, digits, '.', '_' or '-', e.g. bbc-best.")
    return s


def inside(root: Path, rel: str) -> Path:
    """root/rel, refusing absolute paths and anything that resolves outside root."""
    p = Path(rel)
    if p.is_absolute() or ".." in p.parts or rel.startswith(("/", "\\")) or "\\" in rel:
        raise DataError(f"Path {rel!r} in the bundle points outside it.",
                        hint="The bundle was edited or built by something else; re-export it.")
    full = (root / p).resolve()
    if full != root.resolve() and root.resolve() not in full.parents:
        raise DataError(f"Path {rel!r} in the bundle points outside it.",
                        hint="The bundle was edited or built by something else; re-export it.")
    return full


def list_files(root: Path) -> list[str]:
    """Every file under root but the manifest, as sorted relative posix paths."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != MANIFEST)


# ---------------------------------------------------------------------------- manifest
def manifest_error(where: str, what: str) -> DataError:
    """The error of a manifest that is not what this workbench writes (`where`: the file, or zip:entry)."""
    return DataError(f"{where}: {what}", hint="The bundle was edited or built by something else; re-export it.")


def check_manifest(manifest: Any, where: str = MANIFEST) -> dict:
    """The manifest if it has the shape this workbench writes, else a DataError naming the field.
    Checks shapes, versions, the total size and the adapter's files; not the files on disk."""
    if not isinstance(manifest, dict):
        raise manifest_error(where, f"the manifest must be a JSON object, not {type(manifest).__name__}.")
    if manifest.get("format") != FORMAT:
        raise manifest_error(where, "this is not a prompt-workbench bundle manifest (format is "
                                   f"{str(manifest.get('format'))[:60]!r}).")
    fv = manifest.get("format_version")
    if not isinstance(fv, int) or isinstance(fv, bool):
        raise manifest_error(where, f"format_version must be a whole number, not {str(fv)[:40]!r}.")
    if fv > FORMAT_VERSION:
        raise DataError(f"{where}: bundle format {fv} is newer than this workbench reads ({FORMAT_VERSION}).",
                        hint="Upgrade prompt-workbench.")
    if fv < 1:
        raise manifest_error(where, f"format_version {fv} is not a bundle format (this workbench reads 1 to "
                                   f"{FORMAT_VERSION}).")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise manifest_error(where, f"'files' must be an object of path -> {{sha256, size}}, not "
                                   f"{type(files).__name__}.")
    if len(files) > MAX_FILES:
        raise manifest_error(where, f"the manifest lists {len(files)} files (at most {MAX_FILES}).")
    total = 0
    for rel, info in files.items():
        if not isinstance(info, dict) or not isinstance(info.get("sha256"), str) or not _SHA_RX.match(info["sha256"]) \
                or not isinstance(info.get("size"), int) or isinstance(info.get("size"), bool) or info["size"] < 0:
            raise manifest_error(where, f"the entry of {str(rel)[:80]!r} in 'files' must be an object with a sha256 "
                                       "(64 hex digits) and a size (bytes).")
        total += info["size"]
    cap = max_bundle_bytes()
    if total > cap:
        raise DataError(f"{where}: the bundle holds {total / (1 << 20):.1f} MB, more than the {cap / (1 << 20):.0f} MB "
                        "limit.", hint="Raise WORKBENCH_MAX_BUNDLE_MB if you trust this bundle.")
    base = manifest.get("base_model")
    if base is None:
        raise manifest_error(where, "base_model is missing: the bundle does not say which model it was made for.")
    if not isinstance(base, dict) or not all(isinstance(base.get(k), str) and base.get(k)
                                             for k in ("name", "identity", "tokenizer_hash")):
        raise manifest_error(where, "base_model must be an object with the strings name, identity and tokenizer_hash.")
    for req in ("template.yaml", "eval_config.json"):
        if req not in files:
            raise DataError(f"{where}: the bundle lists no {req}, which predict needs.",
                            hint="Re-export the bundle; do not remove its files.")
    merged = manifest.get("merged", False)
    if not isinstance(merged, bool):
        raise manifest_error(where, f"'merged' must be true or false, not {str(merged)[:40]!r}.")
    if merged and "model/config.json" not in files:
        raise manifest_error(where, "a merged bundle must list model/config.json.")
    adapter = manifest.get("adapter")
    if adapter is not None:
        if not isinstance(adapter, str) or not adapter:
            raise manifest_error(where, f"'adapter' must be a folder name inside the bundle or null, not "
                                       f"{type(adapter).__name__}.")
        p = Path(adapter)
        if p.is_absolute() or ".." in p.parts or adapter.startswith(("/", "\\", "~")) or "\\" in adapter:
            raise DataError(f"{where}: the adapter path {adapter!r} points outside the bundle.",
                            hint="A bundle's adapter must be its own adapter/ folder; re-export the bundle.")
        prefix = p.as_posix().rstrip("/") + "/"
        if prefix + "adapter_config.json" in files and prefix + "adapter_model.safetensors" not in files \
                and prefix + "adapter_model.bin" in files:
            raise DataError(f"{where}: the adapter is a pickled adapter_model.bin. Only safetensors adapters are "
                            "loaded: unpickling a .bin file can run any code its author put in it.",
                            hint="Convert it where you trust it (peft: model.save_pretrained(dir, "
                                 "safe_serialization=True)) and re-export the bundle.")
        if prefix + "adapter_config.json" not in files or prefix + "adapter_model.safetensors" not in files:
            raise DataError(f"{where}: the adapter folder {adapter!r} is not an adapter listed in the manifest "
                            "(adapter_config.json and adapter_model.safetensors with their checksums).",
                            hint="Re-export the bundle; do not edit manifest.json.")
    return manifest


def read_manifest(mf: Path) -> dict:
    if mf.stat().st_size > MAX_MANIFEST_BYTES:
        raise manifest_error(str(mf), f"the manifest is {mf.stat().st_size} bytes (at most {MAX_MANIFEST_BYTES}).")
    try:
        return json.loads(mf.read_text(encoding="utf-8"))
    except RecursionError:
        raise DataError(f"{mf} is nested too deeply to be a manifest.", hint="Re-export the bundle.") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{mf} is not valid JSON (line {e.lineno}).", hint="Re-export the bundle.") from e
    except UnicodeDecodeError as e:
        raise DataError(f"{mf} is not UTF-8 text.", hint="Re-export the bundle.") from e


def verify_bundle(path: str | Path) -> dict:
    """Check the manifest's shape, paths, sizes and checksums; returns the manifest. Raises
    DataError naming the file."""
    root = Path(path)
    mf = root / MANIFEST
    if not mf.is_file():
        raise DataError(f"{root} is not a bundle: {MANIFEST} is missing.",
                        hint="Pass the folder `workbench export` wrote (or unzip the downloaded bundle first).")
    manifest = check_manifest(read_manifest(mf), str(mf))
    files = manifest["files"]
    for rel, info in files.items():
        p = inside(root, rel)
        if not p.is_file():
            raise DataError(f"Bundle file {rel} is missing from {root}.", hint="Re-export or re-download the bundle.")
        if p.stat().st_size != info["size"] or sha256_file(p) != info["sha256"]:
            raise DataError(f"Bundle file {rel} does not match its checksum in {MANIFEST}: it was changed or "
                            "corrupted after export.", hint="Re-export or re-download the bundle; do not edit bundle files.")
    if manifest.get("adapter") and not inside(root, manifest["adapter"]).is_dir():
        raise DataError(f"The adapter folder {manifest['adapter']!r} of {root} is not a folder.",
                        hint="Re-export the bundle.")
    extra = [rel for rel in list_files(root) if rel not in files and not rel.startswith("lm_eval_out/")]
    if extra:
        raise DataError(f"Bundle {root} holds file(s) not in its manifest: {', '.join(extra[:5])}.",
                        hint="Remove them, or re-export the bundle.")
    return manifest
