"""Typed options per job kind (issue 23): every kind build_spec knows is registered in the runner with its
options dataclass; unknown options are refused at build time, whichever door; defaults are written once
(core/options.py), so an explicit default and a left-out one give the same spec."""
from __future__ import annotations

import pytest

from test_spec import QUESTION, TOPIC, _cli_spec
from workbench.core.spec import KINDS, build_spec


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
    assert plain.hash() == explicit.hash() and explicit.options == {}
    assert isinstance(plain.opts, CompareOptions) and (plain.opts.boot, plain.opts.level) == (N_BOOT, 0.05)
    cli = _cli_spec(["compare", "--data", "bbc", "--template", str(TOPIC), "--template", str(QUESTION),
                     "--n-boot", "500"])
    assert cli.opts.boot == 500 and "--n-boot 500" in cli.command()
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
    assert ui.options == cli.options == {"train_run": str(run), "out": str(paths.exports_dir() / "b1")}
    assert ui.hash() == cli.hash() and ui.opts.train_run == str(run)
    (run / "adapter" / "template.yaml").unlink()
    with pytest.raises(ConfigError, match="no saved adapter"):
        _cli_spec(["export", "--data", "bbc", "--train-run", str(run)])
