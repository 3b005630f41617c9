"""Arguments and helpers shared by several subcommands."""
from __future__ import annotations

import argparse
from dataclasses import MISSING, fields


def _parse_opt(kind):
    def parse(text: str):
        return None if text.lower() in ("none", "") else kind(text)
    parse.__name__ = kind.__name__
    return parse


def add_config_args(p: argparse.ArgumentParser, cls, *, title: str, skip=(), aliases=None) -> None:
    """One flag per field of the config dataclass `cls` (`--per-class/--no-per-class` for booleans,
    several values for lists), default None = "not given": `workbench.core.spec.build_spec` then
    applies the template's default or the dataclass's. A field added to the dataclass becomes a
    flag here, in RunSpec.command() and (through build_spec) in every door."""
    aliases = aliases or {}
    g = p.add_argument_group(title)
    for f in fields(cls):
        if f.name in skip:
            continue
        flags = [f"--{f.name.replace('_', '-')}"] + aliases.get(f.name, [])
        default = f.default if f.default is not MISSING else (f.default_factory() if f.default_factory is not MISSING else None)
        helptext = f"{f.metadata.get('help', '')} (default: {default})".replace("%", "%%")
        ann = str(f.type)
        if isinstance(default, bool):
            g.add_argument(*flags, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=helptext)
        elif ann.startswith("list"):
            g.add_argument(*flags, dest=f.name, nargs="*", default=None, help=helptext)
        else:
            kind = int if ann.startswith("int") else float if ann.startswith("float") else str
            g.add_argument(*flags, dest=f.name, type=_parse_opt(kind) if "None" in ann else kind, default=None,
                           help=helptext)


def config_overrides(args, cls, skip=()) -> dict:
    """The fields of `cls` the user gave on the command line (unset flags are left out)."""
    return {f.name: getattr(args, f.name) for f in fields(cls)
            if f.name not in skip and getattr(args, f.name, None) is not None}


def add_model_args(p: argparse.ArgumentParser, multi: bool = False) -> None:
    g = p.add_argument_group("model")
    help_ = ("'default' (SmolLM2-135M-Instruct), a hub id, a folder, a .gguf, or an inference server: "
             "openai:http://HOST:PORT/v1[#SERVED-NAME] (docs/SERVING.md)")
    if multi:
        g.add_argument("--model", action="append", default=None, help=help_ + "; repeat to compare models")
    else:
        g.add_argument("--model", default="default", help=help_)
    g.add_argument("--device", default=None, help="cuda | mps | cpu (default: auto)")
    g.add_argument("--dtype", default=None, help="float32 | bfloat16 | float16 (default: bf16 on GPU, fp32 on CPU)")
    g.add_argument("--adapter", default=None, help="a peft adapter folder to attach")
    g.add_argument("--trust-remote-code", action="store_true", help="allow model code from the hub (off by default)")
    g.add_argument("--no-native", dest="native", action="store_false",
                   help="always score through transformers, never the built-in Llama decoder "
                        "(which is used only after it was verified against transformers for this model)")
    from workbench.core.spec import ENGINE_DEFAULTS

    r = p.add_argument_group("inference server (--model openai:URL)")
    r.add_argument("--tokenizer", default=None,
                   help="the served model's tokenizer: 'default', a folder or a hub id (default: the served name)")
    r.add_argument("--concurrency", type=int, default=None,
                   help=f"requests in flight at once (default {ENGINE_DEFAULTS['concurrency']})")
    r.add_argument("--request-timeout", type=float, default=None,
                   help=f"seconds one request may take (default {ENGINE_DEFAULTS['request_timeout']})")
    r.add_argument("--max-retries", type=int, default=None,
                   help=f"retries on 429, 5xx, timeouts, dropped connections (default {ENGINE_DEFAULTS['max_retries']})")
    r.add_argument("--no-response-cache", dest="response_cache", action="store_false", default=None,
                   help="always ask the server (by default identical requests are answered from a local cache)")


def add_data_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--data", required=required,
                   help="bbc | intent | strategyqa | bigbench:TASK[/SUB] | a CSV/TSV/JSONL/JSON/Parquet file | a datasets folder")
    g.add_argument("--text-column", default=None)
    g.add_argument("--label-column", default=None)


def model_refs(args) -> list:
    """The ModelRef of each --model (a comparison may name several)."""
    from workbench.core.spec import ENGINE_DEFAULTS, ModelRef

    names = args.model if isinstance(args.model, list) else [args.model]
    engine = {k: getattr(args, k) for k in ENGINE_DEFAULTS if getattr(args, k, None) is not None}
    from workbench.storage.engines import resolve

    # a saved engine's name (storage/engines.py) becomes its URL and settings; flags given here win
    return [resolve(ModelRef(model=(n or "").strip() or "default", adapter=getattr(args, "adapter", None),
                             dtype=getattr(args, "dtype", None), device=getattr(args, "device", None),
                             native=getattr(args, "native", True),
                             trust_remote_code=getattr(args, "trust_remote_code", False),
                             tokenizer=getattr(args, "tokenizer", None), engine=engine))
            for n in (names or ["default"])]


def check_out_path(out: str | None, flag: str = "--out") -> None:
    """Refuse an output path whose folder cannot be created or written, before any work is done
    (a run must not score everything and then fail to save)."""
    import os
    from pathlib import Path

    from workbench.errors import ConfigError

    if not out:
        return
    target = Path(out).expanduser().absolute()
    folder = target.parent
    probe = folder
    while not probe.exists():   # the nearest folder that exists must be a writable folder
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"{flag} {out}: cannot be created, because {probe} is a file, not a folder",
                          hint=f"choose another {flag} path")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {out}: cannot write into {probe} (permission denied)",
                          hint=f"choose a {flag} path in a folder you can write to")
    import shutil

    free = shutil.disk_usage(probe).free
    if free < MIN_FREE_BYTES:   # a full disk is found before the work, not after it
        raise ConfigError(f"{flag} {out}: the disk holding {probe} has {free / (1 << 20):.1f} MB free "
                          f"(at least {MIN_FREE_BYTES >> 20} MB needed for results)",
                          hint=f"free some space, or choose a {flag} path on another disk")


MIN_FREE_BYTES = 16 << 20


def session_for(ref, *, keep_others: bool = False):
    """The session of a spec's ModelRef, its adapter applied (jobs.runner.open_session)."""
    from workbench.jobs.runner import open_session

    return open_session(ref, keep_others=keep_others)


def session_from_args(args):
    return session_for(model_refs(args)[0])


def dataset_from_args(args):
    from workbench.storage.data_load import load_dataset

    return load_dataset(args.data, text_column=args.text_column, label_column=args.label_column)


def add_judge_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model judge (generation templates; docs/JUDGE.md)")
    g.add_argument("--judge", default=None, metavar="J.yaml",
                   help="a judge template (e.g. templates_library/judges/helpfulness_yesno.yaml): scores every output")
    g.add_argument("--judge-model", default=None, metavar="M",
                   help="the judge model: a name, folder, .gguf or openai:URL (default: the evaluated model)")
    g.add_argument("--judge-labels", default=None, metavar="COLUMN",
                   help="a column of people's ratings: report the judge's agreement with them")


def judge_kwargs(args) -> dict:
    """build_spec's judge arguments from the command line."""
    from workbench.errors import ConfigError

    if not getattr(args, "judge", None):
        for flag in ("judge_model", "judge_labels"):
            if getattr(args, flag, None):
                raise ConfigError(f"--{flag.replace('_', '-')} needs --judge", "add --judge J.yaml")
        return {}
    model = None
    if args.judge_model and args.judge_model.strip():
        from workbench.core.spec import ModelRef
        from workbench.storage.engines import resolve

        # a saved server's name becomes its URL and tokenizer; a raw openai: URL takes --tokenizer
        name = args.judge_model.strip()
        model = resolve(ModelRef(model=name, tokenizer=getattr(args, "tokenizer", None)
                                 if name.startswith("openai:") else None))
        if model.model == getattr(args, "model", None) or (isinstance(args.model, list) and [model.model] == args.model):
            model = None   # the evaluated model judges: the same session
    return {"judge": args.judge, "judge_model": model, "judge_labels": args.judge_labels}
