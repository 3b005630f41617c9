"""Two users at once through gradio_client: while user A's evaluation runs, user B previews a
prompt and tries to switch the model. Nothing is unloaded from under A's job (B is told which
job holds the model), B's preview is right, and A's predictions equal a plain in-process eval."""
from __future__ import annotations

import threading
import time

import pytest

from support import App, load_data
from test_app_api import GOOD

pytestmark = pytest.mark.model


def _tiny_model_folder(tmp_path):
    """A small random Llama with the default model's tokenizer: a second, loadable model."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from workbench.engine.models import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model("default").path)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512)
    folder = tmp_path / "tiny"
    LlamaForCausalLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def test_preview_run_and_model_switch_at_once(tmp_path, session, bbc):
    from gradio_client import Client

    from workbench.core.spec import build_spec
    from workbench.core.templates import load_template
    from workbench.jobs.inference import build_prompts, eval_rows
    from workbench.jobs.runner import execute

    tiny = _tiny_model_folder(tmp_path)
    app = App()
    try:
        a = app.client
        b = Client(f"http://127.0.0.1:{app.port}/", verbose=False)
        for c in (a, b):
            load_data(c, "bbc")
        job_id = a.predict(GOOD, "default", 2, 1, "acc", "none", "test", 150, api_name="/run_eval")[0]
        end = time.time() + 120
        while a.predict(job_id, api_name="/run_status")["state"] != "running":
            assert time.time() < end, "the eval never started"
            time.sleep(0.2)

        results: dict = {}

        def preview():
            results["preview"] = b.predict(GOOD, "test", 3, 0, 0, "default", api_name="/preview")

        def switch():
            try:
                results["switch"] = b.predict(tiny, api_name="/load_model")
            except Exception as e:  # noqa: BLE001 - the refusal arrives as a client-side error
                results["switch_error"] = str(e)

        threads = [threading.Thread(target=preview), threading.Thread(target=switch)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        still = a.predict(job_id, api_name="/run_status")["state"]
        assert still in ("running", "done"), still
        # B was refused, and told which job holds the model
        assert "switch" not in results, results.get("switch")
        assert "in use by the eval of api_topic on bbc" in results["switch_error"]

        # B's preview is the exact prompt of test row 3, zero-shot, on the model A is using
        t = load_template(GOOD)
        spec = build_spec("eval", templates=[t], data=bbc, model="default",
                          eval={"shots": 2, "seed": 1, "limit": 150})
        rows, pool = eval_rows(bbc, spec.eval)
        zero = build_spec("eval", templates=[t], data=bbc, eval={"shots": 0, "seed": 0}).eval
        assert results["preview"][0] == build_prompts(t, rows.iloc[[3]], pool, zero, session)[0]

        end = time.time() + 600
        while (st := a.predict(job_id, api_name="/run_status"))["state"] not in ("done", "failed", "cancelled"):
            assert time.time() < end
            time.sleep(0.5)
        assert st["state"] == "done", st
        # A's result: the same predictions as the same spec run in-process
        shown = a.predict(st["result_id"], False, api_name="/open_run")[3]
        mine = execute(spec, session, dataset=bbc, record=False).result
        pred_col = shown["headers"].index("pred")
        assert [r[pred_col] for r in shown["data"]] == [r["pred"] for r in mine.records][:len(shown["data"])]
        assert len(mine.records) == 150

        # With the job done, B may switch (and back, for the other tests)
        assert "tiny" in b.predict(tiny, api_name="/load_model")
        assert "default" in b.predict("default", api_name="/load_model")
    finally:
        app.close()
