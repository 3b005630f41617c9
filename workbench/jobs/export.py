"""Bundles: the winning template, its adapter and the evidence, in one folder that runs anywhere.

    path = export_bundle(template, dataset, session=get_session("default"), config=EvalConfig(limit=200),
                         adapter="train/run1/adapter", export=ExportConfig(name="best", out_dir="out"))
    path = export_train_run("train/run1", dataset, export=ExportConfig(name="best", out_dir="out"))
    clf = load_bundle("out/best")                 # verifies checksums, model and tokenizer
    clf.predict(["Oil prices rise", ...])         # -> ["business", ...]
    clf.predict_frame(df)                         # -> df + pred + score_<label> columns
    import_path("out/best")                       # bundle / lm-eval YAML / PromptSource YAML -> user templates

Bundle layout (docs/EXPORT.md has the details):
    template.yaml          our format; metadata.content_hash = content_hash() at export
    adapter/               peft adapter (adapter_config.json, adapter_model.safetensors), or
    model/                 the adapter merged into the base weights + tokenizer (merge=True)
    eval_config.json       the EvalConfig the metrics were measured with (predict reuses it)
    metrics.json           test metrics with CIs, per class (with CIs), confusion, comparison verdict
    predictions.jsonl      the workbench's prediction and per-choice scores for every test row
    data/test.jsonl        the evaluated rows (template columns only), in order
    data/fewshot.jsonl     the demonstrations, in prompt order (when shots > 0, fixed sampling)
    data/pool.jsonl        the rows demonstrations are drawn from (when shots > 0)
    lm_eval_task.yaml      the template as an lm-evaluation-harness task over data/*.jsonl
    promptsource.yaml      the template in PromptSource's format
    per_class.svg          per-class precision/recall/F1 (drawn here: no plotting backend needed)
    README.md              a Hugging Face style model card
    manifest.json          format version, versions, model identity + tokenizer hash, sha256 of every file

An export is built in a hidden temporary folder next to the target and renamed into place at
the end, so an interrupted export never leaves a half bundle. Names are sanitized and every
path is checked to stay inside its folder (on export, on load and on zip extraction).
Checksums catch corrupted or edited files; they are not signatures.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from workbench.errors import ConfigError, DataError, ModelError, TemplateError
from workbench.core.fileutil import sha256_file

FORMAT = "prompt-workbench-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ProgressFn = Callable[[int, int], None]


# ---------------------------------------------------------------------------- config
@dataclass
class ExportConfig:
    name: str = field(default="bundle", metadata={"help": "bundle folder name (sanitized: letters, digits, . _ -)"})
    out_dir: str | None = field(default=None, metadata={"help": "parent folder; None = $WORKBENCH_HOME/exports"})
    merge: bool = field(default=False, metadata={
        "help": "merge the adapter into the base weights and ship model/ (a full model folder) instead of adapter/"})
    overwrite: bool = field(default=False, metadata={"help": "replace an existing bundle of the same name"})
    include_data: bool = field(default=True, metadata={
        "help": "write the evaluated rows (data/*.jsonl), which lm_eval_task.yaml and the round-trip check need"})
    confidence: float = field(default=0.95, metadata={"help": "level of the confidence intervals in metrics.json"})
    n_boot: int = field(default=2000, metadata={"help": "bootstrap replicates for the macro-F1 interval"})
    comparison: bool = field(default=True, metadata={
        "help": "attach the verdict of the latest comparison this template (same content hash) won"})
    record: bool = field(default=True, metadata={"help": "record the export in the run registry"})


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


# ---------------------------------------------------------------------------- helpers
def tokenizer_fingerprint(tok) -> str:
    """sha256 of what decides token ids and prompts: the vocabulary (incl. added tokens), the
    special tokens and the chat template. Not tokenizer.json itself, whose serialization
    changes between `tokenizers` versions while the tokenizer does not."""
    d = {"vocab": sorted(tok.get_vocab().items()),
         "special": sorted(map(str, getattr(tok, "all_special_tokens", []) or [])),
         "bos": getattr(tok, "bos_token", None), "eos": getattr(tok, "eos_token", None),
         "chat_template": getattr(tok, "chat_template", None)}
    return hashlib.sha256(json.dumps(d, ensure_ascii=False, default=str).encode()).hexdigest()


def _plain(v: Any) -> Any:
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        try:
            return v.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _write_jsonl(path: Path, df, columns: Sequence[str], with_index: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for idx, row in df.iterrows():
            rec = {c: _plain(row[c]) for c in columns}
            if with_index:
                rec["_index"] = _plain(idx)
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")


def read_jsonl_frame(path: Path):
    """A JSONL file as a DataFrame; an `_index` column becomes the index."""
    import pandas as pd

    recs = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    df = pd.DataFrame.from_records(recs)
    if "_index" in df.columns:
        df = df.set_index("_index")
        df.index.name = None
    return df


def _versions() -> dict:
    import importlib.metadata as md
    import platform

    out = {"python": platform.python_version()}
    for pkg in ("prompt-workbench", "torch", "transformers", "peft", "lm_eval"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def _hub_id(name: str, identity: str, source: str | None) -> str | None:
    """The hub id of the base model, for the model card's `base_model:`."""
    from workbench.engine.models import DEFAULT_HUB_ID

    if source == "default-gguf" or name == "default":
        return DEFAULT_HUB_ID
    if source == "hub":
        return name
    return None


# ---------------------------------------------------------------------------- metrics
def metrics_with_ci(records: Sequence[dict], labels: Sequence[str], confidence: float = 0.95,
                    n_boot: int = 2000, seed: int = 0) -> dict:
    """Accuracy (Wilson CI), macro-F1 (bootstrap CI), per-class P/R/F1 with Wilson CIs on
    precision (tp of predicted) and recall (tp of support), and the confusion matrix."""
    from workbench.core.metrics import classification_metrics
    from workbench.core.stats import f1_bootstrap_ci, wilson_interval

    gold = [str(r["gold"]) for r in records]
    pred = [str(r["pred"]) for r in records]
    m = classification_metrics(gold, pred, list(labels))
    n = len(gold)
    k = sum(g == p for g, p in zip(gold, pred))
    lo, hi = wilson_interval(k, n, confidence)
    out = {"n": n, "confidence": confidence,
           "accuracy": {"value": m["accuracy"], "correct": k, "ci_low": lo, "ci_high": hi, "ci": "wilson"},
           "macro_f1": {"value": m["macro_f1"], "ci": "bootstrap", "n_boot": n_boot, "seed": seed},
           "weighted_f1": m["weighted_f1"], "majority_baseline": m["majority_baseline"]}
    if n:
        out["macro_f1"]["ci_low"], out["macro_f1"]["ci_high"] = f1_bootstrap_ci(
            gold, pred, list(labels), n_boot=n_boot, seed=seed, confidence=confidence)
    per = {}
    for lab, v in m["per_class"].items():
        tp = sum(g == lab and p == lab for g, p in zip(gold, pred))
        n_pred = sum(p == lab for p in pred)
        plo, phi = wilson_interval(tp, n_pred, confidence)
        rlo, rhi = wilson_interval(tp, v["support"], confidence)
        per[lab] = {**v, "predicted": n_pred, "precision_ci": [plo, phi], "recall_ci": [rlo, rhi]}
    out["per_class"] = per
    out["confusion"] = m["confusion"]
    return out


def _comparison_for(template_hash: str) -> dict | None:
    """The verdicts of the latest comparison whose marked winner has this content hash."""
    try:
        from workbench.jobs.compare import get_winner_info
        from workbench.storage.runs import RunRegistry
    except ImportError:      # compare.py not there yet (or without winners): no verdict
        return None
    try:
        info = get_winner_info()
    except Exception:  # noqa: BLE001 - an unreadable registry must not block an export
        return None
    if not info:
        return None
    from workbench.core.templates import load_template

    if load_template(info["yaml"]).content_hash() != template_hash:
        return None
    payload = RunRegistry().payload(info["run_id"]) or {}
    name = info["name"]
    return {"run_id": info["run_id"], "winner": name, "marked_at": info.get("marked_at"),
            "reference": payload.get("reference"), "n": payload.get("n"),
            "leaderboard": [{k: r.get(k) for k in ("name", "accuracy", "ci_low", "ci_high", "macro_f1")}
                            for r in payload.get("leaderboard", [])],
            "verdicts": [v.get("text") for v in payload.get("verdicts", []) if name in (v.get("a"), v.get("b"))]}


# ---------------------------------------------------------------------------- plot
def per_class_svg(per_class: dict, title: str = "Per-class precision, recall and F1") -> str:
    """A grouped bar chart as plain SVG (kaleido/matplotlib are not dependencies)."""
    import html

    labels = list(per_class)
    series = [("precision", "#6366f1"), ("recall", "#22c55e"), ("f1", "#f59e0b")]
    w_group, bar = 66, 18
    left, top, h = 48, 40, 200
    width = left + max(1, len(labels)) * w_group + 20
    height = top + h + 70
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           f'<text x="{left}" y="18" font-size="13" font-weight="bold">{html.escape(title)}</text>']
    for i, (s, color) in enumerate(series):
        out.append(f'<rect x="{left + i * 80}" y="26" width="10" height="10" fill="{color}"/>'
                   f'<text x="{left + i * 80 + 14}" y="35">{s}</text>')
    for t in range(0, 11, 2):
        y = top + h - t / 10 * h
        out.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>'
                   f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{t / 10:.1f}</text>')
    for j, lab in enumerate(labels):
        x0 = left + j * w_group + 6
        for i, (s, color) in enumerate(series):
            v = max(0.0, min(1.0, float(per_class[lab].get(s, 0.0))))
            out.append(f'<rect x="{x0 + i * bar}" y="{top + h - v * h:.1f}" width="{bar - 2}" '
                       f'height="{v * h:.1f}" fill="{color}"><title>{html.escape(lab)} {s} {v:.3f}</title></rect>')
        out.append(f'<text x="{x0 + 1.5 * bar}" y="{top + h + 16}" text-anchor="middle">'
                   f'{html.escape(str(lab)[:10])}</text>')
    out.append("</svg>")
    return "\n".join(out)


# ---------------------------------------------------------------------------- export
def _template_columns(template, df) -> list[str]:
    cols = [c for c in df.columns if c in template.variables() or c == template.label_column]
    return [str(c) for c in cols]


def _lm_eval_notes(template, config) -> list[str]:
    """Why lm_eval on lm_eval_task.yaml may not give the workbench's predictions (empty = it does)."""
    notes = []
    if config.calibration != "none":
        notes.append(f"calibration '{config.calibration}' has no lm-eval equivalent")
    if config.method not in ("acc", "acc_norm"):
        notes.append(f"scoring method '{config.method}': compare with lm-eval's acc_bytes by hand")
    if any(len(w) > 1 for w in template.answer_choices.values()):
        notes.append("labels with several verbalizers: lm-eval scores only the first")
    if config.shots and config.sampling == "per_example":
        notes.append("per-example demonstration sampling: lm-eval uses one fixed set (data/fewshot.jsonl)")
    if template.chat:
        notes.append("chat template: run lm-eval with --apply_chat_template (its turn layout may differ)")
    return notes


def export_bundle(template, dataset, *, result=None, session=None, model: str = "default", adapter: str | None = None,
                  config=None, train_config: dict | None = None, base_result=None,
                  export: ExportConfig | None = None, progress: ProgressFn | None = None) -> Path:
    """Evaluate (unless `result`, an EvalResult or its dict, is given) and write a bundle.

    `result` must come from `template` on `dataset` (checked by hash and fingerprint) with
    `adapter` attached when there is one. `base_result` (the base model on the same rows, as a
    training run stores it) adds a base-vs-adapter table. Returns the bundle folder."""
    from workbench import paths
    from workbench.jobs.inference import EvalConfig, EvalResult, demos_for, eval_rows, evaluate

    ex = export or ExportConfig()
    name = sanitize_name(ex.name)
    parent = Path(ex.out_dir) if ex.out_dir else paths.exports_dir()
    parent.mkdir(parents=True, exist_ok=True)
    final = _inside(parent, name)
    if final.exists() and not ex.overwrite:
        raise ConfigError(f"Bundle {final} already exists.", hint="Pick another name, or pass overwrite (--overwrite).")
    if template.task != "classification":
        raise ConfigError(f"Template '{template.name}' is a {template.task} template; bundles hold classification "
                          "templates.", hint="Export a classification template.")
    if train_config and train_config.get("mode") == "head":
        raise ConfigError("This adapter was trained in 'head' mode (a classifier head), which bundles cannot "
                          "score with the template.", hint="Export an adapter trained in mode 'lm'.")
    adapter_dir = Path(adapter) if adapter else None
    if adapter_dir is not None and not (adapter_dir / "adapter_config.json").exists():
        raise ModelError(f"No adapter at {adapter_dir}: adapter_config.json is missing.",
                         hint="Pass the folder holding adapter_config.json and adapter_model.safetensors.")

    # ---- the evidence: an EvalResult of this template (+ adapter) on this dataset
    if result is None:
        from workbench.engine.session import get_session

        session = session or get_session(model)
        config = config or EvalConfig()
        with session.lock:
            prev = session.adapter
            try:
                if adapter_dir is not None:
                    session.attach_adapter(str(adapter_dir))
                elif prev:
                    session.detach_adapter()
                result = evaluate(template, dataset, session, config, progress=progress)
            finally:
                _restore_adapter(session, prev)
    res = result.to_dict() if isinstance(result, EvalResult) else dict(result)
    prov = res["provenance"]
    if prov["template"]["hash"] != template.content_hash():
        raise ConfigError(f"The result was made with template hash {prov['template']['hash'][:12]}, not "
                          f"'{template.name}' ({template.content_hash()[:12]}).", hint="Evaluate this template, then export.")
    if prov["data"]["fingerprint"] != dataset.fingerprint():
        raise DataError(f"The result was measured on data {prov['data']['fingerprint'][:12]}, not on "
                        f"'{dataset.name}' ({dataset.fingerprint()[:12]}).", hint="Pass the dataset the result came from.")
    known = {f.name for f in dataclasses.fields(EvalConfig)}
    config = EvalConfig(**{k: v for k, v in prov["config"].items() if k in known})
    rows, pool = eval_rows(dataset, config)
    by_index = {_plain(i): i for i in rows.index}
    idx = [r["index"] for r in res["records"]]
    missing = [i for i in idx if i not in by_index]
    if missing:
        raise DataError(f"Result rows {missing[:5]} are not in the {config.split} split of '{dataset.name}'.",
                        hint="Pass the dataset and split the result was made on.")
    rows = rows.loc[[by_index[i] for i in idx]]
    model_prov = prov["model"]
    if session is None:
        from workbench.engine.session import get_session
        session = get_session(model_prov.get("name") or model)
    if model_prov["identity"] != session.identity:
        raise ModelError(f"The result was made with model {model_prov['identity']}, but the session holds "
                         f"{session.identity}.", hint="Export with the model the result came from.")

    # ---- write everything into a temp folder, then rename
    tmp = parent / f".{name}.tmp-{os.getpid()}-{time.monotonic_ns()}"
    tmp.mkdir()
    try:
        cols = _template_columns(template, dataset.df)
        stamped = dataclasses.replace(template, metadata={**template.metadata, "content_hash": template.content_hash()})
        (tmp / "template.yaml").write_text(stamped.to_yaml(), encoding="utf-8")
        (tmp / "eval_config.json").write_text(json.dumps(asdict(config), indent=1), encoding="utf-8")
        labels = list(template.answer_choices) or sorted({str(r["gold"]) for r in res["records"]})
        for r in res["records"]:
            for lab in (r["gold"], r["pred"]):
                if lab not in labels:
                    labels.append(lab)
        with open(tmp / "predictions.jsonl", "w", encoding="utf-8") as f:
            for r in res["records"]:
                f.write(json.dumps({k: r[k] for k in ("index", "gold", "pred", "scores") if k in r},
                                   ensure_ascii=False) + "\n")
        demos = []
        if ex.include_data:
            _write_jsonl(tmp / "data" / "test.jsonl", rows, cols, with_index=True)
            if config.shots:
                label_col = template.label_column if template.label_column in pool.columns else None
                fixed = dataclasses.replace(config, sampling="fixed")
                demos = demos_for(template, pool, fixed, None, label_col)
                import pandas as pd
                _write_jsonl(tmp / "data" / "fewshot.jsonl", pd.DataFrame(demos), cols, with_index=True)
                _write_jsonl(tmp / "data" / "pool.jsonl", pool, cols, with_index=True)
        # metrics
        metrics = {"task": template.task, "split": config.split, "labels": labels,
                   "test": metrics_with_ci(res["records"], labels, ex.confidence, ex.n_boot)}
        if base_result is not None:
            b = base_result.to_dict() if isinstance(base_result, EvalResult) else base_result
            metrics["base"] = metrics_with_ci(b["records"], labels, ex.confidence, ex.n_boot)
        metrics["comparison"] = _comparison_for(template.content_hash()) if ex.comparison else None
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=1, ensure_ascii=False), encoding="utf-8")
        (tmp / "per_class.svg").write_text(per_class_svg(metrics["test"]["per_class"]), encoding="utf-8")
        # interop
        from workbench.core.templates import to_lm_eval_yaml, to_promptsource_yaml

        task_name = "wb_" + re.sub(r"\W+", "_", name).strip("_").lower()
        lm_notes = _lm_eval_notes(template, config)
        lm_written = False
        if ex.include_data:
            files = {"test": "data/test.jsonl"}
            if demos:
                files["fewshot"] = "data/fewshot.jsonl"
            t_lm = dataclasses.replace(template, fewshot=dataclasses.replace(template.fewshot, k=config.shots))
            try:
                text = to_lm_eval_yaml(t_lm, dataset_path="json", data_files=files, test_split="test",
                                       fewshot_split="fewshot" if demos else None, task_name=task_name)
                head = ("# Run from inside this folder (data_files are relative to the working directory):\n"
                        f"#   lm_eval --model hf --model_args pretrained=<base model>[,peft=adapter] "
                        f"--tasks {task_name} --include_path . --log_samples --output_path lm_eval_out\n")
                # the task's num_fewshot is the eval's shots, which changes the copy's hash; name the real one
                text = text.replace(t_lm.content_hash()[:12], template.content_hash()[:12], 1)
                (tmp / "lm_eval_task.yaml").write_text(head + text, encoding="utf-8")
                lm_written = True
            except TemplateError as e:
                lm_notes.append(f"no lm-eval task: {e.message}")
        else:
            lm_notes.append("no lm-eval task: the bundle was exported without data")
        try:
            (tmp / "promptsource.yaml").write_text(to_promptsource_yaml(template, dataset=dataset.name), encoding="utf-8")
        except TemplateError as e:
            lm_notes.append(f"no PromptSource file: {e.message}")
        # model
        base = {"name": model_prov.get("name") or model, "identity": session.identity,
                "hub_id": _hub_id(model_prov.get("name") or model, session.identity,
                                  getattr(session.resolved, "source", None)),
                "tokenizer_hash": tokenizer_fingerprint(session.tokenizer),
                "dtype": str(session.dtype).replace("torch.", "")}
        if adapter_dir is not None:
            if ex.merge:
                _write_merged(session, adapter_dir, tmp / "model")
            else:
                (tmp / "adapter").mkdir()
                for fn in ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"):
                    if (adapter_dir / fn).exists():
                        shutil.copy2(adapter_dir / fn, tmp / "adapter" / fn)
        if train_config is not None:
            (tmp / "train_config.json").write_text(json.dumps(train_config, indent=1, default=str), encoding="utf-8")
        _write_notes(tmp, dataset)
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "name": name,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "template": {"name": template.name, "hash": template.content_hash()},
            "base_model": base,
            "adapter": "adapter" if adapter_dir is not None and not ex.merge else None,
            "merged": bool(adapter_dir is not None and ex.merge),
            "data": {"name": dataset.name, "source": getattr(dataset, "source", None),
                     "fingerprint": dataset.fingerprint(), "split": config.split, "split_seed": config.split_seed,
                     "n_test": len(res["records"]), "columns": cols},
            "lm_eval": {"task": task_name if lm_written else None,
                        "reproduces_predictions": lm_written and not lm_notes, "notes": lm_notes},
            "versions": _versions(),
        }
        (tmp / "README.md").write_text(model_card(manifest, metrics, template, config, train_config), encoding="utf-8")
        manifest["files"] = {rel: {"sha256": sha256_file(tmp / rel), "size": (tmp / rel).stat().st_size}
                             for rel in _list_files(tmp)}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")
        _swap_in(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if ex.record:
        from workbench.storage.runs import RunRegistry

        t = metrics["test"]
        RunRegistry().add("export", name=name, template_hash=template.content_hash(), template_yaml=template.to_yaml(),
                          model=session.identity, adapter=str(adapter_dir) if adapter_dir else None,
                          data_fingerprint=dataset.fingerprint(), data_name=dataset.name, seed=config.seed,
                          settings={**asdict(ex), "eval": asdict(config)},
                          metrics={"n": t["n"], "accuracy": t["accuracy"]["value"], "macro_f1": t["macro_f1"]["value"]},
                          payload_path=str(final))
    return final


def _write_notes(folder: Path, dataset) -> None:
    """The human notes on this data's examples (tags and comments from the results matrix),
    as notes.json: {"data_fingerprint", "notes": {row: {"tag", "comment", "updated_at"}}}.
    Nothing is written when there are none."""
    from workbench.storage.runs import RunRegistry

    try:
        fp = dataset.fingerprint()
        notes = RunRegistry().notes(fp)
    except Exception:  # noqa: BLE001 - notes are a courtesy; a registry problem must not stop the export
        return
    if notes:
        (folder / "notes.json").write_text(json.dumps({"data_fingerprint": fp, "notes": notes}, indent=1,
                                                      ensure_ascii=False), encoding="utf-8")


def _restore_adapter(session, prev: str | None) -> None:
    if session.adapter == prev:
        return
    if prev:
        session.attach_adapter(prev)
    else:
        session.detach_adapter()


def _write_merged(session, adapter_dir: Path, dest: Path) -> None:
    """Base weights + adapter merged (a fresh copy: merging rewrites weights in place, and the
    session's model is shared)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(session.resolved.path, dtype=session.dtype)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(str(dest), safe_serialization=True)
    session.tokenizer.save_pretrained(str(dest))


def _list_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != MANIFEST)


def _swap_in(tmp: Path, final: Path) -> None:
    """Rename tmp to final; an existing bundle is moved aside first (a directory cannot be
    replaced by rename while it has files) and removed only after the new one is in place."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}-{time.monotonic_ns()}")
        os.replace(final, old)
    try:
        os.replace(tmp, final)
    except BaseException:
        if old is not None:
            os.replace(old, final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export_train_run(run_dir: str | Path, dataset, *, session=None, model: str | None = None,
                     export: ExportConfig | None = None, progress: ProgressFn | None = None) -> Path:
    """Export a LoRA training run folder: its adapter, template, train config and its test
    results (`adapter_results.json`, else evaluated now)."""
    from workbench.jobs.inference import EvalResult
    from workbench.core.templates import load_template

    run_dir = Path(run_dir)
    ad = run_dir / "adapter"
    if not (ad / "adapter_config.json").exists():
        raise ModelError(f"Training run {run_dir} has no finished adapter ({ad}/adapter_config.json is missing).",
                         hint="Wait for the run to save an adapter, or pick another run.")
    template = load_template(ad / "template.yaml")
    tc = json.loads((ad / "train_config.json").read_text()) if (ad / "train_config.json").exists() else None
    res = EvalResult.load(run_dir / "adapter_results.json") if (run_dir / "adapter_results.json").exists() else None
    base = EvalResult.load(run_dir / "base_results.json") if (run_dir / "base_results.json").exists() else None
    if res is not None and model is None:
        model = res.provenance["model"].get("name")
    return export_bundle(template, dataset, result=res, session=session, model=model or "default", adapter=str(ad),
                         train_config=tc, base_result=base, export=export, progress=progress)


def zip_bundle(path: str | Path, dest: str | Path | None = None) -> Path:
    """The bundle folder as `<name>.zip` (entries under `<name>/`), written atomically."""
    path = Path(path)
    verify_bundle(path)
    dest = Path(dest) if dest else path.with_suffix(".zip")
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for rel in [*_list_files(path), MANIFEST]:
            z.write(path / rel, f"{path.name}/{rel}")
    os.replace(tmp, dest)
    return dest


def unzip_bundle(zip_path: str | Path, dest_parent: str | Path) -> Path:
    """Extract a bundle zip safely (no absolute paths, no '..', no links) and return its folder."""
    dest_parent = Path(dest_parent)
    with zipfile.ZipFile(zip_path) as z:
        names = z.namelist()
        tops = {n.split("/", 1)[0] for n in names}
        for info in z.infolist():
            _inside(dest_parent, info.filename)
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise DataError(f"{zip_path}: entry {info.filename!r} is a symbolic link.",
                                hint="Bundles hold plain files only.")
        z.extractall(dest_parent)
    if len(tops) == 1 and (dest_parent / next(iter(tops)) / MANIFEST).exists():
        return dest_parent / next(iter(tops))
    if (dest_parent / MANIFEST).exists():
        return dest_parent
    raise DataError(f"{zip_path} holds no {MANIFEST}.", hint="Is this a workbench bundle zip?")


# ---------------------------------------------------------------------------- model card
def _fmt_ci(d: dict) -> str:
    if "ci_low" not in d:
        return f"{d['value']:.3f}"
    return f"{d['value']:.3f} [{d['ci_low']:.3f}, {d['ci_high']:.3f}]"


def model_card(manifest: dict, metrics: dict, template, config, train_config: dict | None) -> str:
    base = manifest["base_model"]
    has_adapter = bool(manifest["adapter"])
    tags = ["prompt-workbench", "text-classification"] + (["lora", "peft"] if has_adapter or manifest["merged"] else [])
    fm = ["---"]
    if base.get("hub_id"):
        fm.append(f"base_model: {base['hub_id']}")
    fm.append("library_name: " + ("peft" if has_adapter else "transformers"))
    fm.append("pipeline_tag: text-classification")
    fm.append("tags:\n" + "\n".join(f"- {t}" for t in tags))
    fm.append("metrics:\n- accuracy\n- f1")
    fm.append("---")
    t = metrics["test"]
    conf = int(round(t["confidence"] * 100))
    data = manifest["data"]
    what = ("the LoRA adapter trained on it" if has_adapter else
            "the base model with the adapter merged into its weights (`model/`)" if manifest["merged"] else
            "no adapter (the base model scores the template zero/few-shot)")
    lines = fm + ["", f"# {manifest['name']}", "",
                  f"A prompt-classification bundle made with Prompt Workbench: the template **{template.name}** "
                  f"(content hash `{template.content_hash()[:12]}`) for **{base['hub_id'] or base['name']}**, and "
                  f"{what}.", "",
                  "## Labels", "", "| label | verbalizers |", "|---|---|"]
    for lab, words in template.answer_choices.items():
        lines.append(f"| {lab} | {', '.join(f'`{w}`' for w in words)} |")
    lines += ["", "## Data", "",
              f"- dataset: **{data['name']}** (source `{data.get('source')}`), fingerprint `{data['fingerprint']}`",
              f"- evaluated on the **{data['split']}** split (split seed {data['split_seed']}), "
              f"{data['n_test']} examples; columns used: {', '.join(f'`{c}`' for c in data['columns'])}",
              f"- scoring: {config.shots}-shot (seed {config.seed}, {config.sampling}), method `{config.method}`, "
              f"calibration `{config.calibration}`", ""]
    if train_config:
        keys = [k for k in ("mode", "lora_r", "lora_alpha", "lora_dropout", "target_modules", "lr", "epochs",
                            "max_steps", "batch_size", "grad_accum", "seed", "shots_per_class", "step") if k in train_config]
        lines += ["## Training", "", "| setting | value |", "|---|---|"]
        lines += [f"| {k} | `{train_config[k]}` |" for k in keys]
        lines += ["", "The full configuration is in `train_config.json`.", ""]
    lines += ["## Results", "", f"Test split, {t['n']} examples, {conf}% confidence intervals "
              "(accuracy: Wilson; macro-F1: percentile bootstrap).", "",
              "| model | accuracy | macro-F1 | majority baseline |", "|---|---|---|---|"]
    if "base" in metrics:
        b = metrics["base"]
        lines.append(f"| base | {_fmt_ci(b['accuracy'])} | {_fmt_ci(b['macro_f1'])} | {b['majority_baseline']:.3f} |")
    lines.append(f"| {'base + adapter' if has_adapter or manifest['merged'] else 'base'} | {_fmt_ci(t['accuracy'])} | "
                 f"{_fmt_ci(t['macro_f1'])} | {t['majority_baseline']:.3f} |")
    lines += ["", "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for lab, v in t["per_class"].items():
        lines.append(f"| {lab} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |")
    lines += ["", "![Per-class precision, recall and F1](per_class.svg)", ""]
    cmp = metrics.get("comparison")
    if cmp:
        lines += ["### Comparison", "", f"Marked the winner of comparison `{cmp['run_id']}` ({cmp.get('n')} examples):", ""]
        lines += [f"- {v}" for v in cmp["verdicts"] if v] or ["- (no verdict text stored)"]
        lines.append("")
    lines += ["## Intended use", "",
              f"Classifying texts like those of **{data['name']}** into the labels above, by scoring each label's "
              "verbalizer after the prompt. Check it on a sample of your own data before relying on it.", "",
              "## Limitations", "",
              "- The numbers hold for this data split; other sources, lengths or label mixes can score lower.",
              f"- With {t['n']} test examples the intervals above are the honest uncertainty; differences inside "
              "them are not evidence.",
              "- A small language model scores these prompts; it can be confidently wrong and carries the biases "
              "of its training data.",
              "- Inputs longer than the model's context are an error, never cut silently."]
    for n in manifest["lm_eval"]["notes"]:
        lines.append(f"- lm-eval: {n}.")
    lines += ["", "## How to load", "", "```python", "from workbench import load_bundle", "",
              "clf = load_bundle(\"path/to/bundle\")   # checks checksums, base model and tokenizer",
              "clf.predict([\"some text\", \"another text\"])   # -> labels",
              "clf.predict_frame(df)                 # -> df + pred + score_<label> columns", "```", "",
              "```bash", "workbench predict --bundle path/to/bundle --input new.csv --out preds.csv", "```", ""]
    base_arg = f"pretrained={base['hub_id'] or base['name']}"
    if manifest["merged"]:
        base_arg = "pretrained=model"
        lines += ["Plain transformers: `AutoModelForCausalLM.from_pretrained(\"model\")`; render "
                  "`template.yaml` yourself.", ""]
    elif has_adapter:
        base_arg += ",peft=adapter"
        lines += ["Plain peft: `PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), \"adapter\")`.", ""]
    if manifest["lm_eval"]["task"]:
        lines += ["lm-evaluation-harness, from inside the bundle folder (the data paths are relative):", "", "```bash",
                  f"lm_eval --model hf --model_args {base_arg},dtype=float32 --tasks {manifest['lm_eval']['task']} "
                  "--include_path . --log_samples --output_path lm_eval_out", "```", ""]
    lines += ["`promptsource.yaml` holds the template in PromptSource's format; `workbench import` reads the bundle, "
              "that file or `lm_eval_task.yaml` back into the template library.", "",
              f"Built with prompt-workbench {manifest['versions'].get('prompt-workbench', '?')}, transformers "
              f"{manifest['versions'].get('transformers', '?')}, peft {manifest['versions'].get('peft', '?')}; "
              "`manifest.json` lists every file's sha256.", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- load
def verify_bundle(path: str | Path) -> dict:
    """Check the manifest's checksums; returns the manifest. Raises DataError naming the file."""
    root = Path(path)
    mf = root / MANIFEST
    if not mf.is_file():
        raise DataError(f"{root} is not a bundle: {MANIFEST} is missing.",
                        hint="Pass the folder `workbench export` wrote (or unzip the downloaded bundle first).")
    try:
        manifest = json.loads(mf.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{mf} is not valid JSON (line {e.lineno}).", hint="Re-export the bundle.") from e
    if manifest.get("format") != FORMAT:
        raise DataError(f"{mf} is not a prompt-workbench bundle manifest.", hint="Re-export the bundle.")
    if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
        raise DataError(f"Bundle format {manifest['format_version']} is newer than this workbench reads "
                        f"({FORMAT_VERSION}).", hint="Upgrade prompt-workbench.")
    files = manifest.get("files") or {}
    for rel, info in files.items():
        p = _inside(root, rel)
        if not p.is_file():
            raise DataError(f"Bundle file {rel} is missing from {root}.", hint="Re-export or re-download the bundle.")
        if sha256_file(p) != info.get("sha256"):
            raise DataError(f"Bundle file {rel} does not match its checksum in {MANIFEST}: it was changed or "
                            "corrupted after export.", hint="Re-export or re-download the bundle; do not edit bundle files.")
    extra = [rel for rel in _list_files(root) if rel not in files and not rel.startswith("lm_eval_out/")]
    if extra:
        raise DataError(f"Bundle {root} holds file(s) not in its manifest: {', '.join(extra[:5])}.",
                        hint="Remove them, or re-export the bundle.")
    return manifest


@dataclass
class Bundle:
    """A verified bundle bound to a session. `predict` attaches the adapter only while it runs
    and restores the session's previous adapter, so a shared session is left as it was."""

    path: Path
    manifest: dict
    template: Any
    config: Any
    session: Any
    pool: Any = None

    @property
    def labels(self) -> list[str]:
        return list(self.template.answer_choices)

    @property
    def adapter_path(self) -> str | None:
        a = self.manifest.get("adapter")
        return str(self.path / a) if a else None

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
    from workbench.jobs.inference import EvalConfig
    from workbench.core.templates import load_template

    root = Path(path)
    if root.is_file() and root.suffix == ".zip":
        import tempfile
        root = unzip_bundle(root, tempfile.mkdtemp(prefix="wb-bundle-"))
    manifest = verify_bundle(root)
    template = load_template(root / "template.yaml")
    want = template.metadata.get("content_hash")
    if want and want != template.content_hash():
        raise DataError(f"template.yaml in {root} has content hash {template.content_hash()[:12]}, but was exported "
                        f"as {want[:12]}.", hint="Re-export the bundle.")
    known = {f.name for f in dataclasses.fields(EvalConfig)}
    cfg_d = json.loads((root / "eval_config.json").read_text(encoding="utf-8"))
    config = EvalConfig(**{k: v for k, v in cfg_d.items() if k in known})
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
    return Bundle(path=root, manifest=manifest, template=template, config=config, session=session, pool=pool)


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
        if src.is_file() and src.suffix == ".zip":
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
