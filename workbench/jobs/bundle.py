"""Reading bundles: verify a bundle folder or .zip against its manifest, bind it to a model
session, predict with it, and import its template.

    clf = load_bundle("out/best")                 # verifies manifest, checksums, model and tokenizer
    clf.predict(["Oil prices rise", ...])         # -> ["business", ...]
    with load_bundle("best.zip") as clf: ...      # a zip is extracted to a temp folder, removed on close
    import_path("out/best")                       # bundle / lm-eval YAML / PromptSource YAML -> user templates

What a bundle may claim is checked before it is used (docs/SECURITY.md):
- the manifest is a JSON object of the expected shape (`check_manifest`); anything else is a
  DataError naming the field, never a traceback;
- every path (files, the adapter) is relative and stays inside the bundle; the adapter folder
  must hold an adapter whose files are listed in the manifest, so they are checksummed too;
- every listed file exists with its size and sha256; unlisted files are refused;
- a zip is checked from its directory and its manifest *before* anything is extracted: only
  listed entries, each of the size the manifest says, the total under `max_bundle_bytes()`.
Checksums catch corrupted or edited files; they are not signatures: whoever can edit a bundle
can rewrite its manifest too, so load bundles only from sources you trust.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import tempfile
import weakref
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from workbench.core.fileutil import sha256_file
from workbench.jobs.pids import pid_alive
from workbench.errors import ConfigError, DataError, ModelError, TemplateError

FORMAT = "prompt-workbench-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# A manifest is a few kB; anything much bigger is not one.
MAX_MANIFEST_BYTES = 4 << 20
MAX_FILES = 10_000
# Default cap on a bundle's total size (a merged 1B-parameter model in float32 is ~4 GB).
DEFAULT_MAX_BUNDLE_MB = 16_384
TEMP_PREFIX = "wb-bundle-"
ProgressFn = Callable[[int, int], None]
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


def _inside(root: Path, rel: str) -> Path:
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



def tokenizer_fingerprint(tok) -> str:
    """sha256 of what decides token ids and prompts: the vocabulary (incl. added tokens), the
    special tokens and the chat template. Not tokenizer.json itself, whose serialization
    changes between `tokenizers` versions while the tokenizer does not."""
    d = {"vocab": sorted(tok.get_vocab().items()),
         "special": sorted(map(str, getattr(tok, "all_special_tokens", []) or [])),
         "bos": getattr(tok, "bos_token", None), "eos": getattr(tok, "eos_token", None),
         "chat_template": getattr(tok, "chat_template", None)}
    return hashlib.sha256(json.dumps(d, ensure_ascii=False, default=str).encode()).hexdigest()



def read_jsonl_frame(path: Path):
    """A JSONL file as a DataFrame; an `_index` column becomes the index."""
    import pandas as pd

    recs = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    df = pd.DataFrame.from_records(recs)
    if "_index" in df.columns:
        df = df.set_index("_index")
        df.index.name = None
    return df



def _restore_adapter(session, prev: str | None) -> None:
    if session.adapter == prev:
        return
    if prev:
        session.attach_adapter(prev)
    else:
        session.detach_adapter()



def _list_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != MANIFEST)



# ---------------------------------------------------------------------------- manifest
def _bad_manifest(where: str, what: str) -> DataError:
    return DataError(f"{where}: {what}", hint="The bundle was edited or built by something else; re-export it.")


def check_manifest(manifest: Any, where: str = MANIFEST) -> dict:
    """The manifest if it has the shape this workbench writes, else a DataError naming the field.
    Checks shapes, versions, the total size and the adapter's files; not the files on disk."""
    if not isinstance(manifest, dict):
        raise _bad_manifest(where, f"the manifest must be a JSON object, not {type(manifest).__name__}.")
    if manifest.get("format") != FORMAT:
        raise _bad_manifest(where, "this is not a prompt-workbench bundle manifest (format is "
                                   f"{str(manifest.get('format'))[:60]!r}).")
    fv = manifest.get("format_version")
    if not isinstance(fv, int) or isinstance(fv, bool):
        raise _bad_manifest(where, f"format_version must be a whole number, not {str(fv)[:40]!r}.")
    if fv > FORMAT_VERSION:
        raise DataError(f"{where}: bundle format {fv} is newer than this workbench reads ({FORMAT_VERSION}).",
                        hint="Upgrade prompt-workbench.")
    if fv < 1:
        raise _bad_manifest(where, f"format_version {fv} is not a bundle format (this workbench reads 1 to "
                                   f"{FORMAT_VERSION}).")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise _bad_manifest(where, f"'files' must be an object of path -> {{sha256, size}}, not "
                                   f"{type(files).__name__}.")
    if len(files) > MAX_FILES:
        raise _bad_manifest(where, f"the manifest lists {len(files)} files (at most {MAX_FILES}).")
    total = 0
    for rel, info in files.items():
        if not isinstance(info, dict) or not isinstance(info.get("sha256"), str) or not _SHA_RX.match(info["sha256"]) \
                or not isinstance(info.get("size"), int) or isinstance(info.get("size"), bool) or info["size"] < 0:
            raise _bad_manifest(where, f"the entry of {str(rel)[:80]!r} in 'files' must be an object with a sha256 "
                                       "(64 hex digits) and a size (bytes).")
        total += info["size"]
    cap = max_bundle_bytes()
    if total > cap:
        raise DataError(f"{where}: the bundle holds {total / (1 << 20):.1f} MB, more than the {cap / (1 << 20):.0f} MB "
                        "limit.", hint="Raise WORKBENCH_MAX_BUNDLE_MB if you trust this bundle.")
    base = manifest.get("base_model")
    if base is None:
        raise _bad_manifest(where, "base_model is missing: the bundle does not say which model it was made for.")
    if not isinstance(base, dict) or not all(isinstance(base.get(k), str) and base.get(k)
                                             for k in ("name", "identity", "tokenizer_hash")):
        raise _bad_manifest(where, "base_model must be an object with the strings name, identity and tokenizer_hash.")
    for req in ("template.yaml", "eval_config.json"):
        if req not in files:
            raise DataError(f"{where}: the bundle lists no {req}, which predict needs.",
                            hint="Re-export the bundle; do not remove its files.")
    merged = manifest.get("merged", False)
    if not isinstance(merged, bool):
        raise _bad_manifest(where, f"'merged' must be true or false, not {str(merged)[:40]!r}.")
    if merged and "model/config.json" not in files:
        raise _bad_manifest(where, "a merged bundle must list model/config.json.")
    adapter = manifest.get("adapter")
    if adapter is not None:
        if not isinstance(adapter, str) or not adapter:
            raise _bad_manifest(where, f"'adapter' must be a folder name inside the bundle or null, not "
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


def _read_manifest(mf: Path) -> dict:
    if mf.stat().st_size > MAX_MANIFEST_BYTES:
        raise _bad_manifest(str(mf), f"the manifest is {mf.stat().st_size} bytes (at most {MAX_MANIFEST_BYTES}).")
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
    manifest = check_manifest(_read_manifest(mf), str(mf))
    files = manifest["files"]
    for rel, info in files.items():
        p = _inside(root, rel)
        if not p.is_file():
            raise DataError(f"Bundle file {rel} is missing from {root}.", hint="Re-export or re-download the bundle.")
        if p.stat().st_size != info["size"] or sha256_file(p) != info["sha256"]:
            raise DataError(f"Bundle file {rel} does not match its checksum in {MANIFEST}: it was changed or "
                            "corrupted after export.", hint="Re-export or re-download the bundle; do not edit bundle files.")
    if manifest.get("adapter") and not _inside(root, manifest["adapter"]).is_dir():
        raise DataError(f"The adapter folder {manifest['adapter']!r} of {root} is not a folder.",
                        hint="Re-export the bundle.")
    extra = [rel for rel in _list_files(root) if rel not in files and not rel.startswith("lm_eval_out/")]
    if extra:
        raise DataError(f"Bundle {root} holds file(s) not in its manifest: {', '.join(extra[:5])}.",
                        hint="Remove them, or re-export the bundle.")
    return manifest


# ---------------------------------------------------------------------------- zip
def unzip_bundle(zip_path: str | Path, dest_parent: str | Path) -> Path:
    """Extract a bundle zip and return its folder. Everything is checked from the zip's directory
    and its manifest before a byte is written: no absolute paths, '..' or links, only entries the
    manifest lists, each with the size it lists, in total under `max_bundle_bytes()`."""
    dest_parent = Path(dest_parent)
    try:
        z = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as e:
        raise DataError(f"{zip_path} is not a zip file ({e}).",
                        hint="Pass the .zip that `workbench export --zip` or the Export tab wrote, or the bundle folder.") from e
    with z:
        infos = z.infolist()
        if len(infos) > MAX_FILES + 100:
            raise DataError(f"{zip_path} holds {len(infos)} entries (a bundle has at most {MAX_FILES}).",
                            hint="Is this a workbench bundle zip?")
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            raise DataError(f"{zip_path} holds the same entry twice.", hint="Re-export the bundle.")
        files_named = {n.rstrip("/") for n in names if not n.endswith("/")}
        for info in infos:
            parts = info.filename.rstrip("/").split("/")
            if any(len(p.encode("utf-8", "surrogatepass")) > 255 for p in parts) or len(info.filename) > 1024:
                raise DataError(f"{zip_path}: entry {info.filename[:80]!r}… has a name longer than a file system "
                                "allows (255 bytes a part).", hint="Bundles hold short file names; re-export it.")
            if any("/".join(parts[:k]) in files_named for k in range(1, len(parts))):
                raise DataError(f"{zip_path}: {'/'.join(parts[:-1])[:80]!r} is both a file and a folder in the zip.",
                                hint="Re-export the bundle.")
            _inside(dest_parent, info.filename)
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise DataError(f"{zip_path}: entry {info.filename!r} is a symbolic link.",
                                hint="Bundles hold plain files only.")
        tops = {n.split("/", 1)[0] for n in names}
        prefix = next(iter(tops)) + "/" if len(tops) == 1 and MANIFEST not in names else ""
        try:
            man_info = z.getinfo(prefix + MANIFEST)
        except KeyError:
            raise DataError(f"{zip_path} holds no {MANIFEST}.", hint="Is this a workbench bundle zip?") from None
        where = f"{zip_path}:{prefix}{MANIFEST}"
        if man_info.file_size > MAX_MANIFEST_BYTES:
            raise _bad_manifest(where, f"the manifest is {man_info.file_size} bytes (at most {MAX_MANIFEST_BYTES}).")
        try:
            manifest = json.loads(z.read(man_info).decode("utf-8"))
        except RecursionError:
            raise DataError(f"{where} is nested too deeply to be a manifest.", hint="Re-export the bundle.") from None
        except (ValueError, zipfile.BadZipFile) as e:
            raise DataError(f"{where} is not valid JSON ({e}).", hint="Re-export the bundle.") from e
        files = check_manifest(manifest, where)["files"]
        todo = []
        for info in infos:
            if info.is_dir():
                continue
            if not info.filename.startswith(prefix):
                raise DataError(f"{zip_path}: entry {info.filename!r} lies outside the bundle folder {prefix!r}.",
                                hint="Re-export the bundle.")
            rel = info.filename[len(prefix):]
            if rel != MANIFEST:
                if rel not in files:
                    raise DataError(f"{zip_path}: entry {rel!r} is not in its manifest.",
                                    hint="Re-export the bundle; do not add files to it.")
                if info.file_size != files[rel]["size"]:
                    raise DataError(f"{zip_path}: entry {rel!r} is {info.file_size} bytes, but the manifest says "
                                    f"{files[rel]['size']} (size mismatch).", hint="Re-export the bundle.")
            todo.append(info)
        # a zip bomb: a few MB that declare gigabytes (the manifest's total is capped above too)
        packed = sum(i.compress_size for i in todo)
        unpacked = sum(i.file_size for i in todo)
        ratio = max_zip_ratio()
        if unpacked > (1 << 20) and unpacked > ratio * max(1, packed):
            raise DataError(f"{zip_path}: {packed / (1 << 20):.1f} MB that would extract to "
                            f"{unpacked / (1 << 20):.1f} MB (more than {ratio:g}x: a zip bomb?).",
                            hint="Raise WORKBENCH_MAX_ZIP_RATIO if you trust this bundle.")
        for info in todo:
            _extract_one(z, info, dest_parent / info.filename, zip_path)
    root = dest_parent / prefix.rstrip("/") if prefix else dest_parent
    return root


def _extract_one(z: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, zip_path) -> None:
    """Copy one entry, never more bytes than its directory entry declared."""
    left = info.file_size
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with z.open(info) as src, open(target, "wb") as out:
            while True:
                chunk = src.read(min(1 << 20, left + 1))
                if not chunk:
                    break
                left -= len(chunk)
                if left < 0:
                    raise DataError(f"{zip_path}: entry {info.filename!r} holds more than its declared size.",
                                    hint="The zip is damaged or crafted; re-export the bundle.")
                out.write(chunk)
    except (zipfile.BadZipFile, EOFError, zlib.error) as e:
        raise DataError(f"{zip_path}: entry {info.filename!r} is damaged ({e}).", hint="Re-download the bundle.") from e
    except OSError as e:   # a full disk, a name the file system refuses: one line, not a traceback
        raise DataError(f"{zip_path}: could not extract {info.filename[:80]!r} to {target.parent}: "
                        f"{e.strerror or e}.", hint="Free disk space in the temp folder ($TMPDIR), or extract "
                        "the bundle where there is room and pass the folder.") from e


def _owner_pid(folder: Path) -> int | None:
    """The pid in a temp folder named wb-bundle-<pid>-<random>, if any."""
    m = re.match(re.escape(TEMP_PREFIX) + r"(\d+)-", folder.name)
    return int(m.group(1)) if m else None



def sweep_temp_folders() -> list[Path]:
    """Remove wb-bundle-* folders whose owner process is gone (a predict killed by SIGKILL leaves
    one behind; a normal end, an error or garbage collection removes it already)."""
    removed = []
    try:
        candidates = list(Path(tempfile.gettempdir()).glob(TEMP_PREFIX + "*"))
    except OSError:
        return removed
    for d in candidates:
        pid = _owner_pid(d)
        if pid is None or pid == os.getpid() or pid_alive(pid) or not d.is_dir() or d.is_symlink():
            continue
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed


# ---------------------------------------------------------------------------- load
@dataclass
class Bundle:
    """A verified bundle bound to a session. `predict` attaches the adapter only while it runs
    and restores the session's previous adapter, so a shared session is left as it was.
    A bundle loaded from a .zip lives in a temp folder that `close()` (or leaving a `with`
    block, or garbage collection, or the end of the process) removes."""

    path: Path
    manifest: dict
    template: Any
    config: Any
    session: Any
    pool: Any = None
    temp_dir: Path | None = field(default=None, repr=False)

    def __post_init__(self):
        self._finalizer = (weakref.finalize(self, shutil.rmtree, str(self.temp_dir), True)
                           if self.temp_dir is not None else None)

    def close(self) -> None:
        """Remove the temp folder of a zip bundle (a folder bundle is left as it is)."""
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> "Bundle":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def labels(self) -> list[str]:
        return list(self.template.answer_choices)

    @property
    def adapter_path(self) -> str | None:
        """The bundle's adapter folder (checked to lie inside the bundle, its files checksummed)."""
        a = self.manifest.get("adapter")
        return str(_inside(self.path, a)) if a else None

    @property
    def metrics(self) -> dict:
        return json.loads((self.path / "metrics.json").read_text(encoding="utf-8"))

    def test_rows(self):
        """The rows the bundle's metrics were measured on, in order (with their indices)."""
        return read_jsonl_frame(self.path / "data" / "test.jsonl")

    def saved_predictions(self) -> list[dict]:
        return [json.loads(x) for x in (self.path / "predictions.jsonl").read_text(encoding="utf-8").splitlines() if x]

    def input_column(self) -> str:
        """The column a plain string fills: the template's only variable besides the label."""
        vs = sorted(v for v in self.template.variables() if v != self.template.label_column)
        if len(vs) != 1:
            raise ConfigError(f"Template '{self.template.name}' reads {len(vs)} columns ({', '.join(vs)}), so plain "
                              "strings cannot be mapped to it.",
                              hint="Pass a DataFrame (or a list of dicts) with those columns.")
        return vs[0]

    def _frame(self, inputs):
        import pandas as pd

        if isinstance(inputs, pd.DataFrame):
            df = inputs.copy()
        elif isinstance(inputs, str):
            raise ConfigError("predict() takes a list of texts, not one string.", hint='Use predict(["text"]).')
        else:
            items = list(inputs)
            if items and all(isinstance(x, dict) for x in items):
                df = pd.DataFrame.from_records(items)
            else:
                df = pd.DataFrame({self.input_column(): [str(x) for x in items]})
        need = sorted(v for v in self.template.variables() if v != self.template.label_column)
        missing = [c for c in need if c not in df.columns]
        if missing:
            raise DataError(f"Input is missing column(s) {', '.join(missing)} that template '{self.template.name}' "
                            f"reads (it has: {', '.join(map(str, df.columns))}).",
                            hint="Rename your columns to match, or pass a plain list of texts for one-column templates.")
        return df

    def predict_frame(self, inputs, *, batch_size: int = 64, progress: ProgressFn | None = None,
                      cancel: Callable[[], bool] | None = None):
        """inputs + `pred` + `score_<label>` per label (+ `gold`/`correct` when the label column
        is there). Scores are what the workbench compares: log-likelihoods, normalised or
        calibrated as in the eval config."""
        import pandas as pd

        from workbench.jobs.inference import build_prompts, classify

        df = self._frame(inputs)
        label_col = self.template.label_column
        has_gold = label_col in df.columns
        work = df
        pool = self.pool if self.pool is not None else work.iloc[:0]
        records: list[dict] = []
        total = len(work)
        s = self.session
        with s.lock:
            prev = s.adapter
            try:
                if self.adapter_path and s.adapter != self.adapter_path:
                    s.attach_adapter(self.adapter_path)
                elif not self.adapter_path and prev:
                    s.detach_adapter()
                for start in range(0, total, max(1, batch_size)):
                    chunk = work.iloc[start:start + batch_size]
                    prompts = build_prompts(self.template, chunk, pool, self.config, s)
                    records += classify(self.template, chunk, prompts, s, self.config, pool=pool, cancel=cancel,
                                        with_gold=has_gold)
                    if progress:
                        progress(len(records), total)
            finally:
                _restore_adapter(s, prev)
        out = df.copy()
        out["pred"] = [r["pred"] for r in records]
        for lab in self.labels or sorted(records[0]["scores"]) if records else []:
            out[f"score_{lab}"] = [r["scores"].get(lab) for r in records]
        if has_gold:
            out["gold"] = [r["gold"] for r in records]
            out["correct"] = [r["correct"] for r in records]
        return pd.DataFrame(out)

    def predict(self, inputs, **kw) -> list[str]:
        """Labels for a list of texts (one-variable templates), a list of dicts or a DataFrame."""
        return list(self.predict_frame(inputs, **kw)["pred"])


def load_bundle(path: str | Path, model: str | None = None, *, force: bool = False, session=None,
                device: str | None = None, dtype: str | None = None) -> Bundle:
    """Verify a bundle (folder or .zip) and bind it to a model session.

    The model is the bundle's base model (its `model/` folder when merged) unless `model` or
    `session` says otherwise; a different base model or tokenizer is refused unless `force`."""
    root = Path(path)
    tmp = None
    if root.is_file() and root.suffix.lower() == ".zip":
        sweep_temp_folders()
        tmp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-"))
        try:
            root = unzip_bundle(root, tmp)
            return _load_folder(root, model, force, session, device, dtype, tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return _load_folder(root, model, force, session, device, dtype, None)


def _load_folder(root: Path, model, force, session, device, dtype, tmp) -> Bundle:
    from workbench.jobs.inference import EvalConfig
    from workbench.core.templates import load_template

    manifest = verify_bundle(root)
    template = load_template(root / "template.yaml")
    want = template.metadata.get("content_hash")
    if want and want != template.content_hash():
        raise DataError(f"template.yaml in {root} has content hash {template.content_hash()[:12]}, but was exported "
                        f"as {want[:12]}.", hint="Re-export the bundle.")
    config = _eval_config(root / "eval_config.json", EvalConfig)
    base = manifest["base_model"]
    if session is None:
        from workbench.engine.session import get_session

        name = model or (str(root / "model") if manifest.get("merged") else base["name"])
        kw = {k: v for k, v in (("device", device), ("dtype", dtype)) if v}
        session = get_session(name, **kw)
    problems = []
    if not manifest.get("merged") and session.identity != base["identity"]:
        problems.append(f"base model {session.identity} differs from the bundle's {base['identity']}")
    tok_hash = tokenizer_fingerprint(session.tokenizer)
    if tok_hash != base["tokenizer_hash"]:
        problems.append(f"tokenizer {tok_hash[:12]} differs from the bundle's {base['tokenizer_hash'][:12]}")
    if problems and not force:
        raise ModelError(f"Bundle {root.name} was made for another model: " + "; ".join(problems) + ".",
                         hint=f"Use --model {base['name']} (the bundle's base model), or force=True / --force "
                              "if you accept different scores.")
    pool = None
    if config.shots and (root / "data" / "pool.jsonl").exists():
        pool = read_jsonl_frame(root / "data" / "pool.jsonl")
    elif config.shots:
        raise DataError(f"Bundle {root.name} uses {config.shots}-shot prompts but holds no data/pool.jsonl.",
                        hint="Re-export the bundle with its data.")
    return Bundle(path=root, manifest=manifest, template=template, config=config, session=session, pool=pool,
                  temp_dir=tmp)


def _eval_config(path: Path, cls):
    """The bundle's EvalConfig; a file of the wrong shape is a DataError, not a traceback."""
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise DataError(f"{path} (the bundle's eval_config.json) is nested too deeply.",
                        hint="Re-export the bundle.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path} (the bundle's eval_config.json) is not valid JSON: {e}.", hint="Re-export the bundle.") from e
    if not isinstance(d, dict):
        raise DataError(f"{path} (the bundle's eval_config.json) must be a JSON object, not {type(d).__name__}.",
                        hint="Re-export the bundle.")
    known = {f.name for f in dataclasses.fields(cls)}
    try:
        config = cls(**{k: v for k, v in d.items() if k in known})
        config.validate()
    except (TypeError, ValueError) as e:
        raise DataError(f"{path} (the bundle's eval_config.json) holds invalid settings: {e}.",
                        hint="Re-export the bundle.") from e
    except ConfigError as e:
        raise DataError(f"{path} (the bundle's eval_config.json) holds invalid settings: {e.message}",
                        hint="Re-export the bundle.") from e
    return config



# ---------------------------------------------------------------------------- import
def import_path(path: str | Path, dest_dir: str | Path | None = None, *, overwrite: bool = False,
                name: str | None = None) -> list[Path]:
    """Read a bundle (folder or .zip), an lm-eval task YAML or a PromptSource YAML into the
    user template folder. Returns the written files; an identical template already there
    (same content hash) is left as is."""
    import tempfile

    from workbench import paths
    from workbench.core.templates import load_template, load_templates

    src = Path(path)
    dest = Path(dest_dir) if dest_dir else paths.user_templates_dir()
    if not src.exists():
        raise ConfigError(f"Nothing to import at {src}.", hint="Pass a bundle folder or .zip, or a template YAML file.")
    with tempfile.TemporaryDirectory(prefix="wb-import-") as td:
        if src.is_file() and src.suffix.lower() == ".zip":
            src = unzip_bundle(src, td)
        if src.is_dir():
            verify_bundle(src)
            templates = [load_template(src / "template.yaml")]
        else:
            templates = load_templates(src)
        if name:
            templates = [t for t in templates if t.name == name] or templates[:0]
            if not templates:
                raise TemplateError(f"No template named {name!r} in {path}.", hint="Leave the name empty to import all.")
        written = []
        for t in templates:
            t.metadata = {k: v for k, v in t.metadata.items() if k != "content_hash"}
            t.metadata.setdefault("imported_from", str(path))
            target = _inside(dest, sanitize_name(t.name) + ".yaml")
            if target.exists():
                try:
                    same = load_template(target).content_hash() == t.content_hash()
                except TemplateError:
                    same = False
                if same:
                    written.append(target)
                    continue
                if not overwrite:
                    raise ConfigError(f"A different template named '{t.name}' is already in {dest}.",
                                      hint="Rename it first, or import with --overwrite.")
            written.append(t.save(target))
    return written
