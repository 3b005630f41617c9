"""Where the workbench keeps its files: `$WORKBENCH_HOME`, default `~/.cache/prompt-workbench`.

    models/        converted model caches (safetensors)
    runs.sqlite    the run registry
    templates/     the user's own templates
    train/         training runs (logs, checkpoints, adapters)
    exports/       bundles
"""
from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    p = Path(os.environ.get("WORKBENCH_HOME") or Path.home() / ".cache" / "prompt-workbench")
    p.mkdir(parents=True, exist_ok=True)
    return p


def _sub(name: str) -> Path:
    p = home() / name
    p.mkdir(parents=True, exist_ok=True)
    return p


def cache_home() -> Path:
    """Big, rebuildable caches (converted models, BIG-bench files). Defaults to `home()`;
    tests point `WORKBENCH_CACHE` at the real cache while `WORKBENCH_HOME` is a temp folder,
    so each test gets a fresh registry without converting the model again."""
    p = Path(os.environ.get("WORKBENCH_CACHE") or home())
    p.mkdir(parents=True, exist_ok=True)
    return p


def models_dir() -> Path:
    p = cache_home() / "models"
    p.mkdir(parents=True, exist_ok=True)
    return p


def user_templates_dir() -> Path:
    return _sub("templates")


def train_dir() -> Path:
    return _sub("train")


def exports_dir() -> Path:
    return _sub("exports")


def runs_db() -> Path:
    return home() / "runs.sqlite"


def repo_root() -> Path:
    """The source checkout (for `templates_library/`), when running from one."""
    return Path(__file__).resolve().parent.parent


def library_dir() -> Path:
    return repo_root() / "templates_library"
