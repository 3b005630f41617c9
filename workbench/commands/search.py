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
"""
from __future__ import annotations

import argparse
import sys

from workbench.commands.common import add_data_args, add_model_args, dataset_from_args, session_from_args


def _ints(s: str) -> list[int]:
    from workbench.errors import ConfigError

    try:
        return [int(x) for x in s.split(",") if x.strip()]
    except ValueError as e:
        raise ConfigError(f"expected comma-separated integers, got {s!r}", "e.g. 0,2,4") from e


def _words(s: str) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()]


def register(sub) -> None:
    p = sub.add_parser("search", help="search a better prompt on train+dev; verdict once on test",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    add_data_args(p)
    p.add_argument("--template", default=None, help="the start template YAML (not needed with --resume)")
    p.add_argument("--axes", default="verbalizer,format,instruction,demos,calibration",
                   help="axes to search, comma-separated (default: all five)")
    p.add_argument("--budget-tokens", type=int, default=300_000, help="model-token budget (0 = no limit)")
    p.add_argument("--budget-seconds", type=float, default=600, help="wall-time budget in seconds (0 = no limit)")
    p.add_argument("--first-rows", type=int, default=16, help="dev rows in the first racing rung")
    p.add_argument("--eta", type=float, default=2.0, help="growth of the dev slice per rung")
    p.add_argument("--keep", type=float, default=0.5, help="share of candidates kept per rung")
    p.add_argument("--max-dev-rows", type=int, default=None, help="use at most this many dev rows")
    p.add_argument("--verbalizers", type=int, default=6, help="label-word combinations raced")
    p.add_argument("--formats", type=int, default=6, help="FormatSpread variants raced")
    p.add_argument("--propose-instructions", type=int, default=0, metavar="N",
                   help="also race N instructions the model proposes from training demos (APE-style)")
    p.add_argument("--shots", default="0,2,4", help="demonstration counts tried")
    p.add_argument("--demo-seeds", default="0,1", help="seeds of the random demonstration sets")
    p.add_argument("--selections", default="random,similar", help="random and/or similar (sentence embeddings)")
    p.add_argument("--calibrations", default="none,contextual,pmi")
    p.add_argument("--method", default="acc", choices=["acc", "acc_norm", "acc_bytes"])
    p.add_argument("--metric", default=None,
                   help="generation templates: the reference metric searched on (default: the template's first "
                        "`metrics:` entry), e.g. chrf, rougeL, exact_match; classification searches accuracy")
    p.add_argument("--racing", default="halving", choices=["halving", "sequential"],
                   help="halving: keep a fixed share per rung; sequential: drop a candidate once settled worse "
                        "(anytime-valid confidence sequence at --alpha)")
    p.add_argument("--alpha", type=float, default=0.05, help="sequential racing: error rate of the drops")
    p.add_argument("--max-new-tokens", type=int, default=None, help="generation: override the template's limit")
    p.add_argument("--seed", type=int, default=0, help="seed of dev order, label-word rows and format draws")
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--test-limit", type=int, default=None, help="score only the first N test rows at the end")
    p.add_argument("--no-test", action="store_true", help="do not touch the test split (no verdict)")
    p.add_argument("--winner-name", default=None, help="name of the saved winner template")
    p.add_argument("--no-save", action="store_true", help="do not save the winner as a user template")
    p.add_argument("--resume", default=None, metavar="RUN_ID", help="continue a stopped search")
    p.add_argument("--name", default=None, help="name of the run in the registry")
    p.add_argument("--out", default=None, help="write the report (leaderboard, history, verdict) as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from workbench.core.templates import load_template
    from workbench.errors import ConfigError
    from workbench.jobs.inference import EvalConfig
    from workbench.jobs.search import SearchConfig, search
    from workbench.storage.runs import RunRegistry

    if not args.template and not args.resume:
        raise ConfigError("give the start template (--template T.yaml) or a search to resume (--resume RUN_ID)",
                          "e.g. --template templates_library/bbc_headline_topic.yaml")
    cfg = SearchConfig(axes=_words(args.axes), budget_tokens=args.budget_tokens or None,
                       budget_seconds=args.budget_seconds or None, first_rows=args.first_rows, eta=args.eta,
                       keep=args.keep, max_dev_rows=args.max_dev_rows, n_verbalizers=args.verbalizers,
                       n_formats=args.formats, propose_instructions=args.propose_instructions,
                       shots=_ints(args.shots), demo_seeds=_ints(args.demo_seeds), selections=_words(args.selections),
                       calibrations=_words(args.calibrations), seed=args.seed, evaluate_test=not args.no_test,
                       test_limit=args.test_limit, save_winner=not args.no_save, winner_name=args.winner_name,
                       metric=args.metric, racing=args.racing, alpha=args.alpha)
    cfg.validate()
    start = load_template(args.template) if args.template else None
    ev = None
    if start is not None:
        fs = start.fewshot
        ev = EvalConfig(shots=fs.k, per_class=fs.per_class, balanced=fs.balanced, sampling=fs.sampling, seed=fs.seed,
                        method=args.method, split_seed=args.split_seed, max_new_tokens=args.max_new_tokens)
    dataset = dataset_from_args(args)
    session = session_from_args(args)
    reg = RunRegistry()
    last = {"msg": ""}

    def progress(done, total, message=""):
        if message != last["msg"]:
            last["msg"] = message
            print(f"[{done:,}/{total:,}] {message}", file=sys.stderr, flush=True)

    try:
        res = search(start, dataset, session, cfg, ev, registry=reg, resume=args.resume, name=args.name,
                     progress=progress)
    except KeyboardInterrupt:
        runs = reg.list(kind="search", limit=1)
        if runs:
            print(f"\nstopped; resume with: workbench search --data {args.data} --resume {runs[0].id}", file=sys.stderr)
        raise
    print(res.summary())
    if args.out:
        res.save(args.out)
    print(f"\nrun {res.run_id}" + (f"  → {args.out}" if args.out else ""), file=sys.stderr)
    return 0
