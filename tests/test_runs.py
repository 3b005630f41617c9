"""The SQLite run registry, on a real file under tmp_path."""
import sqlite3
import threading

import numpy as np
import pytest

from workbench.errors import ConfigError
from workbench.storage.runs import SCHEMA_VERSION, RunRegistry, settings_key


def _add_eval(reg, name, **kw):
    base = dict(name=name, template_hash="t1", model="default", adapter=None,
                data_fingerprint="d1", data_name="sst2", seed=0,
                settings={"method": "acc", "num_fewshot": 0}, metrics={"accuracy": 0.5})
    base.update(kw)
    return reg.add("eval", **base)


def test_persists_across_a_fresh_registry(tmp_path):
    path = tmp_path / "runs.sqlite"
    reg = RunRegistry(path)
    rid = _add_eval(reg, "first", template_yaml="name: x\n", metrics={"accuracy": np.float64(0.75)})
    again = RunRegistry(path)
    rec = again.get(rid)
    assert rec.name == "first" and rec.kind == "eval" and rec.template_yaml == "name: x\n"
    assert rec.metrics == {"accuracy": 0.75}
    assert rec.settings == {"method": "acc", "num_fewshot": 0}
    assert rec.created_at.endswith("+00:00")
    assert again.schema_version() == SCHEMA_VERSION
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_list_newest_first_kind_and_search(tmp_path):
    reg = RunRegistry(tmp_path / "r.sqlite")
    ids = [_add_eval(reg, f"run {i}") for i in range(3)]
    tid = reg.add("train", name="lora 100_pct", model="default")
    assert [r.id for r in reg.list()] == [tid, *reversed(ids)]
    assert [r.id for r in reg.list(kind="eval")] == list(reversed(ids))
    assert [r.id for r in reg.list(limit=2)] == [tid, ids[2]]
    assert [r.id for r in reg.list(search="RUN 1")] == [ids[1]]
    assert [r.id for r in reg.list(search="sst")] == list(reversed(ids))  # data_name
    # LIKE wildcards in the query are literal
    assert [r.id for r in reg.list(search="100_pct")] == [tid]
    assert reg.list(search="1%") == []


def test_payload_round_trip_compressed(tmp_path):
    reg = RunRegistry(tmp_path / "r.sqlite")
    payload = {"rows": [{"i": i, "gold": "pos", "pred": "neg", "scores": [-1.5, -0.25]}
                        for i in range(5000)]}
    rid = _add_eval(reg, "big", payload=payload)
    assert reg.payload(rid) == payload
    assert reg.payload(_add_eval(reg, "none")) is None
    with sqlite3.connect(reg.path) as con:
        size, blob = con.execute("SELECT size, data FROM payloads WHERE run_id=?", (rid,)).fetchone()
    assert len(blob) < size / 5  # repetitive JSON compresses well


def _eval_result(model_identity: dict, *, shots: int = 0, accuracy: float = 0.5) -> dict:
    """The parts of an EvalResult's JSON that record_eval and result_key read."""
    return {"metrics": {"n": 4, "accuracy": accuracy},
            "provenance": {"template": {"name": "t", "hash": "t1", "yaml": "name: t"},
                           "data": {"name": "bbc", "fingerprint": "d1", "row_indices_hash": "r1"},
                           "config": {"shots": shots, "seed": 0, "method": "acc"},
                           "model": {"identity": "default", "adapter": None, "model_identity": model_identity}}}


def test_stored_evals_are_found_by_their_reuse_key(tmp_path):
    """What `jobs.compare.evaluate_or_reuse` runs: record_eval stores a result under its reuse key,
    find_by_key finds the newest finished one, and any change of settings or model identity
    (an adapter's hash, the dtype) is another key."""
    from workbench.storage.runs import record_eval, result_key

    reg = RunRegistry(tmp_path / "r.sqlite")
    ident = {"engine": "local", "model": "default", "dtype": "float32", "device_kind": "cpu",
             "adapter_sha256": None, "scoring_version": 1}
    old = record_eval(_eval_result(ident, accuracy=0.25), reg)
    new = record_eval(_eval_result(ident, accuracy=0.75), reg)
    key = result_key(_eval_result(ident))
    assert reg.find_by_key(key).id == new and reg.payload(new)["metrics"]["accuracy"] == 0.75
    for other in (_eval_result(ident, shots=5), _eval_result({**ident, "adapter_sha256": "ab"}),
                  _eval_result({**ident, "dtype": "bfloat16"})):
        assert result_key(other) != key and reg.find_by_key(result_key(other)) is None
    reg.update(new, status="failed")
    assert reg.find_by_key(key).id == old     # only finished runs are reused
    reg.delete(old)
    assert reg.find_by_key(key) is None


def test_settings_key_is_canonical():
    assert settings_key({"a": 1, "b": [1, 2]}) == settings_key({"b": [1, 2], "a": 1})
    assert settings_key({"a": 1}) != settings_key({"a": 2})
    assert settings_key({"a": 1, "batch_size": 8}) == settings_key({"a": 1})


def test_update_and_delete(tmp_path):
    reg = RunRegistry(tmp_path / "r.sqlite")
    rid = reg.add("train", name="lora", status="running", settings={"lr": 1e-4})
    rec = reg.update(rid, status="done", metrics={"dev_accuracy": 0.9}, payload={"log": [1, 2]},
                     settings={"lr": 2e-4})
    assert rec.status == "done" and rec.metrics == {"dev_accuracy": 0.9}
    assert rec.settings_key == settings_key({"lr": 2e-4})
    assert reg.payload(rid) == {"log": [1, 2]}
    with pytest.raises(ConfigError, match="cannot update run field"):
        reg.update(rid, id="other")
    reg.delete(rid)
    with pytest.raises(ConfigError, match=f"no run with id '{rid}'"):
        reg.get(rid)
    assert reg.payload(rid) is None


def test_bad_kind_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="unknown run kind 'evaluate'"):
        RunRegistry(tmp_path / "r.sqlite").add("evaluate", name="x")


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "r.sqlite"
    RunRegistry(path)
    with sqlite3.connect(path) as con:
        con.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(ConfigError, match="newer than this workbench"):
        RunRegistry(path)


def test_concurrent_adds_from_threads(tmp_path):
    path = tmp_path / "r.sqlite"
    shared = RunRegistry(path)
    errors, ids = [], []
    lock = threading.Lock()

    def work(t):
        try:
            # half the threads share one object, half open their own (like separate handlers)
            reg = shared if t % 2 else RunRegistry(path)
            for i in range(10):
                rid = _add_eval(reg, f"t{t}-{i}", payload={"t": t, "i": i})
                with lock:
                    ids.append(rid)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert len(set(ids)) == 60
    listed = RunRegistry(path).list(limit=1000)
    assert {r.id for r in listed} == set(ids)
    assert all(shared.payload(r.id)["t"] == int(r.name[1:].split("-")[0]) for r in listed)
