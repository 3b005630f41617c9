"""The Train tab driven through gradio_client, as a script would: a tiny real LoRA run on the
default model (SmolLM2-135M; 2 headlines per class, 3 steps, dev/test of 10 rows), polled to
the end; its curves and base-vs-adapter figures; attach and detach its adapter on the shared
session (the model bar follows); and a bad setting answered at once with a readable error."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from support import App, load_data

pytestmark = pytest.mark.model

# data mode, k, lora r/alpha/dropout, targets, lr, epochs, steps, batch, accum, max length, warm-up,
# seed, eval every, patience, mode, dev rows, test rows
TINY = ["k per class", 2, 8, 16, 0.05, [], 5e-4, 1, 3, 4, 1, 64, 0.1, 0, 2, 3, "lm", 10, 10]


def test_train_tab_start_poll_attach_detach(workbench_home):
    from gradio_client.exceptions import AppError

    app = App(show_error=True)
    try:
        c = app.client
        load_data(c, "bbc")
        ref = next(t["ref"] for t in c.predict(api_name="/list_templates") if t["name"] == "bbc_headline_topic")
        yaml_text = c.predict(ref, "", True, api_name="/load_template")[0]
        assert "bbc_headline_topic" in yaml_text

        d = c.predict("default", api_name="/train_defaults")
        assert d["model_type"] == "llama" and d["target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj"]
        assert "gate_proj" in d["linear_modules"] and d["config"]["lr"] > 0

        # A learning rate of 0 is refused before any work, with the message and its hint.
        bad = list(TINY)
        bad[6] = 0
        with pytest.raises(AppError) as e:
            c.predict(yaml_text, "default", *bad, api_name="/train_start")
        assert "learning rate must be > 0" in str(e.value) and "Hint:" in str(e.value)
        assert c.predict(api_name="/train_runs") == []   # nothing was started

        t0 = time.time()
        run_dir = c.predict(yaml_text, "default", *TINY, api_name="/train_start")[0]
        assert Path(run_dir).parent == workbench_home / "train"
        seen_running = False
        while True:
            st = c.predict(run_dir, api_name="/train_status")
            seen_running |= st["state"] == "running"
            if st["state"] not in ("pending", "running"):
                break
            assert time.time() - t0 < 240, st
            time.sleep(0.5)
        assert st["state"] == "done" and st["result"] and st["has_adapter"], st
        assert st["step"] == st["total_steps"] == 3
        assert set(st["dev_per_class_f1"]) == {"business", "entertainment", "politics", "sports", "tech"}

        progress, curves, evals, result_md, per_class, conf_base, conf_adapter = c.predict(
            run_dir, api_name="/train_open")
        assert "done" in progress and "step 3/3" in progress
        # Curves: the loss at every step and the dev metrics at steps 0, 2 and 3.
        traces = {t["name"]: t for t in _fig(curves)["data"]}
        assert traces["train loss"]["x"] == [1, 2, 3]
        assert traces["dev macro-F1"]["x"] == [0, 2, 3]
        assert [r[0] for r in evals["data"]] == [0, 2, 3]
        assert "base + adapter" in result_md and "| accuracy |" in result_md and "F1 adapter" in result_md
        for f in (per_class, conf_base, conf_adapter):
            assert f and "data" in _fig(f) and len(_fig(f)["data"]) > 0
        assert {t["name"] for t in _fig(per_class)["data"]} == {"base", "base + adapter"}

        runs = c.predict(api_name="/train_runs")
        assert [r["run_dir"] for r in runs] == [run_dir] and runs[0]["state"] == "done"

        # Attach: the model bar reports the adapter; detach: it is gone again.
        bar, msg = c.predict("default", run_dir, api_name="/train_attach")
        adapter_dir = str(Path(run_dir) / "adapter")
        assert f"adapter `{adapter_dir}`" in bar and "attached" in msg
        assert "scoring: transformers" in bar          # peft scores; the built-in decoder has no adapters
        assert adapter_dir in c.predict(api_name="/model_status")
        bar, msg = c.predict(api_name="/train_detach")
        assert "no adapter" in bar and "detached" in msg
        assert "scoring: native" in bar                # the default model passed the fast-path check in setup
        assert "no adapter" in c.predict(api_name="/model_status")

        with pytest.raises(AppError) as e:
            c.predict(str(workbench_home / "nowhere"), api_name="/train_status")
        assert "No training run at" in str(e.value)
    finally:
        from workbench.engine.session import current_session

        s = current_session()
        if s is not None and s.adapter:
            s.detach_adapter()
        app.close()


def _fig(v) -> dict:
    """A gr.Plot output as gradio_client returns it: the plotly figure JSON (possibly wrapped)."""
    import json

    if isinstance(v, dict) and "plot" in v:
        v = v["plot"]
    return json.loads(v) if isinstance(v, str) else v
