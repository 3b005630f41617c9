"""Compare is one code path (#23): `compare_templates` is the one-model case of the models ×
templates grid (`compare_models.compare_grid`), so what the grid had drifted on is now the same:
progress counts UNITS_PER_JOB per freshly scored column (not a hard-coded 1,000), reused columns
are left out of the count (so out of the ETA), and every column's row-indices hash is checked.

Fast tests on the shared fake session; the real-model comparison is in test_compare.py."""
from __future__ import annotations

import pytest

from support.fakes import FakeSession
from workbench.core.templates import load_template
from workbench.errors import DataError
from workbench.jobs.compare import compare_templates
from workbench.jobs.compare_models import compare_grid
from workbench.jobs.inference import EvalConfig
from workbench.storage.runs import RunRegistry

LIB = "templates_library"


@pytest.fixture(scope="module")
def templates():
    return [load_template(f"{LIB}/bbc_headline_topic.yaml"), load_template(f"{LIB}/bbc_headline_question.yaml")]


def _ticks():
    ticks: list[tuple[int, int, str]] = []
    return ticks, (lambda d, t, m="": ticks.append((d, t, m)))


def test_grid_counts_units_per_fresh_column_and_skips_reused(bbc, templates, tmp_path, monkeypatch):
    monkeypatch.setattr("workbench.core.progress.UNITS_PER_JOB", 10)   # read where it is used, not copied
    monkeypatch.setattr("workbench.jobs.compare_models.UNITS_PER_JOB", 10)
    reg = RunRegistry(tmp_path / "runs.db")
    cfg = EvalConfig(limit=12)
    # model "a"'s two columns are stored first, so in the grid only "b"'s two are scored
    compare_templates(templates, bbc, FakeSession("a@1"), cfg, registry=reg, n_boot=50)
    ticks, progress = _ticks()
    res = compare_grid({"a": FakeSession("a@1"), "b": FakeSession("b@1")}, templates, bbc, cfg, registry=reg,
                       n_boot=50, progress=progress)
    assert [t["reused"] for t in res.templates] == [True, True, False, False]
    dones = [d for d, _, _ in ticks]
    assert dones == sorted(dones)
    assert {t for _, t, _ in ticks} == {2 * 10}   # two fresh columns of the (patched) unit, reused ones left out
    assert ticks[-1] == (20, 20, "statistics")
    assert any(m.startswith(f"{templates[0].name} @ b (3/4) · scoring") for _, _, m in ticks)
    # all four stored now: nothing is counted as scored work
    ticks.clear()
    compare_grid({"a": FakeSession("a@1"), "b": FakeSession("b@1")}, templates, bbc, cfg, registry=reg, n_boot=50,
                 progress=progress)
    assert ticks == [(10, 10, "statistics")]


def test_one_model_grid_is_compare_templates(bbc, templates):
    cfg = EvalConfig(shots=1, seed=2, limit=15)
    a = compare_templates(templates, bbc, FakeSession(), cfg, store=False, n_boot=100).to_dict()
    b = compare_grid({"mine": FakeSession()}, templates, bbc, cfg, store=False, n_boot=100).to_dict()
    for d in (a, b):
        d["provenance"].pop("created_at")
    assert a == b
    # the templates report: no grid extras, the model's own provenance
    assert "pairs" not in a["settings"] and "grid" not in a["settings"] and "models" not in a["provenance"]
    assert set(a["templates"][0]) == {"name", "hash", "yaml", "eval_run_id", "reused"}


def test_grid_checks_every_columns_row_hash(bbc, templates, monkeypatch):
    """The grid now checks what compare_templates checked: an eval reporting other rows' hash (a
    bug the check exists to catch) stops the comparison instead of drawing verdicts."""
    import workbench.jobs.compare_models as cm

    real = cm.evaluate_or_reuse

    def off(t, *a, **k):
        res, run_id, reused = real(t, *a, **k)
        if t.name == templates[1].name:
            res.provenance["data"]["row_indices_hash"] = "0" * 16
        return res, run_id, reused

    monkeypatch.setattr(cm, "evaluate_or_reuse", off)
    with pytest.raises(DataError, match="different row-indices hashes"):
        compare_grid({"a": FakeSession("a@1"), "b": FakeSession("b@1")}, templates, bbc, EvalConfig(limit=8),
                     store=False, n_boot=50)

