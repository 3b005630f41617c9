"""`workbench search`: search template φ, verbalizer, instruction, demonstrations and calibration
from a start template on train + dev, then score the winner once on held-out test.

    workbench search --data bbc --template start.yaml --budget-tokens 300000 --budget-seconds 600
    workbench search --data bbc --template start.yaml --axes verbalizer,calibration --test-limit 200
    workbench search --data bbc --resume 20261130-140102-ab12cd        # continue a cancelled search
    workbench search --data tests/data/support_questions.jsonl --template templates_library/support_reply_plain.yaml \
        --axes instruction,demos --metric chrf --racing sequential --alpha 0.05   # a generation template

Ctrl-C stops the search; its state is in the run registry, and --resume RUN_ID continues it
without scoring anything twice. The winner is saved as a user template (metadata.search holds
the settings and the run id); `--out` writes the whole report (leaderboard, history) as JSON.

The flags of the search settings are SearchConfig's fields (core/config.py), so the command a
search records (RunSpec.command()) is this verb's own; lists take spaces or commas (`--shots 0 2 4`
or `--shots 0,2,4`), and a budget of 0 means no limit.
"""
from __future__ import annotations

import argparse
import sys

from workbench.commands.common import (add_config_args, add_data_args, add_model_args, config_overrides,
                                       dataset_from_args, model_refs)


def register(sub) -> None:
    from workbench.core.config import METHODS, SearchConfig

    p = sub.add_parser("search", help="search a better prompt on train+dev; verdict once on test",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    add_data_args(p)
    p.add_argument("--template", default=None, help="the start template YAML (not needed with --resume)")
    add_config_args(p, SearchConfig, title="search settings",
                    aliases={"n_verbalizers": ["--verbalizers"], "n_formats": ["--formats"]})
    g = p.add_argument_group("scoring (the start's demonstrations come from its template)")
    g.add_argument("--method", default=None, choices=list(METHODS))
    g.add_argument("--split-seed", type=int, default=None)
    g.add_argument("--dev-fraction", type=float, default=None)
    g.add_argument("--test-fraction", type=float, default=None)
    g.add_argument("--max-new-tokens", type=int, default=None, help="generation: override the template's limit")
    p.add_argument("--no-test", dest="evaluate_test", action="store_false", default=None,
                   help="do not touch the test split (no verdict); = --no-evaluate-test")
    p.add_argument("--no-save", dest="save_winner", action="store_false", default=None,
                   help="do not save the winner as a user template; = --no-save-winner")
    p.add_argument("--resume", default=None, metavar="RUN_ID", help="continue a stopped search")
    p.add_argument("--name", default=None, help="name of the run in the registry")
    p.add_argument("--out", default=None, help="write the report (leaderboard, history, verdict) as JSON")
    p.set_defaults(func=run)


def search_settings(args) -> dict:
    """The SearchConfig fields given on the command line: comma lists split, list[int] fields as
    integers, a budget of 0 = no limit (as the Search tab's 0)."""
    from dataclasses import fields

    from workbench.core.config import SearchConfig
    from workbench.errors import ConfigError

    over = config_overrides(args, SearchConfig)
    for f in fields(SearchConfig):
        v = over.get(f.name)
        if isinstance(v, list):
            items = [x.strip() for s in v for x in str(s).split(",") if x.strip()]
            if str(f.type).startswith("list[int]"):
                try:
                    items = [int(x) for x in items]
                except ValueError as e:
                    raise ConfigError(f"--{f.name.replace('_', '-')}: expected integers, got {v!r}",
                                      "e.g. 0,2,4") from e
            over[f.name] = items
    for k in ("budget_tokens", "budget_seconds"):
        if over.get(k) == 0:
            over[k] = None      # (given and None: no limit; not given: the default budget)
    return over


def spec_from_args(args):
    """The RunSpec of `workbench search ...` (the same one the Search tab and Python build)."""
    from workbench.core.spec import build_spec
    from workbench.errors import ConfigError

    if not args.template and not args.resume:
        raise ConfigError("give the start template (--template T.yaml) or a search to resume (--resume RUN_ID)",
                          "e.g. --template templates_library/bbc_headline_topic.yaml")
    from workbench.core.spec import resolve_search

    settings = resolve_search(search_settings(args))     # bad settings are refused before any loading
    template = args.template
    if args.resume:
        from workbench.core.templates import PromptTemplate
        from workbench.jobs.search import open_search

        # a resumed search goes on from its stored start (the stored settings hold, but the budgets)
        template = PromptTemplate.from_yaml(open_search(args.resume).payload["start"]["yaml"])
    ev = {k: getattr(args, k) for k in ("method", "split_seed", "dev_fraction", "test_fraction", "max_new_tokens")}
    return build_spec("search", templates=[template], data=dataset_from_args(args), model=model_refs(args)[0],
                      eval=ev, search=settings,
                      options={"resume": args.resume, "name": args.name, "out": args.out})


def run(args) -> int:
    from workbench.commands.common import session_for
    from workbench.jobs.runner import execute
    from workbench.storage.runs import RunRegistry

    spec = spec_from_args(args)
    session = session_for(spec.model)
    last = {"msg": ""}

    def progress(done, total, message=""):
        if message != last["msg"]:
            last["msg"] = message
            print(f"[{done:,}/{total:,}] {message}", file=sys.stderr, flush=True)

    try:
        res = execute(spec, session, progress=progress).result
    except KeyboardInterrupt:
        runs = RunRegistry().list(kind="search", limit=1)
        if runs:
            print(f"\nstopped; resume with: workbench search --data {args.data} --resume {runs[0].id}", file=sys.stderr)
        raise
    print(res.summary())
    print(f"\nrun {res.run_id}" + (f"  → {args.out}" if args.out else ""), file=sys.stderr)
    return 0
