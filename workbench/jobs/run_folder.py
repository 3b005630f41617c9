"""The run-folder protocol of a training run: what a second process (the UI after a reload,
another browser, `workbench export --train-run`) reads to follow a run, and how a dead owner is told.

Run folder:
    log.jsonl          one JSON object per line: start, train (loss, lr, steps/s, ETA), eval
                       (dev accuracy, macro-F1, per-class F1), saved, end
    CANCEL             created by `request_cancel`; the loop stops at the next micro-batch
    INTERRUPTED        created once when a reader finds the run's process dead (see below)
    adapter/           the best adapter so far, peft layout (adapter_config.json,
                       adapter_model.safetensors) + template.yaml + train_config.json
                       [+ head.safetensors in head mode]. Written to a temp folder and renamed.
    base_results.json, adapter_results.json   test-split EvalResults (lm mode)
    result.json        summary: status, best step, base vs adapter metrics, timings, memory

Killed runs. The start row records its owner: pid, the process's start time (from /proc, so a
reused pid is not mistaken for the owner) and the host. A run whose log says "running" while
its owner is gone (`kill -9` of `workbench train`, or of the server training it) reads as
`interrupted` at once; the first reader to notice appends an `end` row with that status (and a
registry row, if the run was to be recorded), so every later reader agrees. An interrupted run
keeps the best adapter saved before it died; exporting it needs force (the card says so).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from workbench.core.config import TrainConfig
from workbench.core.fileutil import write_text_atomic
from workbench.jobs.pids import pid_alive

LOG_NAME, RESULT_NAME, CANCEL_NAME, ADAPTER_NAME = "log.jsonl", "result.json", "CANCEL", "adapter"
INTERRUPTED_NAME = "INTERRUPTED"
# A running job's log gets a row at least every optimizer step. Where the owner cannot be checked
# (a log written on another host, or by a version that did not record it), a log silent for this
# long while claiming "running" belongs to a process that died.
STALE_AFTER_S = 600
# States in which a run will not change any more.
FINISHED_STATES = ("done", "cancelled", "failed", "interrupted")

ProgressFn = Callable[[int, int, str], None]   # (done, total, message)


# ---------------------------------------------------------------------------- log and status
class RunLog:
    """Append-only JSONL log. Each row is one complete line written with a single write() and
    flushed, so a reader in another thread or process sees whole rows (a torn last line from a
    crash is skipped by `read_log`)."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOG_NAME
        self._lock = threading.Lock()

    def write(self, event: str, **row: Any) -> dict:
        row = {"event": event, "t": round(time.time(), 3), **row}
        line = json.dumps(row, default=_json_default) + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
        if event == "start":
            _remember(self.path.parent)
        return row


def read_log(run_dir: str | Path) -> list[dict]:
    """Every complete row of a run's log (empty when the run has not started)."""
    p = Path(run_dir) / LOG_NAME
    if not p.exists():
        return []
    rows = []
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue   # a line being written right now, or torn by a crash
    return rows


def read_status(run_dir: str | Path, rows: list[dict] | None = None) -> dict:
    """A small summary of a run for a status line: state, step/total, loss, dev metrics, speed, ETA.

    state: pending | running | done | cancelled | failed | interrupted (its process died)."""
    rows = read_log(run_dir) if rows is None else rows
    st: dict[str, Any] = {"run_dir": str(run_dir), "state": "pending", "step": 0, "total_steps": None}
    start: dict = {}
    for r in rows:
        ev = r.get("event")
        if ev == "start":
            start = r
            st.update(state="running", total_steps=r.get("total_steps"), n_train=r.get("n_train"),
                      started=r.get("t"), pid=r.get("pid"))
        elif ev == "train":
            st.update(step=r["step"], loss=r.get("loss"), lr=r.get("lr"), steps_per_s=r.get("steps_per_s"),
                      eta_s=r.get("eta_s"), epoch=r.get("epoch"))
        elif ev == "eval":
            st.update(dev_accuracy=r.get("dev_accuracy"), dev_macro_f1=r.get("dev_macro_f1"),
                      dev_per_class_f1=r.get("dev_per_class_f1"))
            if r.get("best"):
                st.update(best_step=r["step"], best_metric=r.get("metric_value"))
        elif ev == "phase":
            st["phase"] = r.get("phase")
        elif ev == "end":
            st.update(state=r.get("status", "done"), stop_reason=r.get("stop_reason"), error=r.get("error"))
    st["cancel_requested"] = (Path(run_dir) / CANCEL_NAME).exists()
    st["has_adapter"] = (Path(run_dir) / ADAPTER_NAME / "adapter_config.json").exists()
    if st["state"] == "running":
        alive = owner_alive(start)
        if alive is None:   # cannot check the owner: fall back on a silent log
            alive = not (rows and time.time() - rows[-1].get("t", 0) > STALE_AFTER_S)
        if not alive:
            reason = f"the process running it died (pid {start.get('pid')}{_host_note(start)})"
            st.update(state="interrupted", stop_reason=reason)
            _mark_interrupted(Path(run_dir), start, st)
    return st


def owner_fields() -> dict:
    """What identifies this process as a run's owner: pid, its start time and the host."""
    return {"pid": os.getpid(), "pid_start": _proc_start(os.getpid()), "host": socket.gethostname()}


def _proc_start(pid) -> int | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat, field 22); None where
    there is no /proc or no such process."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def owner_alive(start: dict) -> bool | None:
    """Whether the process that wrote a start row still runs: True, False, or None when that
    cannot be told (another host, or no pid recorded)."""
    pid = start.get("pid")
    if not pid:
        return None
    if start.get("host") and start["host"] != socket.gethostname():
        return None
    if not pid_alive(pid):
        return False
    want = start.get("pid_start")
    if want is not None:
        now = _proc_start(pid)
        if now is not None and now != want:
            return False   # the pid was reused by another process
    return True


def _host_note(start: dict) -> str:
    return f" on {start['host']}" if start.get("host") else ""


def _mark_interrupted(run_dir: Path, start: dict, st: dict) -> None:
    """Record, once (an exclusive marker file decides who), that the run was interrupted: an
    `end` row in its log and, when the run was to be recorded, a registry row."""
    try:
        fd = os.open(run_dir / INTERRUPTED_NAME, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except OSError:
        return   # someone marked it already, or the folder is read-only: the state above still holds
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps({"t": time.time(), "by_pid": os.getpid(), "owner_pid": start.get("pid")}))
    try:
        RunLog(run_dir).write("end", status="interrupted", stop_reason=st["stop_reason"], step=st.get("step"))
    except OSError:
        return
    if start.get("registry"):
        try:
            from workbench.storage.runs import RunRegistry

            RunRegistry().add(
                "train", name=f"train {start.get('template') or run_dir.name}", model=start.get("identity"),
                adapter=str(run_dir / ADAPTER_NAME) if st.get("has_adapter") else None, data_name=start.get("data"),
                seed=(start.get("config") or {}).get("seed"), settings=start.get("config") or {},
                metrics={"steps": st.get("step"), "best_step": st.get("best_step"), "best_dev": st.get("best_metric")},
                status="interrupted", payload_path=str(run_dir))
        except Exception:  # noqa: BLE001 - a busy or broken registry must not break reading a status
            pass


def request_cancel(run_dir: str | Path) -> None:
    """Ask the run in `run_dir` to stop (works across processes: the loop polls this file)."""
    (Path(run_dir) / CANCEL_NAME).touch()


def read_result(run_dir: str | Path) -> dict | None:
    p = Path(run_dir) / RESULT_NAME
    return json.loads(p.read_text()) if p.exists() else None


# Run folders started and not yet seen to end, one path a line: so a listing finds a run that was
# killed (kill -9) wherever its folder is (--out), not only under $WORKBENCH_HOME/train.
LIVE_NAME = ".live_runs"


def _live_file() -> Path:
    from workbench.paths import train_dir

    return train_dir() / LIVE_NAME


def _remember(run_dir: Path) -> None:
    try:
        f = _live_file()
        f.parent.mkdir(parents=True, exist_ok=True)
        with open(f, "a", encoding="utf-8") as out:
            out.write(str(Path(run_dir).resolve()) + "\n")
    except OSError:
        pass   # a read-only home: the listing still scans the train folder


def sweep_interrupted() -> list[dict]:
    """Read the status of every run folder that started and was not seen to end (those under
    $WORKBENCH_HOME/train and those remembered at start): reading marks a run whose process
    died as `interrupted` and records it in the registry. Called by every listing of runs
    (`workbench runs list`, the Runs tab), so a killed run shows at once (issue 29, item 11)."""
    from workbench.paths import train_dir

    seen: dict[str, Path] = {}
    root = train_dir()
    if root.exists():
        for p in root.iterdir():
            if (p / LOG_NAME).exists():
                seen[str(p.resolve())] = p
    live = _live_file()
    try:
        for line in live.read_text(encoding="utf-8").splitlines():
            p = Path(line.strip())
            if line.strip() and (p / LOG_NAME).exists():
                seen.setdefault(str(p.resolve()), p)
    except OSError:
        pass
    out, still = [], []
    for key, p in seen.items():
        try:
            st = read_status(p)
        except Exception:  # noqa: BLE001 - one unreadable folder must not hide the others
            continue
        out.append(st)
        if st.get("state") == "running":
            still.append(key)
    try:
        if live.exists():
            write_text_atomic(live, "".join(k + "\n" for k in still))
    except OSError:
        pass
    return out


def list_runs(root: str | Path | None = None) -> list[dict]:
    """Status of every run folder under `root` (default $WORKBENCH_HOME/train), newest first: what a
    Train tab offers to reconnect to after a reload."""
    from workbench.paths import train_dir

    root = Path(root) if root else train_dir()
    if not root.exists():
        return []
    dirs = [p for p in root.iterdir() if (p / LOG_NAME).exists()]
    return [read_status(p) for p in sorted(dirs, key=lambda p: (p / LOG_NAME).stat().st_mtime, reverse=True)]



def _json_default(o):
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    return str(o)


def _write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=1, default=_json_default, ensure_ascii=False))


# ---------------------------------------------------------------------------- adapter files
def save_adapter_atomic(peft_model, run_dir: Path, template, cfg: TrainConfig, head=None,
                        extra: dict | None = None) -> Path:
    """Write the adapter to a temp folder, then rename it to `adapter/`. A reader sees either the
    previous complete adapter, none (for the instant between two renames), or the new complete one;
    never a half-written one."""
    from safetensors.torch import save_file

    run_dir = Path(run_dir)
    final = run_dir / ADAPTER_NAME
    tmp = run_dir / f".adapter.tmp-{os.getpid()}-{time.monotonic_ns()}"
    try:
        peft_model.save_pretrained(str(tmp))
        (tmp / "README.md").unlink(missing_ok=True)   # peft's model-card stub; our card is the run folder
        (tmp / "template.yaml").write_text(template.to_yaml(), encoding="utf-8")
        (tmp / "train_config.json").write_text(json.dumps({**asdict(cfg), **(extra or {})}, indent=1,
                                                          default=_json_default))
        if head is not None:
            save_file({k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()},
                      str(tmp / "head.safetensors"))
        # rename() cannot replace a non-empty folder, so move the old one aside first.
        old = None
        if final.exists():
            old = run_dir / f".adapter.old-{os.getpid()}-{time.monotonic_ns()}"
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
