"""Prompt Workbench: design, score, compare and LoRA-tune prompts for Hugging Face LMs.

The Python API re-exports the same core functions the UI and CLI use. Imports are lazy so
`import workbench` stays cheap (torch and transformers load on first use).

    from workbench import build_spec, execute, get_session
    spec = build_spec("eval", templates=["templates_library/bbc_headline_topic.yaml"], data="bbc",
                      eval={"shots": 4, "limit": 200})
    print(spec.command())                          # the same job as a `workbench eval` command
    result = execute(spec, get_session("default")).result
"""
from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "PromptTemplate": "workbench.core.templates",
    "load_template": "workbench.core.templates",
    "load_dataset": "workbench.storage.data_load",
    "split_dataset": "workbench.core.data",
    "ModelSession": "workbench.engine.session",
    "get_session": "workbench.engine.session",
    "EvalConfig": "workbench.jobs.inference",
    "evaluate": "workbench.jobs.inference",
    "load_bundle": "workbench.jobs.export",
    "RunSpec": "workbench.core.spec",
    "build_spec": "workbench.jobs.runner",   # core.spec.build_spec, data also by name
    "execute": "workbench.jobs.runner",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")
