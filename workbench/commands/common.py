"""Arguments and helpers shared by several subcommands."""
from __future__ import annotations

import argparse
import sys


def add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", default="default", help="'default' (SmolLM2-135M-Instruct), a hub id, a folder or a .gguf")
    g.add_argument("--device", default=None, help="cuda | mps | cpu (default: auto)")
    g.add_argument("--dtype", default=None, help="float32 | bfloat16 | float16 (default: bf16 on GPU, fp32 on CPU)")
    g.add_argument("--adapter", default=None, help="a peft adapter folder to attach")
    g.add_argument("--trust-remote-code", action="store_true", help="allow model code from the hub (off by default)")
    g.add_argument("--no-native", dest="native", action="store_false",
                   help="always score through transformers, never the built-in Llama decoder "
                        "(which is used only after it was verified against transformers for this model)")


def add_data_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--data", required=required,
                   help="bbc | intent | strategyqa | bigbench:TASK[/SUB] | a CSV/TSV/JSONL/JSON/Parquet file | a datasets folder")
    g.add_argument("--text-column", default=None)
    g.add_argument("--label-column", default=None)


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


def session_from_args(args):
    from workbench.engine.session import get_session

    kw = {} if getattr(args, "native", True) else {"native": False}
    s = get_session(args.model, device=args.device, dtype=args.dtype, trust_remote_code=args.trust_remote_code, **kw)
    if getattr(args, "adapter", None):
        s.attach_adapter(args.adapter)
    return s


def dataset_from_args(args):
    from workbench.core.data import load_dataset

    return load_dataset(args.data, text_column=args.text_column, label_column=args.label_column)


class TqdmProgress:
    """A (done, total) callback drawing a tqdm bar on stderr."""

    def __init__(self, desc: str):
        self.desc = desc
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total, desc=self.desc, unit="req", file=sys.stderr, dynamic_ncols=True)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
