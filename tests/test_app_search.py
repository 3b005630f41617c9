"""The Search tab driven through gradio_client, as a script would: load data, start a small
search on the real default model, poll it (live run id), open it, cancel another and resume it."""
from __future__ import annotations


import pytest
from support import App, load_data, wait_for, wait_job

pytestmark = pytest.mark.model

WEAK = """name: bbc_weak_start
input: |-
  Text: {{ title }}
  Label:
answer_choices:
  business: [A]
  entertainment: [B]
  politics: [C]
  sports: [D]
  tech: [E]
"""


def test_search_tab_end_to_end(session, tmp_path):
    from gradio_client import Client
    from test_app_concurrency import _tiny_model_folder

    from workbench.core.templates import load_template
    from workbench.storage.library import list_library

    tiny_model = _tiny_model_folder(tmp_path)

    app = App()
    try:
        client = app.client
        load_data(client, "bbc")

        # model, start YAML, axes, token budget, seconds, max dev rows, test rows, shots, selections,
        # calibrations, proposed instructions, score on test, winner name
        # (40 dev rows: long enough that the model switch below lands while it runs)
        form = ["default", WEAK, ["calibration"], 0, 0, 40, 12, "0", ["random"], ["none", "pmi"], 0, True, "ui_winner"]
        out = client.predict(*form, api_name="/search_start")
        job_id = out[0]
        # A second user tries to switch the model while the search runs: refused, naming the search.
        wait_for(lambda: client.predict(job_id, api_name="/search_status")["state"] in ("running", "done", "failed"),
                 120, "the search to start")
        other = Client(f"http://127.0.0.1:{app.port}/", verbose=False)
        with pytest.raises(Exception, match="search from bbc_weak_start on bbc"):
            other.predict(tiny_model, api_name="/load_model")
        st = wait_job(client, "/search_status", job_id)
        assert st["state"] == "done", st
        run_id = st["result_id"]
        assert st["run_id"] == run_id

        rid, md, _fig, board, diff, win_yaml = client.predict(run_id, api_name="/search_open")
        assert rid == run_id
        from workbench.storage.runs import RunRegistry

        # the search was scored by the held model, with no adapter, and records both
        rec = RunRegistry().get(run_id)
        assert rec.model == session.identity and not rec.adapter
        assert "Held-out test" in md and "n=12" in md and "search(es)" in md
        assert len(board["data"]) >= 2          # start + at least one calibration
        assert load_template(win_yaml).name == "ui_winner"
        assert any(t["name"] == "ui_winner" for t in list_library())   # saved as a user template

        # Cancel a search at once, then resume it by run id.
        form2 = list(form)
        form2[2], form2[-1] = ["calibration"], "ui_winner_2"
        out = client.predict(*form2, api_name="/search_start")
        job2 = out[0]
        wait_for(lambda: (lambda st: st.get("run_id") or st["state"] in ("done", "failed", "cancelled"))(
            client.predict(job2, api_name="/search_status")), 20, "the search run to exist")   # then cancel
        client.predict(job2, api_name="/search_cancel")
        st2 = wait_job(client, "/search_status", job2)
        run2 = st2["run_id"]
        if st2["state"] == "cancelled":
            out = client.predict("default", run2, 0, 0, api_name="/search_resume")
            st3 = wait_job(client, "/search_status", out[0])
            assert st3["state"] == "done", st3
            assert st3["result_id"] == run2
        else:   # it finished before the cancel arrived: still a valid, complete run
            assert st2["state"] == "done", st2
        _, md2, *_ = client.predict(run2, api_name="/search_open")
        assert "Held-out test" in md2
    finally:
        app.close()
