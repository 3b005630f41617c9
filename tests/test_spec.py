"""RunSpec: every door (UI handler, CLI command line, Python) builds the same spec for the same
choices, the spec's command rebuilds it, template defaults apply once, and running the command
gives the same predictions as the in-process job (real model, tiny sizes)."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.core.spec import ModelRef, RunSpec, build_spec, resolve_eval

ROOT = Path(__file__).resolve().parents[1]
TOPIC = ROOT / "templates_library" / "bbc_headline_topic.yaml"
QUESTION = ROOT / "templates_library" / "bbc_headline_question.yaml"


@pytest.fixture(scope="module")
def bbc_small():
    from workbench.storage.data_load import load_dataset

    return load_dataset("bbc")


def _cli_spec(argv: list[str]):
    """Parse a `workbench ...` command line with the real parser and build its spec."""
    import importlib

    from workbench.cli import build_parser

    args = build_parser().parse_args(argv)
    mod = importlib.import_module(f"workbench.commands.{args.command}")
    out = mod.spec_from_args(args)
    return out[0] if isinstance(out, tuple) else out


def _ui_state(path: Path | None = None, text: str | None = None):
    from workbench.app.common import UIState

    return UIState(data_spec="bbc", saved_yaml=text or "", template_path=str(path) if path else None)


def test_template_defaults_apply_once():
    from workbench.core.templates import load_template

    t = load_template(TOPIC.read_text().replace("name:", "fewshot:\n  k: 3\n  sampling: per_example\n  seed: 7\nname:", 1))
    cfg = resolve_eval({}, t)
    assert (cfg.shots, cfg.sampling, cfg.seed) == (3, "per_example", 7)
    assert resolve_eval({"shots": 0, "seed": None}, t).shots == 0           # explicit beats the template
    assert resolve_eval({"shots": 0, "seed": None}, t).seed == 7            # unset takes the template's


def test_eval_spec_same_from_every_door(bbc_small):
    from workbench.app.tab_run import eval_spec

    text = TOPIC.read_text()
    ui, _, _ = eval_spec(_ui_state(TOPIC, text), text, "default", 2, 1, "acc_norm", "pmi", "dev", 30)
    cli = _cli_spec(["eval", "--data", "bbc", "--template", str(TOPIC), "--shots", "2", "--seed", "1",
                     "--method", "acc_norm", "--calibration", "pmi", "--split", "dev", "--limit", "30"])
    py = build_spec("eval", templates=[(load(TOPIC), str(TOPIC))], data=bbc_small, model="default",
                    eval={"shots": 2, "seed": 1, "method": "acc_norm", "calibration": "pmi", "split": "dev", "limit": 30})
    assert ui.hash() == cli.hash() == py.hash()
    assert ui.eval.sampling == "fixed" and ui.eval.shots == 2
    # the command rebuilds the very spec
    again = _cli_spec(ui.argv()[1:])
    assert again.hash() == ui.hash()
    assert RunSpec.from_json(ui.to_json()).hash() == ui.hash()


def load(path):
    from workbench.core.templates import load_template

    return load_template(path)


def test_compare_spec_same_from_every_door(bbc_small):
    from workbench.app.tab_compare import compare_spec

    ya, yb = TOPIC.read_text(), QUESTION.read_text()
    ui, _, _ = compare_spec(_ui_state(), "default", "", 0, 3, "acc", "contextual", "test", 40, "", 2000, 2, ya, yb)
    cli = _cli_spec(["compare", "--data", "bbc", "--template", str(TOPIC), "--template", str(QUESTION),
                     "--seed", "3", "--calibration", "contextual", "--limit", "40"])
    assert ui.hash() == cli.hash()
    assert _cli_spec(cli.argv()[1:]).hash() == cli.hash()


def test_an_empty_train_form_is_workbench_train_with_no_flags(bbc_small):
    """Issue 23: empty boxes in the Train tab used to give lr=0, eval_every=0, patience=0 and every dev row,
    while the CLI's defaults are 5e-4, 20, 3 and 200 rows."""
    from workbench.app.tab_train import DATA_ALL, train_spec

    text = TOPIC.read_text()
    empty = [None] * 17      # k, LoRA r/alpha/dropout, ..., dev_limit, test_limit: every box left empty
    ui, _ = train_spec(_ui_state(TOPIC, text), text, "default", DATA_ALL, *empty[:4], [], *empty[4:14], "lm",
                       *empty[14:16])
    cli = _cli_spec(["train", "--data", "bbc", "--template", str(TOPIC)])
    assert ui.train == cli.train, {k: (v, cli.train[k]) for k, v in ui.train.items() if cli.train.get(k) != v}
    assert ui.hash() == cli.hash()


def test_train_and_export_specs_same_from_every_door(bbc_small):
    from workbench.app.tab_export import export_spec
    from workbench.app.tab_train import DATA_K, train_spec

    text = TOPIC.read_text()
    ui, _ = train_spec(_ui_state(TOPIC, text), text, "default", DATA_K, 4, 8, 16, 0.05, [], 5e-4, 3, 2, 4, 1, 256,
                       0.1, 1, 0, 0, "lm", 20, 10)
    cli = _cli_spec(["train", "--data", "bbc", "--template", str(TOPIC), "--k", "4", "--steps", "2", "--seed", "1",
                     "--eval-every", "0", "--patience", "0", "--dev-limit", "20", "--test-limit", "10"])
    assert ui.train == cli.train and ui.hash() == cli.hash()
    assert _cli_spec(ui.argv()[1:]).hash() == ui.hash()

    ex, _ = export_spec(_ui_state(TOPIC, text), "default", text, "editor", "", "mybundle", False, 0, 0, "acc", "test", 25)
    # The command a user types by hand (not the UI spec's own rendering, which would be circular).
    from workbench.paths import exports_dir

    cli_ex = _cli_spec(["export", "--data", "bbc", "--template", str(TOPIC), "--limit", "25",
                        "--out", str(exports_dir() / "mybundle")])   # the form's "Replace" box is off
    assert cli_ex.eval == ex.eval and cli_ex.options == ex.options and cli_ex.hash() == ex.hash()
    # ...and the UI's shown command round-trips through the shell and the parser.
    assert _cli_spec(shlex.split(" ".join(shlex.quote(a) for a in ex.argv()[1:]))).hash() == ex.hash()


def test_unsaved_editor_template_gets_a_file(tmp_path, bbc_small):
    """A template that exists only in the editor: the shown command names a saved copy of it."""
    from workbench.app.common import spec_command
    from workbench.app.tab_run import eval_spec

    text = TOPIC.read_text().replace("Topic:", "Section:")
    spec, _, _ = eval_spec(_ui_state(), text, "default", 0, 0, "acc", "none", "test", 10)
    assert spec.template.path is None and "<" in spec.command()
    cmd = spec_command(spec)
    path = shlex.split(cmd)[shlex.split(cmd).index("--template") + 1]
    assert Path(path).read_text() == spec.template.yaml
    assert _cli_spec(shlex.split(cmd)[1:]).hash() == spec.hash()


def test_compare_needs_two_columns(bbc_small):
    from workbench.errors import ConfigError

    with pytest.raises(ConfigError, match="two or more templates"):
        build_spec("compare", templates=[load(TOPIC)], data=bbc_small, model=ModelRef())


# ------------------------------------------------------------------ the command gives the same predictions
def _run(cmd: str, tmp_path: Path) -> subprocess.CompletedProcess:
    argv = shlex.split(cmd)
    env = {**os.environ}
    return subprocess.run([sys.executable, "-m", "workbench.cli", *argv[1:]], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.model
def test_eval_and_compare_commands_reproduce_the_job(tmp_path, session, bbc_small):
    from workbench.app.common import spec_command
    from workbench.jobs.runner import execute

    spec = build_spec("eval", templates=[(load(TOPIC), str(TOPIC))], data=bbc_small, model="default",
                      eval={"shots": 1, "limit": 6, "calibration": "contextual"}, options={"out": str(tmp_path / "r.json")})
    mine = execute(spec, session, dataset=bbc_small, record=False).result
    proc = _run(spec_command(spec) + " --no-registry", tmp_path)
    assert proc.returncode == 0, proc.stderr
    theirs = json.loads((tmp_path / "r.json").read_text())
    assert [r["pred"] for r in theirs["records"]] == [r["pred"] for r in mine.records]
    assert [r["index"] for r in theirs["records"]] == [r["index"] for r in mine.records]

    cmp_spec = build_spec("compare", templates=[(load(TOPIC), str(TOPIC)), (load(QUESTION), str(QUESTION))],
                          data=bbc_small, model="default", eval={"limit": 6}, options={"out": str(tmp_path / "c.json")})
    mine_c = execute(cmp_spec, session, dataset=bbc_small, record=False).result
    proc = _run(spec_command(cmp_spec) + " --no-registry", tmp_path)
    assert proc.returncode == 0, proc.stderr
    theirs_c = json.loads((tmp_path / "c.json").read_text())
    assert theirs_c["leaderboard"] == mine_c.to_dict()["leaderboard"]


@pytest.mark.model
@pytest.mark.slow
def test_train_and_export_commands_reproduce_the_job(tmp_path, session, bbc_small):
    from workbench.app.common import spec_command
    from workbench.jobs.runner import execute, train_plan
    from workbench.jobs.training import run_training

    train = {"shots_per_class": 2, "max_steps": 2, "eval_every": 0, "patience": 0, "dev_limit": 5,
             "final_eval": False, "seed": 3}
    spec = build_spec("train", templates=[(load(TOPIC), str(TOPIC))], data=bbc_small, model="default", train=train,
                      options={"out": str(tmp_path / "mine")})
    run_training(train_plan(spec, dataset=bbc_small, registry=False))
    theirs = build_spec("train", templates=[(load(TOPIC), str(TOPIC))], data=bbc_small, model="default", train=train,
                        options={"out": str(tmp_path / "theirs")})
    proc = _run(spec_command(theirs) + " --no-registry", tmp_path)
    assert proc.returncode == 0, proc.stderr
    from workbench.engine.session import adapter_content_hash

    a, b = tmp_path / "mine" / "adapter", tmp_path / "theirs" / "adapter"
    from safetensors.torch import load_file

    wa, wb = load_file(str(a / "adapter_model.safetensors")), load_file(str(b / "adapter_model.safetensors"))
    assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa)
    assert adapter_content_hash(a)   # (the folders differ in run-specific files such as timestamps)

    ex = build_spec("export", templates=[(load(TOPIC), str(TOPIC))], data=bbc_small, model="default",
                    eval={"limit": 6}, options={"out": str(tmp_path / "bundle_mine")})
    execute(ex, session, dataset=bbc_small)
    ex2 = build_spec("export", templates=[(load(TOPIC), str(TOPIC))], data=bbc_small, model="default",
                     eval={"limit": 6}, options={"out": str(tmp_path / "bundle_cli")})
    proc = _run(spec_command(ex2), tmp_path)
    assert proc.returncode == 0, proc.stderr
    pa = json.loads((tmp_path / "bundle_mine" / "metrics.json").read_text())["test"]
    pb = json.loads((tmp_path / "bundle_cli" / "metrics.json").read_text())["test"]
    assert pa == pb


def test_model_list_checks_hold_for_every_door(bbc_small):
    """Issue 23: a duplicate model, or a local adapter with an inference server, was refused only by the
    Compare tab; build_spec (so the CLI and Python) accepted both."""
    from workbench.errors import ConfigError

    with pytest.raises(ConfigError, match="listed twice"):
        build_spec("compare", templates=[TOPIC, QUESTION], data=bbc_small, model=["default", "default"])
    with pytest.raises(ConfigError, match="listed twice"):
        _cli_spec(["compare", "--data", "bbc", "--template", str(TOPIC), "--template", str(QUESTION),
                   "--model", "default", "--model", "default"])
    server = "openai:http://127.0.0.1:9/v1"
    with pytest.raises(ConfigError, match="cannot take a local adapter"):
        build_spec("compare", templates=[TOPIC], data=bbc_small, model=["default", server], adapter="/some/adapter")
    with pytest.raises(ConfigError, match="cannot take a local adapter"):
        _cli_spec(["compare", "--data", "bbc", "--template", str(TOPIC), "--model", "default", "--model", server,
                   "--adapter", "/some/adapter"])
    # one model with its adapter, and two distinct models without one, are fine
    build_spec("compare", templates=[TOPIC], data=bbc_small, model=["default", server])
