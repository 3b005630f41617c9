"""The Export tab driven through gradio_client: export the editor's template on the real
default model, poll the job, download the zip, and check it is a verified bundle whose
predictions match; then import the bundle back through the upload endpoint."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from support import App, load_data, wait_job

pytestmark = pytest.mark.model

LIB = Path(__file__).resolve().parent.parent / "templates_library"


def test_export_tab_download_zip(session, tmp_path, workbench_home):
    from gradio_client import handle_file

    from workbench.jobs.export import load_bundle, unzip_bundle

    app = App(show_error=True)
    try:
        client = app.client
        load_data(client, "bbc")
        yaml_text = (LIB / "bbc_headline_topic.yaml").read_text()
        # model, editor YAML, source, train run, name, merge, shots, seed, method, split, limit
        out = client.predict("default", yaml_text, "editor", "", "../ui bundle", False, 0, 0, "acc", "test", 6,
                             api_name="/export_start")
        job_id = out[0]
        st = wait_job(client, "/export_status", job_id, timeout=300)
        assert st["state"] == "done", st
        bundle_dir = Path(st["result_id"])
        assert bundle_dir.name == "ui-bundle" and bundle_dir.parent == workbench_home / "exports"

        summary, zip_path, card = client.predict(job_id, api_name="/export_open")
        assert "accuracy" in summary and "6 test examples" in summary
        # the card's YAML front matter is shown as a YAML block, not run together as prose
        assert "```yaml\nbase_model: HuggingFaceTB/SmolLM2-135M-Instruct" in card
        zp = Path(zip_path)
        assert zp.suffix == ".zip" and zp.exists()
        with zipfile.ZipFile(zp) as z:
            names = set(z.namelist())
        assert {"ui-bundle/manifest.json", "ui-bundle/template.yaml", "ui-bundle/metrics.json",
                "ui-bundle/lm_eval_task.yaml", "ui-bundle/README.md"} <= names

        root = unzip_bundle(zp, tmp_path / "dl")
        clf = load_bundle(root, session=session)
        saved = [json.loads(x)["pred"] for x in (root / "predictions.jsonl").read_text().splitlines()]
        assert clf.predict(clf.test_rows()) == saved

        msg = client.predict(handle_file(str(zp)), False, api_name="/import_bundle")
        assert "bbc_headline_topic.yaml" in msg
        assert (workbench_home / "templates" / "bbc_headline_topic.yaml").exists()
    finally:
        app.close()
