"""The checks `build_spec` (core/spec.py) applies to a job's choices, whichever door built them: the model
list of any job, a sensitivity study's options, a sequential comparison's stopping rule. Pure."""
from __future__ import annotations

import dataclasses
from typing import Sequence

from workbench.core.config import EvalConfig
from workbench.core.options import SEEDS, SPREAD, CompareOptions, StudyOptions
from workbench.errors import ConfigError


def check_models(refs: Sequence) -> None:
    """The model list of any job, whichever door built it: each model once, and a local adapter only where
    every model can take it (an inference server serves its own weights)."""
    names = [r.model for r in refs]
    dup = next((m for m in names if names.count(m) > 1), None)
    if dup:
        raise ConfigError(f"Model '{dup}' is listed twice (the first model is always the first column).",
                          hint="List each model once.")
    adapter = next((r.adapter for r in refs if r.adapter), None)
    server = next((r.model for r in refs if r.remote), None)
    if adapter and server:
        raise ConfigError(f"The adapter {adapter} would be attached to every model of the comparison, and the "
                          f"inference server {server} cannot take a local adapter.",
                          hint="Drop the adapter (or detach it in the model bar), or serve it on the server "
                               "(docs/SERVING.md) and list that served name.")


def study_options(kind: str, opts: StudyOptions, trefs, mrefs, cfg: EvalConfig) -> StudyOptions:
    """A sensitivity study's options, checked: one template on one model; the seeds (as the command
    writes them, "0,1,2") of a seed variance, the variant count of a format spread (its seed is the
    demo seed). The defaults are written in, so the study's spec and command name them."""
    what = "--seeds" if kind == "seed_variance" else "--spread"
    if len(trefs) != 1:
        raise ConfigError(f"{what} studies one template; got {len(trefs)}.", hint="Pass exactly one template.")
    if len(mrefs) != 1:
        raise ConfigError(f"{what} studies one model; got {len(mrefs)}.", hint="Pick one model.")
    if kind == "seed_variance":
        raw = opts.seeds if opts.seeds is not None else SEEDS
        try:
            seeds = [int(x) for x in (raw.replace(" ", "").split(",") if isinstance(raw, str) else raw) if str(x) != ""]
        except ValueError:
            raise ConfigError(f"Seeds must be comma-separated integers, got {raw!r}.", hint="e.g. 0,1,2,3,4") from None
        if len(seeds) < 2 or len(set(seeds)) != len(seeds):
            raise ConfigError(f"Seed variance needs at least two distinct seeds, got {seeds}.", hint="e.g. 0,1,2,3,4")
        if cfg.shots <= 0:
            raise ConfigError("Seed variance needs few-shot demonstrations: with shots=0 every seed gives the same "
                              "prompts.", hint="Set shots to 1 or more.")
        return dataclasses.replace(opts, seeds=",".join(map(str, seeds)))
    n = int(opts.spread if opts.spread is not None else SPREAD)
    if n < 1:
        raise ConfigError(f"A format spread needs at least one variant, got {n}.", hint="e.g. --spread 8")
    return dataclasses.replace(opts, spread=n)


def sequential_options(opts: CompareOptions) -> CompareOptions:
    """A sequential comparison's stopping rule, checked, with the defaults left out (so the command
    and the spec hash are the same whichever door set them)."""
    from workbench.core.sequential import SEQUENTIAL_KEYS, SequentialOptions

    rule = SequentialOptions.from_options(opts)       # validates
    default = SequentialOptions()
    kept = {k: (v if v != getattr(default, k) else None) for k in SEQUENTIAL_KEYS for v in [getattr(rule, k)]}
    return dataclasses.replace(opts, sequential=True, **kept)
