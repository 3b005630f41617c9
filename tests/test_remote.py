"""The remote engine against real server processes on loopback (tests/remote_servers.py).

* the protocol reference server (tests/reference_server.py: vLLM's completions protocol over
  transformers, with fault injection) stands in for a GPU engine: parity with local scoring
  and with lm-eval's `local-completions`, models side by side, faults;
* llama-cpp-python's server is a real third-party server: self-ask through it, and the
  detection of its off-by-one echo log-probabilities.
WORKBENCH_TEST_REMOTE_URL=openai:http://HOST:PORT/v1#NAME runs the parity test against another
server (bench/remote_vllm_check.sh points it at a real vLLM).
"""
from __future__ import annotations

import glob
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import require_data

from remote_servers import ServerProcess, free_port

from workbench.errors import ModelError

ROOT = Path(__file__).resolve().parents[1]
TOPIC = ROOT / "templates_library" / "bbc_headline_topic.yaml"
QUESTION = ROOT / "templates_library" / "bbc_headline_question.yaml"
SECRET = "sk-workbench-test-secret-4242"


def cli(*args, timeout=900) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "workbench.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout)


def remote_session(url: str, **kw):
    from workbench.engine.session import ModelSession

    return ModelSession(url, tokenizer=kw.pop("tokenizer", "default"), **kw).load()


@pytest.fixture
def server(ref):
    """The run's shared reference server (support/fixtures.py: `ref`), with no faults set before and after."""
    return ref


REQS = [("Headline: Oil prices rise again\nTopic:", " business"), ("Headline: Oil prices rise again\nTopic:", " sport"),
        ("Headline: New phone unveiled\nTopic:", " tech"), ("Headline: Cup final tonight\nTopic:", " sport")]


# ---------------------------------------------------------------------------- connecting
def test_spec_parsing_and_bad_specs():
    from workbench.engine.remote import is_remote, parse_spec

    assert parse_spec("openai:http://h:8000/v1#org/model") == ("http://h:8000/v1", "org/model")
    assert parse_spec("openai:https://h/v1/") == ("https://h/v1", None)
    assert is_remote("openai:http://x/v1") and not is_remote("default")
    with pytest.raises(ModelError, match="not a server URL"):
        parse_spec("openai:localhost:8000")


def test_response_cache_keys_on_served_model_and_exact_request(tmp_path):
    from workbench.storage.response_cache import ResponseCache

    c = ResponseCache(tmp_path / "r.sqlite")
    body = {"model": "m", "prompt": [1, 2, 3], "echo": True, "logprobs": 1, "max_tokens": 1, "temperature": 0}
    k = c.key("openai:http://h/v1#m|root", "/v1/completions", body)
    assert k == c.key("openai:http://h/v1#m|root", "/v1/completions", dict(reversed(list(body.items()))))
    assert k != c.key("openai:http://other/v1#m|root", "/v1/completions", body)
    assert k != c.key("openai:http://h/v1#m|root", "/v1/completions", {**body, "prompt": [1, 2, 4]})
    assert c.get(k) is None
    c.put(k, "id", "/v1/completions", {"choices": [1]})
    c.close()
    again = ResponseCache(tmp_path / "r.sqlite")
    assert again.get(k) == {"choices": [1]} and again.count("id") == 1 and again.clear("id") == 1


def test_server_stop_reasons_map_to_generation_stop_reasons():
    from workbench.engine.server_engine import server_generation as _remote_generation

    class Tok:
        def encode(self, text, add_special_tokens=False):
            return text.split()

    stop = ["\n"]
    assert _remote_generation({"text": "a b", "finish_reason": "length"}, stop, Tok()).stop_reason == "length"
    # vLLM: the matched stop string, or the EOS id / None at end of text
    assert _remote_generation({"text": "a", "finish_reason": "stop", "stop_reason": "\n"}, stop, Tok()).stop_reason == "stop"
    assert _remote_generation({"text": "a", "finish_reason": "stop", "stop_reason": 2}, stop, Tok()).stop_reason == "eos"
    assert _remote_generation({"text": "a", "finish_reason": "stop", "stop_reason": None}, stop, Tok()).stop_reason == "eos"
    # a server that cuts the stop string itself and does not say which ended it
    assert _remote_generation({"text": "a", "finish_reason": "stop"}, stop, Tok()).stop_reason == "stop"
    g = _remote_generation({"text": "a b\nc", "finish_reason": "length", "completion_tokens": 5}, stop, Tok())
    assert g.text == "a b" and g.stop_reason == "stop" and g.n_tokens == 5


@pytest.mark.model
def test_dead_server_and_wrong_url_name_the_cause(server):
    port = free_port()          # nothing listens there
    with pytest.raises(ModelError, match="Cannot reach an inference server") as e:
        remote_session(f"openai:http://127.0.0.1:{port}/v1")
    assert "vllm serve" in e.value.hint
    with pytest.raises(ModelError, match="404") as e:
        remote_session(f"openai:{server.base}/api")            # not the API root
    assert "/v1" in e.value.hint
    with pytest.raises(ModelError, match="does not serve 'nope'") as e:
        remote_session(server.url + "#nope")
    assert "HuggingFaceTB/SmolLM2-135M-Instruct" in e.value.hint
    p = cli("eval", "--data", "bbc", "--template", TOPIC, "--limit", "2", "--model",
            f"openai:http://127.0.0.1:{port}/v1", "--tokenizer", "default")
    assert p.returncode == 1 and "error: Cannot reach an inference server" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.model
def test_connect_checks_pass_on_a_correct_server(server):
    s = remote_session(server.url)
    info = s.info()
    assert info["backend"] == "remote" and s.identity.startswith("openai:http://127.0.0.1")
    assert info["server"]["scoring_ok"] and info["server"]["checks"]["tokenizer"] == "agrees"
    echo = info["server"]["checks"]["echo"]
    assert echo["echo_logprob"] == pytest.approx(echo["generated_logprob"], abs=1e-4)
    assert info["server"]["batch_prompts"]
    # The identity every reuse key and provenance takes (core.spec.eval_key, jobs/inference.py).
    ident = s.model_identity()
    assert ident["engine"] == "openai" and ident["model"] == s.identity and ident["adapter_sha256"] is None
    with pytest.raises(ModelError, match="inference server"):
        s.attach_adapter(str(ROOT))


@pytest.mark.model
def test_remote_scores_equal_local_and_cache_answers_reruns(server, session):
    s = remote_session(server.url, concurrency=4)
    theirs = s.loglikelihood(REQS)
    ours = session.loglikelihood(REQS)
    for a, b in zip(theirs, ours):
        assert a.logprob == pytest.approx(b.logprob, abs=2e-3) and a.n_tokens == b.n_tokens and a.greedy == b.greedy
    s2 = remote_session(server.url)                            # a new session: same served model, same requests
    seen = server.faults()["seen"]["completions"]
    again = s2.loglikelihood(REQS)
    assert [x.logprob for x in again] == [x.logprob for x in theirs]
    assert server.faults()["seen"]["completions"] == seen      # answered by the response cache
    g = s.generate(["The capital of France is"], max_new_tokens=8, stop=["."])[0]
    assert g == session.generate(["The capital of France is"], max_new_tokens=8, stop=["."])[0]


def test_rolling_loglikelihood_through_the_server_equals_local(server, session):
    """lm-eval's rolling windows (perplexity tasks) through the engine protocol: the served model's
    sums equal the local ones, with no remote-only branch in jobs/ (jobs/lmeval_outputs.py)."""
    from workbench.jobs.lmeval_outputs import rolling_logliks

    texts = ["Oil prices rose again on Monday as traders weighed new supply cuts. " * 2, "The cup final is tonight."]
    s = remote_session(server.url)
    theirs = rolling_logliks(texts, s, max_length=16)          # 16 tokens: several windows a text
    ours = rolling_logliks(texts, session, max_length=16)
    assert theirs == pytest.approx(ours, abs=5e-3) and all(x < 0 for x in ours)


# ---------------------------------------------------------------------------- parity
@pytest.mark.model
@pytest.mark.slow
def test_eval_through_server_matches_local_and_lm_eval(ref, session, bbc, tmp_path, monkeypatch, workbench_home):
    """`workbench eval` through the server = local scoring = lm_eval local-completions against it."""
    from workbench.core.templates import load_template
    from workbench.jobs.export import ExportConfig, export_bundle
    from workbench.jobs.inference import EvalConfig, evaluate

    url = os.environ.get("WORKBENCH_TEST_REMOTE_URL") or ref.url
    monkeypatch.setenv("WORKBENCH_API_KEY", SECRET)
    out = tmp_path / "remote.json"
    p = cli("eval", "--data", "bbc", "--template", TOPIC, "--limit", "8", "--shots", "1", "--seed", "3",
            "--model", url, "--tokenizer", "default", "--out", out)
    assert p.returncode == 0, p.stderr[-3000:]
    remote = json.loads(out.read_text())
    assert remote["provenance"]["model"]["backend"] == "remote"
    cfg = EvalConfig(limit=8, shots=1, seed=3)
    local = evaluate(load_template(TOPIC), bbc, session, cfg)
    assert [r["pred"] for r in remote["records"]] == [r["pred"] for r in local.records]
    for a, b in zip(remote["records"], local.records):
        for lab in b["scores"]:
            assert a["scores"][lab] == pytest.approx(b["scores"][lab], abs=2e-3)
    from workbench.storage.runs import RunRegistry

    assert RunRegistry().list(kind="eval")[0].model.startswith("openai:")

    # lm_eval's local-completions on the task file a bundle exported through the server holds
    rs = remote_session(url)
    bundle = export_bundle(load_template(TOPIC), bbc, session=rs, config=cfg,
                           export=ExportConfig(name="remote", out_dir=str(tmp_path), record=False, comparison=False))
    saved = [json.loads(x) for x in (bundle / "predictions.jsonl").read_text().splitlines()]
    assert [r["pred"] for r in saved] == [r["pred"] for r in local.records]
    task = json.loads((bundle / "manifest.json").read_text())["lm_eval"]["task"]
    base = url[len("openai:"):].split("#")[0]
    margs = (f"model={rs.remote.served_name},base_url={base}/completions,tokenizer={rs.resolved.path},"
             "tokenizer_backend=huggingface,num_concurrent=1,max_retries=3")
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               HF_DATASETS_CACHE=str(tmp_path / "hfds"))
    lm = subprocess.run([str(Path(sys.executable).with_name("lm_eval")), "--model", "local-completions", "--model_args",
                         margs, "--tasks", task, "--include_path", ".", "--batch_size", "1", "--log_samples",
                         "--output_path", str(tmp_path / "lmeval")], cwd=bundle, env=env, capture_output=True,
                        text=True, timeout=900)
    assert lm.returncode == 0, lm.stderr[-3000:]
    files = glob.glob(str(tmp_path / "lmeval" / "**" / f"samples_{task}_*.jsonl"), recursive=True)
    samples = sorted((json.loads(x) for x in open(files[0])), key=lambda s: s["doc_id"])
    labels = json.loads((bundle / "metrics.json").read_text())["labels"]
    theirs = []
    for smp in samples:
        lls = [float(r[0]) for r in smp["filtered_resps"]]
        theirs.append(labels[max(range(len(lls)), key=lambda i: (lls[i], -i))])
    assert theirs == [r["pred"] for r in local.records]

    # the API key reached the server as a header only: nowhere in runs, caches, results or bundles
    for root in (workbench_home, tmp_path):
        for f in Path(root).rglob("*"):
            if f.is_file() and f.stat().st_size < 50_000_000:
                assert SECRET.encode() not in f.read_bytes(), f


# ---------------------------------------------------------------------------- models side by side
@pytest.mark.model
@pytest.mark.slow
def test_compare_local_and_remote_models_side_by_side(ref, session, tmp_path, capsys):
    """The CLI's compare in this process (its argument parsing, job and output; the CLI's own process and exit
    code are tested by the eval parity test above), so the local model is the one already loaded here."""
    from workbench.cli import main as cli_main

    out = tmp_path / "cmp.json"
    rc = cli_main(["compare", "--data", "bbc", "--model", "default", "--model", ref.url, "--tokenizer", "default",
                   "--template", str(TOPIC), "--template", str(QUESTION), "--limit", "6", "--n-boot", "200",
                   "--out", str(out)])
    p = capsys.readouterr()
    assert rc == 0, p.err[-3000:]
    d = json.loads(out.read_text())
    assert len(d["names"]) == 4 and all(" @ " in n for n in d["names"])
    assert d["settings"]["grid"]["models"][0] == "default" and len(d["settings"]["pairs"]) == 6
    assert {t["model_identity"].startswith("openai:") for t in d["templates"]} == {True, False}
    topic = [n for n in d["names"] if n.startswith("bbc_headline_topic")]
    pair = next(v for v in d["settings"]["pairs"] if {v["a"], v["b"]} == set(topic))
    assert pair["only_a"] == pair["only_b"] == 0 and not pair["significant"]     # same weights, same predictions
    for ex in d["examples"]:
        assert ex["preds"][topic[0]] == ex["preds"][topic[1]]
    assert "Every pair of columns" in p.out


# ---------------------------------------------------------------------------- faults
@pytest.mark.model
def test_429_storm_500s_and_dropped_connections_are_retried(server, session):
    s = remote_session(server.url, concurrency=2, max_retries=8)
    s.remote.config.backoff_s = 0.05          # the storm hits one request 8 times: keep the test short
    before = server.faults()["seen"]     # the server is shared: its counters add up over the run
    server.set_faults(fail_429=4, fail_500=2, drop=2)
    got = s.loglikelihood(REQS)
    want = session.loglikelihood(REQS)
    assert [g.logprob for g in got] == pytest.approx([w.logprob for w in want], abs=2e-3)
    seen = {k: v - before[k] for k, v in server.faults()["seen"].items()}
    assert seen["429"] == 4 and seen["500"] == 2 and seen["dropped"] == 2
    assert s.remote.retries >= 8


@pytest.mark.model
def test_429_storm_beyond_the_retries_is_a_clear_error(server):
    s = remote_session(server.url, concurrency=2, max_retries=2)
    s.remote.config.backoff_s = 0.05
    server.set_faults(fail_429=1000)
    with pytest.raises(ModelError, match="HTTP 429") as e:
        s.loglikelihood(REQS)
    assert "--concurrency" in e.value.hint


@pytest.mark.model
def test_server_without_echo_logprobs_refuses_scoring_but_generates(server):
    server.set_faults(no_echo=True)
    s = remote_session(server.url)
    assert s.remote.scoring_ok is False and "log-probabilities" in s.remote.scoring_problem
    with pytest.raises(ModelError, match="cannot score") as e:
        s.loglikelihood(REQS)
    assert "vLLM" in e.value.hint
    assert "Paris" in s.generate(["The capital of France is"], max_new_tokens=4)[0].text


@pytest.mark.model
def test_shifted_echo_logprobs_are_detected(server):
    server.set_faults(offset=True)
    s = remote_session(server.url)
    assert s.remote.scoring_ok is False and "misaligned" in s.remote.scoring_problem


@pytest.mark.model
@pytest.mark.slow
def test_server_killed_mid_run_fails_clearly_and_records_nothing(tmp_path, workbench_home):
    with ServerProcess.reference(delay=0.3) as srv:
        out = tmp_path / "r.json"
        proc = subprocess.Popen(
            [sys.executable, "-m", "workbench.cli", "eval", "--data", "bbc", "--template", TOPIC, "--limit", "40",
             "--model", srv.url, "--tokenizer", "default", "--concurrency", "1", "--max-retries", "2",
             "--out", out], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")))
        deadline = time.monotonic() + 300
        while srv.faults()["seen"]["prompts"] < 12 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        srv.kill()
        stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 1, stderr[-2000:]
    assert "error: The inference server" in stderr and "connection refused" in stderr and "Traceback" not in stderr
    assert "hint:" in stderr and not out.exists()
    from workbench.storage.runs import RunRegistry

    assert RunRegistry().list(kind="eval") == []


# ---------------------------------------------------------------------------- llama-cpp-python
def _gguf() -> str:
    from workbench.engine.models import default_gguf_path

    return str(default_gguf_path())


@pytest.fixture(scope="module")
def llama():
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed (make test installs it: pip install 'llama-cpp-python[server]')")
    with ServerProcess.llama_cpp(_gguf()) as srv:
        yield srv


@pytest.mark.model
def test_llama_cpp_offset_echo_logprobs_are_detected(llama):
    s = remote_session(llama.url)
    assert s.remote.scoring_ok is False, s.remote.describe()
    assert "misaligned" in s.remote.scoring_problem
    with pytest.raises(ModelError, match="cannot score"):
        s.loglikelihood(REQS)


@pytest.mark.model
def test_selfask_through_llama_cpp(llama):
    from workbench.core.templates import load_template
    from workbench.jobs.inference import EvalConfig, evaluate

    s = remote_session(llama.url)
    t = load_template(str(ROOT / "templates_library" / "strategyqa_selfask.yaml"))
    res = evaluate(t, require_data("strategyqa"), s, EvalConfig(limit=2, split="all", max_new_tokens=48))
    assert res.provenance["model"]["backend"] == "remote" and len(res.records) == 2
    for r in res.records:
        tr = r["trace"]
        assert tr["calls"] and 0 < tr["generated_tokens"] <= 48 + 8 * len(tr["calls"])
    assert s.remote.requests_sent > 2


# ---------------------------------------------------------------------------- chat templates
def _chat_direct():
    """strategyqa_direct with chat: true: a generation template whose prompt is a chat turn."""
    from workbench.core.templates import load_template

    text = (ROOT / "templates_library" / "strategyqa_direct.yaml").read_text()
    return load_template(text.replace("name: strategyqa_direct", "name: strategyqa_direct_chat", 1) + "\nchat: true\n")


def _seen(srv) -> dict:
    return dict(srv.faults()["seen"])


@pytest.mark.model
def test_chat_template_generates_through_the_chat_endpoint(server, session):
    """Generation with a chat template goes to /v1/chat/completions with the messages and equals
    local generation over the locally rendered chat text; scoring a chat template stays on
    /v1/completions (token ids of the local rendering: chat endpoints cannot echo log-probs)."""
    from workbench.storage.data_load import load_dataset
    from workbench.core.templates import load_template
    from workbench.engine.session import ChatPrompt
    from workbench.jobs.inference import EvalConfig, evaluate

    t = _chat_direct()
    ds = require_data("strategyqa")
    cfg = EvalConfig(limit=4, split="all")
    s = remote_session(server.url)
    before = _seen(server)
    remote = evaluate(t, ds, s, cfg)
    after = _seen(server)
    assert after["chat"] - before["chat"] == 4 and after["completions"] == before["completions"]
    assert s.remote.sent_by_path["/v1/chat/completions"] == 4
    local = evaluate(t, ds, session, cfg)
    assert [r["output"] for r in remote.records] == [r["output"] for r in local.records]
    assert [r["stop_reason"] for r in remote.records] == [r["stop_reason"] for r in local.records]
    assert [r["prompt"] for r in remote.records] == [r["prompt"] for r in local.records]
    assert all(r["output"].strip() for r in remote.records)
    p = session.apply_chat("Hi")
    assert isinstance(p, ChatPrompt) and p.messages == [{"role": "user", "content": "Hi"}]
    assert "Hi" in p and not isinstance(p + "x", ChatPrompt)   # a self-ask chain's prompt + output is plain text

    chat_cls = load_template(str(ROOT / "templates_library" / "bbc_chat_topic.yaml"))
    bbc = load_dataset("bbc")
    before = _seen(server)
    scored = evaluate(chat_cls, bbc, s, EvalConfig(limit=3))
    after = _seen(server)
    assert after["chat"] == before["chat"] and after["completions"] > before["completions"]
    assert [r["pred"] for r in scored.records] == [r["pred"] for r in evaluate(chat_cls, bbc, session,
                                                                                EvalConfig(limit=3)).records]


@pytest.mark.model
def test_chat_template_generation_through_llama_cpp(llama):
    """A real third-party server: a chat template's generation goes to its chat endpoint."""
    from workbench.jobs.inference import EvalConfig, evaluate

    s = remote_session(llama.url)
    before = dict(s.remote.sent_by_path)
    res = evaluate(_chat_direct(), require_data("strategyqa"), s, EvalConfig(limit=3, split="all"))
    sent = {k: v - before.get(k, 0) for k, v in s.remote.sent_by_path.items()}
    assert sent.get("/v1/chat/completions") == 3 and not sent.get("/v1/completions"), sent
    assert res.provenance["model"]["backend"] == "remote" and len(res.records) == 3
    for r in res.records:
        assert r["output"].strip() and "\n" not in r["output"] and r["stop_reason"] in ("stop", "eos", "length")
        assert r["prompt"].startswith("<|im_start|>")     # the local rendering, stored for the record
