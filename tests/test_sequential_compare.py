"""Sequential comparisons as a job: one RunSpec from every door (Python, CLI, Compare tab), the
stopping rule, what it spent, and a real-model run through execute(spec) and the CLI that must
reach the same decision on the same rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.core.spec import build_spec
from workbench.errors import ConfigError

LIB = "templates_library"
TOPIC, PHRASE = f"{LIB}/bbc_headline_topic.yaml", f"{LIB}/bbc_headline_phrase_topic.yaml"


def _cli_spec(argv):
    from workbench.cli import build_parser
    from workbench.commands.compare import spec_from_args

    return spec_from_args(build_parser().parse_args(argv))[0]


def test_the_stopping_rule_is_one_spec_from_every_door(bbc):
    from workbench.app.common import UIState
    from workbench.app.tab_compare import compare_spec
    from workbench.core.options import CompareOptions

    py = build_spec("compare", templates=[TOPIC, PHRASE], data=bbc, eval={"limit": 60},
                    options={"sequential": True, "alpha": 0.05, "margin": 0.01, "first_batch": 32})
    # defaults are left out, so every door gives the same hash and the command stays short
    assert py.options == CompareOptions(sequential=True, margin=0.01) and py.to_dict()["options"] == \
        {"sequential": True, "margin": 0.01}
    argv = py.argv()
    assert "--sequential" in argv and argv[argv.index("--margin") + 1] == "0.01"
    cli = _cli_spec(argv[1:])
    assert cli.hash() == py.hash()
    yamls = [Path(TOPIC).read_text(), Path(PHRASE).read_text()] + [""] * 6
    ui, _, _ = compare_spec(UIState(data_spec="bbc"), "default", "", 0, 0, "acc", "none", "test", 60, "", 2000, 2,
                            *yamls, True, 1.0)    # margin in points on the form
    assert ui.options == py.options and ui.eval == py.eval
    # the form without the new inputs (an older API client) is a fixed-n comparison
    plain, _, _ = compare_spec(UIState(data_spec="bbc"), "default", "", 0, 0, "acc", "none", "test", 60, "", 2000, 2,
                               *yamls)
    assert not plain.options.sequential and "sequential" not in plain.to_dict()["options"]


def test_bad_stopping_rules_are_refused(bbc):
    with pytest.raises(ConfigError, match="margin"):
        build_spec("compare", templates=[TOPIC, PHRASE], data=bbc, options={"sequential": True, "margin": 5})
    with pytest.raises(ConfigError, match="alpha"):
        build_spec("compare", templates=[TOPIC, PHRASE], data=bbc, options={"sequential": True, "alpha": 2})
    with pytest.raises(ConfigError, match="only apply to a sequential"):
        _cli_spec(["compare", "--data", "bbc", "--template", TOPIC, "--template", PHRASE, "--margin", "0.01"])


def test_sequential_job_with_a_fake_session(bbc):
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from test_compare import FakeSession

    from workbench.jobs.runner import execute

    spec = build_spec("compare", templates=[TOPIC, PHRASE], data=bbc, eval={"limit": 200},
                      options={"sequential": True, "first_batch": 16})
    seen = []
    res = execute(spec, FakeSession(), dataset=bbc, record=True, progress=lambda d, t, m="": seen.append(m)).result
    seq = res.settings["sequential"]
    assert seq["rows_scored"] == sum(seq["batches"]) <= 200
    assert [look["rows"] for look in seq["looks"]][-1] == seq["rows_scored"]
    (pair,) = seq["pairs"]
    lo, hi = pair["cs"]
    assert lo <= pair["delta_acc"] <= hi
    if seq["stop_reason"] == "winner":
        assert pair["decision"] in ("A", "B") and (lo > 0 or hi < 0) and pair["p_always"] < 0.05
        (loser,) = seq["dropped"]
    else:
        assert seq["rows_scored"] == 200 and pair["decision"] == "not yet" and lo < 0 < hi
    (v,) = res.verdicts
    assert v["text"] == pair["text"] and v["sequential"] and "confidence sequence" in v["text"]
    # the spend, and the full run at the same rate
    s, f = seq["spent"], seq["full_run_estimate"]
    assert s["tokens_forwarded"] > 0 and f["tokens_forwarded"] >= s["tokens_forwarded"]
    assert any(" in [" in m for m in seen[1:] if m.startswith("rows"))   # the interval in the progress line

    # the Compare tab reopens it: the stop and the spend in the verdict, the sequence in the plot
    from workbench.app.tab_compare import compare_open

    views = compare_open(res.run_id)
    assert "Stopping early" in views[1] and seq["stopped"] in views[1] and "confidence sequence" in views[1]
    assert views[3].layout.title.text.startswith("Confidence sequence")


@pytest.mark.model
def test_real_sequential_compare_same_decision_from_execute_and_cli(bbc, session, tmp_path, capsys):
    """headline_topic vs headline_phrase_topic differ by ~20 points on bbc (BENCHMARKS.md): the
    sequential comparison settles before the budget, and the CLI reaches the same decision on
    the same rows."""
    from workbench.cli import main
    from workbench.jobs.runner import execute

    spec = build_spec("compare", templates=[TOPIC, PHRASE], data=bbc, eval={"limit": 60},
                      options={"sequential": True, "first_batch": 20, "price_per_mtok": 0.5})
    res = execute(spec, session, dataset=bbc, record=False).result
    seq = res.settings["sequential"]
    (pair,) = seq["pairs"]
    assert seq["rows_scored"] <= 60 and pair["decision"] in ("A", "B", "not yet")
    assert seq["spent"]["tokens_forwarded"] > 0 and seq["cost"] == pytest.approx(
        (seq["spent"]["tokens_forwarded"] + seq["spent"]["tokens_generated"]) * 0.5 / 1e6)

    out = tmp_path / "seq.json"
    rc = main(spec.argv()[1:] + ["--out", str(out), "--no-registry"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "sequential: stopped after" in printed and "confidence sequence" in printed
    cli = json.loads(out.read_text())["settings"]["sequential"]
    assert (cli["rows_scored"], cli["pairs"][0]["decision"]) == (seq["rows_scored"], pair["decision"])
    assert cli["pairs"][0]["cs"] == pytest.approx(pair["cs"])
