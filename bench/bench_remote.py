"""Remote scoring vs local scoring on the same model and rows: requests/s at 1, 4 and 16 in flight.

    python bench/bench_remote.py [--limit 40] [--inflight 1,4,16] [--server-threads 1] [--out bench_remote.json]

The remote side is the protocol reference server (tests/reference_server.py: transformers, fp32,
one forward pass at a time), started on a free loopback port; it stands in for vLLM, which needs
a GPU. Every run scores the same (context, continuation) requests of bbc_headline_topic on the
first --limit test rows, with the response cache off, and checks the log-probs against local
scoring. What the numbers say: the client's cost (HTTP, JSON, concurrency) next to the model's;
they do not measure a GPU engine's throughput (vLLM batches requests in flight continuously;
the reference server runs them one by one).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=40)
    ap.add_argument("--inflight", default="1,4,16")
    ap.add_argument("--server-threads", type=int, default=1)
    ap.add_argument("--prompts-per-request", type=int, default=1,
                    help="prompts in one request (1 = one request per scored sequence)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()

    from remote_servers import ServerProcess

    from workbench.storage.data_load import load_dataset
    from workbench.core.templates import load_template
    from workbench.engine.session import ModelSession
    from workbench.jobs.inference import EvalConfig, build_prompts, eval_rows

    tpl = load_template(str(ROOT / "templates_library" / "bbc_headline_topic.yaml"))
    ds = load_dataset("bbc")
    cfg = EvalConfig(limit=a.limit)
    rows, pool = eval_rows(ds, cfg)
    prompts = build_prompts(tpl, rows, pool, cfg)
    choices = [v for vs in tpl.answer_choices.values() for v in vs]
    reqs = [(p, " " + c) for p in prompts for c in choices]

    local = ModelSession("default", native=True).load()
    local.loglikelihood(reqs[:5])                 # warm-up
    t0 = time.perf_counter()
    want = local.loglikelihood(reqs)
    local_s = time.perf_counter() - t0
    rows_out = [{"engine": f"local ({local.backend})", "inflight": "-", "requests": len(reqs), "seconds": local_s,
                 "req_per_s": len(reqs) / local_s, "max_abs_diff": 0.0}]

    srv = ServerProcess.reference()
    srv.cmd[srv.cmd.index("--threads") + 1] = str(a.server_threads)
    with srv:
        for n in [int(x) for x in a.inflight.split(",")]:
            s = ModelSession(srv.url, tokenizer="default", concurrency=n, response_cache=False).load()
            s.remote.config.prompts_per_request = a.prompts_per_request
            s.loglikelihood(reqs[:5])
            sent0 = s.remote.requests_sent
            t0 = time.perf_counter()
            got = s.loglikelihood(reqs)
            dt = time.perf_counter() - t0
            diff = max(abs(g.logprob - w.logprob) for g, w in zip(got, want))
            rows_out.append({"engine": "remote (reference server)", "inflight": n, "requests": len(reqs),
                             "http_requests": s.remote.requests_sent - sent0, "seconds": dt,
                             "req_per_s": len(reqs) / dt, "max_abs_diff": diff})
            s.unload()
    print(f"{len(reqs)} scoring requests ({a.limit} rows x {len(choices)} choices), bbc_headline_topic, SmolLM2-135M fp32")
    print("| engine | in flight | requests/s | seconds | max |Δ logprob| vs local |")
    print("|---|---|---|---|---|")
    for r in rows_out:
        print(f"| {r['engine']} | {r['inflight']} | {r['req_per_s']:.1f} | {r['seconds']:.1f} | {r['max_abs_diff']:.1e} |")
    if a.out:
        Path(a.out).write_text(json.dumps(rows_out, indent=1))


if __name__ == "__main__":
    main()
