"""Model resolution: the default GGUF → safetensors cache, local folders, and clear errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.errors import ModelError
from workbench.engine.models import list_cached, resolve_model


def test_default_resolves_to_converted_cache():
    r = resolve_model("default")
    p = Path(r.path)
    assert (p / "config.json").exists() and (p / "model.safetensors").exists()
    assert (p / "workbench_model.json").exists()
    cfg = json.loads((p / "config.json").read_text())
    assert "quantization_config" not in cfg        # the GGUF quantizer marker was cleared
    assert r.identity.startswith("HuggingFaceTB/SmolLM2-135M-Instruct@gguf:")
    assert any(row["path"] == r.path for row in list_cached())


def test_local_folder_is_used_as_is():
    r = resolve_model("default")
    again = resolve_model(r.path)
    assert again.source == "local" and again.path == r.path


def test_folder_without_config_is_rejected(tmp_path):
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model(str(tmp_path))


def test_offline_hub_id_says_how_to_pass_a_local_path(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError) as exc:
        resolve_model("someone/not-a-cached-model")
    assert "offline" in str(exc.value).lower() or "could not fetch" in str(exc.value).lower()
    assert "--model" in exc.value.hint


def test_unknown_name_is_rejected():
    with pytest.raises(ModelError, match="Unknown model"):
        resolve_model("not a model")


def test_cli_models_path_prints_loadable_folder(capsys):
    from workbench.cli import main

    assert main(["models", "path", "default"]) == 0
    out = capsys.readouterr().out.strip()
    assert Path(out, "config.json").exists()
