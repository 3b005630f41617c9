"""Seed variance and format spread as RunSpec kinds (issue 23): the Compare tab's study buttons,
`workbench compare --seeds / --spread` and Python build the same spec, its command rebuilds it, and running
the command gives the same study as `execute` in-process (real model, 6 rows)."""
from __future__ import annotations

import json
import shlex

import pytest

from test_spec import TOPIC, _cli_spec, _run, _ui_state, load
from workbench.core.spec import RunSpec, build_spec


@pytest.fixture(scope="module")
def bbc_small():
    from workbench.storage.data_load import load_dataset

    return load_dataset("bbc")


def _ui(kind, seeds="0,1", n=2, shots=1, seed=0, limit=6):
    from workbench.app.tab_compare import MAX_COLUMNS, robust_spec

    yamls = [TOPIC.read_text()] + [""] * (MAX_COLUMNS - 1)
    return robust_spec(kind, _ui_state(), "default", 1, seeds, n, shots, seed, "acc", "none", "test", limit, yamls)[0]


def _tmpl():
    return load(TOPIC)   # the tab's column has no file: compare by hash, which leaves paths out


def test_study_specs_same_from_every_door(bbc_small):
    ui = _ui("seeds", seeds="0, 1,2")
    cli = _cli_spec(["compare", "--data", "bbc", "--template", str(TOPIC), "--seeds", "0,1,2", "--shots", "1",
                     "--limit", "6"])
    py = build_spec("seed_variance", templates=[_tmpl()], data=bbc_small, eval={"shots": 1, "limit": 6},
                    options={"seeds": [0, 1, 2]})
    assert ui.kind == cli.kind == "seed_variance" and ui.options.seeds == "0,1,2"
    assert ui.hash() == cli.hash() == py.hash()
    assert _cli_spec(shlex.split(cli.command())[1:]).hash() == cli.hash()
    assert RunSpec.from_json(ui.to_json()).hash() == ui.hash()

    ui = _ui("spread", n=3, seed=2)
    cli = _cli_spec(["compare", "--data", "bbc", "--template", str(TOPIC), "--spread", "3", "--shots", "1",
                     "--seed", "2", "--limit", "6"])
    py = build_spec("format_spread", templates=[_tmpl()], data=bbc_small, eval={"shots": 1, "seed": 2, "limit": 6},
                    options={"spread": 3})
    assert ui.kind == "format_spread" and ui.hash() == cli.hash() == py.hash()
    assert _cli_spec(shlex.split(cli.command())[1:]).hash() == cli.hash()


def test_study_specs_refuse_what_cannot_run(bbc_small):
    from workbench.errors import ConfigError

    with pytest.raises(ConfigError, match="two distinct seeds"):
        build_spec("seed_variance", templates=[TOPIC], data=bbc_small, eval={"shots": 1}, options={"seeds": "1,1"})
    with pytest.raises(ConfigError, match="few-shot demonstrations"):
        build_spec("seed_variance", templates=[TOPIC], data=bbc_small, eval={"shots": 0}, options={"seeds": "0,1"})
    with pytest.raises(ConfigError, match="one template"):
        _cli_spec(["compare", "--data", "bbc", "--template", str(TOPIC), "--template", str(TOPIC), "--spread", "2"])
    with pytest.raises(ConfigError, match="one model"):
        build_spec("format_spread", templates=[TOPIC], data=bbc_small, model=["default", "other"])
    with pytest.raises(ConfigError, match="separate studies"):
        _cli_spec(["compare", "--data", "bbc", "--template", str(TOPIC), "--spread", "2", "--seeds", "0,1"])


@pytest.mark.model
def test_study_commands_reproduce_the_job(tmp_path, session, bbc_small):
    from workbench.jobs.runner import execute

    for kind, key in (("seed_variance", "per_seed"), ("format_spread", "variants")):
        spec = build_spec(kind, templates=[(load(TOPIC), str(TOPIC))], data=bbc_small,
                          eval={"shots": 1, "limit": 6}, options={"seeds": "0,1"} if kind == "seed_variance"
                          else {"spread": 2})
        mine = execute(spec, session, dataset=bbc_small, record=False).result.to_dict()
        out = tmp_path / f"{kind}.json"
        proc = _run(spec.command() + f" --no-registry --out {shlex.quote(str(out))}", tmp_path)
        assert proc.returncode == 0, proc.stderr
        theirs = json.loads(out.read_text())
        pick = ("seed", "name", "accuracy", "macro_f1", "demo_indices", "hash")
        assert [{k: r.get(k) for k in pick} for r in mine[key]] == [{k: r.get(k) for k in pick} for r in theirs[key]]
        assert mine["accuracy"] == theirs["accuracy"] and mine["n"] == theirs["n"] == 6
