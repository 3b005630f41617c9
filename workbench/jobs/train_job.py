"""A training run in the background: a thread of this process, or a run folder found on disk.

    job = TrainJob.start("default", template, dataset, cfg)     # validates, then trains in a thread
    job.status(); job.cancel(); job.wait()
    TrainJob.attach(run_dir)                                     # reconnect after a page reload
    result_figures(run_dir)                                      # plotly figures of a run
"""
from __future__ import annotations

import threading
from pathlib import Path

from workbench.jobs.run_folder import read_log, read_result, read_status, request_cancel
from workbench.jobs.training import TrainConfig, TrainResult, prepare, run_training
from workbench.jobs.run_folder import ProgressFn


# ---------------------------------------------------------------------------- background job
class TrainJob:
    """A training run in a background thread of this process, or one found on disk.

    Everything a UI shows comes from the run folder (log.jsonl, result.json), so `attach` after a
    page reload, or from a second browser or another process, sees the same state."""

    _live: dict[str, "TrainJob"] = {}
    _live_lock = threading.Lock()

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._result: TrainResult | None = None
        self.error: BaseException | None = None

    @classmethod
    def start(cls, model, template, dataset, config: TrainConfig, run_dir: str | Path | None = None, *,
              registry: bool = True, progress: ProgressFn | None = None) -> "TrainJob":
        """Validate (raising ConfigError/DataError at once), then train in a daemon thread. `model`: a name or
        a train spec's ModelRef (jobs.train_prepare.check_train_model)."""
        plan = prepare(model, template, dataset, config, run_dir, registry=registry)
        job = cls(plan.run_dir)

        def work():
            try:
                job._result = run_training(plan, progress=progress, cancel=job._stop.is_set)
            except BaseException as exc:  # noqa: BLE001 - reported through status()/wait()
                job.error = exc

        job._thread = threading.Thread(target=work, name=f"train:{plan.run_dir.name}", daemon=True)
        with cls._live_lock:
            cls._live[str(plan.run_dir.resolve())] = job
        job._thread.start()
        return job

    @classmethod
    def attach(cls, run_dir: str | Path) -> "TrainJob":
        """The live job for `run_dir` if this process runs it, else a read-only view of the folder."""
        with cls._live_lock:
            live = cls._live.get(str(Path(run_dir).resolve()))
        return live or cls(run_dir)

    def status(self) -> dict:
        st = read_status(self.run_dir)
        if self.error is not None:
            st.update(state="failed", error=f"{type(self.error).__name__}: {self.error}")
        return st

    def cancel(self) -> None:
        self._stop.set()
        request_cancel(self.run_dir)

    @property
    def running(self) -> bool:
        if self._thread is not None:
            return self._thread.is_alive()
        return read_status(self.run_dir)["state"] == "running"

    def wait(self, timeout: float | None = None) -> TrainResult | None:
        if self._thread is not None:
            self._thread.join(timeout)
            if self.error is not None and not self._thread.is_alive():
                raise self.error
        return self._result


def result_figures(run_dir: str | Path) -> dict:
    """Plotly figures of a run: curves (always), per-class F1 and confusion matrices (once finished)."""
    from workbench.core import plots

    figs = {"curves": plots.training_curves(read_log(run_dir))}
    res = read_result(run_dir)
    test = (res or {}).get("test")
    if test:
        figs["per_class"] = plots.side_by_side_per_class(test["base"], test["adapter"], names=("base", "base + adapter"))
        figs["confusion_base"] = plots.confusion_heatmap(test["base"], title="Confusion: base")
        figs["confusion_adapter"] = plots.confusion_heatmap(test["adapter"], title="Confusion: base + adapter")
    return figs
