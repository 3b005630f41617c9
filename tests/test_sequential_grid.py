"""The sequential models x templates grid (jobs/sequential_grid.py): columns dropped once settled worse
than the leader, the models held resident or switched batch by batch, one RunSpec from the CLI, Python and
the Compare tab, and a real two-model run (the default model and the protocol reference server serving it)
through execute(spec) and the CLI that must reach the same result."""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import shlex
from pathlib import Path

import pytest

from support.fakes import FakeSession, hashed_logprob
from workbench.core.sequential import SequentialOptions
from workbench.core.spec import ModelRef, build_spec

ROOT = Path(__file__).resolve().parents[1]
TOPIC = ROOT / "templates_library" / "bbc_headline_topic.yaml"
QUESTION = ROOT / "templates_library" / "bbc_headline_question.yaml"


@pytest.fixture(scope="module")
def templates():
    from workbench.core.templates import load_template

    return [load_template(str(TOPIC)), load_template(str(QUESTION))]


def oracle(bbc, templates, right_share: float):
    """A fake model right on about `right_share` of the rows: it finds the headline in the prompt and
    gives the gold label's words (either template's verbalizers) log p 0; on the other rows (chosen by a
    hash of the headline) it scores like an uninformed model."""
    gold = dict(zip(bbc.df["title"], bbc.df["label"]))
    words = {w: lab for t in templates for lab, ws in t.answer_choices.items() for w in ws}

    @functools.lru_cache(maxsize=None)
    def title_of(ctx: str) -> str | None:
        return next((t for t in gold if t in ctx), None)

    def logprob(ctx: str, cont: str) -> float:
        title = title_of(ctx)
        if title is None or hashed_logprob(title, "coin") < -5 * right_share:   # the rows it gets wrong
            return hashed_logprob(ctx, cont)
        return 0.0 if words.get(cont.strip()) == gold[title] else -5.0

    return logprob


class Opener:
    """A model's hold for the grid, logging every open and close (what the model service does)."""

    def __init__(self, label: str, session, log: list):
        self.label, self.session, self.log = label, session, log

    def __call__(self):
        @contextlib.contextmanager
        def hold():
            self.log.append(("open", self.label))
            try:
                yield self.session
            finally:
                self.log.append(("close", self.label))
        return hold()


def fake_grid(bbc, templates, log, *, limit=300, mode="switched", progress=None, **opts):
    from workbench.core.config import EvalConfig
    from workbench.jobs.sequential_grid import compare_grid_sequential

    good = FakeSession("good@1", logprob_fn=oracle(bbc, templates, 0.9))
    weak = FakeSession("weak@1")                  # uninformed: about 1 in 5 right
    models = {"good": Opener("good", good, log), "weak": Opener("weak", weak, log)}
    return compare_grid_sequential(models, templates, bbc, EvalConfig(limit=limit),
                                   SequentialOptions(**{"first_batch": 16, **opts}), holding=(mode, "test"),
                                   store=False, progress=progress)


def test_holding_rule_by_hand():
    from workbench.jobs.sequential_grid import choose_holding

    mb = 2 ** 20
    assert choose_holding([], None)[0] == "resident"                 # inference servers only
    assert choose_holding([500 * mb], None)[0] == "resident"         # one local model and servers
    mode, why = choose_holding([300 * mb, 700 * mb], 4000 * mb)
    assert mode == "resident" and "1,000 MB" in why and "fit in half" in why
    mode, why = choose_holding([3000 * mb, 2000 * mb], 8000 * mb)
    assert mode == "switched" and "exceed half" in why
    assert choose_holding([300 * mb, None], 8000 * mb)[0] == "switched"   # unknown: the safe choice
    assert choose_holding([300 * mb, 300 * mb], None)[0] == "switched"


def test_grid_drops_the_weak_model_columns_early(bbc, templates):
    log: list = []
    seen: list = []
    res = fake_grid(bbc, templates, log, progress=lambda d, t, m="": seen.append(m))
    seq = res.settings["sequential"]
    names = ["bbc_headline_topic @ good", "bbc_headline_question @ good",
             "bbc_headline_topic @ weak", "bbc_headline_question @ weak"]
    assert res.names == names and res.settings["grid"] == {"models": ["good", "weak"],
                                                          "templates": ["bbc_headline_topic", "bbc_headline_question"]}
    # 90% against ~20%: both weak columns are settled worse long before the 300-row budget
    cols = seq["columns"]
    for nm in names[2:]:
        d = seq["dropped"][nm]
        assert d["after_rows"] < 150 and d["worse_than"] in names[:2] and d["leader"] in names[:2]
        assert cols[nm]["rows"] == d["after_rows"] and cols[nm]["model"] == "weak"
        assert cols[nm]["stopped"].startswith(f"dropped after {d['after_rows']} rows: settled worse than")
        assert cols[nm]["spent"]["tokens_forwarded"] > 0
    # the two good columns are both ~90% right: not settled apart, so they run to the budget
    assert seq["stop_reason"] == "budget" and seq["rows_scored"] == 300
    assert all(cols[nm]["rows"] == 300 and "still in" in cols[nm]["stopped"] for nm in names[:2])
    assert seq["column_rows"] == sum(c["rows"] for c in cols.values()) < seq["full_column_rows"] == 1200
    # cost per decision: what it spent, and what every row in every column would have taken at each column's rate
    s, f = seq["spent"], seq["full_run_estimate"]
    assert 0 < s["tokens_forwarded"] < f["tokens_forwarded"]
    # switched, in alternating order: after the first batch the model scored last starts the next batch,
    # and the weak model is no longer opened once both its columns are dropped
    opens = [lab for ev, lab in log if ev == "open"]
    n_batches = len(seq["batches"])
    last_weak = max(seq["dropped"][nm]["after_rows"] for nm in names[2:])
    weak_batches = next(i + 1 for i, look in enumerate(seq["looks"]) if look["rows"] == last_weak)
    assert opens[:4] == ["good", "weak", "weak", "good"]
    assert opens.count("weak") == weak_batches and opens.count("good") == n_batches
    m = seq["models"]
    changes = 1 + sum(a != b for a, b in zip(opens, opens[1:]))    # one per batch while both models are in
    assert m["mode"] == "switched" and m["switches"] == changes == weak_batches + 1
    # the verdicts come from the confidence sequences, and the text report says when each column stopped
    from workbench.jobs.sequential import format_sequential

    text = format_sequential(seq)
    for nm in names:
        assert f"  {nm}: {cols[nm]['rows']} of 300 rows, " in text
    assert "column-rows" in text and "model switches" in text
    assert all(v["sequential"] and "confidence sequence" in v["text"] for v in res.verdicts)
    # the live progress line: the leader's interval narrowing, and how many columns are left
    late = [m for m in seen if m.startswith("rows") and "2 of 4 columns left" in m]
    assert late
    for m in late:      # the pair shown is the leader's, and only good columns are left to pair it with
        pair = next(part for part in m.split(" · ") if " in [" in part)
        assert pair.count("@ good") == 2 and pair.endswith("pts")


def test_holding_never_changes_the_result(bbc, templates):
    """Resident or switched, the same rows get the same predictions and the same verdicts; and every
    row's prediction equals the fixed-n grid's on that row (a row does not depend on its batch)."""
    from workbench.core.config import EvalConfig
    from workbench.jobs.compare_models import compare_grid

    log_r, log_s = [], []
    res_r = fake_grid(bbc, templates, log_r, limit=120, mode="resident", margin=0.05)
    res_s = fake_grid(bbc, templates, log_s, limit=120, mode="switched", margin=0.05)
    sr, ss = res_r.settings["sequential"], res_s.settings["sequential"]
    assert [ev for ev in log_r] == [("open", "good"), ("open", "weak"), ("close", "weak"), ("close", "good")]
    assert sr["models"]["mode"] == "resident" and sr["models"]["switches"] == 2
    for k in ("rows_scored", "dropped", "stop_reason", "batches", "looks"):
        assert sr[k] == ss[k], k
    assert [(p["a"], p["b"], p["cs"], p["decision"]) for p in sr["pairs"]] == \
           [(p["a"], p["b"], p["cs"], p["decision"]) for p in ss["pairs"]]
    good = FakeSession("good@1", logprob_fn=oracle(bbc, templates, 0.9))
    full = compare_grid({"good": good, "weak": FakeSession("weak@1")}, templates, bbc, EvalConfig(limit=120),
                        store=False, n_boot=100)
    preds = {ex["index"]: ex["preds"] for ex in full.examples}
    for ex in res_s.examples:
        assert ex["preds"] == preds[ex["index"]]


def test_grid_checks_its_inputs(bbc, templates, monkeypatch):
    from workbench.core.config import EvalConfig
    from workbench.errors import ConfigError
    from workbench.jobs.sequential_grid import compare_grid_sequential

    with pytest.raises(ConfigError, match="baseline 'nope' is not one of the columns"):
        compare_grid_sequential({"a": FakeSession(), "b": FakeSession()}, templates, bbc, EvalConfig(limit=20),
                                baseline="nope", store=False)
    with pytest.raises(ConfigError, match="2 to 8 columns"):
        compare_grid_sequential({f"m{i}": FakeSession() for i in range(5)}, templates, bbc, EvalConfig(limit=20),
                                store=False)
    # the same-demos check of compare_common.paired_setup, which both grids now share: a template whose demos
    # would differ is named before anything is scored
    monkeypatch.setattr("workbench.jobs.compare_common.demo_indices",
                        lambda t, rows, pool, config: [1, 2] if t.name == templates[1].name else [1, 3])
    with pytest.raises(ConfigError, match="'bbc_headline_question' would get other few-shot demos"):
        compare_grid_sequential({"a": FakeSession(), "b": FakeSession()}, templates, bbc,
                                EvalConfig(limit=20, shots=2), store=False)


def test_the_sequential_grid_is_one_spec_from_every_door(bbc):
    from workbench.app.common import UIState
    from workbench.app.tab_compare import compare_spec
    from workbench.cli import build_parser
    from workbench.commands.compare import spec_from_args
    from workbench.core.templates import load_template

    other = "openai:http://127.0.0.1:9/v1#other"
    py = build_spec("compare", templates=[(load_template(str(TOPIC)), str(TOPIC))], data=bbc,
                    model=[ModelRef("default"), ModelRef(other)], eval={"limit": 100},
                    options={"sequential": True, "margin": 0.02, "first_batch": 24})
    command = py.command()
    assert f"--model default --model '{other}'" in command and "--sequential" in command
    cli = spec_from_args(build_parser().parse_args(shlex.split(command)[1:]))[0]
    assert cli.hash() == py.hash()
    yamls = [TOPIC.read_text()] + [""] * 7
    ui, _, _ = compare_spec(UIState(data_spec="bbc"), "default", other, 0, 0, "acc", "none", "test", 100, "", 2000, 1,
                            *yamls, True, 2.0)
    # the form has no first-batch box: the same rule except that default
    assert [m.model for m in ui.models] == ["default", other]
    assert ui.options == dataclasses.replace(py.options, first_batch=None) and ui.eval == py.eval


def test_compare_tab_shows_the_grid_stops(bbc, templates, tmp_path, monkeypatch):
    """The Compare tab reopens a stored sequential grid: per-column stops in the verdict, and the plot
    shows the leader against each other column (not every pair)."""
    from workbench.app.tab_compare import compare_open
    from workbench.core.config import EvalConfig
    from workbench.jobs.sequential_grid import compare_grid_sequential
    from workbench.storage.runs import RunRegistry

    reg = RunRegistry(tmp_path / "runs.db")
    good = FakeSession("good@1", logprob_fn=oracle(bbc, templates, 0.9))
    res = compare_grid_sequential({"good": good, "weak": FakeSession("weak@1")}, templates, bbc, EvalConfig(limit=80),
                                  SequentialOptions(first_batch=16), registry=reg)
    from workbench.jobs.compare import open_run

    monkeypatch.setattr("workbench.app.compare_views.load_run", lambda run_id: open_run(run_id, registry=reg))
    views = compare_open(res.run_id)
    md, fig = views[1], views[3]
    assert "4 columns (2 models × 2 templates)" in md and "Stopping early" in md
    for nm, c in res.settings["sequential"]["columns"].items():
        assert f"{nm}: {c['rows']} of 80 rows" in md
    leader = res.leaderboard[0]["name"]
    lines = [t.name for t in fig.data if not t.name.endswith("interval")]
    assert len(lines) == 3 and all(leader in nm for nm in lines)


# ------------------------------------------------------------------------------------ real models
ROWS = 16     # two looks (8 + 8 rows): enough to drive the rule, the holds and the report end to end


@pytest.mark.model
def test_real_grid_with_a_server_same_result_from_execute_and_cli(ref, session, bbc, tmp_path, capsys):
    """The default model and the reference server (serving the same weights): the sequential grid through
    execute(spec) and through the CLI reach the same stops on the same rows; the server's column predicts
    what the local one does, so the pair never settles; the report has each column's stop and spend (the
    server's requests counted). One template keeps it to two columns on a shared 2-core machine."""
    from workbench.cli import main
    from workbench.core.templates import load_template
    from workbench.jobs.runner import execute

    spec = build_spec("compare", templates=[(load_template(str(TOPIC)), str(TOPIC))],
                      data=bbc, model=[ModelRef("default"), ModelRef(ref.url)], eval={"limit": ROWS},
                      options={"sequential": True, "first_batch": 8, "price_per_mtok": 0.5})
    res = execute(spec, None, dataset=bbc, record=False).result
    seq = res.settings["sequential"]
    host = ref.url.split("//", 1)[1].split("/", 1)[0]
    local, remote = "default", host          # one template: the columns are the models
    assert res.settings["grid"]["models"] == [local, remote] and res.names == [local, remote]
    assert seq["models"]["mode"] == "resident" and "inference servers hold no weights" in seq["models"]["why"]
    assert seq["batches"] == [8, 8] and seq["rows_scored"] == ROWS and seq["stop_reason"] == "budget"
    assert all(ex["preds"][local] == ex["preds"][remote] for ex in res.examples) and len(res.examples) == ROWS
    (p,) = seq["pairs"]
    assert p["decision"] == "not yet" and p["delta_acc"] == 0
    cols = seq["columns"]
    assert cols[remote]["spent"]["requests"] > 0 and cols[local]["spent"]["requests"] == 0
    assert cols[local]["spent"]["tokens_forwarded"] > 0 and cols[remote]["spent"]["tokens_forwarded"] > 0
    assert all(c["stopped"] == f"still in when the budget of {ROWS} rows was spent" for c in cols.values())
    assert seq["cost"] == pytest.approx((seq["spent"]["tokens_forwarded"] + seq["spent"]["tokens_generated"]) * 0.5 / 1e6)

    out = tmp_path / "grid.json"
    assert main(spec.argv()[1:] + ["--out", str(out), "--no-registry"]) == 0
    printed = capsys.readouterr().out
    assert "sequential: stopped after" in printed and "column-rows" in printed
    cli = json.loads(out.read_text())["settings"]["sequential"]
    for k in ("rows_scored", "dropped", "stop_reason", "batches"):
        assert cli[k] == seq[k], k
    assert {nm: c["rows"] for nm, c in cli["columns"].items()} == {nm: c["rows"] for nm, c in seq["columns"].items()}
    assert cli["pairs"][0]["cs"] == pytest.approx(p["cs"])


@pytest.mark.model
def test_real_grid_switching_two_local_models(session, bbc, monkeypatch):
    """Two local models (the default model under its two names) held one at a time, as when they do
    not fit together: the alternating order costs one switch per batch, and the result is the resident one."""
    from workbench.core.templates import load_template
    from workbench.engine import session as engine
    from workbench.jobs import sequential_grid
    from workbench.jobs.runner import execute

    hub = "HuggingFaceTB/SmolLM2-135M-Instruct"
    spec = build_spec("compare", templates=[(load_template(str(TOPIC)), str(TOPIC))], data=bbc,
                      model=[ModelRef("default"), ModelRef(hub)], eval={"limit": 16},
                      options={"sequential": True, "first_batch": 8})
    try:
        monkeypatch.setattr(sequential_grid, "plan_holding", lambda refs: ("switched", "forced by the test"))
        switched = execute(spec, None, dataset=bbc, record=False).result
        monkeypatch.setattr(sequential_grid, "plan_holding", lambda refs: ("resident", "forced by the test"))
        resident = execute(spec, None, dataset=bbc, record=False).result
        held_hub = [s for s in engine._SESSIONS.values() if s.config.model == hub]
    finally:
        # give the session-wide fixture back its place: switching freed it (other tests hold it loaded)
        with engine._SESSIONS_LOCK:
            for s in list(engine._SESSIONS.values()):
                if s is not session:
                    s.unload()
            engine._SESSIONS.clear()
            engine._SESSIONS[engine._key("default", {})] = session
        session.load()
    ss, sr = switched.settings["sequential"], resident.settings["sequential"]
    assert ss["batches"] == [8, 8] and ss["models"]["mode"] == "switched"
    assert ss["models"]["switches"] == 3            # default, SmolLM2 | SmolLM2 (still loaded), default
    assert sr["models"]["mode"] == "resident" and sr["models"]["switches"] == 2
    assert not held_hub[0].loaded      # resident: the second local model is freed at the end
    assert [ex["preds"] for ex in switched.examples] == [ex["preds"] for ex in resident.examples]
    (p,) = ss["pairs"]
    assert p["delta_acc"] == 0 and p["decision"] == "not yet" and ss["stop_reason"] == "budget"
    assert engine.session_holders() == []
