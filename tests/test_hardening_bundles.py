"""Hostile and broken bundles (issue 15, items 2, 4 and 7): an adapter path that leaves the
bundle, manifests of the wrong shape, missing files, non-zip zips and zip bombs are refused
with a WorkbenchError before anything is extracted or loaded, and temporary folders of zip
bundles are removed after use.

Most tests build a small bundle by hand (real files, real sha256 manifest) and bind it to a
stand-in session, so they run without the model; the real-model checks sit at the end."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from support.fakes import FakeSession, FakeTokenizer

from workbench.errors import DataError, WorkbenchError

LIB = Path(__file__).resolve().parent.parent / "templates_library"
TEMPLATE = LIB / "bbc_headline_topic.yaml"
STAND_IN = "stand-in-model"   # the fake session's identity, written into the hand-made manifests


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def write_manifest(root: Path, **changes) -> dict:
    """Recompute the manifest of the files under root (as export does), then apply `changes`."""
    from workbench.jobs.export import tokenizer_fingerprint

    files = {p.relative_to(root).as_posix(): {"sha256": _sha(p), "size": p.stat().st_size}
             for p in sorted(root.rglob("*")) if p.is_file() and p.name != "manifest.json"}
    m = {"format": "prompt-workbench-bundle", "format_version": 1, "name": root.name,
         "template": {"name": "bbc_headline_topic", "hash": "x"},
         "base_model": {"name": "stand-in", "identity": STAND_IN,
                        "tokenizer_hash": tokenizer_fingerprint(FakeTokenizer()), "hub_id": None},
         "adapter": "adapter" if (root / "adapter").is_dir() else None, "merged": False,
         "files": files}
    m.update(changes)
    (root / "manifest.json").write_text(json.dumps(m), encoding="utf-8")
    return m


def make_bundle(parent: Path, name: str = "b", adapter: bool = True) -> Path:
    root = parent / name
    root.mkdir(parents=True)
    shutil.copy(TEMPLATE, root / "template.yaml")
    (root / "eval_config.json").write_text(json.dumps({"shots": 0, "method": "acc"}), encoding="utf-8")
    (root / "metrics.json").write_text("{}", encoding="utf-8")
    if adapter:
        (root / "adapter").mkdir()
        (root / "adapter" / "adapter_config.json").write_text('{"peft_type": "LORA"}', encoding="utf-8")
        (root / "adapter" / "adapter_model.safetensors").write_bytes(b"\0" * 64)
    write_manifest(root)
    return root


def zip_dir(root: Path, dest: Path) -> Path:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                z.write(p, f"{root.name}/{p.relative_to(root).as_posix()}")
    return dest


def test_a_hand_made_bundle_loads(tmp_path):
    """The stand-in bundle itself is valid: the refusals below are about what each test changes."""
    from workbench.jobs.export import import_path, load_bundle

    root = make_bundle(tmp_path)
    b = load_bundle(root, session=FakeSession(STAND_IN))
    assert Path(b.adapter_path) == (root / "adapter").resolve()
    assert import_path(root, tmp_path / "tpl")


# ---------------------------------------------------------------------------- item 2: adapter path
@pytest.mark.parametrize("where", ["absolute", "dotdot", "unlisted", "not-an-adapter"])
def test_adapter_outside_or_unverified_is_refused(tmp_path, where):
    from workbench.jobs.export import import_path, load_bundle

    root = make_bundle(tmp_path)
    evil = make_bundle(tmp_path, "elsewhere") / "adapter"
    if where == "absolute":
        write_manifest(root, adapter=str(evil))
    elif where == "dotdot":
        write_manifest(root, adapter="../elsewhere/adapter")
    elif where == "unlisted":       # the adapter files are there, but the manifest does not vouch for them
        m = write_manifest(root)
        m["files"] = {k: v for k, v in m["files"].items() if not k.startswith("adapter/")}
        (root / "manifest.json").write_text(json.dumps(m))
        # the "extra files" check must not be the only guard: put them in an unchecked folder
        shutil.move(str(root / "adapter"), str(root / "lm_eval_out"))
        write_manifest(root, adapter="lm_eval_out")
        m = json.loads((root / "manifest.json").read_text())
        m["files"] = {k: v for k, v in m["files"].items() if not k.startswith("lm_eval_out/")}
        (root / "manifest.json").write_text(json.dumps(m))
    else:
        write_manifest(root, adapter="data")   # a folder that holds no adapter
    with pytest.raises(DataError, match="adapter"):
        load_bundle(root, session=FakeSession(STAND_IN))
    with pytest.raises(DataError, match="adapter"):
        import_path(root, tmp_path / "tpl")


# ---------------------------------------------------------------------------- item 7: malformed manifests
@pytest.mark.parametrize("change", [
    {"files": ["template.yaml"]},
    {"files": {"template.yaml": "abc"}},
    {"files": {"template.yaml": {"sha256": 5}}},
    {"format_version": "one"},
    {"format_version": 0},
    {"format_version": 99},
    {"base_model": "SmolLM2"},
    {"base_model": None},
    {"adapter": {"path": "adapter"}},
    {"merged": "yes"},
])
def test_malformed_manifest_is_a_clear_error(tmp_path, change):
    from workbench.jobs.export import import_path, load_bundle

    root = make_bundle(tmp_path)
    write_manifest(root, **change)
    for call in (lambda: load_bundle(root, session=FakeSession(STAND_IN)), lambda: import_path(root, tmp_path / "tpl")):
        with pytest.raises(DataError) as e:
            call()
        assert "manifest" in str(e.value) or "format" in str(e.value)


def test_manifest_that_is_not_an_object(tmp_path):
    from workbench.jobs.export import load_bundle

    root = make_bundle(tmp_path)
    (root / "manifest.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="manifest"):
        load_bundle(root, session=FakeSession(STAND_IN))


def test_missing_base_model_or_eval_config(tmp_path):
    from workbench.jobs.export import load_bundle

    root = make_bundle(tmp_path)
    m = json.loads((root / "manifest.json").read_text())
    del m["base_model"]
    (root / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DataError, match="base_model"):
        load_bundle(root, session=FakeSession(STAND_IN))

    root2 = make_bundle(tmp_path, "b2")
    (root2 / "eval_config.json").unlink()
    write_manifest(root2)
    with pytest.raises(DataError, match="eval_config.json"):
        load_bundle(root2, session=FakeSession(STAND_IN))

    root3 = make_bundle(tmp_path, "b3")
    (root3 / "eval_config.json").write_text('"a string"')
    write_manifest(root3)
    with pytest.raises(DataError, match="eval_config.json"):
        load_bundle(root3, session=FakeSession(STAND_IN))


def test_non_zip_zip_is_a_clear_error(tmp_path):
    from workbench.jobs.export import import_path, load_bundle

    z = tmp_path / "not.zip"
    z.write_text("this is not a zip file")
    with pytest.raises(DataError, match="not a zip"):
        load_bundle(z, session=FakeSession(STAND_IN))
    with pytest.raises(DataError, match="not a zip"):
        import_path(z, tmp_path / "tpl")


# ---------------------------------------------------------------------------- item 4: zip bombs, temp folders
def test_zip_bomb_is_refused_before_extracting(tmp_path, monkeypatch):
    """A 30 MB file of zeros compresses to ~30 kB. With a 5 MB cap it is refused from the zip
    directory alone: nothing is written."""
    from workbench.jobs.export import unzip_bundle

    monkeypatch.setenv("WORKBENCH_MAX_BUNDLE_MB", "5")
    root = make_bundle(tmp_path)
    (root / "adapter" / "adapter_model.safetensors").write_bytes(b"\0" * (30 << 20))
    write_manifest(root)
    z = zip_dir(root, tmp_path / "bomb.zip")
    assert z.stat().st_size < 1 << 20
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DataError, match="MB"):
        unzip_bundle(z, out)
    assert not any(out.rglob("*"))


def test_zip_sizes_must_match_the_manifest(tmp_path):
    """A small manifest size with a big entry (a manifest that lies to get past the cap), and
    entries the manifest does not list, are refused before extraction."""
    from workbench.jobs.export import unzip_bundle

    root = make_bundle(tmp_path)
    m = write_manifest(root)
    m["files"]["adapter/adapter_model.safetensors"]["size"] = 1
    (root / "manifest.json").write_text(json.dumps(m))
    z = zip_dir(root, tmp_path / "lie.zip")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DataError, match="size"):
        unzip_bundle(z, out)
    assert not any(out.rglob("*"))

    root2 = make_bundle(tmp_path, "b2")
    z2 = zip_dir(root2, tmp_path / "extra.zip")
    with zipfile.ZipFile(z2, "a") as f:
        f.writestr("b2/huge.bin", b"\0" * 1000)
    out2 = tmp_path / "out2"
    out2.mkdir()
    with pytest.raises(DataError, match="not in its manifest"):
        unzip_bundle(z2, out2)
    assert not any(out2.rglob("*"))


def test_zip_bundle_temp_folder_is_removed(tmp_path, monkeypatch):
    """load_bundle of a .zip extracts into a wb-bundle-* folder; close() (or leaving a `with`
    block, or garbage collection) removes it, and a failed load removes it at once."""
    import tempfile

    from workbench.jobs.export import load_bundle

    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
    z = zip_dir(make_bundle(tmp_path), tmp_path / "ok.zip")
    b = load_bundle(z, session=FakeSession(STAND_IN))
    assert list(tmpdir.glob("wb-bundle-*")) and Path(b.adapter_path).exists()
    b.close()
    assert not list(tmpdir.glob("wb-bundle-*"))
    with load_bundle(z, session=FakeSession(STAND_IN)) as b2:
        assert b2.labels
    assert not list(tmpdir.glob("wb-bundle-*"))

    with pytest.raises(WorkbenchError):
        load_bundle(z, session=FakeSession("another-model"))
    assert not list(tmpdir.glob("wb-bundle-*"))


def test_temp_folder_of_a_killed_predict_is_swept(tmp_path, monkeypatch):
    """A process killed with SIGKILL while holding a zip bundle leaves its wb-bundle-* folder; the
    next load removes folders whose owner process is gone (and leaves live owners' alone)."""
    import signal
    import tempfile

    from workbench.jobs.export import load_bundle

    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    z = zip_dir(make_bundle(tmp_path), tmp_path / "ok.zip")
    code = ("import sys, time, tempfile; sys.path.insert(0, sys.argv[3]); tempfile.tempdir = sys.argv[2]\n"
            "sys.path.insert(0, sys.argv[3] + '/tests'); from support.fakes import FakeSession\n"
            "from workbench.jobs.export import load_bundle\n"
            f"b = load_bundle(sys.argv[1], session=FakeSession({STAND_IN!r})); print('ready', flush=True); "
            "time.sleep(60)\n")
    repo = str(Path(__file__).resolve().parent.parent)
    p = subprocess.Popen([sys.executable, "-c", code, str(z), str(tmpdir), repo], stdout=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONPATH": repo})
    try:
        assert p.stdout.readline().strip() == "ready"
        assert len(list(tmpdir.glob("wb-bundle-*"))) == 1
        p.send_signal(signal.SIGKILL)
        p.wait(10)
    finally:
        p.kill()
    assert len(list(tmpdir.glob("wb-bundle-*"))) == 1
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
    with load_bundle(z, session=FakeSession(STAND_IN)):
        # the dead process's folder is gone; ours is there while the bundle is open
        assert len(list(tmpdir.glob("wb-bundle-*"))) == 1
    assert not list(tmpdir.glob("wb-bundle-*"))


# ---------------------------------------------------------------------------- real model
@pytest.mark.model
def test_real_bundle_with_an_edited_adapter_path_is_refused(tmp_path, session, bbc):
    """A real export with a real adapter: pointing its manifest at a copy of the adapter outside
    the bundle is refused by load_bundle (so predict never attaches it)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from workbench.core.templates import load_template
    from workbench.jobs.export import ExportConfig, export_bundle, load_bundle
    from workbench.jobs.inference import EvalConfig

    base = AutoModelForCausalLM.from_pretrained(session.resolved.path, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"], lora_dropout=0.0))
    ad = tmp_path / "adapter"
    model.save_pretrained(str(ad))
    path = export_bundle(load_template(TEMPLATE), bbc, session=session, config=EvalConfig(limit=3), adapter=str(ad),
                         export=ExportConfig(name="real", out_dir=str(tmp_path / "out"), record=False, comparison=False))
    evil = tmp_path / "evil_adapter"
    shutil.copytree(path / "adapter", evil)
    m = json.loads((path / "manifest.json").read_text())
    m["adapter"] = str(evil)
    (path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DataError, match="adapter"):
        load_bundle(path, session=session)


@pytest.mark.model
def test_cli_zip_predict_leaves_no_temp_folder(tmp_path):
    """`workbench predict --bundle x.zip` (a successful run) removes its wb-bundle-* folder."""
    from workbench.storage.data_load import load_dataset
    from workbench.core.templates import load_template
    from workbench.engine.session import get_session
    from workbench.jobs.export import ExportConfig, export_bundle, zip_bundle
    from workbench.jobs.inference import EvalConfig

    session = get_session("default")
    path = export_bundle(load_template(TEMPLATE), load_dataset("bbc"), session=session, config=EvalConfig(limit=3),
                         export=ExportConfig(name="z", out_dir=str(tmp_path / "out"), record=False, comparison=False))
    z = zip_bundle(path)
    inp = tmp_path / "in.csv"
    inp.write_text("title\nOil prices rise\n")
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    repo = str(Path(__file__).resolve().parent.parent)
    r = subprocess.run([sys.executable, "-m", "workbench.cli", "predict", "--bundle", str(z), "--input", str(inp),
                        "--out", str(tmp_path / "p.csv")],
                       env={**os.environ, "TMPDIR": str(tmpdir), "PYTHONPATH": repo}, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "p.csv").exists()
    assert not list(tmpdir.glob("wb-bundle-*"))


def test_zip_of_a_bundle_with_lm_eval_output_loads(tmp_path):
    """lm_eval_out/ (where the card's lm_eval command writes) is allowed in a folder but not
    listed in the manifest: zip_bundle leaves it out, so the zip passes unzip's checks."""
    from workbench.jobs.export import load_bundle, zip_bundle

    root = make_bundle(tmp_path)
    (root / "lm_eval_out").mkdir()
    (root / "lm_eval_out" / "results.json").write_text("{}")
    z = zip_bundle(root)
    with load_bundle(z, session=FakeSession(STAND_IN)) as b:
        assert not (b.path / "lm_eval_out").exists()
