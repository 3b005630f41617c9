"""Bundles: export → load → predict gives the workbench's own predictions (with a real,
perturbed LoRA adapter on the default model), tampering and path traversal are refused,
import reads bundles and interop files back, and lm_eval on lm_eval_task.yaml agrees."""
from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import pytest

from workbench.errors import ConfigError, DataError, ModelError

LIB = Path(__file__).resolve().parent.parent / "templates_library"
TEMPLATE = LIB / "bbc_headline_topic.yaml"


# ---------------------------------------------------------------------------- fast units
@pytest.mark.parametrize("raw, safe", [
    ("best", "best"), ("../../etc/passwd", "etc-passwd"), ("/abs/path", "abs-path"), ("..", None),
    ("a b/c\\d", "a-b-c-d"), (".hidden", "hidden"), ("ünï côde", "n-c-de"), ("", None),
])
def test_sanitize_name(raw, safe):
    from workbench.jobs.export import sanitize_name

    if safe is None:
        with pytest.raises(ConfigError, match="no usable characters"):
            sanitize_name(raw)
    else:
        assert sanitize_name(raw) == safe


def test_inside_refuses_escapes(tmp_path):
    from workbench.jobs.export import inside

    assert inside(tmp_path, "data/test.jsonl") == (tmp_path / "data" / "test.jsonl").resolve()
    for bad in ("../x", "/etc/passwd", "data/../../x", "a\\..\\b"):
        with pytest.raises(DataError, match="outside"):
            inside(tmp_path, bad)


def test_metrics_with_ci_by_hand():
    from workbench.jobs.export import metrics_with_ci
    from workbench.core.stats import wilson_interval

    recs = [{"gold": g, "pred": p} for g, p in [("a", "a"), ("a", "b"), ("b", "b"), ("b", "b"), ("a", "a")]]
    m = metrics_with_ci(recs, ["a", "b"], n_boot=200)
    assert m["accuracy"]["value"] == pytest.approx(0.8) and m["accuracy"]["correct"] == 4
    assert (m["accuracy"]["ci_low"], m["accuracy"]["ci_high"]) == pytest.approx(wilson_interval(4, 5))
    a = m["per_class"]["a"]   # tp=2, predicted a 2 times, support 3
    assert a["precision"] == 1.0 and a["recall"] == pytest.approx(2 / 3) and a["predicted"] == 2
    assert a["recall_ci"] == pytest.approx(list(wilson_interval(2, 3)))
    assert m["confusion"]["matrix"] == [[2, 1], [0, 2]]
    assert m["macro_f1"]["ci_low"] <= m["macro_f1"]["value"] <= m["macro_f1"]["ci_high"]


def test_per_class_svg_is_valid_xml():
    from workbench.jobs.export import per_class_svg

    svg = per_class_svg({"a<b": {"precision": 0.5, "recall": 1.0, "f1": 0.66}, "c": {"precision": 0, "recall": 0, "f1": 0}})
    root = ElementTree.fromstring(svg)
    assert root.tag.endswith("svg") and len(root.findall(".//{http://www.w3.org/2000/svg}rect")) >= 6


def test_unzip_refuses_zip_slip(tmp_path):
    from workbench.jobs.export import unzip_bundle

    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("b/manifest.json", "{}")
        f.writestr("../../evil.txt", "x")
    with pytest.raises(DataError, match="outside"):
        unzip_bundle(z, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path.parent / "evil.txt").exists()


# ---------------------------------------------------------------------------- real model
@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory, session):
    """A LoRA adapter on the default model whose B matrices are perturbed (peft starts them at
    zero, which would be the identity), so it really changes the scores."""
    from adapters import write_random_lora

    out = write_random_lora(session.resolved.path, tmp_path_factory.mktemp("adapter"), scale=0.05)
    assert (out / "adapter_config.json").exists() and (out / "adapter_model.safetensors").exists()
    return out


@pytest.fixture(scope="module")
def base_bundle(tmp_path_factory, session, bbc):
    """A base-model (no adapter) 1-shot bundle over 10 test rows."""
    from workbench.jobs.export import ExportConfig, export_bundle
    from workbench.jobs.inference import EvalConfig
    from workbench.core.templates import load_template

    out = tmp_path_factory.mktemp("bundles")
    # module scope runs before the per-test WORKBENCH_HOME: touch no registry here
    return export_bundle(load_template(TEMPLATE), bbc, session=session, config=EvalConfig(limit=10, shots=1, seed=3),
                         export=ExportConfig(name="base", out_dir=str(out), record=False, comparison=False))


@pytest.mark.model
def test_round_trip_with_adapter(tmp_path, session, bbc, adapter_dir, workbench_home):
    from workbench import load_bundle
    from workbench.jobs.export import ExportConfig, export_bundle, import_path, verify_bundle
    from workbench.jobs.inference import EvalConfig, evaluate
    from workbench.storage.runs import RunRegistry
    from workbench.core.templates import load_template

    t = load_template(TEMPLATE)
    cfg = EvalConfig(limit=10, shots=1, seed=2)
    base = evaluate(t, bbc, session, cfg)
    session.attach_adapter(str(adapter_dir))
    try:
        tuned = evaluate(t, bbc, session, cfg)
    finally:
        session.detach_adapter()
    assert [r["scores"] for r in tuned.records] != [r["scores"] for r in base.records], "the adapter must matter"

    path = export_bundle(t, bbc, result=tuned, base_result=base, session=session, adapter=str(adapter_dir),
                         export=ExportConfig(name="../round trip", out_dir=str(tmp_path)))
    assert path == tmp_path / "round-trip" and path.is_dir()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temp folders left behind"
    manifest = verify_bundle(path)
    for rel in ("template.yaml", "adapter/adapter_config.json", "adapter/adapter_model.safetensors", "metrics.json",
                "README.md", "lm_eval_task.yaml", "promptsource.yaml", "data/test.jsonl", "per_class.svg"):
        assert rel in manifest["files"], rel
    metrics = json.loads((path / "metrics.json").read_text())
    assert metrics["test"]["accuracy"]["value"] == pytest.approx(tuned.metrics["accuracy"])
    assert metrics["base"]["accuracy"]["value"] == pytest.approx(base.metrics["accuracy"])
    card = (path / "README.md").read_text()
    assert card.startswith("---\nbase_model: HuggingFaceTB/SmolLM2-135M-Instruct\nlibrary_name: peft")
    assert bbc.fingerprint() in card and "![Per-class" in card and "| base + adapter |" in card
    rec = RunRegistry().list(kind="export")[0]
    assert rec.payload_path == str(path) and rec.template_hash == t.content_hash()

    clf = load_bundle(path)                      # the shared default session, verified
    out = clf.predict_frame(clf.test_rows(), batch_size=4)   # several batches
    assert list(out["pred"]) == tuned.preds
    for i, r in enumerate(tuned.records):
        for lab, s in r["scores"].items():
            assert out[f"score_{lab}"].iloc[i] == pytest.approx(s, abs=1e-4)
    assert session.adapter is None, "predict restores the session's adapter"
    # plain texts map to the template's only variable
    assert clf.input_column() == "title"
    assert clf.predict(list(clf.test_rows()["title"][:3])) == tuned.preds[:3]

    # zip → load gives the same, and import puts the template in the user folder
    from workbench.jobs.export import zip_bundle
    z = zip_bundle(path)
    assert load_bundle(z, session=session).predict(list(clf.test_rows()["title"][:2])) == tuned.preds[:2]
    written = import_path(z)
    assert written[0].parent == workbench_home / "templates"
    assert load_template(written[0]).content_hash() == t.content_hash()
    assert import_path(path) == written        # identical template: kept, no error


@pytest.mark.model
def test_tampering_is_refused(tmp_path, base_bundle):
    import shutil

    from workbench.jobs.export import load_bundle, verify_bundle

    b = tmp_path / "b"
    shutil.copytree(base_bundle, b)
    verify_bundle(b)
    (b / "metrics.json").write_text((b / "metrics.json").read_text().replace('"accuracy"', '"accuracy" ', 1))
    with pytest.raises(DataError, match=r"metrics\.json does not match its checksum"):
        load_bundle(b)

    shutil.rmtree(b)
    shutil.copytree(base_bundle, b)
    (b / "data" / "evil.py").write_text("print(1)")
    with pytest.raises(DataError, match=r"not in its manifest: data/evil\.py"):
        verify_bundle(b)

    shutil.rmtree(b)
    shutil.copytree(base_bundle, b)
    m = json.loads((b / "manifest.json").read_text())
    m["files"]["../../outside.txt"] = {"sha256": "0" * 64, "size": 1}
    (b / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DataError, match="outside"):
        verify_bundle(b)

    (b / "template.yaml").unlink()
    m["files"].pop("../../outside.txt")
    (b / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DataError, match="template.yaml is missing"):
        verify_bundle(b)


@pytest.mark.model
def test_other_model_or_tokenizer_refused_unless_forced(tmp_path, base_bundle, session):
    import shutil

    from workbench.jobs.export import load_bundle

    b = tmp_path / "b"
    shutil.copytree(base_bundle, b)
    m = json.loads((b / "manifest.json").read_text())
    m["base_model"]["identity"] = "someone/other-model@main"
    m["base_model"]["tokenizer_hash"] = "f" * 64
    (b / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ModelError, match="made for another model: base model .* differs.*tokenizer .* differs"):
        load_bundle(b, session=session)
    clf = load_bundle(b, session=session, force=True)
    saved = [r["pred"] for r in clf.saved_predictions()]
    assert clf.predict(clf.test_rows()) == saved      # 1-shot demos come from the bundle's pool


@pytest.mark.model
def test_cli_predict_and_import(tmp_path, base_bundle, workbench_home):
    import pandas as pd

    from workbench.cli import main
    from workbench.core.templates import load_template
    from workbench.storage.library import list_library

    rows = pd.read_json(base_bundle / "data" / "test.jsonl", lines=True)
    rows[["title"]].rename(columns={"title": "headline"}).to_csv(tmp_path / "new.csv", index=False)
    assert main(["predict", "--bundle", str(base_bundle), "--input", str(tmp_path / "new.csv"),
                 "--text-column", "headline", "--out", str(tmp_path / "preds.csv")]) == 0
    preds = pd.read_csv(tmp_path / "preds.csv")
    saved = [json.loads(x) for x in (base_bundle / "predictions.jsonl").read_text().splitlines()]
    assert list(preds["pred"]) == [s["pred"] for s in saved]
    assert {"score_business", "score_tech", "score_sports"} <= set(preds.columns)

    # a bad column name is a clear error, not a traceback
    assert main(["predict", "--bundle", str(base_bundle), "--input", str(tmp_path / "new.csv"),
                 "--out", str(tmp_path / "p2.csv")]) == 1

    assert main(["import", str(base_bundle / "promptsource.yaml")]) == 0
    assert main(["import", str(base_bundle / "lm_eval_task.yaml")]) == 0
    names = {t["name"] for t in list_library() if t["source"] == "user"}
    assert {"bbc_headline_topic", "wb_base"} <= names
    lm = load_template(workbench_home / "templates" / "wb_base.yaml")
    orig = load_template(TEMPLATE)
    row = rows.iloc[0].to_dict()
    assert lm.build_context(row) == orig.build_context(row)


# ---------------------------------------------------------------------------- lm-eval
@pytest.mark.model
@pytest.mark.slow
def test_lm_eval_task_reproduces_predictions(base_bundle, session, tmp_path):
    """lm_eval on the bundle's own task file and data gives the workbench's predictions."""
    manifest = json.loads((base_bundle / "manifest.json").read_text())
    assert manifest["lm_eval"]["reproduces_predictions"], manifest["lm_eval"]
    task = manifest["lm_eval"]["task"]
    out = tmp_path / "lmeval"
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               HF_DATASETS_CACHE=str(tmp_path / "hfds"))
    lm_eval = Path(sys.executable).with_name("lm_eval")
    cmd = [str(lm_eval), "--model", "hf", "--model_args", f"pretrained={session.resolved.path},dtype=float32",
           "--tasks", task, "--include_path", ".", "--device", "cpu", "--batch_size", "8",
           "--log_samples", "--output_path", str(out)]
    p = subprocess.run(cmd, cwd=base_bundle, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    files = glob.glob(str(out / "**" / f"samples_{task}_*.jsonl"), recursive=True)
    samples = sorted((json.loads(x) for x in open(files[0])), key=lambda s: s["doc_id"])
    choices = json.loads((base_bundle / "metrics.json").read_text())["labels"]
    theirs = []
    for s in samples:
        lls = [float(r[0]) for r in s["filtered_resps"]]
        theirs.append(choices[max(range(len(lls)), key=lambda i: (lls[i], -i))])
    saved = [json.loads(x) for x in (base_bundle / "predictions.jsonl").read_text().splitlines()]
    assert theirs == [r["pred"] for r in saved]
    for s, r in zip(samples, saved):
        for lab, resp in zip(choices, s["filtered_resps"]):
            assert float(resp[0]) == pytest.approx(r["scores"][lab], abs=1e-3)


@pytest.mark.model
@pytest.mark.slow
def test_export_train_run(tmp_path, session, bbc):
    """A LoRA run of two steps → export_train_run → its adapter, config and test results in the
    bundle; predicting from the bundle gives the run's own test predictions."""
    from workbench.jobs.export import ExportConfig, export_train_run, load_bundle
    from workbench.jobs.inference import EvalResult
    from workbench.core.templates import load_template
    from workbench.jobs.training import TrainConfig, train

    cfg = TrainConfig(max_steps=2, shots_per_class=2, batch_size=4, dev_limit=5, test_limit=6, eval_every=0, seed=0)
    run = tmp_path / "run"
    train("default", load_template(TEMPLATE), bbc, cfg, run, registry=False)
    path = export_train_run(run, bbc, session=session, export=ExportConfig(name="trained", out_dir=str(tmp_path)))
    assert (path / "adapter" / "adapter_model.safetensors").exists() and (path / "train_config.json").exists()
    card = (path / "README.md").read_text()
    assert "## Training" in card and "| max_steps | `2` |" in card and "| base |" in card
    tuned = EvalResult.load(run / "adapter_results.json")
    clf = load_bundle(path, session=session)
    assert clf.predict(clf.test_rows()) == tuned.preds
