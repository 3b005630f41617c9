"""The `workbench` command line. Each subcommand lives in `workbench/commands/NAME.py` with a
`register(subparsers)` that adds its parser and sets `func`; the logic stays in the core modules.

    workbench eval --model default --data bbc --template templates_library/bbc_headline_topic.yaml --limit 200
    workbench models [path NAME]
    workbench serve [--host 127.0.0.1 --port 7860]
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

# Order is the order shown in --help.
COMMANDS = ["eval", "compare", "search", "templates", "data", "models", "train", "export", "predict", "import", "runs", "serve"]
# Subcommands whose module name differs (`import` is a Python keyword).
MODULES = {"import": "import_"}


def build_parser() -> argparse.ArgumentParser:
    from workbench import __version__

    p = argparse.ArgumentParser(prog="workbench", description="Prompt Workbench: design, score, compare and "
                                "LoRA-tune prompts for Hugging Face language models.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="show library logs and full tracebacks")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"workbench.commands.{MODULES.get(name, name)}").register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from workbench.errors import Cancelled, WorkbenchError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if not args.verbose:
        # transformers/hub chatter hides the progress bar and the table users came for
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
        logging.basicConfig(level=logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except WorkbenchError as exc:
        if args.verbose:
            raise
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 1
    except Cancelled:
        print("cancelled", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
