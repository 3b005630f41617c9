"""Typed options per job kind (issue 23): every kind build_spec knows is registered in the runner with its
options dataclass; unknown options are refused at build time, whichever door; defaults are written once
(core/options.py), so an explicit default and a left-out one give the same spec."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from test_spec import QUESTION, TOPIC, _cli_spec
from workbench.core.spec import KINDS, DataRef, RunSpec, build_spec


@pytest.fixture(scope="module")
def bbc_small():
    from workbench.storage.data_load import load_dataset

    return load_dataset("bbc")


def test_every_kind_is_registered_with_typed_options():
    from workbench.core.options import OPTIONS
    from workbench.jobs.runner import KIND_REGISTRY

    assert set(KIND_REGISTRY) == set(KINDS) == set(OPTIONS)
    assert all(KIND_REGISTRY[k].options is OPTIONS[k] for k in KINDS)


def test_unknown_options_are_refused_and_defaults_are_one_choice(bbc_small):
    from workbench.core.options import N_BOOT, CompareOptions
    from workbench.errors import ConfigError

    with pytest.raises(ConfigError, match="Unknown compare option.*nboot"):
        build_spec("compare", templates=[TOPIC, QUESTION], data=bbc_small, options={"nboot": 500})
    with pytest.raises(ConfigError, match="Unknown eval option.*spread"):
        build_spec("eval", templates=[TOPIC], data=bbc_small, options={"spread": 3})
    plain = build_spec("compare", templates=[TOPIC, QUESTION], data=bbc_small)
    explicit = build_spec("compare", templates=[TOPIC, QUESTION], data=bbc_small,
                          options={"n_boot": N_BOOT, "alpha": 0.05, "baseline": None})
    assert plain.hash() == explicit.hash() and explicit.options == CompareOptions()
    assert explicit.to_dict()["options"] == {}
    assert (plain.options.boot, plain.options.level) == (N_BOOT, 0.05)
    cli = _cli_spec(["compare", "--data", "bbc", "--template", str(TOPIC), "--template", str(QUESTION),
                     "--n-boot", "500"])
    assert cli.options.boot == 500 and "--n-boot 500" in cli.command()
    assert _cli_spec(["compare", "--data", "bbc", "--template", str(TOPIC), "--template", str(QUESTION)]).hash() == \
        plain.hash()


def test_export_sources_resolve_alike_in_both_doors(bbc_small):
    """The Export tab and `workbench export` resolve a training run's source with one function
    (jobs/export_source.py): the same template and options, so one spec; a run without an adapter is refused."""
    from test_spec import _ui_state

    from workbench import paths
    from workbench.app.tab_export import export_spec
    from workbench.errors import ConfigError

    run = paths.train_dir() / "run1"
    (run / "adapter").mkdir(parents=True)
    (run / "adapter" / "template.yaml").write_text(TOPIC.read_text())
    text = TOPIC.read_text()
    ui, _ = export_spec(_ui_state(TOPIC, text), "default", text, "training run", str(run), "b1", False, 0, 0, "acc",
                        "test", 6, include_rows=True)
    cli = _cli_spec(["export", "--data", "bbc", "--train-run", str(run), "--limit", "6",
                     "--out", str(paths.exports_dir() / "b1")])
    assert ui.to_dict()["options"] == cli.to_dict()["options"] == \
        {"train_run": str(run), "out": str(paths.exports_dir() / "b1")}
    assert ui.hash() == cli.hash() and ui.options.train_run == str(run)
    (run / "adapter" / "template.yaml").unlink()
    with pytest.raises(ConfigError, match="no saved adapter"):
        _cli_spec(["export", "--data", "bbc", "--train-run", str(run)])


# ------------------------------------------------------------------ RunSpec.options is the typed dataclass
# tests/data/specs_before_typed_options.json: these cases built with build_spec by the code before RunSpec.options
# was typed (main abd5a43, when it was a dict), saved as their JSON, hash and command. A spec's JSON keeps the
# fields that differ from their defaults, so runs recorded then keep their content-hash reuse keys and commands.
_SAVED = Path(__file__).parent / "data" / "specs_before_typed_options.json"
# (the templates by the relative paths the saved commands name)
_T = [f"templates_library/{TOPIC.name}"]
_TT = [*_T, f"templates_library/{QUESTION.name}"]
_CASES = {
    "eval_plain": dict(kind="eval", templates=_T, eval={"shots": 2}),
    "eval_out": dict(kind="eval", templates=_T, options={"out": "r.json", "trust_task_code": False}),
    "eval_task": dict(kind="eval", templates=_T, eval={"limit": 20}, options={
        "task": "hellaswag", "include_path": ["a", "b"], "num_fewshot": 3, "fewshot_seed": 9, "trust_task_code": True}),
    "compare_explicit_defaults": dict(kind="compare", templates=_TT,
                                      options={"n_boot": 2000, "alpha": 0.05, "baseline": None}),
    "compare_boot": dict(kind="compare", templates=_TT, options={
        "n_boot": 500, "alpha": 0.1, "baseline": "bbc_headline_topic", "name": "n1", "out": "o.json"}),
    "compare_models": dict(kind="compare", templates=_T, model=["default", "other/model"], options={"n_boot": 300}),
    "compare_sequential": dict(kind="compare", templates=_TT, options={
        "sequential": True, "margin": 0.01, "alpha": 0.05, "first_batch": 32, "growth": 2}),
    "compare_sequential_all": dict(kind="compare", templates=_TT, options={
        "sequential": True, "margin": "0.02", "alpha": 0.1, "first_batch": 16, "order_seed": 3, "price_per_mtok": 0.5}),
    "compare_task": dict(kind="compare", templates=_TT, options={
        "task": "hellaswag", "n_boot": 1000, "limit": 30, "task_data": "x.jsonl", "num_fewshot": 0}),
    "compare_task_2000": dict(kind="compare", templates=_TT, options={"task": "hellaswag", "n_boot": 2000}),
    "seed_variance": dict(kind="seed_variance", templates=_T, eval={"shots": 2}, options={"seeds": "0, 1,2", "out": "s.json"}),
    "seed_variance_default": dict(kind="seed_variance", templates=_T, eval={"shots": 2}),
    "format_spread": dict(kind="format_spread", templates=_T, options={"spread": 4}),
    "format_spread_default": dict(kind="format_spread", templates=_T),
    "train": dict(kind="train", templates=_T, train={"max_steps": 2}, options={"out": "runs/x"}),
    "export": dict(kind="export", templates=_T, options={"out": "exports/b", "merge": True, "zip": True, "no_data": False}),
    "export_run": dict(kind="export", templates=_T, options={
        "out": "exports/b", "train_run": "train/r1", "overwrite": True, "force": True}),
    "export_winner": dict(kind="export", templates=_T, options={"out": "exports/w", "winner": True}),
    "export_winner_id": dict(kind="export", templates=_T, options={"out": "exports/w", "winner": "abc123"}),
    "search": dict(kind="search", templates=_T, search={"budget_tokens": None},
                   options={"resume": "rid1", "name": "s", "out": "rep.json"}),
    "search_plain": dict(kind="search", templates=_T, eval={"method": "acc_norm"}),
}
_DATA = dict(source="bbc", name="bbc", fingerprint="f1ngerpr1nt")


def _saved() -> dict:
    saved = json.loads(_SAVED.read_text())
    assert set(saved) == set(_CASES)
    return saved


@pytest.mark.parametrize("name", sorted(_CASES))
def test_specs_saved_before_typed_options_load_and_hash_the_same(name):
    """A spec saved when options were a dict loads into the kind's dataclass, and gives back the same JSON,
    hash and command; building it from the same choices today gives that spec too."""
    from workbench.core.options import OPTIONS
    from workbench.core.templates import load_template

    saved = _saved()[name]
    spec = RunSpec.from_json(saved["json"])
    assert type(spec.options) is OPTIONS[spec.kind]
    assert (spec.to_json(), spec.hash(), spec.command()) == (saved["json"], saved["hash"], saved["command"])
    case = dict(_CASES[name])
    case["templates"] = [(load_template(str(TOPIC.parent.parent / t)), t) for t in case["templates"]]
    built = build_spec(case.pop("kind"), data=DataRef(**_DATA), **case)
    assert built == spec and built.hash() == saved["hash"] and built.command() == saved["command"]


def test_stored_options_must_be_known_and_of_the_kind():
    from workbench.core.options import CompareOptions, StudyOptions
    from workbench.errors import ConfigError

    d = json.loads(_saved()["compare_boot"]["json"])
    d["options"]["nboot"] = 10
    with pytest.raises(ConfigError, match="Unknown compare option.*nboot"):
        RunSpec.from_dict(d)
    ok = RunSpec.from_json(_saved()["format_spread"]["json"])
    with pytest.raises(ConfigError, match="StudyOptions, not CompareOptions"):
        dataclasses.replace(ok, options=CompareOptions())
    assert dataclasses.replace(ok, options=None).options == StudyOptions()      # None: the kind's defaults


def test_build_spec_takes_the_typed_options_as_the_dict():
    """The dataclass and the dict of the same choices give one spec; its explicit defaults are left out too."""
    from workbench.core.options import N_BOOT, CompareOptions, ExportOptions
    from workbench.errors import ConfigError

    data = DataRef(**_DATA)
    _TT = [TOPIC, QUESTION]
    typed = build_spec("compare", templates=_TT, data=data, options=CompareOptions(n_boot=500, baseline="x"))
    as_dict = build_spec("compare", templates=_TT, data=data, options={"n_boot": 500, "baseline": "x"})
    assert typed == as_dict and typed.hash() == as_dict.hash() and typed.options.n_boot == 500
    default = build_spec("compare", templates=_TT, data=data, options=CompareOptions(n_boot=N_BOOT, alpha=0.05))
    assert default.options == CompareOptions() and default.hash() == build_spec("compare", templates=_TT, data=data).hash()
    with pytest.raises(ConfigError, match="compare job's options are CompareOptions or a dict, not ExportOptions"):
        build_spec("compare", templates=_TT, data=data, options=ExportOptions(out="b"))
