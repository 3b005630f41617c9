"""Drive the workbench's API endpoints with gradio_client, as a script would.

The app runs in-process on loopback with a free port; the eval runs on the real default
model (SmolLM2-135M) over 12 BBC headlines, zero-shot, so it takes a few seconds on a CPU.
"""
from __future__ import annotations

import pytest
from support import load_data, wait_job


GOOD = """name: api_topic
input: |-
  Headline: {{ title }}
  Topic:
answer_choices:
  business: [business]
  entertainment: [entertainment]
  politics: [politics]
  sports: [sport]
  tech: [tech]
"""

# Line 3 of `input` misses a closing brace.
BROKEN = GOOD.replace("  Topic:", "  Topic: {{ title }\n  ok", 1)


def load_bbc(client):
    out = load_data(client, "bbc")
    summary, splits, table = out[0], out[1], out[3]
    return summary, splits, table


def run_small_eval(client, limit: int = 12) -> str:
    job_id, progress, _timer = client.predict(GOOD, "default", 0, 0, "acc", "none", "test", limit,
                                              api_name="/run_eval")[:3]
    assert job_id.startswith("eval-")
    st = wait_job(client, "/run_status", job_id, timeout=240)
    assert st["state"] == "done", st
    assert st["done"] == st["total"] and st["total"] > 0
    return st["result_id"]


def assert_run_survives_a_restart(run_id: str) -> None:
    """The run is in the SQLite file: a new process on the same WORKBENCH_HOME lists and opens it
    with the Runs tab's handlers (what a restarted server runs), without a second server or eval."""
    import json
    import os
    import subprocess
    import sys

    code = ("import json, sys\n"
            "from workbench.app.tab_runs import list_runs, open_run\n"
            "t = list_runs('', 'all kinds')\n"
            "print(json.dumps({'ids': list(t['id']), 'md': open_run(sys.argv[1], False)[0]}))\n")
    p = subprocess.run([sys.executable, "-c", code, run_id], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ))
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["ids"] == [run_id] and "accuracy" in out["md"]


@pytest.mark.model
def test_every_endpoint_drives_the_prompt_loop(app):
    """`app`: one launched app for this module (support/fixtures.py); this test runs first and
    relies on its session's fresh editor state."""
    c = app.client
    # --- data
    summary, splits, table = load_bbc(c)
    assert "2225 rows" in summary and "business" in summary
    assert "test **445**" in splits and "seed 0" in splits
    assert len(table["data"]) == 20
    info = c.predict(api_name="/data_info")
    assert info["rows"] == 2225 and info["label_column"] == "label" and "title" in info["columns"]
    page = c.predict(3, api_name="/data_page")
    assert page[2] == 3 and "page 3 of" in page[1] and page[0]["data"][0][0] == 40

    # --- templates: validation with line and column
    ok = c.predict(GOOD, api_name="/validate_template")
    assert ok.startswith("✓") and "api_topic" in ok
    bad = c.predict(BROKEN, api_name="/validate_template")
    assert "**input**, line 2, column" in bad and "(YAML line 4)" in bad, bad
    unknown = c.predict(GOOD.replace("{{ title }}", "{{ titel }}"), api_name="/validate_template")
    assert "variable 'titel' is not a column" in unknown and "did you mean 'title'" in unknown
    assert "line 1, column 14" in unknown   # "Headline: {{ " is 13 characters
    yaml_err = c.predict("name: x\ninput: [unclosed\n", api_name="/validate_template")
    assert "invalid YAML at line" in yaml_err and "column" in yaml_err

    # --- fields <-> YAML
    fields = c.predict(GOOD, api_name="/template_fields")
    assert fields[0] == "api_topic" and "{{ title }}" in fields[1]
    choices = fields[3]["data"]
    assert ["sports", "sport"] in choices
    new = c.predict(GOOD, "api_topic2", fields[1], "Classify the headline.", fields[3], 2, False, True, "fixed",
                    api_name="/apply_fields")
    assert "name: api_topic2" in new and "instruction: Classify the headline." in new and "k: 2" in new

    # --- library: list, load (guarded), save as, duplicate
    lib = c.predict(api_name="/list_templates")
    ref = next(t["ref"] for t in lib if t["name"] == "bbc_headline_topic")
    # The session's editor holds nothing saved yet, so loading over typed text is refused...
    kept = c.predict(ref, GOOD, False, api_name="/load_template")
    assert kept[0].strip() == GOOD.strip() and "unsaved edits" in kept[1]
    # ...unless the user ticks "discard".
    loaded = c.predict(ref, GOOD, True, api_name="/load_template")
    assert "name: bbc_headline_topic" in loaded[0] and "saved" in loaded[1]
    saved = c.predict(GOOD, "my_api_template", False, api_name="/save_template")
    assert "name: my_api_template" in saved[0] and "✓ saved" in saved[1]
    lib = c.predict(api_name="/list_templates")
    assert any(t["name"] == "my_api_template" and t["source"] == "user" for t in lib)
    dup = c.predict(ref, saved[0], False, api_name="/duplicate_template")
    assert "name: bbc_headline_topic_copy" in dup[0]

    # --- import lm-eval YAML (pasted)
    lm_eval = ('task: bbc_lm\ndataset_path: json\noutput_type: multiple_choice\n'
               'doc_to_text: "Headline: {{title}}\\nTopic:"\ndoc_to_target: label\n'
               'doc_to_choice: [business, entertainment, politics, sports, tech]\n')
    imp = c.predict(None, lm_eval, None, dup[0], False, api_name="/import_template")
    assert "name: bbc_lm" in imp[0] and "Headline: {{title}}" in imp[0]

    # --- preview
    text, tok_summary, tokens, verbal, warn, gold = c.predict(GOOD, "test", 0, 0, 0, "default", api_name="/preview")
    assert text.startswith("Headline: ") and text.endswith("Topic:")
    # Row 0 of the test split, the very row an eval scores first (not any row, not the table's).
    from workbench.storage.data_load import load_dataset
    from workbench.core.spec import resolve_eval
    from workbench.core.templates import load_template
    from workbench.jobs.inference import eval_rows

    rows, _ = eval_rows(load_dataset("bbc"), resolve_eval({"shots": 0, "seed": 0, "split": "test",
                                                           "split_seed": 0}, load_template(GOOD)))
    assert text.split("\n")[0] == f"Headline: {rows.iloc[0]['title']}"
    n_tokens = int(tok_summary.split("**")[1].split()[0])
    assert n_tokens == len([t for t in tokens if t["class_or_confidence"]])
    assert "Gold label:" in gold
    assert [r[0] for r in verbal["data"]] == ["business", "entertainment", "politics", "sports", "tech"]
    assert all(r[3] == 1 for r in verbal["data"])      # single-token verbalizers
    assert warn.startswith("✓")
    multi = GOOD.replace("[tech]", "[technology news]")
    warn2 = c.predict(multi, "test", 0, 0, 0, "default", api_name="/preview")[4]
    assert "'technology news' is" in warn2 and "tokens" in warn2
    few = c.predict(GOOD, "test", 1, 2, 0, "default", api_name="/preview")[0]
    assert few.count("Topic:") == 3      # two demonstrations, then the row

    # --- run a small zero-shot eval on the real model
    status = c.predict(api_name="/model_status")
    assert "default" in status
    run_id = run_small_eval(c, limit=12)
    md, bar, conf, preds, prov = c.predict(run_id, False, api_name="/open_run")
    assert "accuracy" in md and "**" in md
    assert len(preds["data"]) == 12 and "score · business" in preds["headers"]
    assert prov["template_hash"] and prov["data_fingerprint"] and prov["metrics"]["n"] == 12
    assert prov["settings"]["limit"] == 12 and "Headline:" in prov["template_yaml"]
    errs = c.predict(run_id, True, api_name="/open_run")[3]
    assert all(r[3] == "✗" for r in errs["data"]) and len(errs["data"]) < 12
    runs = c.predict("", api_name="/list_runs")
    assert runs["data"][0][runs["headers"].index("id")] == run_id
    assert runs["headers"][:2] == ["kind", "headline"] and runs["data"][0][0] == "eval"
    assert_run_survives_a_restart(run_id)
    back = c.predict(run_id, "", False, api_name="/run_template")
    assert "Headline: {{ title }}" in back[0]
    assert "default" in c.predict(api_name="/model_status") and "●" in c.predict(api_name="/model_status")

    # --- errors come back as readable messages, not tracebacks
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as e:
        load_data(c, "/no/such/file.csv")
    assert "Traceback" not in str(e.value)
    with pytest.raises(AppError) as e:
        c.predict("", "default", 0, 0, "acc", "none", "test", 5, api_name="/run_eval")
    assert "empty" in str(e.value)
    assert c.predict("no-such-job", api_name="/run_status")["state"] == "unknown"


@pytest.mark.model
def test_cancel_stops_a_running_eval(app):
    c = app.client
    load_bbc(c)
    job_id = c.predict(GOOD, "default", 0, 0, "acc", "none", "all", 0, api_name="/run_eval")[0]
    c.predict(job_id, api_name="/cancel_run")
    st = wait_job(c, "/run_status", job_id, timeout=120)
    assert st["state"] == "cancelled" and st["result_id"] is None


def test_binding_and_auth_flags(monkeypatch, capsys):
    from workbench.app import main
    from workbench.errors import ConfigError

    monkeypatch.delenv("WORKBENCH_AUTH", raising=False)
    assert main.parse_auth(None) is None
    assert main.parse_auth("alice:s3:cret") == ("alice", "s3:cret")
    monkeypatch.setenv("WORKBENCH_AUTH", "bob:pw")
    assert main.parse_auth(None) == ("bob", "pw")
    with pytest.raises(ConfigError, match="user:password"):
        main.parse_auth("nopassword")
    assert main.is_loopback("127.0.0.1") and main.is_loopback("localhost") and main.is_loopback("::1")
    assert not main.is_loopback("0.0.0.0") and not main.is_loopback("192.168.1.10")
    # A public bind without auth needs --insecure and then warns before anything starts
    # (build_app is stubbed out to stop right there: only the check is under test).
    monkeypatch.delenv("WORKBENCH_AUTH")

    class Stop(Exception):
        pass

    def stop(**kw):
        raise Stop

    from workbench import paths

    monkeypatch.setattr(main, "build_app", stop)
    try:
        # without a password it refuses (tests/test_hardening_server.py); --insecure serves with a warning
        with pytest.raises(Stop):
            main.launch(host="0.0.0.0", open_browser=False, insecure=True)
        assert "without a password" in capsys.readouterr().err
        with pytest.raises(Stop):
            main.launch(host="0.0.0.0", auth="a:b", open_browser=False)
        assert "without a password" not in capsys.readouterr().err
        assert paths.server_paths_restricted()      # beyond loopback, server paths are confined
    finally:
        paths.unrestrict_server_paths()
