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
import shutil
import tempfile
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from workbench.errors import ConfigError, DataError, ModelError, TemplateError
# The checks and the zip handling live beside this module; their public names are re-exported here.
from workbench.jobs.bundle_check import (  # noqa: F401
    DEFAULT_MAX_BUNDLE_MB,
    DEFAULT_MAX_ZIP_RATIO,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    MAX_FILES,
    MAX_MANIFEST_BYTES,
    check_manifest,
    inside,
    list_files,
    max_bundle_bytes,
    max_zip_ratio,
    sanitize_name,
    verify_bundle,
)
from workbench.jobs.bundle_zip import TEMP_PREFIX, sweep_temp_folders, unzip_bundle  # noqa: F401

ProgressFn = Callable[[int, int], None]


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


def restore_adapter(session, prev: str | None) -> None:
    """Put the session's adapter back to `prev` (None: no adapter), if something changed it."""
    if session.adapter == prev:
        return
    if prev:
        session.attach_adapter(prev)
    else:
        session.detach_adapter()


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
        return str(inside(self.path, a)) if a else None

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
                restore_adapter(s, prev)
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
            target = inside(dest, sanitize_name(t.name) + ".yaml")
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
