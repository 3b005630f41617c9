"""Issue 29 (hardening, second pass), the exposed server: `hf:` names that are local folders,
the Host check against DNS rebinding, one decision of the bound address, and the allow-list of
inference-server URLs. Live tests bind 127.0.0.1 on a free port."""
from __future__ import annotations

import pytest

from remote_servers import free_port


@pytest.fixture
def restricted(workbench_home):
    from workbench import paths

    paths.restrict_server_paths()
    yield paths
    paths.unrestrict_server_paths()


# ---------------------------------------------------------------------------- item 1: hf: + local folder
def test_hf_name_of_a_local_folder_is_refused_when_restricted(tmp_path, monkeypatch, restricted):
    import gradio as gr

    from workbench.app.common import UIState
    from workbench.app.tab_data import load_data

    private = tmp_path / "private"
    private.mkdir()
    (private / "rows.csv").write_text("text,label\nthe secret row,x\nanother secret,y\n")
    monkeypatch.chdir(tmp_path)
    for name in (f"hf:{private}", "hf:private", "hf:./private", "hf:~/../" + str(private).lstrip("/"),
                 f"hf:{private}:default"):
        with pytest.raises(gr.Error) as e:
            load_data(UIState(), "file or path…", None, name, None, None, 0)
        assert "secret" not in str(e.value), name
        assert "hub dataset" in str(e.value), (name, str(e.value))
    # a well-formed hub id still goes to the hub (offline here: a hub error, not the path refusal)
    from workbench import paths

    assert paths.check_hub_id("hf:ag_news") == "hf:ag_news"
    assert paths.check_hub_id("hf:owner/name:config") == "hf:owner/name:config"
