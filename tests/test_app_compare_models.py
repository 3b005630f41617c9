"""Model columns in the Compare tab, driven through gradio_client: the local default model and
the protocol reference server (tests/reference_server.py, serving the same default model) side
by side on two templates. The UI's job runs the same RunSpec as `workbench compare --model A
--model B` and Python's `execute(spec)`, and gives the same result."""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from support import App, load_data, wait_job

pytestmark = pytest.mark.model

ROOT = Path(__file__).resolve().parents[1]
TOPIC = ROOT / "templates_library" / "bbc_headline_topic.yaml"
QUESTION = ROOT / "templates_library" / "bbc_headline_question.yaml"
# 12 rows prove the same as 24: the remote column equals the local one row by row, and Python's
# execute(spec) equals the UI's run; each column is scored twice (UI, then Python), on two engines.
ROWS = 12


def _cli_spec(command: str):
    """The spec the shown `workbench compare ...` command builds (the real CLI parser)."""
    from workbench.cli import build_parser
    from workbench.commands.compare import spec_from_args

    return spec_from_args(build_parser().parse_args(shlex.split(command)[1:]))[0]


def test_compare_tab_models_side_by_side(ref, session, bbc):
    from workbench.core.spec import ModelRef, build_spec
    from workbench.core.templates import load_template
    from workbench.jobs.compare import open_comparison
    from workbench.jobs.runner import execute

    with App() as app:
        client = app.client
        load_data(client, "bbc")
        yamls = [TOPIC.read_text(), QUESTION.read_text()] + [""] * 6
        # model, extra models, shots, seed, method, calibration, split, limit, baseline, n_boot, n columns, 8 YAMLs
        form = ("default", ref.url, 0, 0, "acc", "none", "test", ROWS, "", 300, 2, *yamls)

        # "Show command": the equivalent CLI command names both models, and builds the same spec as Python
        md = client.predict(*form, api_name="/compare_command")
        command = re.search(r"```bash\n(.+?)\n```", md, re.S).group(1)
        assert f"--model default --model {ref.url}" in command
        cli = _cli_spec(command)
        py = build_spec("compare", templates=[(load_template(TOPIC), str(TOPIC)), (load_template(QUESTION), str(QUESTION))],
                        data=bbc, model=[ModelRef("default"), ModelRef(ref.url)], eval={"limit": ROWS},
                        options={"n_boot": 300})
        assert cli.hash() == py.hash() and [m.model for m in cli.models] == ["default", ref.url]

        seen = ref.faults()["seen"]["completions"]
        job_id = client.predict(*form, api_name="/compare_start")[0]
        st = wait_job(client, "/compare_status", job_id, timeout=400)
        assert st["state"] == "done", st
        assert ref.faults()["seen"]["completions"] > seen          # the remote column really went to the server
        run_id = st["result_id"]
        cmp = open_comparison(run_id)
        host = ref.url.split("//", 1)[1].split("/", 1)[0]
        assert cmp.settings["grid"] == {"models": ["default", host],
                                        "templates": ["bbc_headline_topic", "bbc_headline_question"]}
        assert len(cmp.names) == 4 and cmp.n == ROWS

        # the views: leaderboard with the four columns, the verdict with every pair of columns
        views = client.predict(run_id, "all classes", api_name="/compare_open")
        verdict_md, board = views[0], views[1]
        assert "4 columns (2 models × 2 templates)" in verdict_md and "Every pair of columns" in verdict_md
        assert {row[1].replace(" (reference)", "") for row in board["data"]} == set(cmp.names)
        pairs = cmp.settings["pairs"]
        assert len(pairs) == 6
        for t in ("bbc_headline_topic", "bbc_headline_question"):
            local, remote = f"{t} @ default", f"{t} @ {host}"
            # the server serves the same weights: its column predicts exactly what the local one does
            assert all(ex["preds"][local] == ex["preds"][remote] for ex in cmp.examples)
            v = next(v for v in pairs if {v["a"], v["b"]} == {local, remote})
            assert v["only_a"] == v["only_b"] == 0 and not v["significant"]
            assert f"**{v['a']}** vs **{v['b']}**" in verdict_md
        # the results matrix has those columns
        m = client.predict(json.dumps({"compare": run_id}), api_name="/results_matrix")
        assert [c["name"] for c in m["columns"]] == cmp.names and len(m["rows"]) == ROWS

        # Python's execute(spec) on the same spec gives the same comparison
        mine = execute(py, None, dataset=bbc, record=False).result
        assert mine.names == cmp.names
        assert [ex["preds"] for ex in mine.examples] == [ex["preds"] for ex in cmp.examples]
        assert mine.to_dict()["leaderboard"] == cmp.to_dict()["leaderboard"]
        assert [(v["a"], v["b"], v["p_used"]) for v in mine.settings["pairs"]] == \
               [(v["a"], v["b"], v["p_used"]) for v in pairs]


def test_model_columns_need_a_fitting_form(bbc):
    """Clear errors before any work: too many columns, a model listed twice."""
    from workbench.app.common import UIState
    from workbench.app.tab_compare import compare_spec
    from workbench.errors import ConfigError

    state = UIState(data_spec="bbc")
    y = TOPIC.read_text()
    with pytest.raises(ConfigError, match="listed twice"):
        compare_spec(state, "default", "default", 0, 0, "acc", "none", "test", 10, "", 2000, 1, y)
    with pytest.raises(ConfigError, match="at most 8"):
        compare_spec(state, "default", "a, b, c", 0, 0, "acc", "none", "test", 10, "", 2000, 3, y, y, y)
    with pytest.raises(ConfigError, match="two or more templates, or two or more models"):
        compare_spec(state, "default", "", 0, 0, "acc", "none", "test", 10, "", 2000, 1, y)
    spec, _, _ = compare_spec(state, "default", "openai:http://127.0.0.1:9/v1#x\nHuggingFaceTB/SmolLM2-360M", 0, 0,
                              "acc", "none", "test", 10, "", 2000, 1, y)
    assert [m.model for m in spec.models] == ["default", "openai:http://127.0.0.1:9/v1#x",
                                              "HuggingFaceTB/SmolLM2-360M"]


def test_comparison_holds_each_model_in_turn(ref, session):
    """The single-owner rule with several models: while a comparison holds the server's model,
    loading another model from elsewhere is refused naming the comparison; holding a server
    keeps the local model loaded (it holds no weights here), and nothing stays held after."""
    import threading

    from workbench.core.spec import ModelRef
    from workbench.engine.session import session_holders
    from workbench.errors import ModelBusy
    from workbench.jobs import service
    from workbench.jobs.runner import held_session

    errors: list[BaseException] = []

    def load_other():
        try:
            service.load_model("HuggingFaceTB/SmolLM2-360M-Instruct")
        except BaseException as e:  # noqa: BLE001 - the test inspects it
            errors.append(e)

    with held_session(ModelRef(ref.url), "the compare of T on bbc with default and the server") as s:
        assert s.backend == "remote" and session.loaded
        t = threading.Thread(target=load_other)
        t.start()
        t.join(60)
        assert len(errors) == 1 and isinstance(errors[0], ModelBusy), errors
        assert "in use by the compare of T on bbc with default and the server" in errors[0].message
    assert session_holders() == [] and session.loaded
