"""What the workbench refuses in an lm-eval task config, decided from the config alone, so the
refusal comes when the task is resolved, before its data or a model loads.

    why = refusal(cfg, trusted=True)     # None, or (reason, what would make it work)

Each reason starts with a short fixed phrase (REASONS) so that docs/TEMPLATES.md can count
them over the installed library (tests/test_lmeval_library.py).
"""
from __future__ import annotations

from collections.abc import Mapping

from workbench.core.lmeval_filters import filter_problem
from workbench.core.lmeval_scoring import metric_problems
from workbench.core.lmeval_yaml import FunctionRef

RUN_WITH_LM_EVAL = "run it with lm_eval itself"
REASONS = ("multimodal input", "promptsource prompt", "few-shot sampler", "filter", "metric")


def refusal(cfg: Mapping, *, trusted: bool) -> tuple[str, str] | None:
    out_type = cfg.get("output_type", "generate_until")
    for key in ("doc_to_image", "doc_to_audio"):
        if cfg.get(key) is not None:
            return (f"multimodal input ({key}) is not supported", "the workbench scores text-only models; " + RUN_WITH_LM_EVAL)
    if cfg.get("use_prompt") is not None:
        return (f"promptsource prompt (use_prompt: {cfg['use_prompt']}) is not supported",
                "write the prompt as doc_to_text / doc_to_target, or " + RUN_WITH_LM_EVAL)
    fc = cfg.get("fewshot_config") if isinstance(cfg.get("fewshot_config"), Mapping) else {}
    sampler = fc.get("sampler", "default")
    if not isinstance(sampler, FunctionRef) and sampler not in ("default", "first_n", None):
        return (f"few-shot sampler {sampler!r} is not supported", "lm-eval's samplers here: default, first_n")
    if isinstance(sampler, FunctionRef):
        return ("few-shot sampler from task code is not supported", "use sampler: default or first_n")
    for pipe in cfg.get("filter_list") or []:
        if not isinstance(pipe, Mapping):
            return ("filter_list entry is not a mapping", "write `- name: ...` with `filter: [...]`")
        for step in pipe.get("filter") or []:
            fn = step.get("function") if isinstance(step, Mapping) else None
            if isinstance(fn, FunctionRef):
                continue      # task code: the trust check names it
            why = filter_problem(fn, trusted=True)
            if why:
                return (f"filter pipeline {pipe.get('name')!r}: {why}", "use lm-eval's shipped filters, or " + RUN_WITH_LM_EVAL)
    probs = metric_problems(cfg, out_type, has_process_results=cfg.get("process_results") is not None)
    if probs:
        return (f"metric: {probs[0]}", "use lm-eval's built-in metrics (or a process_results function), or "
                + RUN_WITH_LM_EVAL)
    return None
