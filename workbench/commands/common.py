"""Arguments and helpers shared by several subcommands."""
from __future__ import annotations

import argparse
import sys


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
    r = p.add_argument_group("inference server (--model openai:URL)")
    r.add_argument("--tokenizer", default=None,
                   help="the served model's tokenizer: 'default', a folder or a hub id (default: the served name)")
    r.add_argument("--concurrency", type=int, default=8, help="requests in flight at once (default 8)")
    r.add_argument("--request-timeout", type=float, default=300.0, help="seconds one request may take")
    r.add_argument("--max-retries", type=int, default=5, help="retries on 429, 5xx, timeouts, dropped connections")
    r.add_argument("--no-response-cache", dest="response_cache", action="store_false",
                   help="always ask the server (by default identical requests are answered from a local cache)")


def add_data_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--data", required=required,
                   help="bbc | intent | strategyqa | bigbench:TASK[/SUB] | a CSV/TSV/JSONL/JSON/Parquet file | a datasets folder")
    g.add_argument("--text-column", default=None)
    g.add_argument("--label-column", default=None)


def session_from_args(args):
    return session_for(args, args.model)


def remote_kwargs(args, model: str) -> dict:
    """The inference-server settings, for a remote model only (local sessions keep their key)."""
    from workbench.engine.remote import is_remote

    if not is_remote(model):
        return {}
    return {"tokenizer": getattr(args, "tokenizer", None), "concurrency": getattr(args, "concurrency", 8),
            "request_timeout": getattr(args, "request_timeout", 300.0), "max_retries": getattr(args, "max_retries", 5),
            "response_cache": getattr(args, "response_cache", True)}


def session_for(args, model: str, *, keep_others: bool = False):
    from workbench.engine.session import get_session

    kw = {} if getattr(args, "native", True) else {"native": False}
    kw.update(remote_kwargs(args, model))
    s = get_session(model, device=args.device, dtype=args.dtype, trust_remote_code=args.trust_remote_code,
                    keep_others=keep_others, **kw)
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
