"""Issue 16 through gradio_client (no model needed): label-column detection and its warning,
a template from the data, saved templates reachable by name from Compare, one Runs view for
every kind with a headline metric and shots, a paired diff of two stored evals, wording of
verdicts, and the template badge."""
from __future__ import annotations

import pytest

from support import load_data
from test_browser_ux import write_reviews
from test_matrix import _store


def test_own_data_templates_and_runs(app, tmp_path):
    """`app`: the module's one launched app (support/fixtures.py); each test has its own
    WORKBENCH_HOME, which the app reads on every call."""
    c = app.client
    # (2) a `sentiment` column is found (typical name, few values): no warning.
    path = write_reviews(tmp_path / "reviews.csv")
    out = load_data(c, "file or path…", path=str(path))
    assert "42 rows" in out[0] and "3 classes" in out[0] and "label column `sentiment`" in out[0]
    assert "label-warning" not in out[0]
    # (3) a template from the data: text column in, label column as gold, labels as choices.
    yaml_text = c.predict("", True, api_name="/new_template_from_data")[0]
    assert "{{ review }}" in yaml_text and "label_column: sentiment" in yaml_text and "dataset:" not in yaml_text
    assert "No problems" in c.predict(yaml_text, api_name="/validate_template")
    # (1) saved, it is listed first and Compare loads it by its bare name.
    c.predict(yaml_text, "my_reviews_a", False, api_name="/save_template")
    lib = c.predict(api_name="/list_templates")
    assert lib[0]["name"] == "my_reviews_a" and lib[0]["source"] == "user"
    assert "name: my_reviews_a" in c.predict("my_reviews_a", api_name="/compare_library_yaml")

    # (2) a column guessed only from its values: the summary says so and asks.
    odd = tmp_path / "odd.csv"
    odd.write_text("words,grp\n" + "".join(f"sentence number {i},{'xy'[i % 2]}\n" for i in range(20)))
    out = load_data(c, "file or path…", path=str(odd))
    assert "Is <code>grp</code> the label column?" in out[0]
    none = tmp_path / "none.csv"
    none.write_text("words\n" + "".join(f"sentence number {i}\n" for i in range(20)))
    out = load_data(c, "file or path…", path=str(none))
    assert "No label column found" in out[0]


def test_one_runs_view_and_diff():
    """The Runs tab's handlers, called directly (formatting needs no server; the gradio_client
    path of /list_runs and /open_run runs in test_app_api)."""
    from workbench.app import matrix
    from workbench.app.tab_runs import diff_runs, list_runs
    from workbench.storage.runs import RunRegistry

    reg = RunRegistry()
    a = _store(reg, "short", ["pos", "neg", "pos", "pos"])
    b = _store(reg, "long", ["pos", "pos", "neu", "pos"])
    reg.add("compare", name="compare: short vs long", metrics={"type": "comparison", "best": "short",
                                                              "best_accuracy": 0.75, "n": 4},
            settings={"eval": {"shots": 2}})
    reg.add("train", name="lora short", metrics={"adapter_accuracy": 0.9, "base_accuracy": 0.5},
            settings={"shots_per_class": 8})
    reg.add("export", name="bundle short", metrics={"accuracy": {"value": 0.8}})
    table = list_runs("", "all kinds")
    headers, rows = list(table.columns), table.values.tolist()
    assert headers[:2] == ["kind", "headline"] and "shots" in headers
    kinds = [r[0] for r in rows]
    assert set(kinds) == {"eval", "compare", "train", "export"}
    by_kind = {r[0]: r for r in rows}
    assert by_kind["train"][1] == "adapter 90.0% (base 50.0%)"
    assert by_kind["compare"][headers.index("shots")] == 2
    assert by_kind["export"][1] == "acc 80.0%"
    only = list_runs("", "train").values.tolist()
    assert [r[0] for r in only] == ["train"]
    # Two evals of the same rows: a paired comparison, worded with the winner first.
    verdict, shown = diff_runs([a, b])   # (the matrix below it gets the ids)
    assert shown == [a, b]
    import json

    m = matrix.matrix_json(json.dumps({"runs": [a, b]}))
    assert [col["name"] for col in m["columns"]] == ["short", "long"] and len(m["rows"]) == 4
    assert "2 templates on the same 4 examples" in verdict
    # Both are right on 3 of 4 rows, each on a row the other misses: one discordant pair each
    # way, so there is no detectable difference (and nothing "beats").
    assert "no detectable difference between" in verdict and " beats " not in verdict


def test_template_badge_names_the_template():
    from workbench.app.badge import template_badge

    text = "name: my_t\ninput: '{{ text }}'\nanswer_choices: {a: [a], b: [b]}\n"
    html = template_badge(text)
    assert "Template: <b>my_t</b>" in html and "<code>" in html
    assert "none" in template_badge("")
    assert "does not parse" in template_badge("name: [")


def test_small_things():
    """(10) CLI flags read as the page's words; `gpt2` is tried as a hub id (offline here:
    the hub error, not "not a hub id"); the model card's front matter is a YAML block."""
    from workbench.app.common import format_error
    from workbench.app.tab_export import card_markdown
    from workbench.engine.models import resolve_model
    from workbench.errors import ModelError

    msg = format_error(ModelError("offline", hint="pass the folder instead: --model DIR. Or use --model default."))
    assert "--" not in msg and "the folder in the Model box" in msg and "'default' in the Model box" in msg
    with pytest.raises(ModelError) as e:
        resolve_model("gpt2")
    assert "not a hub id" not in e.value.message and "gpt2" in e.value.message
    card = card_markdown("---\nlicense: apache-2.0\nbase_model: x\n---\n# My bundle\ntext")
    assert card.startswith("**Metadata") and "```yaml\nlicense: apache-2.0\nbase_model: x\n```" in card
    assert card.rstrip().endswith("# My bundle\ntext")


def test_stale_results_are_cleared_when_a_job_fails():
    """(5) A failed eval / comparison does not leave the previous results on screen."""
    import time

    from workbench.app import tab_compare, tab_run
    from workbench.app.common import UIState
    from workbench.errors import DataError
    from workbench.jobs import queue as jobs

    def boom(ctx):
        raise DataError("the data went away")
    job = jobs.start("eval", boom)
    for _ in range(100):
        if jobs.status(job)["state"] == "failed":
            break
        time.sleep(0.05)
    state = UIState(data_spec="bbc", last_run_id="20250101-000000-abcdef")   # an earlier run is shown
    out = tab_run.poll_run(state, job, False)
    assert "failed" in out[1] and "no results" in out[3] and out[0].last_run_id is None
    assert len(out[6]) == 0                                   # the predictions table is empty
    out = tab_compare.poll_compare("20250101-000000-abcdef", job, tab_compare.ALL_CLASSES)
    assert "no verdict" in out[3] and out[2] == ""            # verdict replaced, shown comparison cleared
    # Starting a job clears the same views (wired to the start buttons' success).
    assert len(tab_compare.cleared_views()) == 13 and "Comparing" in tab_compare.cleared_views()[1]
    assert "Running" in tab_run.cleared_views()[0]


def test_run_progress_shows_stage_counts_and_the_jobs_steady_eta(monkeypatch):
    """(8) The Run tab's progress line shows the core's stage counts while prompts build and
    while rows are scored, and the job's steady ETA (core.progress.SteadyEta, tests/test_progress.py)."""
    from workbench.app import tab_run
    from workbench.core.progress import Nested
    from workbench.jobs.queue import Job, JobContext

    now = [50.0]
    monkeypatch.setattr("workbench.core.progress.time.monotonic", lambda: now[0])
    job = Job(id="eval-y", kind="eval", resource=None, state="running", meta={"template": "T", "data": "bbc"})
    progress = Nested(JobContext(job).progress, 0, 1, "")
    progress(0, 40, "building prompts")
    now[0] += 1.5
    progress(20, 40, "building prompts")
    html = tab_run.progress_html(job.to_status())
    assert "T on bbc · building prompts 20/40 ·" in html and "ETA" in html
    progress(0, 40, "scoring")
    now[0] += 3
    progress(10, 40, "scoring")
    html = tab_run.progress_html(job.to_status())
    assert "scoring 10/40 rows" in html and "ETA 9 s" in html   # 675 of 1000 units left at 325 per 4.5 s
