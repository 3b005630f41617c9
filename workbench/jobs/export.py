"""Writing bundles: the winning template, its adapter and the evidence, in one folder that runs anywhere.

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
the end, so an interrupted export never leaves a half bundle; the debris of a killed export
(`.NAME.tmp-*`, `.NAME.old-*`, `.NAME.zip.tmp-*`) is cleaned up by the next export into the
same folder (`clean_export_debris`), and the registry row is written only once the bundle
(and its zip) is complete. Names are sanitized and every path is checked to stay inside its
folder (on export, on load and on zip extraction).

This module writes; reading and verifying live in `workbench.jobs.bundle`, the model card in
`workbench.jobs.model_card`. The reading names (`load_bundle`, `verify_bundle`, `import_path`,
`unzip_bundle`, `Bundle`, ...) are re-exported here, so `from workbench.jobs.export import
load_bundle` keeps working.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from workbench.core.fileutil import sha256_file
from workbench.core.options import N_BOOT
from workbench.errors import ConfigError, DataError, ModelError, TemplateError
# Reading names re-exported for `from workbench.jobs.export import ...` callers.
from workbench.jobs.bundle import (FORMAT, FORMAT_VERSION, MANIFEST, Bundle, ProgressFn,  # noqa: F401
                                   check_manifest, import_path, inside, list_files, load_bundle, max_bundle_bytes,
                                   read_jsonl_frame, restore_adapter, sanitize_name, sweep_temp_folders,
                                   tokenizer_fingerprint, unzip_bundle, verify_bundle)
from workbench.jobs.export_debris import clean_dead, clean_export_debris, drop_stale_zip, glob_escape  # noqa: F401
from workbench.jobs.model_card import model_card, per_class_svg  # noqa: F401
from workbench.engine.versions import package_versions


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
    n_boot: int = field(default=N_BOOT, metadata={"help": "bootstrap replicates for the macro-F1 interval"})
    comparison: bool = field(default=True, metadata={
        "help": "attach the verdict of the latest comparison this template (same content hash) won"})
    record: bool = field(default=True, metadata={"help": "record the export in the run registry (once it is complete)"})
    zip: bool = field(default=False, metadata={"help": "also write <out_dir>/<name>.zip (before the export is recorded)"})



# ---------------------------------------------------------------------------- helpers

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
                    n_boot: int = N_BOOT, seed: int = 0) -> dict:
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
    final = inside(parent, name)
    clean_export_debris(parent, name)
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
                restore_adapter(session, prev)
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
                for fn in ("adapter_config.json", "adapter_model.safetensors"):   # never a pickled .bin
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
            "versions": package_versions(),
        }
        (tmp / "README.md").write_text(model_card(manifest, metrics, template, config, train_config), encoding="utf-8")
        manifest["files"] = {rel: {"sha256": sha256_file(tmp / rel), "size": (tmp / rel).stat().st_size}
                             for rel in list_files(tmp)}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")
        _swap_in(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    drop_stale_zip(final)
    if ex.zip:
        zip_bundle(final)
    # Recorded last: a row in the registry means a complete bundle (and zip) is on disk.
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


def _write_merged(session, adapter_dir: Path, dest: Path) -> None:
    """Base weights + adapter merged (a fresh copy: merging rewrites weights in place, and the
    session's model is shared)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(session.resolved.path, dtype=session.dtype)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(str(dest), safe_serialization=True)
    session.tokenizer.save_pretrained(str(dest))



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
                     export: ExportConfig | None = None, progress: ProgressFn | None = None,
                     force: bool = False) -> Path:
    """Export a LoRA training run folder: its adapter, template, train config and its test
    results (`adapter_results.json`, else evaluated now). A run that did not finish (still
    running, interrupted by a dead process, failed) is refused unless `force`; then its state
    goes into train_config.json and the model card."""
    from workbench.jobs.inference import EvalResult
    from workbench.core.templates import load_template
    from workbench.jobs.training import read_status

    run_dir = Path(run_dir)
    st = read_status(run_dir) if (run_dir / "log.jsonl").exists() else {"state": "done"}
    where = f"step {st.get('step')} of {st.get('total_steps')}"
    if st["state"] in ("running", "pending") and not force:
        raise ConfigError(f"Training run {run_dir.name} is still training ({where}).",
                          hint="Wait until it ends, or cancel it (the best adapter is kept), then export.")
    if st["state"] in ("interrupted", "failed") and not force:
        why = "its process died before it finished" if st["state"] == "interrupted" else f"it failed: {st.get('error')}"
        raise ConfigError(f"Training run {run_dir.name} was {st['state']} at {where}: {why}.",
                          hint="Its adapter is the best one saved before that. Export it anyway with --force "
                               "(force=True; the model card says the run did not finish), or train again.")
    ad = run_dir / "adapter"
    if not (ad / "adapter_config.json").exists():
        raise ModelError(f"Training run {run_dir} has no finished adapter ({ad}/adapter_config.json is missing).",
                         hint="Wait for the run to save an adapter, or pick another run.")
    template = load_template(ad / "template.yaml")
    tc = json.loads((ad / "train_config.json").read_text()) if (ad / "train_config.json").exists() else None
    if st["state"] != "done":
        tc = {**(tc or {}), "run_state": {k: st.get(k) for k in ("state", "step", "total_steps", "stop_reason")}
              | {"forced": bool(force)}}
    res = EvalResult.load(run_dir / "adapter_results.json") if (run_dir / "adapter_results.json").exists() else None
    base = EvalResult.load(run_dir / "base_results.json") if (run_dir / "base_results.json").exists() else None
    if res is not None and model is None:
        model = res.provenance["model"].get("name")
    return export_bundle(template, dataset, result=res, session=session, model=model or "default", adapter=str(ad),
                         train_config=tc, base_result=base, export=export, progress=progress)


def zip_bundle(path: str | Path, dest: str | Path | None = None) -> Path:
    """The bundle folder as `<name>.zip` (entries under `<name>/`), written atomically."""
    path = Path(path)
    manifest = verify_bundle(path)
    dest = Path(dest) if dest else path.parent / f"{path.name}.zip"
    clean_dead(dest.parent.glob(f".{glob_escape(dest.name)}.tmp-*"), [])
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}-{time.monotonic_ns()}")
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            # only what the manifest lists (not lm_eval_out/ and the like): unzip accepts nothing else
            for rel in [*sorted(manifest["files"]), MANIFEST]:
                z.write(path / rel, f"{path.name}/{rel}")
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest
