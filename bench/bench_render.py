"""Cost of the render budget: prompts built with the budgeted sandbox against Jinja's plain
`SandboxedEnvironment`, same templates, same rows, side by side in one process.

    python bench/bench_render.py              # every library template on its dataset, 300 rows
    python bench/bench_render.py --rows 1000

Prints the time per prompt for both environments and their ratio, and exits non-zero if any
prompt differs (the budget must never change a legitimate template's output).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time


def main() -> int:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    from workbench.core import render
    from workbench.storage.data_load import load_dataset
    from workbench.core.templates import list_library, load_template, with_row

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    plain = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
    plain.filters["regex_replace"] = render._regex_replace_filter
    budget = render.sandbox()
    ratios, differ = [], 0
    print(f"{'template':<34} {'rows':>5} {'plain µs':>9} {'budget µs':>10} {'ratio':>6}")
    for entry in list_library():
        if entry.get("error") or not entry.get("dataset"):
            continue
        try:
            ds = load_dataset(entry["dataset"], limit=args.rows)
        except Exception:  # noqa: BLE001 - a built-in that is not installed here is skipped
            continue
        t = load_template(entry["path"])
        rows = [with_row(r) for r in ds.df.to_dict("records")]
        srcs = [src for _, src, _ in t._field_sources() if src and "{" in src and _ != "choices_expr"]
        if not srcs:
            continue
        compiled_p = [plain.from_string(s) for s in srcs]
        compiled_b = [budget.from_string(s) for s in srcs]
        times = {}
        outs = {}
        for name, comp in (("plain", compiled_p), ("budget", compiled_b)):
            best = float("inf")
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                out = []
                for r in rows:
                    for c in comp:
                        try:
                            out.append(c.render(**r))
                        except Exception as e:  # noqa: BLE001 - the same error in both counts as equal
                            out.append(type(e).__name__)
                best = min(best, time.perf_counter() - t0)
            times[name], outs[name] = best, out
        if outs["plain"] != outs["budget"]:
            differ += 1
            print(f"  outputs differ for {entry['name']}", file=sys.stderr)
        n = len(rows) * len(srcs)
        ratio = times["budget"] / times["plain"]
        ratios.append(ratio)
        print(f"{entry['name']:<34} {len(rows):>5} {1e6 * times['plain'] / n:>9.1f} {1e6 * times['budget'] / n:>10.1f} {ratio:>6.2f}")
    if ratios:
        print(f"median ratio budget/plain: {statistics.median(ratios):.2f} over {len(ratios)} templates")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
