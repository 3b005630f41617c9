"""Train as a RunSpec (issue 23): `execute` runs a train spec; the whole ModelRef reaches the training run
(its device is used, an adapter, an inference server or a dtype is refused, not dropped); the Train tab's lane
and `execute` train the same adapter (real model, 2 steps)."""
from __future__ import annotations

import pytest

from test_spec import TOPIC, _cli_spec, _ui_state, load
from workbench.core.spec import ModelRef, build_spec

TRAIN = {"shots_per_class": 2, "max_steps": 2, "eval_every": 0, "patience": 0, "dev_limit": 5, "final_eval": False,
         "seed": 3}


@pytest.fixture(scope="module")
def bbc_small():
    from workbench.storage.data_load import load_dataset

    return load_dataset("bbc")


def test_a_train_spec_refuses_what_training_cannot_honour(bbc_small, tmp_path):
    from workbench.errors import ConfigError
    from workbench.jobs.runner import execute, train_plan

    def spec(**ref):
        return build_spec("train", templates=[TOPIC], data=bbc_small, model=ModelRef(**{"model": "default", **ref}),
                          train=TRAIN, options={"out": str(tmp_path / "x")})

    with pytest.raises(ConfigError, match="inference server"):
        execute(spec(model="openai:http://127.0.0.1:9/v1"), None, dataset=bbc_small)
    with pytest.raises(ConfigError, match="adapter /some/adapter is attached"):
        train_plan(spec(adapter="/some/adapter"), dataset=bbc_small)
    with pytest.raises(ConfigError, match="float32 master weights"):
        train_plan(spec(dtype="bfloat16"), dataset=bbc_small)
    assert not (tmp_path / "x").exists()          # refused before a run folder was claimed


def test_an_empty_train_form_and_no_flags_train_alike(bbc_small):
    """The Train tab with every box empty and `workbench train` with no flags: one TrainConfig (the defaults)."""
    from workbench.app.tab_train import DATA_ALL, train_spec
    from workbench.core.config import TrainConfig

    text = TOPIC.read_text()
    ui, _ = train_spec(_ui_state(TOPIC, text), text, "default", DATA_ALL, *[None] * 4, [], *[None] * 10, "lm",
                       *[None] * 2)
    cli = _cli_spec(["train", "--data", "bbc", "--template", str(TOPIC)])
    assert ui.train == cli.train == TrainConfig()
    assert (ui.train.lr, ui.train.eval_every, ui.train.patience, ui.train.dev_limit) == (5e-4, 20, 3, 200)


@pytest.mark.model
@pytest.mark.slow
def test_execute_and_the_ui_lane_train_the_same_adapter(tmp_path, bbc_small):
    from safetensors.torch import load_file

    from workbench.jobs import service
    from workbench.jobs.runner import execute

    def spec(out):
        return build_spec("train", templates=[(load(TOPIC), str(TOPIC))], data=bbc_small,
                          model=ModelRef(model="default", device="cpu"), train=TRAIN, options={"out": str(out)})

    seen = []
    res = execute(spec(tmp_path / "py"), None, dataset=bbc_small, record=False, on_run=seen.append).result
    assert res.status == "done" and seen == [str(tmp_path / "py")]
    job = service.start_training(spec(tmp_path / "ui"), dataset=bbc_small)   # the Train tab's lane
    job.wait(600)
    assert job.status()["state"] == "done", job.status()
    wa = load_file(str(tmp_path / "py" / "adapter" / "adapter_model.safetensors"))
    wb = load_file(str(tmp_path / "ui" / "adapter" / "adapter_model.safetensors"))
    assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa)
