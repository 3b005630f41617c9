"""Every installed lm-eval task YAML, loaded through the workbench (issue #18).

With --trust-task-code at least 95% load (tasks become templates, groups expand); without
it every file loads or is refused with a message that names the reason; nothing raises
anything but a WorkbenchError. The counts are written to tests/artifacts/lmeval_library.json."""
from __future__ import annotations

import collections
import json
import re
import time
from pathlib import Path

import pytest

from workbench.core.lmeval_tasks import TaskLibrary, task_from_config
from workbench.core.lmeval_yaml import installed_tasks_dir, read_task_yaml
from workbench.errors import WorkbenchError

LIB = installed_tasks_dir()
ART = Path(__file__).parent / "artifacts"
pytestmark = pytest.mark.skipif(LIB is None, reason="lm-eval is not installed")


def _reason(msg: str) -> str:
    for pat, why in ((r"runs Python code", "needs --trust-task-code"), (r"output_type", "output_type not supported"),
                     (r"Python Task class", "Python Task class"), (r"could not be imported|importing the task code",
                                                                      "task code import failed"),
                     (r"not one task|not a task|group", "group"), (r"no doc_to", "incomplete config")):
        if re.search(pat, msg):
            return why
    return "other: " + msg.splitlines()[0][:80]


def _load_all(trust: bool) -> dict:
    lib = TaskLibrary()
    counts: collections.Counter = collections.Counter()
    reasons: collections.Counter = collections.Counter()
    crashes = []
    files = sorted(p for p in LIB.rglob("*.yaml") if "__pycache__" not in p.parts)
    t0 = time.perf_counter()
    for p in files:
        try:
            cfg = read_task_yaml(p, lib.include_roots(p))
            if "group" in cfg and isinstance(cfg.get("group"), str) and "class" not in cfg:
                assert lib.expand(cfg["group"]), p      # a group loads when its tasks resolve
                counts["group"] += 1
            elif not isinstance(cfg.get("task"), str):
                raise WorkbenchError(f"{p}: not a task: an include fragment without `task`")
            else:
                task_from_config(cfg, p, trust_code=trust, code_roots=lib.code_roots)
                counts["task"] += 1
        except WorkbenchError as e:
            assert e.message.strip(), p
            counts["refused"] += 1
            reasons[_reason(e.message)] += 1
        except Exception as e:  # noqa: BLE001 - this is what the test counts
            crashes.append(f"{p}: {type(e).__name__}: {e}")
    n = len(files)
    return {"files": n, "loaded": counts["task"] + counts["group"], **counts, "refused_by_reason": dict(reasons.most_common()),
            "crashes": crashes[:20], "n_crashes": len(crashes), "seconds": round(time.perf_counter() - t0, 1)}


@pytest.mark.slow
def test_every_installed_lm_eval_task_yaml_loads_or_is_refused_clearly():
    ART.mkdir(exist_ok=True)
    report = {"trusted": _load_all(True), "untrusted": _load_all(False)}
    (ART / "lmeval_library.json").write_text(json.dumps(report, indent=1))
    tr, un = report["trusted"], report["untrusted"]
    assert tr["n_crashes"] == 0 and un["n_crashes"] == 0, (tr["crashes"], un["crashes"])
    assert tr["loaded"] / tr["files"] >= 0.95, tr
    assert un["loaded"] + un["refused"] == un["files"], un
