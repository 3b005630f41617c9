"""Search as a RunSpec (issue 23): the Search tab, `workbench search` and Python build the same spec, its
command rebuilds it, a resumed search's spec is the same from both doors, and running the command gives the
same search (candidates, scores, winner, test verdict) as `execute` in-process (real model, tiny sizes)."""
from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from test_spec import TOPIC, _cli_spec, _run, _ui_state, load
from workbench.core.spec import RunSpec, build_spec

# a small search: two calibrations on 8 dev rows, 6 test rows, no budget, nothing saved
FORM = dict(axes=["calibration"], budget_tokens=0, budget_seconds=0, max_dev_rows=8, test_limit=6, shots="0",
            selections=["random"], calibrations=["none", "pmi"], propose=0, evaluate_test=True, winner_name="")
CLI = ["search", "--data", "bbc", "--template", str(TOPIC), "--axes", "calibration", "--budget-tokens", "0",
       "--budget-seconds", "0", "--max-dev-rows", "8", "--test-limit", "6", "--shots", "0", "--selections", "random",
       "--calibrations", "none,pmi"]


@pytest.fixture(scope="module")
def bbc_small():
    from workbench.storage.data_load import load_dataset

    return load_dataset("bbc")


def _ui_spec(resume=None, **over):
    from workbench.app.tab_search import _config, search_spec

    f = {**FORM, **over}
    cfg = _config(f["axes"], f["budget_tokens"], f["budget_seconds"], f["max_dev_rows"], f["test_limit"], f["shots"],
                  f["selections"], f["calibrations"], f["propose"], f["evaluate_test"], f["winner_name"])
    return search_spec(_ui_state(TOPIC, TOPIC.read_text()), "default", (load(TOPIC), str(TOPIC)), cfg, resume=resume)


def test_search_spec_same_from_every_door(bbc_small):
    ui = _ui_spec()
    cli = _cli_spec(CLI)
    py = build_spec("search", templates=[(load(TOPIC), str(TOPIC))], data=bbc_small, model="default",
                    search={"axes": ["calibration"], "budget_tokens": None, "budget_seconds": None, "max_dev_rows": 8,
                            "test_limit": 6, "shots": [0], "selections": ["random"], "calibrations": ["none", "pmi"]})
    assert ui.search == cli.search == py.search
    assert ui.hash() == cli.hash() == py.hash()
    assert ui.search.budget_tokens is None and ui.eval.shots == load(TOPIC).fewshot.k   # demos: the template's
    # the command rebuilds the very spec, through the shell, and the JSON too
    assert _cli_spec(shlex.split(ui.command())[1:]).hash() == ui.hash()
    assert RunSpec.from_json(ui.to_json()).hash() == ui.hash()
    # the old flag names still work (--verbalizers, --formats, --no-test, --no-save)
    old = _cli_spec(CLI + ["--verbalizers", "3", "--formats", "2", "--no-test", "--no-save"])
    assert (old.search.n_verbalizers, old.search.n_formats, old.search.evaluate_test, old.search.save_winner) == \
        (3, 2, False, False)
    assert _cli_spec(shlex.split(old.command())[1:]).hash() == old.hash()


def test_search_spec_checks_its_settings(bbc_small):
    from workbench.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown or no search axes"):
        build_spec("search", templates=[TOPIC], data=bbc_small, search={"axes": ["colour"]})
    with pytest.raises(ConfigError, match="Unknown search setting"):
        build_spec("search", templates=[TOPIC], data=bbc_small, search={"budget": 3})
    with pytest.raises(ConfigError, match="does not take the evaluation setting"):
        build_spec("search", templates=[TOPIC], data=bbc_small, eval={"calibration": "pmi"})
    # a search spec's default settings are SearchConfig's, and the spec of another kind has none
    from workbench.core.config import SearchConfig

    assert build_spec("search", templates=[TOPIC], data=bbc_small).search == SearchConfig()
    assert "search" not in build_spec("eval", templates=[TOPIC], data=bbc_small).to_dict()


def test_resumed_search_spec_same_from_both_doors(bbc_small):
    """`workbench search --resume ID --budget-seconds 30` and the tab's Resume give one spec: the stored start."""
    from workbench.storage.runs import RunRegistry

    start = load(TOPIC)
    rid = RunRegistry().add("search", name="s", template_hash=start.content_hash(), template_yaml=start.to_yaml(),
                            model="m", adapter=None, data_fingerprint=bbc_small.fingerprint(), data_name="bbc", seed=0,
                            settings={}, metrics={}, payload={"start": {"name": start.name, "yaml": start.to_yaml()},
                                                              "settings": {}}, status="cancelled")
    from workbench.app.tab_search import search_spec
    from workbench.core.config import SearchConfig

    ui = search_spec(_ui_state(TOPIC, TOPIC.read_text()), "default", start, SearchConfig(budget_tokens=None,
                     budget_seconds=30.0), resume=rid)
    cli = _cli_spec(["search", "--data", "bbc", "--resume", rid, "--budget-tokens", "0", "--budget-seconds", "30"])
    assert ui.hash() == cli.hash() and "--template" not in ui.argv() and ui.to_dict()["options"] == {"resume": rid}
    assert _cli_spec(ui.argv()[1:]).hash() == ui.hash()


@pytest.mark.model
def test_search_command_reproduces_the_job(tmp_path, session, bbc_small):
    """`spec.command()` run as a process gives the search `execute` gives in-process."""
    from workbench.jobs.runner import execute

    spec = _ui_spec()
    mine = execute(spec, session, dataset=bbc_small, record=False).result
    out = tmp_path / "search.json"
    proc = _run(spec.command() + f" --out {shlex.quote(str(out))}", tmp_path)
    assert proc.returncode == 0, proc.stderr
    theirs = json.loads(out.read_text())
    a, b = mine.payload, theirs

    def scores(p):
        return {k: (c["n"], c["accuracy"], c["cache"] if "cache" in c else None) for k, c in p["candidates"].items()}

    assert scores(a) == scores(b) and a["cache"] == b["cache"]
    assert a["winner"]["key"] == b["winner"]["key"]
    assert {k: a["test"][k] for k in ("n", "start_accuracy", "winner_accuracy")} == \
        {k: b["test"][k] for k in ("n", "start_accuracy", "winner_accuracy")}
    assert a["model"] == b["model"]          # the same model identity (no adapter) recorded by both
    assert Path(out).exists() and theirs["run_id"]
