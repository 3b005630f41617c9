"""Issue 28 (the browser workbench with one's own data, second pass), without a model: each
numbered problem's handler called directly or through gradio_client. docs/UX_TESTS.md lists
which test covers which problem and how it failed before the fix."""
from __future__ import annotations

import json

import pytest
from support import load_data

from test_browser_ux import write_reviews

INTENTS = ["billing", "technical", "other", "account"]


def write_tickets(path, n: int = 40):
    """Support messages with columns message,intent (the issue's data shape)."""
    import csv

    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["message", "intent"])
        for i in range(n):
            w.writerow([f"customer message number {i} about {INTENTS[i % 4]}", INTENTS[i % 4]])
    return path


def _library_yaml(name: str) -> str:
    from workbench.core.templates import load_template
    from workbench.paths import library_dir

    return load_template(library_dir() / f"{name}.yaml").to_yaml()


def test_pickers_offer_templates_that_fit_the_loaded_data(tmp_path):
    """(1) With one's own data loaded, Compare's columns and Search's start never keep a BBC
    template that cannot render; the editor's template and the user's saved ones come first."""
    from workbench.app import fit
    from workbench.app.common import UIState, state_dataset
    from workbench.app.tab_compare import MAX_COLUMNS
    from workbench.app.tab_search import EXAMPLE_START
    from workbench.app.tab_templates import template_from_data
    from workbench.paths import user_templates_dir

    state = UIState(data_spec=str(write_tickets(tmp_path / "tickets.csv")))
    ds = state_dataset(state)
    editor = template_from_data(ds, "intent_plain").to_yaml()
    saved = template_from_data(ds, "intent_queue").to_yaml().replace("Intent:", "Queue:")
    user_templates_dir().mkdir(parents=True, exist_ok=True)
    (user_templates_dir() / "intent_queue.yaml").write_text(saved)

    bbc = [_library_yaml("bbc_headline_topic"), _library_yaml("bbc_headline_question")]
    picks = [None] * MAX_COLUMNS
    codes = bbc + [""] * (MAX_COLUMNS - 2)
    out = fit.compare_fit_data(state, editor, 2, *picks, *codes)
    pickers, new_codes = out[:MAX_COLUMNS], out[MAX_COLUMNS:]
    assert new_codes[0] == editor and "name: intent_queue" in new_codes[1]
    assert all("title" not in c for c in new_codes[:2] if isinstance(c, str))
    first = pickers[0]["choices"][0]
    assert "intent_queue" in first[0] and "does not fit" not in first[0]
    assert any("bbc_headline_topic" in lab and "does not fit" in lab for lab, _ in pickers[0]["choices"])
    # Search: the BBC start (`{{ title }}`) is replaced by the editor's template.
    _lib, start = fit.search_fit_data(state, editor, EXAMPLE_START)
    assert start == editor
    # Nothing fits: the column is left empty rather than holding a template that fails.
    (user_templates_dir() / "intent_queue.yaml").unlink()
    assert fit.fill_for_data(state, "", 1, [(None, bbc[0])]) == [(None, "")]
    # On the BBC data the BBC templates fit and stay.
    bbc_state = UIState(data_spec="bbc")
    assert fit.fill_for_data(bbc_state, editor, 2, [(None, bbc[0]), (None, bbc[1])]) == [(None, bbc[0]), (None, bbc[1])]


@pytest.fixture()
def app():
    from support import App

    a = App()
    try:
        yield a
    finally:
        a.close()


def test_failed_upload_keeps_the_previous_dataset_and_says_so(app, tmp_path):
    """(3) A broken file leaves the previous dataset fully loaded (summary, columns, rows) and
    the Data panel says, in the panel itself, that loading failed and what is still loaded."""
    c = app.client
    good = write_reviews(tmp_path / "reviews.csv")
    out = load_data(c, "file or path…", path=str(good))
    assert "42 rows" in out[0]
    broken = tmp_path / "broken.csv"
    broken.write_text('id,review,sentiment\n1,"unterminated,pos\n2,fine,neg\n')
    out = load_data(c, "file or path…", path=str(broken))
    summary = out[0]
    assert "Loading failed" in summary and "broken.csv" in summary
    assert "previous dataset is still loaded" in summary and "reviews.csv" in summary and "42 rows" in summary
    assert out[5] == "review" and out[6] == "sentiment"          # the column pickers keep their values
    info = c.predict(api_name="/data_info")
    assert info["rows"] == 42 and info["spec"] == str(good)


def _metrics(gold, pred):
    from workbench.core.metrics import classification_metrics

    return classification_metrics(gold, pred)


def test_one_class_prompt_is_flagged_with_the_majority_baseline():
    """(4) A prompt that answers one class for every row is flagged in Run, Compare, Search and
    Train, with the majority baseline beside the accuracy."""
    from workbench.app import tab_compare, tab_search, tab_train
    from workbench.app.common import metrics_markdown
    from workbench.jobs.compare import compare_results

    gold = [INTENTS[0]] * 8 + [INTENTS[1]] * 8 + [INTENTS[2]] * 7 + [INTENTS[3]] * 7     # billing 8/30 = 26.7%
    flat = ["billing"] * 30
    good = list(gold[:25]) + ["other"] * 5
    m = _metrics(gold, flat)
    run = metrics_markdown({"task": "classification", "metrics": m, "records": [], "provenance": {}, "timings": {}})
    assert "predicts one class for 100% of rows" in run and "majority baseline" in run and "0.267" in run
    assert "95% interval" in run
    ok = metrics_markdown({"task": "classification", "metrics": _metrics(gold, good), "records": [],
                           "provenance": {}, "timings": {}})
    assert "predicts one class" not in ok and "majority baseline" in ok

    recs = lambda preds: [{"index": i, "gold": g, "pred": p, "correct": g == p, "scores": {}}  # noqa: E731
                          for i, (g, p) in enumerate(zip(gold, preds))]
    res = compare_results([("intent_plain", {"task": "classification", "records": recs(good), "metrics": {}}),
                           ("intent_queue", {"task": "classification", "records": recs(flat), "metrics": {}})],
                          n_boot=200)
    res.run_id = "x"
    verdict = tab_compare.verdict_markdown(res)
    assert "**intent_queue** predicts one class for 100% of rows" in verdict and "majority baseline" in verdict
    assert "**intent_plain** predicts" not in verdict

    train = tab_train.result_markdown({"status": "done", "steps": 4, "test": {"base": _metrics(gold, good),
                                                                              "adapter": m}}, {"state": "done"})
    assert "**the adapter** predicts one class for 100% of rows" in train and "majority baseline" in train

    from workbench.core.collapse import one_class
    payload = {"status": "done", "start": {"dev_accuracy": 0.5}, "winner": {"name": "w", "dev_accuracy": 0.6},
               "test": {"n": 30, "start_accuracy": 0.8, "winner_accuracy": 0.267, "dev_to_test_drop": 0.3,
                        "verdict": {"significant": True, "text": "start beats w"}, "test_uses": 1,
                        "majority_baseline": m["majority_baseline"],
                        "one_class": {"start": None, "winner": one_class(m)}}}
    s = tab_search.summary_markdown(payload, "r1")
    assert "the winner predicts one class for 100% of rows" in s and "majority baseline" in s


def test_downloaded_json_holds_metrics_verdicts_intervals_and_spec(tmp_path):
    """(8) Run's and Compare's Download JSON carry what the screen shows, not only the matrix."""
    from test_matrix import _store

    from workbench.app import matrix
    from workbench.storage.runs import RunRegistry

    reg = RunRegistry()
    a = _store(reg, "short", ["pos", "neg", "pos", "pos"])
    doc = json.loads(open(matrix.download_json({"runs": [a]})).read())
    run = doc["runs"][0]
    assert run["metrics"]["accuracy"] == 0.75 and run["accuracy_interval"]["method"] == "wilson"
    assert run["provenance"]["template"]["name"] == "short" and run["spec"]["kind"] == "eval"
    assert len(doc["rows"]) == 4

    from workbench.jobs.compare import compare_results

    gold = ["pos", "neg", "neu", "pos"] * 5
    recs = lambda preds: [{"index": i, "gold": g, "pred": p, "correct": g == p, "scores": {}}  # noqa: E731
                          for i, (g, p) in enumerate(zip(gold, preds))]
    res = compare_results([("a", {"task": "classification", "records": recs(gold), "metrics": {}}),
                           ("b", {"task": "classification", "records": recs(["pos"] * 20), "metrics": {}})], n_boot=200)
    rid = reg.add("compare", name="compare: a vs b", metrics={"type": "comparison"}, payload=res.to_dict())
    doc = json.loads(open(matrix.download_json({"compare": rid})).read())
    cmp = doc["comparison"]
    v = cmp["verdicts"][0]
    assert "p_mcnemar" in v and "delta_acc_ci" in v and v["text"]
    assert cmp["leaderboard"][0]["ci_low"] is not None and "per_class" in cmp["metrics"]["a"]
    assert cmp["one_class"]["b"]["label"] == "pos" and cmp["spec"]["kind"] == "compare"
    assert len(doc["rows"]) == 20


def _result(gold, preds) -> dict:
    return {"task": "classification", "metrics": {},
            "records": [{"index": i, "gold": g, "pred": p, "correct": g == p, "scores": {}}
                        for i, (g, p) in enumerate(zip(gold, preds))]}


def test_adapter_that_does_not_beat_the_base_is_said_in_train_and_export(tmp_path):
    """(6) The Train tab shows the paired base-vs-adapter verdict; Export says, before writing,
    that the adapter did not beat the base."""
    from workbench.app import export_plan, tab_train

    gold = INTENTS * 8
    base = list(gold)
    base[0] = "other"                                        # base: 31/32
    adapter = list(gold)
    for i in range(0, 8):
        adapter[i] = "billing" if gold[i] != "billing" else "other"   # adapter: 24/32
    run = tmp_path / "run"
    run.mkdir()
    (run / "base_results.json").write_text(json.dumps(_result(gold, base)))
    (run / "adapter_results.json").write_text(json.dumps(_result(gold, adapter)))
    v = export_plan.adapter_verdict(run)
    assert v["delta_acc"] < 0 and not v["better"]
    res = {"status": "done", "steps": 20, "test": {"base": _metrics(gold, base), "adapter": _metrics(gold, adapter)}}
    md = tab_train.result_markdown(res, {"state": "done"}, str(run))
    assert "Paired verdict" in md and "did not beat the base model" in md and "base model" in md
    # the table is whole (the baseline row inside it, before the verdict), the worse adapter not bold
    table = md[md.index("| | base |"):md.index("**Paired verdict**")].strip().splitlines()
    assert table[-1].startswith("| majority baseline |") and all(r.startswith("|") for r in table)
    acc = next(r for r in table if r.startswith("| accuracy |"))
    assert acc.split("|")[2].strip().startswith("**") and not acc.split("|")[3].strip().startswith("**")
    plan = export_plan.bundle_contents("training run", str(run), False, False, 0, "tickets.csv")
    assert "did not beat the base model" in plan and "adapter/" in plan


def test_uploads_are_kept_under_their_name_and_raw_rows_are_opt_in(tmp_path, monkeypatch, workbench_home):
    """(9) An upload is copied into $WORKBENCH_HOME/data/ as NAME-HASH.csv, and Show command
    names that copy; the Export command has no --overwrite unless the box is ticked.
    (7) Raw rows go into a bundle of one's own data only when ticked, and the contents are
    listed before writing."""
    from workbench.app import tab_data, tab_export
    from workbench.app.common import UIState
    from workbench.app.tab_templates import template_from_data

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    up = tmp_path / "gradio" / "0123abcd" / "support_tickets.csv"
    up.parent.mkdir(parents=True)
    write_tickets(up)
    state = tab_data.load_data(UIState(), "file or path…", str(up), "", None, None, 0)[0]
    kept = workbench_home / "data"
    copies = list(kept.glob("support_tickets-*.csv"))
    assert len(copies) == 1 and state.data_spec == str(copies[0])
    assert copies[0].read_bytes() == up.read_bytes()
    # the same content uploaded again is the same copy
    assert tab_data.load_data(UIState(), "file or path…", str(up), "", None, None, 0)[0].data_spec == state.data_spec

    from workbench.app.common import state_dataset
    yaml_text = template_from_data(state_dataset(state), "intent_plain").to_yaml()
    form = (state, "default", yaml_text, "editor", "", "tickets", False, 0, 0, "acc", "test", 30)
    cmd = tab_export.export_command(*form)
    assert str(copies[0]) in cmd and "gradio" not in cmd
    assert "--overwrite" not in cmd and "--no-data" in cmd
    assert "--overwrite" in tab_export.export_command(*form, True)
    assert "--no-data" not in tab_export.export_command(*form, False, True)
    # (7) the contents, listed before writing: no raw rows unless ticked
    assert tab_export.rows_default(state) is False and tab_export.rows_default(UIState(data_spec="bbc")) is True
    listed = tab_export.export_contents(state, "editor", "", False, False, 0)
    assert "The bundle will hold" in listed and "data/test.jsonl" not in listed and "No raw rows" in listed
    listed = tab_export.export_contents(state, "editor", "", False, True, 2)
    assert "data/test.jsonl" in listed and "raw test rows" in listed and "data/fewshot.jsonl" in listed


def test_train_and_search_forms_are_restored_from_the_attached_job(tmp_path):
    """(2) After a reload, the Train and Search forms show the settings of the job they are
    attached to (a 20-step, eval-every-5 run; a 150 s search from intent_queue), not the page's
    defaults (60 steps / eval every 20; bbc_weak_start, 600 s)."""
    from dataclasses import asdict

    from workbench.app import form_restore
    from workbench.core.config import TrainConfig
    from workbench.storage.runs import RunRegistry

    run = tmp_path / "train-run"
    run.mkdir()
    cfg = TrainConfig(max_steps=20, eval_every=5, shots_per_class=8, lr=1e-3, test_limit=30)
    (run / "log.jsonl").write_text(json.dumps({"event": "start", "config": asdict(cfg), "total_steps": 20}) + "\n")
    values = dict(zip(form_restore.TRAIN_FIELDS, form_restore.train_form(str(run))))
    assert values["steps"] == 20 and values["eval_every"] == 5 and values["k"] == 8 and values["lr"] == 1e-3
    assert values["data_mode"] == "k per class" and values["test_limit"] == 30
    assert form_restore.train_values("") is None and form_restore.train_values(str(tmp_path / "gone")) is None

    start = "name: intent_queue\ninput: '{{ message }}'\nanswer_choices: {billing: [billing]}\n"
    settings = {"axes": ["verbalizer", "format"], "budget_tokens": None, "budget_seconds": 150.0,
                "max_dev_rows": 40, "test_limit": 30, "shots": [0, 2], "selections": ["random"],
                "calibrations": ["none"], "propose_instructions": 0, "evaluate_test": True, "winner_name": None}
    rid = RunRegistry().add("search", name="search intent_queue", metrics={},
                            payload={"settings": settings, "start": {"yaml": start, "config": {}}})
    values = dict(zip(form_restore.SEARCH_FIELDS, form_restore.search_values(run_id=rid).values()))
    assert values["start_yaml"] == start and values["budget_seconds"] == 150.0 and values["max_dev"] == 40
    assert values["shots"] == "0,2" and values["axes"] == ["verbalizer", "format"]


def test_search_output_can_be_trusted(tmp_path):
    """(5) Search: the ETA stays within the time budget; the axes never reached are named;
    stop-word / unrelated label words are warned about (with an option to race without them);
    the user's best saved template on the same test rows is reported beside the winner."""
    from workbench.app import tab_search
    from workbench.core.label_checks import word_problems
    from workbench.jobs.search import SearchConfig
    from workbench.paths import user_templates_dir
    from workbench.storage.runs import RunRegistry

    st = {"state": "running", "done": 10, "total": 300000, "eta_s": 6498.0, "elapsed_s": 60.0, "message": "format",
          "meta": {"template": "intent_queue", "data": "tickets.csv", "budget_seconds": 150.0}}
    html = tab_search.progress_html(st)
    assert "ETA 1.5 min" in html and "108" not in html          # 150 s budget - 60 s elapsed

    winner = ("name: intent_queue-search-1\ninput: '{{ message }}'\nanswer_choices:\n  technical: [the]\n"
              "  other: [Marketing]\n  billing: [pays]\n  account: [account]\n")
    probs = {(p["label"], p["word"], p["why"]) for p in word_problems({"technical": ["the"], "other": ["Marketing"],
                                                                       "billing": ["pays"], "account": ["account"]})}
    assert probs == {("technical", "the", "stop-word"), ("other", "Marketing", "unrelated"),
                     ("billing", "pays", "unrelated")}
    assert SearchConfig(plain_label_words=True).plain_label_words   # the option the warning names

    reg = RunRegistry()
    user_templates_dir().mkdir(parents=True, exist_ok=True)
    (user_templates_dir() / "intent_plain.yaml").write_text(
        "name: intent_plain\ninput: '{{ message }}'\nanswer_choices: {billing: [billing], other: [other]}\n")
    reg.add("eval", name="intent_plain", model="default", data_fingerprint="fp-t", metrics={"accuracy": 0.867},
            payload={"task": "classification", "metrics": {"accuracy": 0.867, "n": 30},
                     "provenance": {"data": {"row_indices_hash": "rows30"}}, "records": []})
    payload = {"status": "done", "budget_exhausted": True, "tokens": 1000, "seconds": 150, "dev_rows": 40,
               "candidates": {}, "curve": [],
               "settings": {"axes": ["verbalizer", "format", "instruction", "demos", "calibration"]},
               "stages": [{"stage": "verbalizer"}, {"stage": "format"}],
               "start": {"name": "intent_queue", "dev_accuracy": 0.5},
               "winner": {"name": "intent_queue-search-1", "dev_accuracy": 0.7, "yaml": winner},
               "test": {"n": 30, "start_accuracy": 0.267, "winner_accuracy": 0.633, "dev_to_test_drop": 0.07,
                        "verdict": {"significant": True, "text": "winner beats start"}, "test_uses": 1,
                        "row_indices_hash": "rows30"}}
    rid = reg.add("search", name="search intent_queue", model="default", data_fingerprint="fp-t", metrics={},
                  payload=payload)
    md = tab_search.summary_markdown(payload, rid)
    assert "Never reached: **instruction, demos, calibration**" in md
    assert "technical→the (stop-word)" in md and "billing→pays (unrelated)" in md and "Only plain label words" in md
    assert "**intent_plain** 86.7%" in md and "23.4 pts below" in md


def test_small_things(tmp_path):
    """(10) A fresh editor is "not saved yet", not "unsaved edits (from not saved yet)"; the
    library picker names the editor's file; a search's Runs headline is its result, not "done",
    and a long model name is cut; a running training run's list entry shows no stale step; the
    search chart of one point has a sane token axis; Run shows the accuracy's interval and the
    majority baseline (test_one_class_prompt_is_flagged_with_the_majority_baseline)."""
    from types import SimpleNamespace

    from workbench.app import tab_runs, tab_train
    from workbench.app.common import UIState
    from workbench.app.tab_templates import _edit_status, library_for_editor
    from workbench.core.plots import search_progress
    from workbench.paths import library_dir

    assert _edit_status(UIState(), "name: x\ninput: '{{ t }}'\n") == "● **unsaved edits**, not in a file yet (Save as keeps them in your templates)"
    upd = library_for_editor(UIState(template_path=str(library_dir() / "bbc_headline_topic.yaml")))
    assert upd["value"].endswith("bbc_headline_topic.yaml::bbc_headline_topic")

    search = SimpleNamespace(kind="search", status="done", metrics={"test_winner_accuracy": 0.633,
                                                                    "test_start_accuracy": 0.267, "significant": True})
    assert tab_runs._headline(search) == "winner 63.3% test (start 26.7%) · significant"
    assert len(tab_runs._short("a-very-long-local-model-folder-name-with-a-date-2026")) == 24

    import workbench.app.tab_train as tt
    orig = tt.train_runs
    tt.train_runs = lambda: [{"run_dir": "/r1", "name": "r1", "state": "running", "step": 0, "total_steps": 20},
                             {"run_dir": "/r0", "name": "r0", "state": "done", "step": 20, "total_steps": 20}]
    try:
        labels = [lab for lab, _ in tab_train._run_choices()]
    finally:
        tt.train_runs = orig
    assert labels == ["r1 · running", "r0 · done · step 20/20"]

    fig = search_progress([{"tokens": 4615, "best": 0.6}], [{"tokens": 4615, "accuracy": 0.6, "n": 16, "stage": "x"}])
    assert tuple(fig.layout.xaxis.range)[0] == 0 and fig.layout.xaxis.range[1] > 4615


def test_compare_form_is_restored_from_its_job():
    """(2) Compare: after a reload its form shows the attached comparison's templates and
    settings (intent_plain vs intent_queue, 2 shots, limit 30), not the BBC pickers."""
    import threading

    from workbench.app import form_restore
    from workbench.jobs import queue as jobs

    a = "name: intent_plain\ninput: '{{ message }}'\nanswer_choices: {billing: [billing]}\n"
    b = a.replace("intent_plain", "intent_queue")
    spec = {"kind": "compare", "templates": [{"name": "intent_plain", "yaml": a}, {"name": "intent_queue", "yaml": b}],
            "models": [{"model": "default"}], "eval": {"shots": 2, "seed": 1, "method": "acc", "calibration": "none",
                                                      "split": "test", "limit": 30}}
    gate = threading.Event()
    job = jobs.start("compare", lambda ctx: gate.wait(10), meta={"spec": spec})
    try:
        out = form_restore.compare_form(job, 8)
    finally:
        gate.set()
    assert list(out[:6]) == [2, 1, "acc", "none", "test", 30] and out[6] == "" and out[7] == 2
    assert out[8] == a and out[9] == b and len(out) == 16
    assert form_restore.compare_values("") is None
