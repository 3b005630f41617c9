"""The Compare tab driven through gradio_client, as a script would: load data, start a
comparison of two library templates on the real default model, poll it, open it, filter the
disagreements, mark a winner, and run a small format-spread study."""
from __future__ import annotations

from pathlib import Path

import pytest
from support import App, load_data, wait_job

pytestmark = pytest.mark.model

LIB = Path("templates_library")


def test_compare_tab_end_to_end(session):
    from workbench.jobs.compare import get_winner_info
    from workbench.core.templates import load_template

    app = App()
    try:
        client = app.client
        load_data(client, "bbc")

        a = (LIB / "bbc_headline_topic.yaml").read_text()
        choice = f"{(LIB / 'bbc_headline_question.yaml').resolve()}::bbc_headline_question"
        b = client.predict(choice, api_name="/compare_library_yaml")
        assert load_template(b).name == "bbc_headline_question"
        yamls = [a, b] + [""] * 6
        # model, extra models, shots, seed, method, calibration, split, limit, baseline, n_boot, n columns, 8 YAMLs
        out = client.predict("default", "", 0, 0, "acc", "none", "test", 40, "", 300, 2, *yamls,
                             api_name="/compare_start")
        job_id = out[0]
        st = wait_job(client, "/compare_status", job_id, timeout=240)
        assert st["state"] == "done", st
        run_id = st["result_id"]

        views = client.predict(run_id, "all classes", api_name="/compare_open")
        verdict_md, board = views[0], views[1]   # (the per-user State output is not sent to clients)
        assert run_id in verdict_md
        assert "templates on the same 40 examples" in verdict_md
        # The verdict shown is the stored comparison's own, for its one pair of templates.
        from workbench.jobs.compare import open_comparison

        cmp = open_comparison(run_id)
        assert len(cmp.verdicts) == 1
        v = cmp.verdicts[0]
        assert v["text"] in verdict_md and v["b"] in verdict_md and cmp.reference in verdict_md
        names = {row[1].replace(" (reference)", "") for row in board["data"]}
        assert names == {"bbc_headline_topic", "bbc_headline_question"}
        # Plain values: the two confusion matrices show the reference and the other template.
        assert {views[4], views[6]} == names and views[8] == "all classes"

        # The class filter only keeps disagreements whose gold or a prediction is that class.
        all_rows = client.predict("all classes", api_name="/compare_disagreements")
        assert len(all_rows["data"]) == len(cmp.disagreements())
        # a class that occurs in the disagreements, so the filter has something to keep
        cls = next(iter(sorted({ex["gold"] for ex in cmp.disagreements()})), None)
        assert cls is not None, "two different templates disagreed on none of 40 rows"
        kept = client.predict(cls, api_name="/compare_disagreements")
        assert 0 < len(kept["data"]) == len(cmp.disagreements(cls)) <= len(all_rows["data"])
        hdr = kept["headers"]
        for r in kept["data"]:
            cells = dict(zip(hdr, r))
            assert cells["gold"] == cls or any(str(cells[n]).endswith(" " + cls) for n in
                                               ("bbc_headline_topic", "bbc_headline_question"))

        msg = client.predict("bbc_headline_question", api_name="/compare_mark_winner")
        assert "bbc_headline_question" in msg and run_id in msg
        info = get_winner_info()
        assert info["run_id"] == run_id and load_template(info["yaml"]).name == "bbc_headline_question"
        stored = client.predict(api_name="/compare_list")
        assert stored[0]["id"] == run_id and stored[0]["winner"] == "bbc_headline_question"

        # A format-spread study on column 1 (2 variants, 8 rows).
        out = client.predict("default", 1, 2, 0, 0, "acc", "none", "test", 8, *yamls, api_name="/robustness_spread")
        st = wait_job(client, "/compare_status", out[0], timeout=240)
        assert st["state"] == "done", st
        md, _fig, table = client.predict(st["result_id"], api_name="/robustness_open")
        assert "Format spread of bbc_headline_topic" in md and len(table["data"]) == 3
    finally:
        app.close()
