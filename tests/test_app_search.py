"""The Search tab driven through gradio_client, as a script would: load data, start a small
search on the real default model, poll it (live run id), open it, cancel another and resume it."""
from __future__ import annotations

import time

import pytest
from remote_servers import free_port

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


def _wait(client, job_id: str, timeout: float = 300) -> dict:
    end = time.time() + timeout
    st = {}
    while time.time() < end:
        st = client.predict(job_id, api_name="/search_status")
        if st["state"] in ("done", "failed", "cancelled"):
            return st
        time.sleep(0.5)
    raise AssertionError(f"search job {job_id} did not finish: {st}")


def test_search_tab_end_to_end(session, tmp_path):
    from gradio_client import Client
    from test_app_concurrency import _tiny_model_folder

    tiny_model = _tiny_model_folder(tmp_path)

    from workbench.app.main import build_app, launch_kwargs
    from workbench.core.templates import list_library, load_template

    demo = build_app(model="default", data="bbc")
    try:
        port = free_port()
        demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                    **launch_kwargs())
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        client.predict("bbc", None, "", None, None, 0, api_name="/load_data")

        # model, start YAML, axes, token budget, seconds, max dev rows, test rows, shots, selections,
        # calibrations, proposed instructions, score on test, winner name
        # (40 dev rows: long enough that the model switch below lands while it runs)
        form = ["default", WEAK, ["calibration"], 0, 0, 40, 12, "0", ["random"], ["none", "pmi"], 0, True, "ui_winner"]
        out = client.predict(*form, api_name="/search_start")
        job_id = out[0]
        # A second user tries to switch the model while the search runs: refused, naming the search.
        end = time.time() + 120
        while client.predict(job_id, api_name="/search_status")["state"] not in ("running", "done", "failed"):
            assert time.time() < end, "the search never started"
            time.sleep(0.1)
        other = Client(f"http://127.0.0.1:{port}/", verbose=False)
        with pytest.raises(Exception, match="search from bbc_weak_start on bbc"):
            other.predict(tiny_model, api_name="/load_model")
        st = _wait(client, job_id)
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
        for _ in range(200):   # wait until the run exists, then cancel
            st2 = client.predict(job2, api_name="/search_status")
            if st2.get("run_id") or st2["state"] in ("done", "failed", "cancelled"):
                break
            time.sleep(0.1)
        client.predict(job2, api_name="/search_cancel")
        st2 = _wait(client, job2)
        run2 = st2["run_id"]
        if st2["state"] == "cancelled":
            out = client.predict("default", run2, 0, 0, api_name="/search_resume")
            st3 = _wait(client, out[0])
            assert st3["state"] == "done", st3
            assert st3["result_id"] == run2
        else:   # it finished before the cancel arrived: still a valid, complete run
            assert st2["state"] == "done", st2
        _, md2, *_ = client.predict(run2, api_name="/search_open")
        assert "Held-out test" in md2
    finally:
        demo.close()
