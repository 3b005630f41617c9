"""Issue 23: a search from the Search tab runs as a RunSpec on the model service, so it holds its model and
adapter like every model job. Through gradio_client: user A starts a search with an adapter attached in the
model bar; user B tries to switch the model and to detach the adapter while it runs. Both are refused with
ModelBusy naming the search, and the search records the model identity it was scored with, adapter included."""
from __future__ import annotations

import pytest

from support import App, load_data, wait_for, wait_job
from test_app_search import WEAK

pytestmark = pytest.mark.model


def test_a_running_search_holds_its_model_and_adapter(session, tmp_path):
    from gradio_client import Client

    from adapters import write_random_lora
    from test_app_concurrency import _tiny_model_folder
    from workbench.engine.models import resolve_model
    from workbench.engine.session import adapter_content_hash, get_session
    from workbench.storage.runs import RunRegistry

    tiny = _tiny_model_folder(tmp_path)
    lora = str(write_random_lora(resolve_model("default").path, tmp_path / "lora", scale=0.02))
    app = App()
    try:
        a = app.client
        load_data(a, "bbc")
        get_session("default").attach_adapter(lora)          # what the model bar's attach does
        # model, start, axes, budgets (none), 40 dev rows, 8 test rows, shots, selections, calibrations, ...
        form = ["default", WEAK, ["calibration"], 0, 0, 40, 8, "0", ["random"], ["none", "pmi"], 0, True, "held_win"]
        job = a.predict(*form, api_name="/search_start")[0]
        wait_for(lambda: a.predict(job, api_name="/search_status")["state"] in ("running", "done", "failed"),
                 120, "the search to start")
        b = Client(f"http://127.0.0.1:{app.port}/", verbose=False)
        with pytest.raises(Exception, match="search from bbc_weak_start on bbc"):
            b.predict(tiny, api_name="/load_model")
        with pytest.raises(Exception, match="search from bbc_weak_start on bbc"):
            b.predict(api_name="/train_detach")
        st = wait_job(a, "/search_status", job)
        assert st["state"] == "done", st
        run_id = st["result_id"]
        assert st["run_id"] == run_id
        # the job's recorded command is the search, with the adapter
        assert st["meta"]["command"].startswith("workbench search") and f"--adapter {lora}" in st["meta"]["command"]

        reg = RunRegistry()
        rec = reg.get(run_id)
        ident = reg.payload(run_id)["model"]
        assert rec.adapter == lora
        assert ident["adapter_sha256"] == adapter_content_hash(lora) and ident["model"] == session.identity
        assert get_session("default").adapter == lora          # nothing changed it under the search
    finally:
        s = get_session("default")
        if s.adapter:
            s.detach_adapter()
        app.close()
